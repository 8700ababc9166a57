import CBenchClock
import CMallocCounter
import Foundation
import XVScenarios

/// Measures one operation on both sides, interleaved: sample i runs native then translated
/// when i is even and the other way round when odd, each after an unmeasured reset, so drift
/// and cache effects fall on both alike. Times come from the fenced time-stamp counter (x86_64;
/// CLOCK_MONOTONIC elsewhere) around the operation alone, converted to ns at a rate
/// calibrated against CLOCK_MONOTONIC, minus the timer's own cost (the median of empty
/// measurements).
struct BenchRunner {
    struct Result {
        var operation: BenchOperation
        var iterations: Int
        var native: [Double]
        var translated: [Double]
        /// translated_i / native_i for each pair.
        var ratios: [Double]
        /// Mean ns per operation: the mean of the unclamped samples minus the mean timer cost.
        /// With a clock that ticks coarsely (10 ns here) the mean is the finer estimate: the
        /// operation's phase against the tick varies, so the rounding averages out, while
        /// percentiles stay on the tick grid.
        var nativeMean: Double
        var translatedMean: Double
        var viridianCallsPerOp: Double
        var nativeAllocsPerOp: Double
        var translatedAllocsPerOp: Double
        /// Swift retains plus releases per operation (nil where the runtime's hooks are absent).
        var nativeRefcountOpsPerOp: Double?
        var translatedRefcountOpsPerOp: Double?
        var nativeUpcallsPerOp: Double
        var translatedUpcallsPerOp: Double
    }

    let iterations: Int
    let warmup: Int
    /// Nanoseconds per clock tick (1 for CLOCK_MONOTONIC).
    let nsPerTick: Double
    /// The cost of an empty measurement, in ns: median (subtracted from each sample) and mean
    /// (subtracted from the means).
    let timerOverhead: Double
    let timerOverheadMean: Double
    /// What the ticks are, for the report.
    let clockName: String

    init(iterations: Int, warmup: Int) {
        self.iterations = iterations
        self.warmup = warmup
        if xv_bench_ticks_are_cycles() != 0 {
            // The TSC rate, over 100 ms of CLOCK_MONOTONIC (the 10 ns granularity of the
            // latter is 1e-7 of that).
            let n0 = xv_bench_monotonic_ns(), c0 = xv_bench_ticks()
            while xv_bench_monotonic_ns() &- n0 < 100_000_000 {}
            let n1 = xv_bench_monotonic_ns(), c1 = xv_bench_ticks()
            nsPerTick = Double(n1 &- n0) / Double(c1 &- c0)
            clockName = String(format: "TSC at %.3f GHz", 1 / nsPerTick)
        } else {
            nsPerTick = 1
            clockName = "CLOCK_MONOTONIC"
        }
        var empty: [Double] = []
        empty.reserveCapacity(10_000)
        for _ in 0..<10_000 {
            let t0 = xv_bench_ticks()
            let t1 = xv_bench_ticks()
            empty.append(Double(t1 &- t0) * nsPerTick)
        }
        timerOverhead = Self.percentile(empty, 0.5)
        timerOverheadMean = empty.reduce(0, +) / Double(empty.count)
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let rank = Int((p * Double(sorted.count - 1)).rounded())
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    /// The raw duration of `body` in ns, timer cost included.
    @inline(__always)
    func timed(_ body: () -> Int64) -> Double {
        let t0 = xv_bench_ticks()
        let r = body()
        let t1 = xv_bench_ticks()
        precondition(r == 0, "a benchmarked hypercall failed with \(r)")
        return Double(t1 &- t0) * nsPerTick
    }

    /// `countReferences: false` leaves the Swift runtime's reference-counting hooks alone (a
    /// process running other threads, such as the parallel test runner, should not swap them).
    func measure(_ operation: BenchOperation, shape: BenchWorldShape = .standard, countReferences: Bool = true, progress: (Int) -> Void) -> Result {
        let pair = BenchPair(operation, shape: shape)
        for _ in 0..<warmup {
            pair.resetNative(); _ = pair.runNative()
            pair.resetTranslated(); _ = pair.runTranslated()
        }
        var native = [Double](), translated = [Double](), ratios = [Double]()
        native.reserveCapacity(iterations); translated.reserveCapacity(iterations); ratios.reserveCapacity(iterations)
        let step = max(iterations / 10, 1)
        var rawNative = 0.0, rawTranslated = 0.0
        for i in 0..<iterations {
            var n = 0.0, t = 0.0
            if i & 1 == 0 {
                pair.resetNative(); n = timed { pair.runNative() }
                pair.resetTranslated(); t = timed { pair.runTranslated() }
            } else {
                pair.resetTranslated(); t = timed { pair.runTranslated() }
                pair.resetNative(); n = timed { pair.runNative() }
            }
            rawNative += n; rawTranslated += t
            n = max(n - timerOverhead, 0); t = max(t - timerOverhead, 0)
            native.append(n); translated.append(t)
            ratios.append(t / max(n, 1))
            if (i + 1) % step == 0 { progress(i + 1) }
        }

        // Counted after the timing (the reference-counting hooks lengthen every retain while
        // installed), around the operation alone: allocations, Swift retains and releases,
        // Viridian calls and upcalls.
        var nativeAllocs: UInt64 = 0, translatedAllocs: UInt64 = 0
        var nativeRefcounts: UInt64 = 0, translatedRefcounts: UInt64 = 0
        let refcounting = countReferences && xv_refcount_counter_install() != 0
        defer { if refcounting { xv_refcount_counter_remove() } }
        let callsBefore = pair.viridianHypercalls
        let nativeUpcallsBefore = pair.nativeUpcalls, translatedUpcallsBefore = pair.translatedUpcalls
        let counted = min(iterations, 10_000)
        for _ in 0..<counted {
            pair.resetNative()
            xv_malloc_counter_begin(); xv_refcount_counter_begin()
            _ = pair.runNative()
            nativeRefcounts += xv_refcount_counter_end(); nativeAllocs += xv_malloc_counter_end()
            pair.resetTranslated()
            xv_malloc_counter_begin(); xv_refcount_counter_begin()
            _ = pair.runTranslated()
            translatedRefcounts += xv_refcount_counter_end(); translatedAllocs += xv_malloc_counter_end()
        }
        func perOp<N: BinaryInteger>(_ n: N) -> Double { Double(n) / Double(counted) }
        return Result(operation: operation, iterations: iterations, native: native, translated: translated, ratios: ratios,
                      nativeMean: rawNative / Double(iterations) - timerOverheadMean,
                      translatedMean: rawTranslated / Double(iterations) - timerOverheadMean,
                      viridianCallsPerOp: perOp(pair.viridianHypercalls - callsBefore),
                      nativeAllocsPerOp: perOp(nativeAllocs),
                      translatedAllocsPerOp: perOp(translatedAllocs),
                      nativeRefcountOpsPerOp: refcounting ? perOp(nativeRefcounts) : nil,
                      translatedRefcountOpsPerOp: refcounting ? perOp(translatedRefcounts) : nil,
                      nativeUpcallsPerOp: perOp(pair.nativeUpcalls - nativeUpcallsBefore),
                      translatedUpcallsPerOp: perOp(pair.translatedUpcalls - translatedUpcallsBefore))
    }
}
