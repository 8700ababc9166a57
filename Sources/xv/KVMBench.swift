import ArgumentParser
import Foundation
import XVKVMHost

/// `--kvm`: whether `xv bench` boots the tiny guest on KVM to time hypercalls with real exits.
enum KVMBenchMode: String, ExpressibleByArgument, CaseIterable {
    /// Run when /dev/kvm opens and the guest builds; otherwise the report says why not.
    case auto
    /// Run, and fail when it cannot.
    case on
    case off
}

/// The end-to-end figures: the tiny guest (Guests/tiny) times N calls of each hot hypercall
/// with rdtsc, from the guest, so each figure includes the exit to the host, the host's
/// decoding, the library and the return; native and translated alternate in one run, each
/// booting first in every other round, after one unmeasured boot of each. Also
/// the exits per Xen call, by kind, on each side.
struct KVMBenchReport {
    var status: String
    var reason: String?
    var device: String?
    var calls: Int
    var rounds: Int
    var tscHz: UInt64
    /// Per operation: each round's cycles per call, native and translated.
    var cycles: [(name: String, native: [Double], translated: [Double])]
    var exits: [XenHostConfiguration.Side: XenHostExits]

    static func skipped(_ why: String) -> KVMBenchReport {
        KVMBenchReport(status: "skipped", reason: why, device: nil, calls: 0, rounds: 0, tscHz: 0, cycles: [], exits: [:])
    }

    static let platformNote = "timed from inside the guest, exits included, on this machine's /dev/kvm: on a software KVM (this development machine's is PVM, without VMX/SVM) an exit costs about ten microseconds and dominates, so these ratios say how the library's share compares there, not what hardware would show"

    var json: JSONValue {
        func median(_ v: [Double]) -> Double { v.isEmpty ? 0 : v.sorted()[v.count / 2] }
        func exitsJSON(_ e: XenHostExits?) -> JSONValue {
            guard let e else { return .null }
            let calls = e.hypercalls.values.reduce(0, +)
            return .object([
                ("total", .int(e.total)),
                ("hypercall_port", .int(calls)),
                ("msr", .int(e.msr)),
                ("debug_console", .int(e.console)),
                ("mmio", .int(e.mmio)),
                ("unserved_ports", .int(e.unservedPorts.values.reduce(0, +))),
                ("interrupted", .int(e.interrupted)),
                ("exits_per_xen_call", .number(calls > 0 ? Double(e.total) / Double(calls) : 0)),
                ("by_hypercall", .object(e.hypercalls.sorted { $0.key < $1.key }.map { ("\($0.key)", JSONValue.int($0.value)) })),
            ])
        }
        return .object([
            ("status", .string(status)),
            ("reason", .string(reason)),
            ("device", .string(device)),
            ("note", .string(Self.platformNote)),
            ("calls_per_round", .int(calls)),
            ("rounds", .int(rounds)),
            ("tsc_hz", .int(Int(tscHz))),
            ("operations", .array(cycles.map { c in
                let n = median(c.native), t = median(c.translated)
                let ns = { (x: Double) in tscHz > 0 ? x * 1e9 / Double(tscHz) : 0 }
                return .object([
                    ("name", .string(c.name)),
                    ("native_cycles_per_call", .number(n)),
                    ("translated_cycles_per_call", .number(t)),
                    ("native_ns_per_call", .number(ns(n))),
                    ("translated_ns_per_call", .number(ns(t))),
                    ("ratio", .number(n > 0 ? t / n : 0)),
                ])
            })),
            ("native_exits", exitsJSON(exits[.native])),
            ("translated_exits", exitsJSON(exits[.translated])),
        ])
    }
}

