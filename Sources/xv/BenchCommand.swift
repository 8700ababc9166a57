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

    @Option(help: "Write a chart of the results (SVG: native against translated per operation, the throughput and the ring) to this path.")
    var svg: String?

    @Option(help: "Only these operations (repeatable).")
    var operation: [String] = []

    @Flag(help: "Exit with an error unless every operation raised its upcalls on each side (one for the event and timer-delivery operations, none for the others), issued its Viridian calls (one for sends, unmask, yield and flush, none for the rest), and allocated and retained nothing on either side, and the throughput runs allocated nothing and every send succeeded.")
    var check = false

    @Option(help: "Write-and-read-back exchanges through the blkif ring in each round (0: no ring runs).")
    var ringExchanges = 2_000

    @Option(help: "Sends per thread in each multi-threaded throughput round (0: no throughput runs).")
    var throughputSends = 200_000

    @Option(help: "Throughput rounds per side (the median is reported).")
    var rounds = 3

    @Option(help: "Instructions per operation under valgrind's callgrind, native, translated, and the translated side split into the layer and the reference: auto (when valgrind is on PATH), on (fail unless counted), off.")
    var instructions: InstructionMode = .auto

    @Option(help: "Calls per side in the smaller callgrind phase (the larger has twice as many; their difference gives the figure).")
    var instructionIterations = 500

    @Option(help: "Scaling runs (event sends, upcall delivery and the TLB flush with 16 to 131,071 FIFO ports, 2 to 64 domains, 1 to 32 vCPUs; world creation with 2 and 64 domains): on or off.")
    var scaling: ScalingMode = .on

    @Option(help: "Samples per side for each operation at each scaling point.")
    var scalingIterations = 2_000

    @Option(help: "Create-and-destroy rounds per side for each world size (the median is reported).")
    var creationRounds = 5

    @Option(help: "End-to-end figures on KVM: the tiny guest (Guests/tiny) times each hot hypercall with rdtsc, exits included, native and translated in one run, and the exits per Xen call are counted: auto (when /dev/kvm opens and the guest builds), on (fail unless measured), off.")
    var kvm: KVMBenchMode = .auto

    @Option(help: "Calls of each operation the guest times in one boot.")
    var kvmCalls = 2000

    @Option(help: "Measured boots per side (alternating which side boots first, after one unmeasured boot of each; the median is reported).")
    var kvmRounds = 4

    @Option(help: "A prebuilt tiny guest ELF (default: build Guests/tiny into .build/tiny-guest).")
    var kvmGuest: String?

    /// What `--instructions` runs under callgrind (InstructionProbe).
    @Flag(help: .hidden)
    var instructionProbe = false

    /// The probe's worlds (the scaling points' instruction counts).
    @Option(help: .hidden)
    var probeDomains = 2
    @Option(help: .hidden)
    var probeVcpus = 2
    @Option(help: .hidden)
    var probeFifoPorts: Int?

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
        if instructionProbe {
            guard instructionIterations > 0 else { throw ValidationError("--instruction-iterations must be positive") }
            runInstructionProbe(chosen)
            return
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
        printTable(results, build: build, clock: runner.clockName, overhead: runner.timerOverhead, counting: counting)
        guard instructionIterations > 0 else { throw ValidationError("--instruction-iterations must be positive") }
        let counted = try measureInstructions(chosen)
        printInstructions(counted, chosen)
        let scaled = try runScaling(instructions: counted)
        if let scaled { printScaling(scaled) }
        guard throughputSends >= 0, rounds > 0 else { throw ValidationError("--throughput-sends must not be negative, --rounds must be positive") }
        var throughput: [ThroughputRunner.Result] = []
        if throughputSends > 0 {
            let threaded = ThroughputRunner(sendsPerThread: throughputSends, rounds: rounds)
            for (i, scenario) in ThroughputScenario.allCases.enumerated() {
                FileHandle.standardError.write(Data("[throughput \(i + 1)/\(ThroughputScenario.allCases.count)] \(scenario.rawValue)\n".utf8))
                throughput.append(threaded.measure(scenario))
            }
            printThroughput(throughput, counting: counting)
        }
        var ring: RingRunner.Result? = nil
        var ringRan = false
        if ringExchanges > 0 {
            FileHandle.standardError.write(Data("[ring] blkif exchange\n".utf8))
            ring = RingRunner(exchanges: ringExchanges, rounds: rounds).measure()
            ringRan = true
            printRing(ring)
        }
        guard kvmCalls > 0, kvmRounds > 0 else { throw ValidationError("--kvm-calls and --kvm-rounds must be positive") }
        let kvmReport = try runKVMBench()
        printKVM(kvmReport)
        if let json {
            var out = ""
            report(results, throughput: throughput, ring: ring, instructions: counted, scaling: scaled, kvm: kvmReport, build: build, clock: runner.clockName,
                   overhead: runner.timerOverhead, timerMean: runner.timerOverheadMean, counting: counting).write(into: &out)
            try (out + "\n").write(toFile: json, atomically: true, encoding: .utf8)
            print("wrote \(json)")
        }
        if let svg {
            let chart = BenchChart(title: "xv bench: native against translated (\(build) build, \(runner.clockName))", results: results, throughput: throughput, ring: ring, scaling: scaled, instructions: counted.counts)
            try chart.svg.write(toFile: svg, atomically: true, encoding: .utf8)
            print("wrote \(svg)")
        }
        if check {
            var failures = results.flatMap { Self.contractFailures($0, counting: counting) } + throughput.flatMap(Self.throughputFailures)
            if let ring {
                for (side, r) in [("native", ring.native), ("translated", ring.translated)] where r.verified != Int64(ring.exchanges) {
                    failures.append("blkif ring: \(r.verified) of \(ring.exchanges) read-backs intact, \(side)")
                }
            }
            for f in failures { FileHandle.standardError.write(Data("xv bench --check: \(f)\n".utf8)) }
            if !failures.isEmpty { throw ExitCode.failure }
            print("check: each operation's upcalls and Viridian calls, 0 allocations and 0 retains/releases on both sides"
                  + (throughput.isEmpty ? "" : "; throughput runs: 0 allocations, every send answered 0")
                  + (ring == nil ? (ringRan ? "; blkif ring: not built (libxen-dev's headers were absent)" : "") : "; blkif ring: every read-back intact on both sides"))
        }
    }

    /// The fast-path contract (README, issue 4): what `--check` enforces.
    static func contractFailures(_ r: BenchRunner.Result, counting: Bool) -> [String] {
        var out: [String] = []
        let name = r.operation.rawValue
        let upcalls = Double(r.operation.upcallsPerOperation), calls = Double(r.operation.viridianCallsPerOperation)
        if r.nativeUpcallsPerOp != upcalls || r.translatedUpcallsPerOp != upcalls {
            out.append("\(name): upcalls per operation \(r.nativeUpcallsPerOp) native, \(r.translatedUpcallsPerOp) translated (want \(Int(upcalls)))")
        }
        if r.viridianCallsPerOp != calls { out.append("\(name): \(r.viridianCallsPerOp) Viridian calls per operation (want \(Int(calls)))") }
        if !counting { out.append("\(name): allocation counting is not active") }
        if r.nativeAllocsPerOp != 0 || r.translatedAllocsPerOp != 0 {
            out.append("\(name): allocations per operation \(r.nativeAllocsPerOp) native, \(r.translatedAllocsPerOp) translated")
        }
        switch (r.nativeRefcountOpsPerOp, r.translatedRefcountOpsPerOp) {
        case (let n?, let t?) where n != 0 || t != 0:
            out.append("\(name): retains+releases per operation \(n) native, \(t) translated")
        case (nil, _), (_, nil):
            out.append("\(name): reference-count counting is not available in this Swift runtime")
        default: break
        }
        return out
    }

    /// The throughput runs' part of `--check`.
    static func throughputFailures(_ r: ThroughputRunner.Result) -> [String] {
        var out: [String] = []
        let name = r.scenario.rawValue
        if r.native.allocsPerOp != 0 || r.translated.allocsPerOp != 0 {
            out.append("\(name): allocations per send \(r.native.allocsPerOp) native, \(r.translated.allocsPerOp) translated")
        }
        if r.native.failedSends != 0 || r.translated.failedSends != 0 {
            out.append("\(name): failed sends \(r.native.failedSends) native, \(r.translated.failedSends) translated")
        }
        return out
    }

    /// Throughput against the one-sender scenario of the same side.
    static func scaling(_ r: ThroughputRunner.Result, _ all: [ThroughputRunner.Result], native: Bool) -> Double? {
        guard r.threads > 1, let one = all.first(where: { $0.scenario == .oneSender }) else { return nil }
        return native ? r.native.opsPerSecond / one.native.opsPerSecond : r.translated.opsPerSecond / one.translated.opsPerSecond
    }

    func printThroughput(_ results: [ThroughputRunner.Result], counting: Bool) {
        print("throughput: \(throughputSends) sends per thread, median of \(rounds) rounds per side, each send followed by the receiver's acknowledgement")
        let header = ["scenario", "threads", "native Msends/s", "transl Msends/s", "transl/native", "scaling n", "scaling t", "allocs n/t"]
        let rows = results.map { r -> [String] in
            [r.scenario.rawValue, "\(r.threads)",
             String(format: "%.2f", r.native.opsPerSecond / 1e6), String(format: "%.2f", r.translated.opsPerSecond / 1e6),
             String(format: "%.2f", r.translated.opsPerSecond / r.native.opsPerSecond),
             Self.scaling(r, results, native: true).map { String(format: "%.2f", $0) } ?? "-",
             Self.scaling(r, results, native: false).map { String(format: "%.2f", $0) } ?? "-",
             counting ? String(format: "%.2f/%.2f", r.native.allocsPerOp, r.translated.allocsPerOp) : "n/a"]
        }
        let widths = (0..<header.count).map { c in ([header] + rows).map { $0[c].count }.max()! }
        for row in [header] + rows {
            print(row.enumerated().map { c, cell in c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[c] - cell.count) + cell }.joined(separator: "  "))
        }
        print("scaling: throughput against the one-sender scenario of the same side (2.00 is perfect for two threads)")
    }

    func printTable(_ results: [BenchRunner.Result], build: String, clock: String, overhead: Double, counting: Bool) {
        print("xv bench: \(build) build, \(iterations) samples per side, clock \(clock), timer overhead \(String(format: "%.1f", overhead)) ns subtracted")
        let header = ["operation", "native p50", "transl p50", "ratio p50", "native p99", "transl p99", "native mean", "transl mean", "ratio mean",
                      "viridian/op", "allocs n/t", "rc n/t"]
        let rows = results.map { r -> [String] in
            [r.operation.rawValue,
             String(format: "%.1f ns", BenchRunner.percentile(r.native, 0.5)),
             String(format: "%.1f ns", BenchRunner.percentile(r.translated, 0.5)),
             String(format: "%.2f", BenchRunner.percentile(r.ratios, 0.5)),
             String(format: "%.1f ns", BenchRunner.percentile(r.native, 0.99)),
             String(format: "%.1f ns", BenchRunner.percentile(r.translated, 0.99)),
             String(format: "%.1f ns", r.nativeMean),
             String(format: "%.1f ns", r.translatedMean),
             String(format: "%.2f", r.translatedMean / r.nativeMean),
             String(format: "%.2f", r.viridianCallsPerOp),
             counting ? String(format: "%.2f/%.2f", r.nativeAllocsPerOp, r.translatedAllocsPerOp) : "n/a",
             r.nativeRefcountOpsPerOp.flatMap { n in r.translatedRefcountOpsPerOp.map { String(format: "%.2f/%.2f", n, $0) } } ?? "n/a"]
        }
        let widths = (0..<header.count).map { c in ([header] + rows).map { $0[c].count }.max()! }
        for row in [header] + rows {
            print(row.enumerated().map { c, cell in c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[c] - cell.count) + cell }.joined(separator: "  "))
        }
        if !counting { print("allocation counting is not active on this platform (glibc malloc interposition)") }
        print("rc: Swift retains plus releases per operation (the runtime's instrumentation hooks)")
    }

    func printRing(_ ring: RingRunner.Result?) {
        guard let ring else {
            print("blkif ring: not built (libxen-dev's headers were absent when it compiled)")
            return
        }
        print("blkif ring: \(ring.exchanges) writes and read-backs between two domains (C frontend and backend on ring.h/blkif.h), median of \(rounds) rounds per side")
        print(String(format: "  native %.0f requests/s (%.0f ns each), translated %.0f requests/s (%.0f ns each), translated/native %.2f",
                     ring.native.requestsPerSecond, ring.native.nsPerRequest, ring.translated.requestsPerSecond, ring.translated.nsPerRequest,
                     ring.translated.requestsPerSecond / ring.native.requestsPerSecond))
    }

    func report(_ results: [BenchRunner.Result], throughput: [ThroughputRunner.Result], ring: RingRunner.Result? = nil,
                instructions: InstructionReport = .skipped, scaling: ScalingReport? = nil, kvm: KVMBenchReport = .skipped("not run"), build: String, clock: String, overhead: Double,
                timerMean: Double, counting: Bool) -> JSONValue {
        .object([
            ("tool", .string("xv bench")),
            ("build", .string(build)),
            ("clock", .string(clock)),
            ("iterations", .int(iterations)),
            ("timer_overhead_ns", .number(overhead)),
            ("timer_overhead_mean_ns", .number(timerMean)),
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
                    ("native_ns_mean", .number(r.nativeMean)),
                    ("translated_ns_mean", .number(r.translatedMean)),
                    ("ratio_mean", .number(r.translatedMean / r.nativeMean)),
                    ("viridian_calls_per_op", .number(r.viridianCallsPerOp)),
                    ("native_allocs_per_op", counting ? .number(r.nativeAllocsPerOp) : .null),
                    ("translated_allocs_per_op", counting ? .number(r.translatedAllocsPerOp) : .null),
                    ("native_refcount_ops_per_op", r.nativeRefcountOpsPerOp.map(JSONValue.number) ?? .null),
                    ("translated_refcount_ops_per_op", r.translatedRefcountOpsPerOp.map(JSONValue.number) ?? .null),
                    ("native_upcalls_per_op", .number(r.nativeUpcallsPerOp)),
                    ("translated_upcalls_per_op", .number(r.translatedUpcallsPerOp)),
                ] + instructions.keys(r.operation))
            })),
            ("instructions", instructions.json),
            ("scaling", Self.scalingJSON(scaling)),
            ("kvm_end_to_end", kvm.json),
            ("blkif_ring", ring.map { r in .object([
                ("exchanges", .int(r.exchanges)),
                ("native_requests_per_s", .number(r.native.requestsPerSecond)),
                ("translated_requests_per_s", .number(r.translated.requestsPerSecond)),
                ("native_ns_per_request", .number(r.native.nsPerRequest)),
                ("translated_ns_per_request", .number(r.translated.nsPerRequest)),
                ("ratio", .number(r.translated.requestsPerSecond / r.native.requestsPerSecond)),
                ("native_verified", .int(Int(r.native.verified))),
                ("translated_verified", .int(Int(r.translated.verified))),
            ]) } ?? .null),
            ("throughput", throughput.isEmpty ? .null : .object([
                ("sends_per_thread", .int(throughputSends)),
                ("rounds", .int(rounds)),
                ("scenarios", .array(throughput.map { r in
                    .object([
                        ("name", .string(r.scenario.rawValue)),
                        ("description", .string(r.scenario.summary)),
                        ("threads", .int(r.threads)),
                        ("native_sends_per_s", .number(r.native.opsPerSecond)),
                        ("translated_sends_per_s", .number(r.translated.opsPerSecond)),
                        ("native_wall_ns_per_send_per_thread", .number(r.native.nsPerOp)),
                        ("translated_wall_ns_per_send_per_thread", .number(r.translated.nsPerOp)),
                        ("ratio", .number(r.translated.opsPerSecond / r.native.opsPerSecond)),
                        ("native_scaling", Self.scaling(r, throughput, native: true).map(JSONValue.number) ?? .null),
                        ("translated_scaling", Self.scaling(r, throughput, native: false).map(JSONValue.number) ?? .null),
                        ("native_allocs_per_op", counting ? .number(r.native.allocsPerOp) : .null),
                        ("translated_allocs_per_op", counting ? .number(r.translated.allocsPerOp) : .null),
                    ])
                })),
            ])),
        ])
    }
}
