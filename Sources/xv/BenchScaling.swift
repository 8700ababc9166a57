import ArgumentParser
import Foundation
import XVScenarios

/// `--scaling`: whether `xv bench` runs the scaling runs (ScalingRunner).
enum ScalingMode: String, ExpressibleByArgument, CaseIterable {
    case on, off
}

/// What the scaling runs came to.
struct ScalingReport {
    var iterations: Int
    var points: [ScalingRunner.Point]
    var creation: [ScalingRunner.Creation]
    var notFlat: [String]
    /// Whether the flatness verdict rests on instruction counts (else on mean times).
    var byInstructions: Bool
}

extension BenchCommand {
    func runScaling(instructions: InstructionReport) throws -> ScalingReport? {
        guard scaling == .on else { return nil }
        guard scalingIterations > 0, creationRounds > 0 else { throw ValidationError("--scaling-iterations and --creation-rounds must be positive") }
        let runner = ScalingRunner(runner: BenchRunner(iterations: scalingIterations, warmup: min(warmup, scalingIterations)), creationRounds: creationRounds)
        var points: [ScalingRunner.Point] = []
        for (i, dimension) in ScalingRunner.Dimension.allCases.enumerated() {
            points += runner.measure(dimension) { what in
                FileHandle.standardError.write(Data("[scaling \(i + 1)/\(ScalingRunner.Dimension.allCases.count)] \(what)\n".utf8))
            }
        }
        if let (counter, space) = instructions.counter {
            do {
                for i in points.indices {
                    let p = points[i]
                    FileHandle.standardError.write(Data("[scaling instructions \(i + 1)/\(points.count)] \(p.dimension.rawValue)=\(p.value) under callgrind\n".utf8))
                    points[i].instructions = try counter.measure(ScalingRunner.operations, shape: p.dimension.shape(p.value), in: space)
                }
            } catch {
                if self.instructions == .on { throw error }
                print("scaling: instructions not counted (\(error))")
                for i in points.indices { points[i].instructions = [:] }
            }
        }
        let creation = ScalingRunner.creationDomains.map { d -> ScalingRunner.Creation in
            FileHandle.standardError.write(Data("[scaling] create and destroy a world of \(d) domains\n".utf8))
            return runner.creation(domains: d)
        }
        return ScalingReport(iterations: scalingIterations, points: points, creation: creation, notFlat: ScalingRunner.notFlat(points) + ScalingRunner.notLinear(creation),
                             byInstructions: points.allSatisfy { !$0.instructions.isEmpty })
    }

