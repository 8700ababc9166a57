import Foundation
import Testing
import XVScenarios
@testable import xv

/// `xv bench`'s scaling runs and instruction counts: the worlds of each shape deliver what the
/// standard ones do, the JSON carries the documented keys, and the verdicts say what they
/// should. Speed is not asserted (timings belong to the benchmarks).
@Suite("xv bench scaling and instruction counts")
struct BenchScalingTests {
    /// One point of each dimension at its smallest setting (debug-build friendly), every
    /// scaling operation, with made-up instruction counts, and world creation with 2 domains.
    static func smallReport() -> ScalingReport {
        let runner = BenchRunner(iterations: 8, warmup: 2)
        let points = ScalingRunner.Dimension.allCases.map { d in
            var p = ScalingRunner.Point(dimension: d, value: d.values[0],
                                        results: ScalingRunner.operations.map { runner.measure($0, shape: d.shape(d.values[0]), countReferences: false) { _ in } })
            for op in ScalingRunner.operations { p.instructions[op] = InstructionCounter.Counts(native: 100, layer: 105, reference: 40) }
            return p
        }
        let creation = [ScalingRunner(runner: runner, creationRounds: 1).creation(domains: 2)]
        return ScalingReport(iterations: 8, points: points, creation: creation, notFlat: [], byInstructions: true)
    }

    @Test("every scaling operation raises its upcalls and issues its Viridian calls on FIFO worlds of 16 ports, 16 domains and 8 vCPUs, as on the standard worlds")
    func shapesDeliver() {
        let runner = BenchRunner(iterations: 6, warmup: 2)
        for shape in [BenchWorldShape(fifoPorts: 16), BenchWorldShape(fifoPorts: 1500), BenchWorldShape(domains: 16), BenchWorldShape(vcpus: 8)] {
            for op in ScalingRunner.operations {
                let r = runner.measure(op, shape: shape, countReferences: false) { _ in }
                #expect(r.nativeUpcallsPerOp == Double(op.upcallsPerOperation) && r.translatedUpcallsPerOp == Double(op.upcallsPerOperation), "\(op.rawValue) on \(shape)")
                #expect(r.viridianCallsPerOp == Double(op.viridianCallsPerOperation), "\(op.rawValue) on \(shape)")
            }
        }
        // One vCPU: the IPI goes to the sender itself, which the layer delivers without a Viridian call.
        let selfIPI = runner.measure(.sendIPI, shape: BenchWorldShape(vcpus: 1), countReferences: false) { _ in }
        #expect(selfIPI.nativeUpcallsPerOp == 1 && selfIPI.translatedUpcallsPerOp == 1)
    }

    @Test("FIFO shapes: the operation's channel takes the highest port, every other port is bound")
    func fifoHighestPort() {
        let pair = BenchPair(.sendInterdomain, shape: BenchWorldShape(fifoPorts: 300))
        for w in [pair.native as any XenWorld, pair.translated] {
            let (d1, d2) = (w.domainID(0), w.domainID(1))
            #expect(w.xenDomain(d1).usesFIFO && w.xenDomain(d2).usesFIFO)
            #expect(w.bindIPI(d1, vcpu: 0) < 0 && w.bindIPI(d2, vcpu: 0) < 0, "no port left")
            #expect(w.status(d2, port: 300).0 == 2, "port 300 of the receiver is the end the sender bound (EVTCHNSTAT_interdomain)")
        }
    }

