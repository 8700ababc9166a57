import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import XVScenarios
@testable import xv

/// `xv bench`: the JSON carries the documented keys for every operation, and `--check` finds
/// what it is meant to find. Speed is not asserted here (the guide: timings belong to the
/// benchmarks); the counts are.
@Suite("xv bench")
struct BenchJSONTests {
    static let keys = ["name", "description", "native_ns_p50", "translated_ns_p50", "native_ns_p99", "translated_ns_p99",
                       "ratio_p50", "native_ns_mean", "translated_ns_mean", "ratio_mean", "viridian_calls_per_op",
                       "native_allocs_per_op", "translated_allocs_per_op", "native_refcount_ops_per_op",
                       "translated_refcount_ops_per_op", "native_upcalls_per_op", "translated_upcalls_per_op",
                       "native_instructions_per_op", "translated_instructions_per_op", "translated_layer_instructions_per_op",
                       "translated_reference_instructions_per_op", "layer_native_instruction_ratio", "translated_native_instruction_ratio",
                       "layer_meets_aim", "translated_meets_aim"]

    @Test("the JSON has the documented keys, one object per operation, with the counted figures")
    func jsonShape() throws {
        let command = try BenchCommand.parse(["--iterations", "40", "--warmup", "4"])
        let runner = BenchRunner(iterations: 40, warmup: 4)
        // Reference counting stays off here: its hooks are process-wide and the tests run in
        // parallel. xv bench counts them (release, one thread; CI runs it with --check).
        let results = BenchOperation.allCases.map { runner.measure($0, countReferences: false) { _ in } }
        // A small throughput run of every scenario, on threads (its allocation figures are
        // counted per thread, so parallel tests do not disturb them).
        let throughput = ThroughputScenario.allCases.map { ThroughputRunner(sendsPerThread: 500, rounds: 1).measure($0) }
        let ring = RingRunner(exchanges: 20, rounds: 1).measure()
        var text = ""
        command.report(results, throughput: throughput, ring: ring, build: "debug", clock: runner.clockName, overhead: runner.timerOverhead,
                       timerMean: runner.timerOverheadMean, counting: true).write(into: &text)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["tool"] as? String == "xv bench")
        // The blkif ring: both sides' rates and every read-back intact, or null when it was not built.
        if BlkifRingExchange.isAvailable {
            let r = try #require(object["blkif_ring"] as? [String: Any])
            for key in ["native_requests_per_s", "translated_requests_per_s", "native_ns_per_request", "translated_ns_per_request", "ratio"] {
                #expect((r[key] as? NSNumber)?.doubleValue ?? 0 > 0, "\(key)")
            }
            #expect((r["native_verified"] as? NSNumber)?.intValue == 20 && (r["translated_verified"] as? NSNumber)?.intValue == 20)
        } else {
            #expect(object["blkif_ring"] is NSNull)
        }
        #expect(object["clock"] is String && object["timer_overhead_ns"] is NSNumber)
        let operations = try #require(object["operations"] as? [[String: Any]])
        #expect(operations.map { $0["name"] as? String } == BenchOperation.allCases.map(\.rawValue))
        for op in operations {
            for key in Self.keys { #expect(op[key] != nil, "\(op["name"] ?? "?") lacks \(key)") }
            let operation = try #require(BenchOperation(rawValue: op["name"] as? String ?? ""))
            #expect((op["native_upcalls_per_op"] as? NSNumber)?.doubleValue == Double(operation.upcallsPerOperation))
            #expect((op["translated_upcalls_per_op"] as? NSNumber)?.doubleValue == Double(operation.upcallsPerOperation))
            let calls = (op["viridian_calls_per_op"] as? NSNumber)?.doubleValue
            #expect(calls == Double(operation.viridianCallsPerOperation), "\(operation.rawValue)")
            #expect((op["native_allocs_per_op"] as? NSNumber)?.doubleValue == 0)
            #expect((op["translated_allocs_per_op"] as? NSNumber)?.doubleValue == 0)
        }
        // Not counted here (no callgrind in the test): the keys are there, null, and the run says why.
        #expect(operations.allSatisfy { $0["native_instructions_per_op"] is NSNull })
        let instructions = try #require(object["instructions"] as? [String: Any])
        #expect(instructions["status"] as? String == "skipped" && instructions["reason"] is String)
        #expect(object["scaling"] is NSNull, "no scaling report given")
        let threaded = try #require(object["throughput"] as? [String: Any])
        #expect((threaded["sends_per_thread"] as? NSNumber)?.intValue == 200_000, "the option's default")
        let scenarios = try #require(threaded["scenarios"] as? [[String: Any]])
        #expect(scenarios.map { $0["name"] as? String } == ThroughputScenario.allCases.map(\.rawValue))
        for s in scenarios {
            for key in Self.throughputKeys { #expect(s[key] != nil, "\(s["name"] ?? "?") lacks \(key)") }
            #expect((s["native_sends_per_s"] as? NSNumber).map { $0.doubleValue > 0 } == true)
            #expect((s["translated_sends_per_s"] as? NSNumber).map { $0.doubleValue > 0 } == true)
            #expect((s["native_allocs_per_op"] as? NSNumber)?.doubleValue == 0)
            #expect((s["translated_allocs_per_op"] as? NSNumber)?.doubleValue == 0)
            let threads = (s["threads"] as? NSNumber)?.intValue
            #expect((s["native_scaling"] is NSNull) == (threads == 1), "scaling is given for the two-thread scenarios")
        }
        #expect(throughput.allSatisfy { BenchCommand.throughputFailures($0).isEmpty }, "every send answered 0, nothing allocated")
    }

    static let throughputKeys = ["name", "description", "threads", "native_sends_per_s", "translated_sends_per_s",
                                 "native_wall_ns_per_send_per_thread", "translated_wall_ns_per_send_per_thread", "ratio",
                                 "native_scaling", "translated_scaling", "native_allocs_per_op", "translated_allocs_per_op"]

    @Test("--check reports every broken part of the fast-path contract")
    func checkReportsFailures() throws {
        let clean = BenchRunner(iterations: 4, warmup: 0).measure(.sendIPI, countReferences: false) { _ in }
        // Without reference counts the check cannot pass: it says so rather than passing.
        #expect(BenchCommand.contractFailures(clean, counting: true).map { $0.contains("not available") } == [true])
        var result = clean
        result.nativeRefcountOpsPerOp = 0
        result.translatedRefcountOpsPerOp = 0
        #expect(BenchCommand.contractFailures(result, counting: true).isEmpty)
        result.translatedRefcountOpsPerOp = 2
        result.nativeAllocsPerOp = 1
        result.viridianCallsPerOp = 2
        result.translatedUpcallsPerOp = 0
        let failures = BenchCommand.contractFailures(result, counting: true)
        #expect(failures.count == 4)
        #expect(failures.contains { $0.contains("retains+releases") })
        #expect(failures.contains { $0.contains("allocations") })
        #expect(failures.contains { $0.contains("Viridian calls") })
        #expect(failures.contains { $0.contains("upcalls") })
        // The throughput part: allocations and failed sends, on either side.
        let clean2 = ThroughputRunner.Side(opsPerSecond: 1e6, nsPerOp: 1000, allocsPerOp: 0, failedSends: 0)
        var tp = ThroughputRunner.Result(scenario: .twoSenders, threads: 2, sendsPerThread: 10, native: clean2, translated: clean2)
        #expect(BenchCommand.throughputFailures(tp).isEmpty)
        tp.translated.allocsPerOp = 0.5
        tp.native.failedSends = 3
        let tpFailures = BenchCommand.throughputFailures(tp)
        #expect(tpFailures.count == 2 && tpFailures.contains { $0.contains("allocations") } && tpFailures.contains { $0.contains("failed sends") })
    }
}

/// `xv bench --svg`: a standalone chart with a row per operation and both sides' values.
@Suite("xv bench chart")
struct BenchChartTests {
    @Test("the SVG names every operation, draws a native and a translated bar for each with its value, and has the throughput and ring panels when they ran")
    func chart() throws {
        let runner = BenchRunner(iterations: 20, warmup: 2)
        let results = [BenchOperation.sendIPI, .grantCopy].map { runner.measure($0, countReferences: false) { _ in } }
        let throughput = [ThroughputRunner(sendsPerThread: 200, rounds: 1).measure(.oneSender)]
        let ring = RingRunner(exchanges: 10, rounds: 1).measure()
        let scaling = BenchScalingTests.smallReport()
        let svg = BenchChart(title: "test", results: results, throughput: throughput, ring: ring, scaling: scaling).svg
        #expect(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(!svg.contains("<script") && !svg.contains("href="), "no scripts, no external references")
        for r in results {
            #expect(svg.contains(">\(r.operation.rawValue)<"))
            #expect(svg.contains("native \(BenchChart.format(BenchRunner.percentile(r.native, 0.5))) ns"))
            #expect(svg.contains("translated \(BenchChart.format(BenchRunner.percentile(r.translated, 0.5))) ns"))
        }
        let scalingBars = scaling.points.reduce(0) { $0 + $1.results.count } + scaling.creation.count
        #expect(svg.components(separatedBy: "fill=\"#f58518\"><title>translated").count - 1 == results.count + throughput.count + (ring == nil ? 0 : 1) + scalingBars)
        // The scaling panel: a row per operation and setting with both sides' means, then world creation.
        #expect(svg.contains(">scaling: mean per operation"))
        for p in scaling.points {
            for r in p.results {
                #expect(svg.contains(">\(p.dimension.rawValue)=\(p.value) \(r.operation.rawValue)<"))
                #expect(svg.contains("native \(BenchChart.format(r.nativeMean)) ns") && svg.contains("translated \(BenchChart.format(r.translatedMean)) ns"))
            }
        }
        for c in scaling.creation {
            #expect(svg.contains(">world of \(c.domains) domains<") && svg.contains("translated \(BenchChart.format(c.translatedNs / 1e6)) ms"))
        }
        #expect(svg.contains(">interdomain_1_sender<"))
        #expect(svg.contains("blkif ring") == (ring != nil))
        #expect(!svg.contains(">instructions per operation"), "no instruction panel without counts")
        // Well-formed XML.
        #expect(XMLParser(data: Data(svg.utf8)).parse())
    }

