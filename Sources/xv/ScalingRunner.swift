import CBenchClock
import Foundation
import XVScenarios

/// `xv bench`'s scaling runs: a few operations measured as the main table measures them
/// (`BenchRunner`, interleaved, per-operation ns) on worlds that vary one dimension at a time
/// from the standard two domains of two vCPUs: FIFO ports in use, domains, vCPUs. Then the
/// time to create and destroy a whole world on each side. Each point is set up afresh; the
/// set-up is not timed, only the operation.
struct ScalingRunner {
    enum Dimension: String, CaseIterable {
        case ports, domains, vcpus

        /// The values each dimension takes.
        var values: [Int] {
            switch self {
            case .ports: return [16, 4_096, 131_071]
            case .domains: return [2, 16, 64]
            case .vcpus: return [1, 8, 32]
            }
        }

        func shape(_ value: Int) -> BenchWorldShape {
            switch self {
            case .ports: return BenchWorldShape(fifoPorts: value)
            case .domains: return BenchWorldShape(domains: value)
            case .vcpus: return BenchWorldShape(vcpus: value)
            }
        }

        var summary: String {
            switch self {
            case .ports: return "FIFO event channels, ports 1...N in use in both domains, the operation's channel on port N (2 domains, 2 vCPUs)"
            case .domains: return "N domains, the operation between domains 1 and 2 (2-level, 2 vCPUs each)"
            case .vcpus: return "N vCPUs per domain, IPIs to the last vCPU (to itself with 1) (2 domains, 2-level)"
            }
        }
    }

    /// The operations the scaling runs measure: the event paths and, because it covers every
    /// vCPU, the TLB flush.
    static let operations: [BenchOperation] = [.sendInterdomain, .sendIPI, .upcallDelivery, .tlbFlush]
    /// Domains in the world-creation runs.
    static let creationDomains = [2, 64]
    /// A mean time more than this factor above the same operation's at the smallest setting is
    /// reported as not flat when there are no instruction counts (the clock on a shared machine
    /// wanders by tens of percent between points set up apart).
    static let flatTolerance = 1.30
    /// The same for instruction counts, which do not wander: 5% more is reported.
    static let flatInstructionTolerance = 1.05

    struct Point {
        var dimension: Dimension
        var value: Int
        var results: [BenchRunner.Result]
        /// Under callgrind, when `--instructions` counted (empty otherwise).
        var instructions: [BenchOperation: InstructionCounter.Counts] = [:]
    }

    struct Creation {
        var domains: Int
        var rounds: Int
        /// Median ns to create and destroy the world.
        var nativeNs: Double
        var translatedNs: Double
    }

    let runner: BenchRunner
    let creationRounds: Int

    func measure(_ dimension: Dimension, progress: (String) -> Void) -> [Point] {
        dimension.values.map { value in
            let results = Self.operations.map { op -> BenchRunner.Result in
                progress("\(dimension.rawValue)=\(value) \(op.rawValue)")
                return runner.measure(op, shape: dimension.shape(value)) { _ in }
            }
            return Point(dimension: dimension, value: value, results: results)
        }
    }

    /// Create-and-destroy of a world of `domains` domains of two vCPUs, alternating the sides.
    func creation(domains: Int) -> Creation {
        var native: [Double] = [], translated: [Double] = []
        for _ in 0..<creationRounds {
            var t0 = xv_bench_monotonic_ns()
            do { let w = NativeWorld(domains: domains, vcpus: 2); withExtendedLifetime(w) {} }
            native.append(Double(xv_bench_monotonic_ns() &- t0))
            t0 = xv_bench_monotonic_ns()
            do { let w = TranslatedWorld(domains: domains, vcpus: 2); withExtendedLifetime(w) {} }
            translated.append(Double(xv_bench_monotonic_ns() &- t0))
        }
        return Creation(domains: domains, rounds: creationRounds, nativeNs: BenchRunner.percentile(native, 0.5), translatedNs: BenchRunner.percentile(translated, 0.5))
    }

    /// World creation whose time per domain at the largest world exceeds the smallest's by more
    /// than `flatTolerance`: it grows faster than the number of domains.
    static func notLinear(_ creation: [Creation]) -> [String] {
        guard let small = creation.min(by: { $0.domains < $1.domains }), let large = creation.max(by: { $0.domains < $1.domains }),
              large.domains > small.domains else { return [] }
        return [("native", \Creation.nativeNs), ("translated", \Creation.translatedNs)].compactMap { side, ns in
            let a = small[keyPath: ns] / Double(small.domains), b = large[keyPath: ns] / Double(large.domains)
            guard a > 0, b / a > flatTolerance else { return nil }
            return "world creation, \(side): \(String(format: "%.1f", b / 1e3)) us per domain with \(large.domains) domains against \(String(format: "%.1f", a / 1e3)) us with \(small.domains) (x\(String(format: "%.2f", b / a))): grows faster than the number of domains"
        }
    }

    /// For each dimension, operation and side whose cost at some setting exceeds its cost at
    /// the smallest by more than the tolerance: a sentence saying so. Instructions decide when
    /// every point was counted, the mean times otherwise. The baseline is the smallest setting
    /// whose path is the same as the others' (as many Viridian calls): with one vCPU the IPI
    /// goes to the sender itself, which the layer delivers without one.
    static func notFlat(_ points: [Point]) -> [String] {
        var out: [String] = []
        let byInstructions = !points.isEmpty && points.allSatisfy { !$0.instructions.isEmpty }
        for dimension in Dimension.allCases {
            let series = points.filter { $0.dimension == dimension }.sorted { $0.value < $1.value }
            guard let last = series.last else { continue }
            for (i, op) in operations.enumerated() {
                let comparable = series.filter { $0.results[i].viridianCallsPerOp == last.results[i].viridianCallsPerOp }
                guard let first = comparable.first, comparable.count > 1 else { continue }
                typealias Figure = (Point) -> Double?
                let sides: [(String, Figure)] = byInstructions
                    ? [("native", { $0.instructions[op]?.native }), ("translated", { $0.instructions[op]?.translated }),
                       ("translated layer", { $0.instructions[op]?.layer }), ("translated reference", { $0.instructions[op]?.reference })]
                    : [("native", { $0.results[i].nativeMean }), ("translated", { $0.results[i].translatedMean })]
                let tolerance = byInstructions ? flatInstructionTolerance : flatTolerance
                let unit = byInstructions ? "instructions" : "ns"
                for (side, figure) in sides {
                    guard let base = figure(first), base > 0 else { continue }
                    let worst = comparable.dropFirst().compactMap { p in figure(p).map { (p.value, $0) } }.max { $0.1 < $1.1 }
                    guard let (value, cost) = worst, cost / base > tolerance else { continue }
                    out.append("\(op.rawValue), \(side): not flat in \(dimension.rawValue): \(String(format: "%.1f", cost)) \(unit) at \(value) against \(String(format: "%.1f", base)) at \(first.value) (x\(String(format: "%.2f", cost / base)))")
                }
            }
        }
        return out
    }
}