    @Test("the scaling JSON has its documented keys for every dimension, point and operation, with instruction counts where given")
    func scalingJSON() throws {
        let report = Self.smallReport()
        var text = ""
        BenchCommand.scalingJSON(report).write(into: &text)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["flat_by"] as? String == "instructions")
        let dimensions = try #require(object["dimensions"] as? [[String: Any]])
        #expect(dimensions.map { $0["dimension"] as? String } == ScalingRunner.Dimension.allCases.map(\.rawValue))
        for d in dimensions {
            let points = try #require(d["points"] as? [[String: Any]])
            for p in points {
                let ops = try #require(p["operations"] as? [[String: Any]])
                #expect(ops.map { $0["name"] as? String } == ScalingRunner.operations.map(\.rawValue))
                for op in ops {
                    for key in ["native_ns_mean", "translated_ns_mean", "ratio_mean", "native_ns_p50", "translated_ns_p50", "viridian_calls_per_op",
                                "native_upcalls_per_op", "translated_upcalls_per_op", "native_instructions_per_op", "translated_instructions_per_op",
                                "translated_layer_instructions_per_op", "translated_reference_instructions_per_op"] {
                        #expect(op[key] != nil, "\(key)")
                    }
                    #expect((op["translated_instructions_per_op"] as? NSNumber)?.doubleValue == 145)
                    #expect(op["layer_meets_aim"] as? Bool == true && op["translated_meets_aim"] as? Bool == true)
                }
            }
        }
        let creation = try #require(object["world_creation"] as? [[String: Any]])
        #expect(creation.count == 1 && (creation[0]["translated_ns"] as? NSNumber)?.doubleValue ?? 0 > 0)
        #expect(object["not_flat"] is [Any])
    }

    @Test("flatness: instruction counts decide when every point has them (5% over the smallest setting is reported), and a path with other Viridian calls is not the baseline")
    func flatness() {
        var report = Self.smallReport()
        let ports = report.points[0]
        var large = ports
        large.value = 4096
        large.instructions[.sendIPI] = InstructionCounter.Counts(native: 100, layer: 120, reference: 40)
        var lines = ScalingRunner.notFlat([ports, large])
        #expect(lines.count == 2 && lines.allSatisfy { $0.hasPrefix("evtchn_send_ipi, translated") }, "\(lines)")
        #expect(lines.contains { $0.contains("translated layer") })
        // Without instruction counts on every point, the means decide (and these are within 30%
        // only by chance at 8 samples, so only the verdict's form is checked).
        large.instructions = [:]
        lines = ScalingRunner.notFlat([ports, large])
        #expect(lines.allSatisfy { $0.contains(" ns ") || $0.contains(" at ") })
        // World creation: time per domain.
        report.creation = [ScalingRunner.Creation(domains: 2, rounds: 1, nativeNs: 100_000, translatedNs: 100_000),
                           ScalingRunner.Creation(domains: 64, rounds: 1, nativeNs: 3_200_000, translatedNs: 12_800_000)]
        let creation = ScalingRunner.notLinear(report.creation)
        #expect(creation.count == 1 && creation[0].hasPrefix("world creation, translated"))
    }

    @Test("instruction counts: callgrind's totals line is read, the aims are judged per operation, and --instructions parses")
    func instructionFigures() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("xv-cg-test-\(getpid()).out")
        try "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 150500\ntotals: 150500\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try InstructionCounter.total(of: file.path) == 150_500)
        #expect(throws: InstructionCounter.Failure.self) { try InstructionCounter.total(of: file.path + ".missing") }
        let c = InstructionCounter.Counts(native: 278, layer: 400, reference: 690)
        #expect(c.translated == 1090 && !c.meetsLayerAim && !c.meetsTranslatedAim)
        #expect(InstructionCounter.Counts(native: 100, layer: 110, reference: 40).meetsLayerAim)
        #expect(InstructionCounter.Counts(native: 100, layer: 110, reference: 40).meetsTranslatedAim)
        #expect(!InstructionCounter.Counts(native: 100, layer: 110.5, reference: 40).meetsLayerAim)
        let command = try BenchCommand.parse(["--instructions", "off", "--scaling", "off", "--instruction-iterations", "50"])
        #expect(command.instructions == .off && command.scaling == .off && command.instructionIterations == 50)
        #expect(try command.measureInstructions([.sendIPI]).status == "skipped")
    }
}
