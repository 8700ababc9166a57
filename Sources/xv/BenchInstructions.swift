import ArgumentParser
import Foundation
import XVScenarios

/// `--instructions`: whether `xv bench` counts instructions under callgrind.
enum InstructionMode: String, ExpressibleByArgument, CaseIterable {
    /// Counted when valgrind is on PATH; otherwise the report says it was skipped and why.
    case auto
    /// Counted, and `xv bench` fails when they cannot be (no valgrind, a probe failed).
    case on
    case off
}

/// What the instruction counts came to, for the table and the JSON.
struct InstructionReport {
    /// "measured", "skipped" or "failed".
    var status: String
    var reason: String?
    var tool: String?
    var iterations: [Int]
    var counts: [BenchOperation: InstructionCounter.Counts]
    /// What counted them, for the scaling points (nil when they were not counted).
    var counter: (InstructionCounter, InstructionCounter.Workspace)? = nil

    static var skipped: InstructionReport { InstructionReport(status: "skipped", reason: "--instructions off", tool: nil, iterations: [], counts: [:]) }

    /// The per-operation JSON keys (null where the operation was not counted).
    func keys(_ op: BenchOperation) -> [(String, JSONValue)] {
        let c = counts[op]
        func n(_ f: (InstructionCounter.Counts) -> Double) -> JSONValue { c.map { .number(f($0)) } ?? .null }
        func b(_ f: (InstructionCounter.Counts) -> Bool) -> JSONValue { c.map { .bool(f($0)) } ?? .null }
        return [
            ("native_instructions_per_op", n(\.native)),
            ("translated_instructions_per_op", n(\.translated)),
            ("translated_layer_instructions_per_op", n(\.layer)),
            ("translated_reference_instructions_per_op", n(\.reference)),
            ("layer_native_instruction_ratio", n(\.layerRatio)),
            ("translated_native_instruction_ratio", n(\.translatedRatio)),
            ("layer_meets_aim", b(\.meetsLayerAim)),
            ("translated_meets_aim", b(\.meetsTranslatedAim)),
        ]
    }

    /// The top-level "instructions" object.
    var json: JSONValue {
        .object([
            ("status", .string(status)),
            ("reason", .string(reason)),
            ("tool", .string(tool)),
            ("iterations", .array(iterations.map(JSONValue.int))),
            ("layer_aim", .number(InstructionCounter.layerAim)),
            ("translated_aim", .number(InstructionCounter.translatedAim)),
        ])
    }
}

extension BenchCommand {
    /// The hidden probe mode (`--instruction-probe`), which `InstructionCounter` runs under
    /// callgrind: the phases of each chosen operation, one line per phase on stdout.
    func runInstructionProbe(_ operations: [BenchOperation]) {
        let shape = BenchWorldShape(domains: probeDomains, vcpus: probeVcpus, fifoPorts: probeFifoPorts)
        for op in operations {
            InstructionProbe.run(op, shape: shape, counts: [instructionIterations, 2 * instructionIterations], warmup: warmup) { mode, n in
                // Unbuffered, so the line is out before the next phase starts.
                FileHandle.standardOutput.write(Data("phase \(op.rawValue) \(mode.rawValue) \(n)\n".utf8))
            }
        }
    }

    /// Counts the chosen operations as `--instructions` asks; throws only when it says `on`
    /// and they could not be counted.
    func measureInstructions(_ operations: [BenchOperation]) throws -> InstructionReport {
        guard instructions != .off else { return .skipped }
        #if DEBUG
        if instructions == .auto {
            return InstructionReport(status: "skipped", reason: "debug build (counts are for release code)", tool: nil, iterations: [], counts: [:])
        }
        #endif
        let counter: InstructionCounter
        switch InstructionCounter.locate(iterations: instructionIterations, warmup: min(warmup, 200)) {
        case .success(let c): counter = c
        case .failure(let why):
            // A missing tool is not a usage error: no usage text after it.
            if instructions == .on { throw InstructionCounter.Failure.unavailable("--instructions on: \(why)") }
            print("instructions: not counted (\(why); install valgrind, or pass --instructions off)")
            return InstructionReport(status: "skipped", reason: why.description, tool: nil, iterations: [], counts: [:])
        }
        do {
            let space = try counter.workspace()
            FileHandle.standardError.write(Data("[instructions] \(operations.count) operations under callgrind\n".utf8))
            let counts = try counter.measure(operations, in: space)
            var report = InstructionReport(status: "measured", reason: nil, tool: counter.version, iterations: counter.counts, counts: counts)
            report.counter = (counter, space)
            return report
        } catch {
            if instructions == .on { throw error }
            print("instructions: not counted (\(error))")
            return InstructionReport(status: "failed", reason: "\(error)", tool: counter.version, iterations: counter.counts, counts: [:])
        }
    }

    func printInstructions(_ report: InstructionReport, _ operations: [BenchOperation]) {
        guard report.status == "measured" else { return }
        print("instructions per operation: \(report.tool ?? "callgrind"), (count at N=\(report.iterations[1]) - count at N=\(report.iterations[0])) / \(report.iterations[1] - report.iterations[0]); translated = layer + reference")
        let header = ["operation", "native", "translated", "layer", "reference", "layer/native", "transl/native",
                      "layer<=\(BenchChart.format(InstructionCounter.layerAim))x", "transl<=\(BenchChart.format(InstructionCounter.translatedAim))x"]
        let rows = operations.compactMap { op -> [String]? in
            guard let c = report.counts[op] else { return nil }
            return [op.rawValue, String(format: "%.1f", c.native), String(format: "%.1f", c.translated), String(format: "%.1f", c.layer),
                    String(format: "%.1f", c.reference), String(format: "%.2f", c.layerRatio), String(format: "%.2f", c.translatedRatio),
                    c.meetsLayerAim ? "yes" : "no", c.meetsTranslatedAim ? "yes" : "no"]
        }
        Self.printAligned([header] + rows)
        let layerMisses = operations.filter { report.counts[$0].map { !$0.meetsLayerAim } ?? false }.map(\.rawValue)
        let translatedMisses = operations.filter { report.counts[$0].map { !$0.meetsTranslatedAim } ?? false }.map(\.rawValue)
        print("aims (the issue's): layer's own work <= \(BenchChart.format(InstructionCounter.layerAim))x native: "
              + (layerMisses.isEmpty ? "met by every operation" : "missed by \(layerMisses.joined(separator: ", "))"))
        print("                    whole translated path <= \(BenchChart.format(InstructionCounter.translatedAim))x native: "
              + (translatedMisses.isEmpty ? "met by every operation" : "missed by \(translatedMisses.joined(separator: ", "))"))
        print("layer: the layer's instructions (and the harness's call into it, as on the native side); reference: ViridianReference's, from its entry points to the interrupt it raises back into the layer")
    }

    /// A table with the first column left-aligned and the others right-aligned.
    static func printAligned(_ rows: [[String]]) {
        guard let first = rows.first else { return }
        let widths = (0..<first.count).map { c in rows.map { $0[c].count }.max()! }
        for row in rows {
            print(row.enumerated().map { c, cell in c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[c] - cell.count) + cell }.joined(separator: "  "))
        }
    }
}
