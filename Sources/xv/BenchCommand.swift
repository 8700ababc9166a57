import ArgumentParser
import CMallocCounter
import Foundation
import XVScenarios

/// `xv bench`: native Xen handling against translated handling of the same operations, side by
/// side in one run. The JSON format is in README.md.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure native (XenNative) against translated (XenViridian over ViridianReference) event-channel operations.",
        discussion: """
        Build in release for meaningful figures: swift run -c release xv bench. Times are per \
        operation in ns (p50, p99), the ratio is translated/native computed pair by pair, \
        allocations are counted per operation, and Viridian calls are the hypercalls the layer \
        issued per Xen operation.
        """
    )

    @Option(help: "Measured samples per operation and side.")
    var iterations = 20_000

    @Option(help: "Unmeasured warm-up rounds per operation and side.")
    var warmup = 2_000

    @Option(help: "Write the results as JSON to this path.")
    var json: String?

    @Option(help: "Only these operations (repeatable).")
    var operation: [String] = []

    func run() throws {
        guard iterations > 0, warmup >= 0 else { throw ValidationError("--iterations must be positive, --warmup not negative") }
        var chosen = BenchOperation.allCases
        if !operation.isEmpty {
            chosen = try operation.map { name in
                guard let op = BenchOperation(rawValue: name) else {
                    throw ValidationError("unknown operation \(name); known: \(BenchOperation.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return op
            }
        }
        #if DEBUG
        let build = "debug"
        FileHandle.standardError.write(Data("xv bench: this is a debug build; use `swift run -c release xv bench` for representative figures\n".utf8))
        #else
        let build = "release"
        #endif
        let counting = xv_malloc_counter_is_active() != 0
        let runner = BenchRunner(iterations: iterations, warmup: warmup)
        var results: [BenchRunner.Result] = []
        for (i, op) in chosen.enumerated() {
            let label = "[\(i + 1)/\(chosen.count)] \(op.rawValue)"
            FileHandle.standardError.write(Data("\(label): setting up\n".utf8))
            let r = runner.measure(op) { done in
                FileHandle.standardError.write(Data("\(label): \(done)/\(iterations) samples\n".utf8))
            }
            results.append(r)
        }
        printTable(results, build: build, overhead: runner.timerOverhead, counting: counting)
        if let json {
            var out = ""
            report(results, build: build, overhead: runner.timerOverhead, counting: counting).write(into: &out)
            try (out + "\n").write(toFile: json, atomically: true, encoding: .utf8)
            print("wrote \(json)")
        }
    }

    func printTable(_ results: [BenchRunner.Result], build: String, overhead: Double, counting: Bool) {
        print("xv bench: \(build) build, \(iterations) samples per side, timer overhead \(String(format: "%.1f", overhead)) ns subtracted")
        let header = ["operation", "native p50", "transl p50", "ratio p50", "native p99", "transl p99", "viridian/op", "allocs n/t"]
        let rows = results.map { r -> [String] in
            [r.operation.rawValue,
             String(format: "%.1f ns", BenchRunner.percentile(r.native, 0.5)),
             String(format: "%.1f ns", BenchRunner.percentile(r.translated, 0.5)),
             String(format: "%.2f", BenchRunner.percentile(r.ratios, 0.5)),
             String(format: "%.1f ns", BenchRunner.percentile(r.native, 0.99)),
             String(format: "%.1f ns", BenchRunner.percentile(r.translated, 0.99)),
             String(format: "%.2f", r.viridianCallsPerOp),
             counting ? String(format: "%.2f/%.2f", r.nativeAllocsPerOp, r.translatedAllocsPerOp) : "n/a"]
        }
        let widths = (0..<header.count).map { c in ([header] + rows).map { $0[c].count }.max()! }
        for row in [header] + rows {
            print(row.enumerated().map { c, cell in c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[c] - cell.count) + cell }.joined(separator: "  "))
        }
        if !counting { print("allocation counting is not active on this platform (glibc malloc interposition)") }
    }

    func report(_ results: [BenchRunner.Result], build: String, overhead: Double, counting: Bool) -> JSONValue {
        .object([
            ("tool", .string("xv bench")),
            ("build", .string(build)),
            ("iterations", .int(iterations)),
            ("timer_overhead_ns", .number(overhead)),
            ("allocation_counting", .bool(counting)),
            ("operations", .array(results.map { r in
                .object([
                    ("name", .string(r.operation.rawValue)),
                    ("description", .string(r.operation.summary)),
                    ("native_ns_p50", .number(BenchRunner.percentile(r.native, 0.5))),
                    ("translated_ns_p50", .number(BenchRunner.percentile(r.translated, 0.5))),
                    ("native_ns_p99", .number(BenchRunner.percentile(r.native, 0.99))),
                    ("translated_ns_p99", .number(BenchRunner.percentile(r.translated, 0.99))),
                    ("ratio_p50", .number(BenchRunner.percentile(r.ratios, 0.5))),
                    ("viridian_calls_per_op", .number(r.viridianCallsPerOp)),
                    ("native_allocs_per_op", counting ? .number(r.nativeAllocsPerOp) : .null),
                    ("translated_allocs_per_op", counting ? .number(r.translatedAllocsPerOp) : .null),
                    ("native_upcalls_per_op", .number(r.nativeUpcallsPerOp)),
                    ("translated_upcalls_per_op", .number(r.translatedUpcallsPerOp)),
                ])
            })),
        ])
    }
}