    func printScaling(_ report: ScalingReport) {
        print("scaling: \(report.iterations) samples per side and point, mean ns per operation (timer cost subtracted); one dimension varied at a time from 2 domains of 2 vCPUs, 2-level")
        for dimension in ScalingRunner.Dimension.allCases {
            print("  \(dimension.rawValue): \(dimension.summary)")
        }
        let header = ["dimension", "N", "operation", "native mean", "transl mean", "ratio mean", "native p50", "transl p50", "viridian/op", "upcalls n/t",
                      "instr n", "instr t", "layer", "reference"]
        let rows = report.points.flatMap { p in
            p.results.map { r -> [String] in
                let c = p.instructions[r.operation]
                return [p.dimension.rawValue, "\(p.value)", r.operation.rawValue,
                        String(format: "%.1f ns", r.nativeMean), String(format: "%.1f ns", r.translatedMean), String(format: "%.2f", r.translatedMean / r.nativeMean),
                        String(format: "%.1f ns", BenchRunner.percentile(r.native, 0.5)), String(format: "%.1f ns", BenchRunner.percentile(r.translated, 0.5)),
                        String(format: "%.2f", r.viridianCallsPerOp), String(format: "%.2f/%.2f", r.nativeUpcallsPerOp, r.translatedUpcallsPerOp),
                        c.map { String(format: "%.0f", $0.native) } ?? "-", c.map { String(format: "%.0f", $0.translated) } ?? "-",
                        c.map { String(format: "%.0f", $0.layer) } ?? "-", c.map { String(format: "%.0f", $0.reference) } ?? "-"]
            }
        }
        Self.printAligned([header] + rows)
        let measure = report.byInstructions
            ? "instructions per operation (callgrind) more than \(BenchChart.format(ScalingRunner.flatInstructionTolerance))x"
            : "mean time more than \(BenchChart.format(ScalingRunner.flatTolerance))x (no instruction counts; times on a shared machine are noisy)"
        if report.notFlat.isEmpty {
            print("flat: no operation's \(measure) its smallest setting's, on any side, in any dimension")
        } else {
            print("NOT FLAT (operations: \(measure) the smallest setting's; world creation: time per domain more than \(BenchChart.format(ScalingRunner.flatTolerance))x the smallest world's):")
            for line in report.notFlat { print("  \(line)") }
        }
        print("world creation: create and destroy a world of N domains of 2 vCPUs, median of \(creationRounds) rounds per side (a per-domain time more than \(BenchChart.format(ScalingRunner.flatTolerance))x the smallest world's is listed above)")
        Self.printAligned([["domains", "native", "translated", "transl/native", "native per domain", "transl per domain"]] + report.creation.map { c in
            [String(c.domains), String(format: "%.3f ms", c.nativeNs / 1e6), String(format: "%.3f ms", c.translatedNs / 1e6), String(format: "%.2f", c.translatedNs / c.nativeNs),
             String(format: "%.1f us", c.nativeNs / 1e3 / Double(c.domains)), String(format: "%.1f us", c.translatedNs / 1e3 / Double(c.domains))]
        })
    }

    /// The "scaling" JSON object (README).
    static func scalingJSON(_ report: ScalingReport?) -> JSONValue {
        guard let report else { return .null }
        return .object([
            ("iterations", .int(report.iterations)),
            ("operations", .array(ScalingRunner.operations.map { .string($0.rawValue) })),
            ("flat_by", .string(report.byInstructions ? "instructions" : "mean_ns")),
            ("flat_tolerance", .number(report.byInstructions ? ScalingRunner.flatInstructionTolerance : ScalingRunner.flatTolerance)),
            ("dimensions", .array(ScalingRunner.Dimension.allCases.map { dimension in
                .object([
                    ("dimension", .string(dimension.rawValue)),
                    ("summary", .string(dimension.summary)),
                    ("points", .array(report.points.filter { $0.dimension == dimension }.map { p in
                        .object([
                            ("value", .int(p.value)),
                            ("operations", .array(p.results.map { r in
                                .object([
                                    ("name", .string(r.operation.rawValue)),
                                    ("native_ns_mean", .number(r.nativeMean)),
                                    ("translated_ns_mean", .number(r.translatedMean)),
                                    ("ratio_mean", .number(r.translatedMean / r.nativeMean)),
                                    ("native_ns_p50", .number(BenchRunner.percentile(r.native, 0.5))),
                                    ("translated_ns_p50", .number(BenchRunner.percentile(r.translated, 0.5))),
                                    ("viridian_calls_per_op", .number(r.viridianCallsPerOp)),
                                    ("native_upcalls_per_op", .number(r.nativeUpcallsPerOp)),
                                    ("translated_upcalls_per_op", .number(r.translatedUpcallsPerOp)),
                                ] + InstructionReport(status: "", reason: nil, tool: nil, iterations: [], counts: p.instructions).keys(r.operation))
                            })),
                        ])
                    })),
                ])
            })),
            ("not_flat", .array(report.notFlat.map(JSONValue.string))),
            ("world_creation", .array(report.creation.map { c in
                .object([
                    ("domains", .int(c.domains)),
                    ("rounds", .int(c.rounds)),
                    ("native_ns", .number(c.nativeNs)),
                    ("translated_ns", .number(c.translatedNs)),
                    ("ratio", .number(c.translatedNs / c.nativeNs)),
                ])
            })),
        ])
    }
}
