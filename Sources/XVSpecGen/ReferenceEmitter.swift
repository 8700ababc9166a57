/// Writes `Sources/ViridianReference/Generated/ReferenceSurface.swift`: what ViridianReference
/// claims to implement, from the `ref` rows of the Viridian hypercall and MSR tables. Each claim
/// becomes an enum case, so the reference's exhaustive `switch` cannot leave a claimed row
/// without a handler, and each row's `gate=` attributes become `isPermitted(by:)`.
struct ReferenceEmitter {
    let set: SpecSet

    static let outputPath = "Sources/ViridianReference/Generated/ReferenceSurface.swift"

    /// The flag tables a `gate=` may name, and the `CPUIDPrivileges` member holding each one.
    static let gateMembers: [String: String] = [
        "viridian.cpuid3_eax": "eax",
        "viridian.cpuid3_ebx": "ebx",
        "viridian.cpuid3_edx": "edx",
        "viridian.cpuid4_eax": "recommendations",
    ]

    /// Whether any table claims a row for the reference (otherwise nothing is written).
    var hasClaims: Bool { !claimTables.isEmpty }

    private var claimTables: [SpecTable] {
        self.set.tables.filter { t in
            t.interface == .viridian && (t.kind == .hypercall || t.kind == .msr) && t.codes.contains(where: \.isImplementedByReference)
        }
    }

    func emit() -> String {
        let tables = claimTables
        let sources = Array(Set(tables.map(\.location.file))).sorted()
        var out = Banner.swift(sources: sources)
        out += "import ViridianABI\n"
        var gateIndex: [String: (member: String, type: String, row: CodeRow, prefix: String?)] = [:]
        for t in set.tables where t.interface == .viridian && t.kind == .flag {
            guard let member = Self.gateMembers[t.id], let type = t.swiftType else { continue }
            for r in t.codes { gateIndex[r.name] = (member, type, r, t.prefix) }
        }
        for t in tables {
            guard let codeType = t.swiftType, let raw = t.rawType else { continue }
            let enumName = t.kind == .hypercall ? "ReferenceHypercall" : "ReferenceMSR"
            let rows = t.codes.filter { $0.isImplementedByReference && $0.alias == nil }
            let member = { (r: CodeRow) in SwiftNaming.escaped(SwiftNaming.memberName(for: r.name, prefix: t.prefix, override: r.swiftName)) }
            out += "\n/// The \(t.family ?? "") rows of `\(t.id)` (\(t.location.file)) marked `ref`: what ViridianReference implements.\n"
            out += "/// Every other \(codeType) gets the reference's answer for an unimplemented one.\n"
            out += "@frozen\npublic enum \(enumName): \(raw), CaseIterable, Sendable {\n"
            for r in rows {
                out += "    /// `\(r.name)`\(r.gates.isEmpty ? "" : "; gated by " + r.gates.map { "`\($0)`" }.joined(separator: ", "))\n"
                out += "    case \(member(r)) = \(r.value.swiftLiteral)\n"
            }
            out += "\n    /// The claimed row for `code`, or nil when the reference does not implement it.\n"
            out += "    @inlinable public init?(_ code: \(codeType)) {\n        switch code.rawValue {\n"
            for r in rows { out += "        case \(r.value.swiftLiteral): self = .\(member(r))\n" }
            out += "        default: return nil\n        }\n    }\n"
            out += "\n    /// The row's \(codeType).\n"
            out += "    @inlinable public var code: \(codeType) { \(codeType)(rawValue: rawValue) }\n"
            out += "\n    /// The row's spec name.\n    public var specName: StaticString {\n        switch self {\n"
            for r in rows { out += "        case .\(member(r)): return \"\(r.name)\"\n" }
            out += "        }\n    }\n"
            out += "\n    /// Whether `privileges` hold every bit the row's `gate=` attributes name.\n"
            out += "    @inlinable public func isPermitted(by privileges: CPUIDPrivileges) -> Bool {\n        switch self {\n"
            for r in rows {
                let terms = r.gates.compactMap { g -> String? in
                    guard let (m, type, row, prefix) = gateIndex[g] else { return nil }
                    let name = SwiftNaming.escaped(SwiftNaming.memberName(for: row.name, prefix: prefix, override: row.swiftName))
                    return "privileges.\(m).contains(\(type).\(name))"
                }
                out += "        case .\(member(r)): return \(terms.isEmpty ? "true" : terms.joined(separator: " && "))\n"
            }
            out += "        }\n    }\n}\n"
        }
        return out
    }
}
