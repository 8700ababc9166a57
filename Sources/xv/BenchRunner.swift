import CMallocCounter
import Foundation
import XVScenarios

/// Measures one operation on both sides, interleaved: sample i runs native then translated
/// when i is even and the other way round when odd, each after an unmeasured reset, so drift
/// and cache effects fall on both alike. Times come from CLOCK_MONOTONIC around the operation
/// alone, minus the timer's own cost (the median of empty measurements).
struct BenchRunner {
    struct Result {
        var operation: BenchOperation
        var iterations: Int
        var native: [Double]
        var translated: [Double]
        /// translated_i / native_i for each pair.
        var ratios: [Double]
        var viridianCallsPerOp: Double
        var nativeAllocsPerOp: Double
        var translatedAllocsPerOp: Double
        var nativeUpcallsPerOp: Double
        var translatedUpcallsPerOp: Double
    }

    let iterations: Int
    let warmup: Int
    let timerOverhead: Double

    init(iterations: Int, warmup: Int) {
        self.iterations = iterations
        self.warmup = warmup
        var empty: [Double] = []
        empty.reserveCapacity(10_000)
        for _ in 0..<10_000 {
            let t0 = Self.now()
            let t1 = Self.now()
            empty.append(Double(t1 &- t0))
        }
        timerOverhead = Self.percentile(empty, 0.5)
    }

    @inline(__always)
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let rank = Int((p * Double(sorted.count - 1)).rounded())
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    @inline(__always)
    func timed(_ body: () -> Int64) -> Double {
        let t0 = Self.now()
        let r = body()
        let t1 = Self.now()
        precondition(r == 0, "a benchmarked hypercall failed with \(r)")
        return max(Double(t1 &- t0) - timerOverhead, 0)
    }

    func measure(_ operation: BenchOperation, progress: (Int) -> Void) -> Result {
        let pair = BenchPair(operation)
        for _ in 0..<warmup {
            pair.resetNative(); _ = pair.runNative()
            pair.resetTranslated(); _ = pair.runTranslated()
        }
        // Allocations and Viridian calls, counted around the operation alone.
        var nativeAllocs: UInt64 = 0, translatedAllocs: UInt64 = 0
        let callsBefore = pair.viridianHypercalls
        let nativeUpcallsBefore = pair.nativeUpcalls, translatedUpcallsBefore = pair.translatedUpcalls
        let counted = min(iterations, 10_000)
        for _ in 0..<counted {
            pair.resetNative()
            xv_malloc_counter_begin(); _ = pair.runNative(); nativeAllocs += xv_malloc_counter_end()
            pair.resetTranslated()
            xv_malloc_counter_begin(); _ = pair.runTranslated(); translatedAllocs += xv_malloc_counter_end()
        }
        let calls = Double(pair.viridianHypercalls - callsBefore) / Double(counted)
        let nativeUpcalls = Double(pair.nativeUpcalls - nativeUpcallsBefore) / Double(counted)
        let translatedUpcalls = Double(pair.translatedUpcalls - translatedUpcallsBefore) / Double(counted)

        var native = [Double](), translated = [Double](), ratios = [Double]()
        native.reserveCapacity(iterations); translated.reserveCapacity(iterations); ratios.reserveCapacity(iterations)
        let step = max(iterations / 10, 1)
        for i in 0..<iterations {
            var n = 0.0, t = 0.0
            if i & 1 == 0 {
                pair.resetNative(); n = timed { pair.runNative() }
                pair.resetTranslated(); t = timed { pair.runTranslated() }
            } else {
                pair.resetTranslated(); t = timed { pair.runTranslated() }
                pair.resetNative(); n = timed { pair.runNative() }
            }
            native.append(n); translated.append(t)
            ratios.append(t / max(n, 1))
            if (i + 1) % step == 0 { progress(i + 1) }
        }
        return Result(operation: operation, iterations: iterations, native: native, translated: translated, ratios: ratios,
                      viridianCallsPerOp: calls, nativeAllocsPerOp: Double(nativeAllocs) / Double(counted),
                      translatedAllocsPerOp: Double(translatedAllocs) / Double(counted),
                      nativeUpcallsPerOp: nativeUpcalls, translatedUpcallsPerOp: translatedUpcalls)
    }
}
