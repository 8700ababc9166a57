import Foundation

/// Runs each body on a thread of its own and returns when all have finished: the thread
/// stress tests' vCPUs.
public func runConcurrently(_ bodies: [@Sendable () -> Void]) {
    let done = DispatchSemaphore(value: 0)
    for body in bodies {
        let t = Thread {
            body()
            done.signal()
        }
        t.stackSize = 1 << 21
        t.start()
    }
    for _ in bodies { done.wait() }
}
