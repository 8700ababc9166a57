import CBenchClock
import CMallocCounter
import Foundation
import XVScenarios

/// Measures `ThroughputScenario`s on both sides in one run: for each scenario, rounds that
/// alternate native and translated (a fresh world each), every lane on a thread of its own,
/// started together; a round's throughput is all lanes' sends over the wall time from the start
/// signal to the last lane's end. The median round is reported. Allocations are counted on each
/// lane's own thread around its loop.
struct ThroughputRunner {
    struct Side {
        var opsPerSecond: Double
        var nsPerOp: Double
        var allocsPerOp: Double
        var failedSends: Int
    }

    struct Result {
        var scenario: ThroughputScenario
        var threads: Int
        var sendsPerThread: Int
        var native: Side
        var translated: Side
    }

    let sendsPerThread: Int
    let rounds: Int

    func measure(_ scenario: ThroughputScenario) -> Result {
        var native: [Side] = [], translated: [Side] = []
        for round in 0..<rounds {
            // Alternate which side goes first, as the latency runs do.
            for side in (round % 2 == 0 ? [true, false] : [false, true]) {
                if side { native.append(run(scenario, native: true)) } else { translated.append(run(scenario, native: false)) }
            }
        }
        return Result(scenario: scenario, threads: scenario.lanesCount, sendsPerThread: sendsPerThread,
                      native: Self.median(native), translated: Self.median(translated))
    }

    static func median(_ sides: [Side]) -> Side {
        let sorted = sides.sorted { $0.opsPerSecond < $1.opsPerSecond }
        return sorted[sorted.count / 2]
    }

    /// One round on a fresh world of four domains of two vCPUs.
    func run(_ scenario: ThroughputScenario, native: Bool) -> Side {
        let nativeWorld = native ? NativeWorld(domains: 4, vcpus: 2) : nil
        let translatedWorld = native ? nil : TranslatedWorld(domains: 4, vcpus: 2)
        let world: any XenWorld = nativeWorld ?? translatedWorld!
        let lanes = throughputLanes(scenario, on: world)
        let n = sendsPerThread
        // Warm each lane up on its own first (unmeasured).
        for lane in lanes { _ = body(lane, nativeWorld, translatedWorld, max(n / 10, 1)) }
        let box = RoundState(lanes: lanes.count)
        let done = DispatchSemaphore(value: 0)
        // The worlds are used by these threads only until the round ends (the contract makes
        // that safe; the type system cannot see it).
        nonisolated(unsafe) let worlds = (nativeWorld, translatedWorld)
        for (i, lane) in lanes.enumerated() {
            let t = Thread {
                box.ready()
                while !box.started { sched_yield() }
                xv_malloc_counter_begin()
                let failed = self.body(lane, worlds.0, worlds.1, n)
                let allocs = xv_malloc_counter_end()
                box.finish(i, at: xv_bench_monotonic_ns(), failed: failed, allocs: allocs)
                done.signal()
            }
            t.start()
        }
        box.waitReady()
        let start = xv_bench_monotonic_ns()
        box.start()
        for _ in lanes { done.wait() }
        let wall = Double(box.lastEnd &- start)
        let total = Double(n * lanes.count)
        return Side(opsPerSecond: total / (wall / 1e9), nsPerOp: wall / Double(n), allocsPerOp: Double(box.allocs) / total,
                    failedSends: box.failed)
    }

    func body(_ lane: ThroughputLane, _ n: NativeWorld?, _ t: TranslatedWorld?, _ count: Int) -> Int {
        if let n { return lane.run(native: n, count: count) }
        return lane.run(translated: t!, count: count)
    }
}

extension ThroughputScenario {
    var lanesCount: Int {
        switch self {
        case .oneSender: return 1
        case .twoSenders, .twoVCPUsOneDomain: return 2
        }
    }
}

/// What the lane threads of one round report to the runner.
final class RoundState: @unchecked Sendable {
    private let lock = NSLock()
    private let lanes: Int
    private var readyCount = 0
    private var go = false
    private(set) var lastEnd: UInt64 = 0
    private(set) var failed = 0
    private(set) var allocs: UInt64 = 0

    init(lanes: Int) { self.lanes = lanes }

    func ready() { lock.withLock { readyCount += 1 } }
    func waitReady() { while lock.withLock({ readyCount < lanes }) { sched_yield() } }
    func start() { lock.withLock { go = true } }
    var started: Bool { lock.withLock { go } }
    func finish(_ lane: Int, at end: UInt64, failed f: Int, allocs a: UInt64) {
        lock.withLock {
            lastEnd = max(lastEnd, end)
            failed += f
            allocs += a
        }
    }
}
