import Foundation
import XVScenarios

/// `xv bench --instructions`: instructions per operation on each side, counted by valgrind's
/// callgrind, which executes the same instructions on every run (unlike the clock). For every
/// operation it runs a stripped copy of this binary under callgrind in the hidden probe mode
/// (`InstructionProbe`), which performs each side's measured call N1 and N2 times in phases of
/// their own; the per-operation figure is the difference of the two phases' counts over
/// N2 - N1, which removes what a phase costs once. The translated side is split at
/// `ReferenceBoundary`: the layer's own instructions and the reference hypervisor's.
///
/// The copy is made with `objcopy --strip-debug`: valgrind 3.19 cannot read the DWARF clang 21
/// writes, and callgrind needs only the symbol table to know the boundary functions.
struct InstructionCounter {
    /// The issue's aims: the layer's own work within 1.10x native, the whole translated path
    /// within 1.5x.
    static let layerAim = 1.10, translatedAim = 1.5

    struct Counts {
        var native: Double
        var layer: Double
        var reference: Double
        var translated: Double { layer + reference }
        var layerRatio: Double { layer / native }
        var translatedRatio: Double { translated / native }
        var meetsLayerAim: Bool { layerRatio <= InstructionCounter.layerAim }
        var meetsTranslatedAim: Bool { translatedRatio <= InstructionCounter.translatedAim }
    }

    enum Failure: Error, CustomStringConvertible {
        case unavailable(String)
        case probe(String)
        var description: String {
            switch self {
            case .unavailable(let s), .probe(let s): return s
            }
        }
    }

    /// N1; N2 is twice it.
    let iterations: Int
    let warmup: Int
    let valgrind: String
    let objcopy: String
    /// "valgrind-3.19.0" or the like, for the report.
    let version: String

    var counts: [Int] { [iterations, 2 * iterations] }

