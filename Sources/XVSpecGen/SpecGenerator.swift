/// Specs in, generated files out. Pure: takes table texts, returns file contents or diagnostics.
/// File I/O lives in `SpecRepository` (and the `xv-specgen` executable).
public enum SpecGenerator {
    /// Folders whose whole content the generator owns. A file there that the generator would not
    /// write is stale too.
    public static let generatedFolders = [
        "Sources/XenABI/Generated",
        "Sources/ViridianABI/Generated",
        "Sources/XenCore/Generated",
        "Sources/XVSpecCatalog/Generated",
        "Tests/Support/CXenProbe/Generated",
        "Tests/ABITests/Generated",
        "Sources/ViridianReference/Generated",
    ]

    public struct Output: Sendable {
        /// Relative path -> content.
        public var files: [String: String]
        public var diagnostics: [SpecDiagnostic]
    }

    /// Parses and validates `inputs` (relative path, text); on success returns every generated
    /// file. Diagnostics come sorted by file and line.
    public static func generate(_ inputs: [(path: String, text: String)]) -> Output {
        let (set, diagnostics) = parseAndValidate(inputs)
        guard diagnostics.isEmpty else { return Output(files: [:], diagnostics: diagnostics) }
        var files: [String: String] = [:]
        let abi = ABIEmitter(set: set)
        for file in set.files {
            guard let interface = file.interface else { continue }
            files["Sources/\(ABIEmitter.module(for: interface))/Generated/\(outputStem(file.path)).swift"] = abi.emit(file)
        }
        files["Sources/XVSpecCatalog/Generated/SpecCatalog.swift"] = CatalogEmitter(set: set).emit()
        files["Tests/Support/CXenProbe/Generated/xen_probe_table.c"] = ProbeEmitter(set: set).emit()
        files["Tests/ABITests/Generated/ABIModuleValues.swift"] = ModuleValuesEmitter(set: set).emit()
        let reference = ReferenceEmitter(set: set)
        if reference.hasClaims { files[ReferenceEmitter.outputPath] = reference.emit() }
        return Output(files: files, diagnostics: [])
    }

    public static func parseAndValidate(_ inputs: [(path: String, text: String)]) -> (SpecSet, [SpecDiagnostic]) {
        var diagnostics: [SpecDiagnostic] = []
        var files: [SpecFile] = []
        for input in inputs.sorted(by: { $0.path < $1.path }) {
            var parser = SpecParser(path: input.path)
            files.append(parser.parse(input.text))
            diagnostics += parser.diagnostics
        }
        let set = SpecSet(files: files)
        // Cross-table checks only make sense on tables that parsed.
        if diagnostics.isEmpty {
            var validator = SpecValidator()
            validator.validate(set)
            diagnostics += validator.diagnostics
        }
        // Two files with the same stem would write the same Swift file.
        var stems: [String: String] = [:]
        for f in files {
            let key = "\(f.interface?.rawValue ?? "")/\(outputStem(f.path))"
            if let first = stems[key] {
                diagnostics.append(SpecDiagnostic(SpecLocation(file: f.path, line: 1), "writes the same file as \(first)"))
            }
            stems[key] = f.path
        }
        diagnostics.sort { ($0.location.file, $0.location.line, $0.message) < ($1.location.file, $1.location.line, $1.message) }
        return (set, diagnostics)
    }

    /// `Specs/xen/event-channels.tbl` -> `EventChannels`.
    public static func outputStem(_ path: String) -> String {
        let last = path.split(separator: "/").last.map(String.init) ?? path
        let stem = last.hasSuffix(".tbl") ? String(last.dropLast(4)) : last
        return SwiftNaming.upperCamel(stem.replacingDashes())
    }
}

extension String {
    func replacingDashes() -> String { String(map { $0 == "-" ? "_" : $0 }) }
}