    @Test("with instruction counts, a panel draws native against translated split into the layer's part and the reference's, with both ratios")
    func instructionPanel() throws {
        let runner = BenchRunner(iterations: 20, warmup: 2)
        let results = [BenchOperation.sendIPI].map { runner.measure($0, countReferences: false) { _ in } }
        let counts: [BenchOperation: InstructionCounter.Counts] = [.sendIPI: .init(native: 285, layer: 419, reference: 701)]
        let svg = BenchChart(title: "test", results: results, throughput: [], ring: nil, instructions: counts).svg
        #expect(svg.contains(">instructions per operation"))
        #expect(svg.contains("native 285 instr") && svg.contains("layer 419 instr") && svg.contains("reference 701 instr"))
        #expect(svg.contains("ratio 3.93, layer 1.47"))
        #expect(XMLParser(data: Data(svg.utf8)).parse())
    }
}

/// `xv bench --kvm`: the tiny guest's end-to-end figures on both sides, where KVM is here.
@Suite("xv bench on KVM")
struct KVMBenchTests {
    @Test("kvm_end_to_end: four operations timed on each side, and the same exits per Xen call on both")
    func endToEnd() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        guard FileManager.default.isReadableFile(atPath: "/dev/kvm"), FileManager.default.fileExists(atPath: "/usr/include/xen/xen.h") else {
            print("xv bench KVM test skipped: no /dev/kvm or no libxen-dev headers here")
            return
        }
        // Built here (the working directory is process-wide; other tests run beside this one).
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("xv-bench-tiny-\(getpid())")
        let build = Process()
        build.executableURL = URL(fileURLWithPath: "/bin/bash")
        build.arguments = [root.appendingPathComponent("Guests/tiny/build.sh").path, out.path]
        build.standardOutput = FileHandle.nullDevice
        try build.run()
        build.waitUntilExit()
        try #require(build.terminationStatus == 0, "Guests/tiny/build.sh failed")
        let command = try BenchCommand.parse(["--kvm", "on", "--kvm-calls", "100", "--kvm-rounds", "1", "--kvm-guest", out.appendingPathComponent("tiny.elf").path])
        let report = try command.runKVMBench()
        var text = ""
        report.json.write(into: &text)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["status"] as? String == "measured")
        let ops = try #require(object["operations"] as? [[String: Any]])
        #expect(ops.map { $0["name"] as? String } == ["evtchn_send", "xen_version", "hvm_get_param", "set_singleshot_timer"])
        for op in ops {
            #expect((op["native_cycles_per_call"] as? Double ?? 0) > 0 && (op["translated_cycles_per_call"] as? Double ?? 0) > 0)
        }
        let native = try #require(object["native_exits"] as? [String: Any])
        let translated = try #require(object["translated_exits"] as? [String: Any])
        #expect(native["total"] as? Int == translated["total"] as? Int)
        #expect((native["hypercall_port"] as? Int ?? 0) >= 400, "each timed call is one exit through the hypercall port")
    }
}