    /// Finds valgrind and objcopy on PATH; nil with the reason when one is missing.
    static func locate(iterations: Int, warmup: Int) -> Result<InstructionCounter, Failure> {
        guard let valgrind = executable("valgrind") else { return .failure(.unavailable("valgrind is not on PATH")) }
        guard let objcopy = executable("objcopy") else { return .failure(.unavailable("objcopy is not on PATH (binutils)")) }
        let version = (try? capture(valgrind, ["--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? "valgrind"
        return .success(InstructionCounter(iterations: iterations, warmup: warmup, valgrind: valgrind, objcopy: objcopy, version: version))
    }

    static func executable(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Runs `tool` to completion; its output goes through files, so that neither stream can
    /// fill and stall it.
    static func capture(_ tool: String, _ arguments: [String], in directory: URL? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("xv-capture-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("stdout"), errURL = scratch.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOf: outURL, encoding: .utf8)) ?? "", (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }

    /// A stripped copy of this binary in a scratch folder, checked for the boundary symbols.
    final class Workspace {
        let directory: URL
        let binary: String
        init(directory: URL, binary: String) { self.directory = directory; self.binary = binary }
        deinit { try? FileManager.default.removeItem(at: directory) }
    }

    func workspace() throws -> Workspace {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xv-callgrind-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let space = Workspace(directory: dir, binary: dir.appendingPathComponent("xv-stripped").path)
        let copy = try Self.capture(objcopy, ["--strip-debug", exe, space.binary])
        guard copy.status == 0 else { throw Failure.probe("objcopy --strip-debug failed: \(copy.stderr)") }
        try checkBoundary(space.binary)
        return space
    }

    /// Counts every operation in `operations` on worlds of `shape`, in one callgrind run.
    func measure(_ operations: [BenchOperation], shape: BenchWorldShape = .standard, in space: Workspace) throws -> [BenchOperation: Counts] {
        let tag = "\(shape.domains)-\(shape.vcpus)-\(shape.fifoPorts ?? 0)"
        let out = space.directory.appendingPathComponent("cg-\(tag).out")
        let arguments = [
            "--tool=callgrind", "--callgrind-out-file=\(out.path)", "--demangle=no", "--dump-instr=no", "--collect-jumps=no",
            "--collect-atstart=no",
            "--toggle-collect=\(InstructionProbe.nativeSymbol)", "--toggle-collect=\(InstructionProbe.layerSymbol)",
            "--toggle-collect=\(InstructionProbe.referenceSymbols)", "--toggle-collect=\(InstructionProbe.layerReentrySymbol)",
            "--dump-before=\(InstructionProbe.dumpSymbol)",
            space.binary, "bench", "--instruction-probe",
            "--instruction-iterations", "\(iterations)", "--warmup", "\(warmup)",
            "--probe-domains", "\(shape.domains)", "--probe-vcpus", "\(shape.vcpus)",
        ] + (shape.fifoPorts.map { ["--probe-fifo-ports", "\($0)"] } ?? []) + operations.flatMap { ["--operation", $0.rawValue] }
        let run = try Self.capture(valgrind, arguments, in: space.directory)
        guard run.status == 0 else { throw Failure.probe("the probe under callgrind exited with \(run.status): \(run.stderr.suffix(2000))") }
        // The probe prints one line per phase, in the order of the dumps: "phase OPERATION MODE N".
        let phases = run.stdout.split(separator: "\n").compactMap { line -> (BenchOperation, InstructionProbe.Mode, Int)? in
            let f = line.split(separator: " ")
            guard f.count == 4, f[0] == "phase", let op = BenchOperation(rawValue: String(f[1])),
                  let mode = InstructionProbe.Mode(rawValue: String(f[2])), let n = Int(f[3]) else { return nil }
            return (op, mode, n)
        }
        guard phases.count == operations.count * InstructionProbe.Mode.allCases.count * counts.count else {
            throw Failure.probe("the probe reported \(phases.count) phases: \(run.stdout.suffix(500))")
        }
        // Dump k (1-based) holds what ran since dump k - 1: each phase opens with a dump
        // (what ran before it, the set-up and warm-up included, discarded) and closes with one
        // (the phase).
        var totals: [BenchOperation: [InstructionProbe.Mode: [Int: Double]]] = [:]
        for (j, (op, mode, n)) in phases.enumerated() {
            totals[op, default: [:]][mode, default: [:]][n] = try Self.total(of: "\(out.path).\(2 * j + 2)")
        }
        let (n1, n2) = (counts[0], counts[1])
        var results: [BenchOperation: Counts] = [:]
        for op in operations {
            func perOp(_ mode: InstructionProbe.Mode) throws -> Double {
                guard let a = totals[op]?[mode]?[n1], let b = totals[op]?[mode]?[n2] else { throw Failure.probe("\(op.rawValue): no \(mode.rawValue) phase") }
                return (b - a) / Double(n2 - n1)
            }
            let stray = totals[op]?[.resetOnly]?.values.reduce(0, +) ?? 0
            guard stray == 0 else {
                throw Failure.probe("\(op.rawValue): \(Int(stray)) instructions counted outside the measured calls (a reset reached the reference boundary), so the split is not sound")
            }
            results[op] = Counts(native: try perOp(.native), layer: try perOp(.layer), reference: try perOp(.reference))
        }
        return results
    }

    /// The split holds only if every call crosses the boundary under the names callgrind is
    /// given: each `xv_cg_` function is in the symbol table, and the optimiser made no clone of
    /// one (a function-signature specialisation, `$s<n>xv_cg_…Tf…`), which callers would call
    /// instead, unseen.
    func checkBoundary(_ binary: String) throws {
        guard let nm = Self.executable("nm") else { throw Failure.unavailable("nm is not on PATH (binutils)") }
        let symbols = try Self.capture(nm, [binary]).stdout.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) }
        let clones = symbols.filter { $0.hasPrefix("$s") && $0.contains("xv_cg_") }
        guard clones.isEmpty else { throw Failure.probe("the optimiser cloned boundary functions (\(clones.joined(separator: ", "))): the split would miss their calls") }
        for name in [InstructionProbe.nativeSymbol, InstructionProbe.layerSymbol, InstructionProbe.layerReentrySymbol, InstructionProbe.dumpSymbol,
                     "xv_cg_reference_hypercall", "xv_cg_reference_read_msr", "xv_cg_reference_write_msr"] where !symbols.contains(name) {
            throw Failure.probe("\(name) is not in the binary's symbol table")
        }
    }

    /// The instruction total of one callgrind dump (its `totals:` line, else `summary:`).
    static func total(of path: String) throws -> Double {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw Failure.probe("callgrind wrote no \(path)") }
        for key in ["totals:", "summary:"] {
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) }),
               let v = line.dropFirst(key.count).split(separator: " ").first.flatMap({ Double($0) }) {
                return v
            }
        }
        throw Failure.probe("\(path) has no totals line")
    }
}
