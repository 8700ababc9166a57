import CKVM
import Foundation
import Glibc

/// Runs a vCPU until it halts, with the debug-port console guests use (ports 0xE9 and 0x12:
/// every byte written is console output) and a wall-clock limit: a watchdog thread makes
/// KVM_RUN return (immediate_exit and SIGUSR1 to the vCPU's thread) when the guest neither
/// halts nor exits in time.
public struct KVMConsoleRun {
    /// How the run ended.
    public enum Outcome: Equatable, Sendable {
        /// The guest executed HLT.
        case halted
        /// The watchdog stopped the guest at the time limit.
        case timedOut
        /// An exit the host does not handle yet (KVM_EXIT_*), with the port for port I/O.
        case unhandled(String)
    }

    /// The vCPU the run drives.
    public let vcpu: KVMVCPU
    /// The wall-clock limit of the run.
    public let timeout: Duration

    /// A run of `vcpu` with a wall-clock limit.
    public init(vcpu: KVMVCPU, timeout: Duration = .seconds(10)) {
        self.vcpu = vcpu
        self.timeout = timeout
    }

    /// The console ports.
    public static let consolePorts: Set<UInt16> = [0xE9, 0x12]

    /// Runs to HLT; the console bytes and how it ended.
    public func run() throws(KVMError) -> (console: [UInt8], outcome: Outcome) {
        KVMWatchdog.installSignalHandler()
        let watchdog = KVMWatchdog(vcpu: vcpu, thread: pthread_self(), timeout: timeout)
        watchdog.start()
        defer { watchdog.stop() }
        var console: [UInt8] = []
        while true {
            switch try vcpu.runOnce() {
            case .halt: return (console, .halted)
            case .portOut(let port, let bytes):
                if Self.consolePorts.contains(port) { console += bytes } else { return (console, .unhandled("out to port 0x\(String(port, radix: 16))")) }
            case .portIn(let port, let size):
                // The debug port reads as 0xE9 (QEMU's isa-debugcon answers its own port number).
                if port == 0xE9 { vcpu.answerPortIn(Array(repeating: 0xE9, count: size)) } else { return (console, .unhandled("in from port 0x\(String(port, radix: 16))")) }
            case .interrupted:
                if watchdog.fired { return (console, .timedOut) }
            case .other(let reason):
                return (console, .unhandled("KVM exit reason \(reason)"))
            }
        }
    }
}

/// Ends a KVM_RUN that takes too long: after `timeout` it sets the vCPU's immediate_exit and
/// signals the vCPU's thread, so KVM_RUN returns EINTR.
final class KVMWatchdog: @unchecked Sendable {
    let vcpu: KVMVCPU
    let thread: pthread_t
    let timeout: Duration
    private let lock = NSLock()
    private var done = false
    private var didFire = false
    private var worker: Thread?

    init(vcpu: KVMVCPU, thread: pthread_t, timeout: Duration) {
        self.vcpu = vcpu
        self.thread = thread
        self.timeout = timeout
    }

    var fired: Bool { lock.withLock { didFire } }

    func start() {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let t = Thread { [self] in
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if lock.withLock({ done }) { return }
                Thread.sleep(forTimeInterval: 0.01)
            }
            // Until the run loop has seen it: a signal that lands between two KVM_RUNs is
            // answered by immediate_exit on the next.
            while true {
                let finished: Bool = lock.withLock {
                    guard !done else { return true }
                    didFire = true
                    vcpu.requestExit()
                    pthread_kill(thread, SIGUSR1)
                    return false
                }
                if finished { return }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        worker = t
        t.start()
    }

    func stop() { lock.withLock { done = true } }

    /// SIGUSR1 does nothing but interrupt KVM_RUN (no SA_RESTART).
    static func installSignalHandler() {
        // The vCPU's thread may have inherited a mask that blocks it (a thread pool's workers
        // often do); KVM_RUN returns only for a signal the thread accepts.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGUSR1)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(SIGUSR1, &action, nil)
    }
}
