import Benchmark
import XVScenarios

/// Each operation of `BenchOperation`, native and translated, registered one after the other
/// so they run in the same process and the same run. Every iteration resets the guest (its
/// upcall handler's work: clear upcall_pending, the selector and the pending bits), then does
/// the operation; both sides pay the same reset. `viridian_calls` counts the Viridian
/// hypercalls the layer issued per operation (0 on the native side by construction).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput, .custom("viridian_calls")],
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )
    for operation in BenchOperation.allCases {
        nonisolated(unsafe) let pair = BenchPair(operation)
        Benchmark("\(operation.rawValue) native") { benchmark in
            for _ in benchmark.scaledIterations {
                pair.resetNative()
                blackHole(pair.runNative())
            }
            benchmark.measurement(.custom("viridian_calls"), 0)
        }
        Benchmark("\(operation.rawValue) translated") { benchmark in
            let before = pair.viridianHypercalls
            for _ in benchmark.scaledIterations {
                pair.resetTranslated()
                blackHole(pair.runTranslated())
            }
            // The sample's total; the kilo scaling factor turns it into calls per operation.
            benchmark.measurement(.custom("viridian_calls"), pair.viridianHypercalls - before)
        }
    }
    // The blkif ring (a C frontend and backend on libxen-dev's ring.h and blkif.h, between two
    // domains): one iteration is one write and its read-back, two ring requests. Registered
    // only when the ring was built (libxen-dev's headers present at build time).
    if BlkifRingExchange.isAvailable {
        for native in [true, false] {
            nonisolated(unsafe) let ring = BlkifRingExchange(native: native)
            guard ring.setUp() == 0 else { continue }
            Benchmark("blkif_ring_exchange \(native ? "native" : "translated")") { benchmark in
                for _ in benchmark.scaledIterations {
                    blackHole(ring.exchange(1))
                }
            }
        }
    }
}
