import ArgumentParser
import Foundation
import XVConformance

/// `xv conformance PATH…`: runs vector files (Specs/README.md, "Conformance vectors") on the
/// native baseline and on the translation layer, one line per vector and a summary.
struct ConformanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "Run conformance vectors against native (XenNative) and translated (XenViridian over ViridianReference).",
        discussion: """
        Each PATH is a vector file or a directory of them (*.vec). Without a PATH, runs \
        Specs/conformance. A directory's known-deviations.txt (or --deviations) lists vectors \
        that are known to fail, with the reason; a listed vector that passes fails the run. \
        Exits non-zero on any failure or malformed file.
        """
    )

    @Argument(help: "Vector files or directories (default: Specs/conformance).")
    var paths: [String] = []

    @Option(help: "The known-deviations list (default: known-deviations.txt beside the vectors).")
    var deviations: String?

    @Flag(help: "Print only failures and the summary.")
    var quiet = false

    func run() throws {
        let fm = FileManager.default
        var files: [String] = []
        var deviationFiles: [String] = deviations.map { [$0] } ?? []
        for path in paths.isEmpty ? ["Specs/conformance"] : paths {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else { throw ValidationError("\(path): no such file or directory") }
            if isDirectory.boolValue {
                let names = try fm.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".vec") }.sorted()
                files += names.map { (path as NSString).appendingPathComponent($0) }
                let list = (path as NSString).appendingPathComponent("known-deviations.txt")
                if deviations == nil, fm.fileExists(atPath: list) { deviationFiles.append(list) }
            } else {
                files.append(path)
            }
        }
        var known = KnownDeviations()
        for f in deviationFiles {
            let parsed = try KnownDeviations(parsing: try String(contentsOfFile: f, encoding: .utf8), file: f)
            for e in parsed.entries.values {
                guard known.entries[e.name] == nil else { throw ValidationError("\(e.location): \(e.name) is listed twice") }
            }
            known.merge(parsed)
        }
        var passed = 0, failed = 0, deviating = 0, syntax = 0
        var seen: [String: String] = [:]
        let start = Date()
        for (i, file) in files.enumerated() {
            FileHandle.standardError.write(Data("conformance: [\(i + 1)/\(files.count)] \(file)\n".utf8))
            let text = try String(contentsOfFile: file, encoding: .utf8)
            do {
                _ = try ConformanceSuite.run(text, file: file, deviations: known) { v in
                    if let other = seen[v.name] {
                        print("FAIL \(v.name): the name is used again (first at \(other))")
                        failed += 1
                        return
                    }
                    seen[v.name] = v.location
                    switch v.kind {
                    case .passed: passed += 1
                    case .knownDeviation: deviating += 1
                    case .failed: failed += 1
                    }
                    if !quiet || v.kind == .failed { print(v.line) }
                }
            } catch {
                print("FAIL \(file): \(error)")
                syntax += 1
            }
        }
        for e in known.entries.values.sorted(by: { $0.name < $1.name }) where seen[e.name] == nil && paths.isEmpty {
            print("FAIL \(e.name): \(e.location) lists a vector no file has")
            failed += 1
        }
        let seconds = Date().timeIntervalSince(start)
        print("\(passed) passed, \(failed + syntax) failed" + (deviating > 0 ? ", \(deviating) known deviations" : "")
              + " (\(seen.count) vectors in \(files.count) files, \(String(format: "%.1f", seconds)) s)")
        if failed + syntax > 0 { throw ExitCode.failure }
    }
}