extension BenchCommand {
    /// Boots the tiny guest with `bench=N` on each side, alternating, `rounds` times.
    func runKVMBench() throws -> KVMBenchReport {
        guard kvm != .off else { return .skipped("--kvm off") }
        func unavailable(_ why: String) throws -> KVMBenchReport {
            if kvm == .on { throw ValidationError("--kvm on: \(why)") }
            FileHandle.standardError.write(Data("xv bench: KVM end-to-end figures skipped: \(why)\n".utf8))
            return .skipped(why)
        }
        let device: KVMDevice
        do { device = try KVMDevice() } catch { return try unavailable("no KVM here: \(error)") }
        let image: PVHImage
        do { image = try Self.tinyGuest(kvmGuest) } catch { return try unavailable("\(error)") }
        var cycles: [String: (native: [Double], translated: [Double])] = [:]
        var order: [String] = []
        var exits: [XenHostConfiguration.Side: XenHostExits] = [:]
        var tscHz: UInt64 = 0
        // One unmeasured boot of each side first: the first boots of a process run on a cold
        // host (page faults on fresh guest RAM, cold caches) and cost more per exit.
        for side in [XenHostConfiguration.Side.native, .translated] {
            FileHandle.standardError.write(Data("[kvm warm-up] \(side.rawValue)\n".utf8))
            let guest = XenHostConfiguration.Guest(image: image, commandLine: "bench=\(min(kvmCalls, 200))", name: "warmup")
            _ = try XenHost(device: device, configuration: XenHostConfiguration(side: side, guests: [guest], timeout: .seconds(600))).run()
        }
        for round in 0..<kvmRounds {
            // Alternate which side boots first, so neither always runs on a colder or warmer host.
            let sides: [XenHostConfiguration.Side] = round % 2 == 0 ? [.native, .translated] : [.translated, .native]
            for side in sides {
                FileHandle.standardError.write(Data("[kvm \(round + 1)/\(kvmRounds)] \(side.rawValue): the tiny guest times \(kvmCalls) of each call\n".utf8))
                let guest = XenHostConfiguration.Guest(image: image, commandLine: "bench=\(kvmCalls)", name: "bench")
                let result = try XenHost(device: device, configuration: XenHostConfiguration(side: side, guests: [guest], timeout: .seconds(600))).run()
                let d = result.domains[0]
                // A guest that fails is a broken host or library, not a missing facility: always an error.
                guard d.shutdownReason == 0, !result.timedOut else {
                    throw ValidationError("KVM end-to-end: the tiny guest did not power off on the \(side.rawValue) side: \(d.fault ?? "reason \(String(describing: d.shutdownReason))"); \(d.console.suffix(3))")
                }
                tscHz = result.tscHz
                if round == 0 { exits[side] = d.exits }
                // "bench: <name> <calls> cycles <total>"
                for line in d.console where line.hasPrefix("bench: ") {
                    let f = line.split(separator: " ")
                    guard f.count == 5, let n = Double(f[2]), let c = Double(f[4]), n > 0 else { continue }
                    let name = String(f[1])
                    if cycles[name] == nil { cycles[name] = ([], []); order.append(name) }
                    if side == .native { cycles[name]!.native.append(c / n) } else { cycles[name]!.translated.append(c / n) }
                }
            }
        }
        return KVMBenchReport(status: "measured", reason: nil, device: device.summary, calls: kvmCalls, rounds: kvmRounds, tscHz: tscHz,
                              cycles: order.map { ($0, cycles[$0]!.native, cycles[$0]!.translated) }, exits: exits)
    }

    /// The tiny guest: `path` if given, else built from Guests/tiny into .build/tiny-guest.
    static func tinyGuest(_ path: String?) throws -> PVHImage {
        let file: String
        if let path { file = path } else {
            let script = "Guests/tiny/build.sh"
            guard FileManager.default.fileExists(atPath: script) else { throw ValidationError("no \(script) here (run from the repository, or give --kvm-guest)") }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = [script, ".build/tiny-guest"]
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw ValidationError("\(script) failed (status \(p.terminationStatus))") }
            file = ".build/tiny-guest/tiny.elf"
        }
        return try PVHImage(elf: [UInt8](Data(contentsOf: URL(fileURLWithPath: file))))
    }

    func printKVM(_ r: KVMBenchReport) {
        guard r.status == "measured" else { print("\nKVM end-to-end: \(r.status) (\(r.reason ?? ""))"); return }
        print("\nKVM end-to-end (the tiny guest times \(r.calls) calls with rdtsc, exits included; median of \(r.rounds) rounds; \(r.device ?? ""))")
        print("  " + KVMBenchReport.platformNote)
        print("  operation              native cyc   transl cyc    native ns    transl ns   ratio")
        for c in r.cycles {
            let n = c.native.sorted()[c.native.count / 2], t = c.translated.sorted()[c.translated.count / 2]
            let ns = { (x: Double) in x * 1e9 / Double(r.tscHz) }
            func f(_ v: Double, _ w: Int) -> String { let s = String(format: "%.0f", v); return String(repeating: " ", count: max(0, w - s.count)) + s }
            print("  \(c.name.padding(toLength: 22, withPad: " ", startingAt: 0))\(f(n, 11))  \(f(t, 11))  \(f(ns(n), 11))  \(f(ns(t), 11))   \(String(format: "%.2f", t / n))")
        }
        for side in [XenHostConfiguration.Side.native, .translated] {
            guard let e = r.exits[side] else { continue }
            let calls = e.hypercalls.values.reduce(0, +)
            print("  \(side.rawValue) exits: \(e.total) for \(calls) Xen calls (\(String(format: "%.3f", Double(e.total) / Double(max(calls, 1)))) per call): hypercall port \(calls), MSR \(e.msr), debug console \(e.console), MMIO \(e.mmio), unserved ports \(e.unservedPorts.values.reduce(0, +)), interrupted \(e.interrupted)")
        }
    }
}
