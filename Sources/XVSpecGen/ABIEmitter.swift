/// Writes the Swift of one table file: code types, struct layouts, bit-field registers,
/// disposition switches and errno maps. The output holds no logic beyond constant lookups.
struct ABIEmitter {
    let set: SpecSet
    let structsByTag: [String: SpecTable]
    let codeIndex: [String: (table: SpecTable, row: CodeRow)]

    init(set: SpecSet) {
        self.set = set
        self.structsByTag = StructExpansion.structsByTag(set)
        var index: [String: (SpecTable, CodeRow)] = [:]
        for t in set.tables where t.kind?.isCode == true { for r in t.codes { index[r.name] = (t, r) } }
        self.codeIndex = index
    }

    static func module(for interface: SpecInterface) -> String {
        switch interface {
        case .xen: return "XenABI"
        case .viridian: return "ViridianABI"
        case .translation: return "XenCore"
        }
    }

    static func imports(for interface: SpecInterface) -> [String] {
        switch interface {
        case .xen, .viridian: return ["GuestABI"]
        case .translation: return ["GuestABI", "XenABI", "ViridianABI"]
        }
    }

    func emit(_ file: SpecFile) -> String {
        var out = Banner.swift(sources: [file.path])
        for m in Self.imports(for: file.interface ?? .xen) { out += "import \(m)\n" }
        for table in file.tables {
            out += "\n"
            switch table.kind {
            case .some(let k) where k.isCode: out += emitCodes(table)
            case .struct: out += emitStruct(table)
            case .bitfield: out += emitBits(table)
            case .disposition: out += emitDispositions(table)
            case .errnoMap: out += emitErrnoMap(table)
            default: break
            }
        }
        return out
    }

    // MARK: - Code tables

    private func docLines(_ text: String?, indent: String) -> String {
        guard let text else { return "" }
        return "\(indent)/// \(text)\n"
    }

    private func tableDoc(_ t: SpecTable) -> String {
        var s = ""
        if let d = t.doc { s += "/// \(d)\n///\n" }
        s += "/// Spec table `\(t.id)` (\(t.location.file)); family `\(t.family ?? "-")`.\n"
        if let src = t.source { s += "/// Source: \(src)\n" }
        return s
    }

    /// The doc sentence of a code row whose table line carries no `-- doc`: what kind of number
    /// it is, its hex spelling where that is how the specs write it, and the table it comes from.
    func genericRowDoc(_ t: SpecTable, _ r: CodeRow) -> String {
        let side: String
        switch t.interface {
        case .some(.xen): side = "Xen"
        case .some(.viridian): side = "Viridian"
        case .some(.translation), .none: side = "XenViridian"
        }
        let what: String
        switch t.kind {
        case .some(.hypercall): what = side == "Viridian" ? "Viridian hypercall call code" : "\(side) hypercall number"
        case .some(.subop): what = "\(side) `\(t.family ?? t.id)` sub-op number"
        case .some(.errno): what = "\(side) errno value"
        case .some(.status): what = "HV_STATUS code"
        case .some(.msr): what = "\(side) MSR index"
        case .some(.message): what = "SynIC message type"
        case .some(.flag): what = "\(side) `\(t.family ?? t.id)` bit mask"
        case .some(.outcome): what = "layer outcome code"
        default: what = "\(side) `\(t.family ?? t.id)` constant"
        }
        let hex = (!r.value.isNegative && r.value.magnitude >= 10) ? " " + r.value.swiftLiteral : ""
        return "\(what)\(hex), from `\(t.location.file)`."
    }

    func emitCodes(_ t: SpecTable) -> String {
        guard let type = t.swiftType, let raw = t.rawType else { return "" }
        var out = tableDoc(t)
        let member = { (r: CodeRow) in SwiftNaming.escaped(SwiftNaming.memberName(for: r.name, prefix: t.prefix, override: r.swiftName)) }
        switch t.representation {
        case .namespace:
            out += "public enum \(type) {\n"
            for r in t.codes {
                out += "    /// `\(r.name)` = \(r.value). \(r.doc ?? genericRowDoc(t, r))\n"
                out += "    @inlinable public static var \(member(r)): \(raw) { \(r.value.swiftLiteral) }\n"
            }
            out += "}\n"
            return out
        case .struct, .flags:
            let conformance = t.representation == .flags ? "OptionSet, Hashable, Sendable" : "RawRepresentable, Hashable, Sendable"
            out += "@frozen\npublic struct \(type): \(conformance) {\n"
            if t.representation == .flags {
                out += "    /// The raw `\(t.family ?? t.id)` bits as the guest or hypervisor passes them (\(raw)); bits `\(t.id)` does not name are kept.\n"
                out += "    public var rawValue: \(raw)\n"
                out += "    /// Wraps `rawValue` as it is, unknown bits included.\n"
            } else {
                out += "    /// The raw `\(t.family ?? t.id)` number as the guest or hypervisor passes it (\(raw)); numbers `\(t.id)` does not list are kept.\n"
                out += "    public var rawValue: \(raw)\n"
                out += "    /// Wraps `rawValue` as it is, without checking it against `\(t.id)`.\n"
            }
            out += "    @inlinable public init(rawValue: \(raw)) { self.rawValue = rawValue }\n"
            out += "}\n\n"
        case .extend:
            break
        }
        out += "extension \(type) {\n"
        for r in t.codes {
            var attrs = r.flags.isEmpty ? "" : " [\(r.flags.joined(separator: ", "))]"
            if let a = r.alias { attrs += " (shares its value with `\(a)`)" }
            out += "    /// `\(r.name)` = \(r.value)\(attrs). \(r.doc ?? genericRowDoc(t, r))\n"
            out += "    @inlinable public static var \(member(r)): \(type) { \(type)(rawValue: \(r.value.swiftLiteral)) }\n"
        }
        if t.representation != .extend && t.representation != .flags {
            out += "\n    /// The spec (C) name of this value, or nil for a number table `\(t.id)` does not list.\n"
            out += "    public var specName: StaticString? {\n        switch rawValue {\n"
            for r in t.codes where r.alias == nil {
                out += "        case \(r.value.swiftLiteral): return \"\(r.name)\"\n"
            }
            out += "        default: return nil\n        }\n    }\n"
        }
        out += emitCallTraits(t)
        out += emitMSRAccess(t)
        out += "}\n"
        return out
    }

    /// Hypercall tables whose rows carry `simple`/`rep`/`fast` get the call class and fast form
    /// as lookups (TLFS "Hypercall Classes" and "Fast Hypercalls").
    private func emitCallTraits(_ t: SpecTable) -> String {
        guard t.kind == .hypercall, t.codes.contains(where: { $0.flags.contains("simple") || $0.flags.contains("rep") }) else { return "" }
        var out = "\n    /// The call's class (`simple` or `rep` in `\(t.location.file)`), or nil for a code the table does not list.\n"
        out += "    public var callClass: HypercallClass? {\n        switch rawValue {\n"
        for r in t.codes where r.alias == nil {
            if r.flags.contains("rep") { out += "        case \(r.value.swiftLiteral): return .rep\n" }
            else if r.flags.contains("simple") { out += "        case \(r.value.swiftLiteral): return .simple\n" }
        }
        out += "        default: return nil\n        }\n    }\n"
        out += "\n    /// Whether the call has a register-input (fast) form (`fast` in `\(t.location.file)`).\n"
        out += "    public var hasFastForm: Bool {\n        switch rawValue {\n"
        let fast = t.codes.filter { $0.alias == nil && $0.flags.contains("fast") }
        if !fast.isEmpty {
            out += "        case " + fast.map(\.value.swiftLiteral).joined(separator: ", ") + ": return true\n"
        }
        out += "        default: return false\n        }\n    }\n"
        return out
    }

    /// MSR tables whose rows carry `ro`/`rw`/`wo` get the access as a lookup.
    private func emitMSRAccess(_ t: SpecTable) -> String {
        guard t.kind == .msr, t.codes.contains(where: { !$0.flags.filter(["ro", "rw", "wo"].contains).isEmpty }) else { return "" }
        var out = "\n    /// The MSR's access (`ro`, `rw`, `wo` in `\(t.location.file)`), or nil for an index the table does not list.\n"
        out += "    public var access: MSRAccess? {\n        switch rawValue {\n"
        for r in t.codes where r.alias == nil {
            let access = r.flags.contains("ro") ? "readOnly" : r.flags.contains("wo") ? "writeOnly" : r.flags.contains("rw") ? "readWrite" : nil
            if let access { out += "        case \(r.value.swiftLiteral): return .\(access)\n" }
        }
        out += "        default: return nil\n        }\n    }\n"
        return out
    }

    // MARK: - Structs

    func emitStruct(_ t: SpecTable) -> String {
        guard let c = t.cSpelling, let size = t.size else { return "" }
        let type = t.swiftType ?? SwiftNaming.upperCamel(t.cTag ?? t.id) + "Layout"
        var out = tableDoc(t)
        out += "/// Layout of `\(c)` on x86_64: \(size) bytes. Offsets are from the start of the structure.\n"
        out += "public enum \(type) {\n"
        out += "    /// `sizeof(\(c))`\n"
        out += "    @inlinable public static var size: Int { \(size) }\n"
        for f in StructExpansion.expand(t, structsByTag: structsByTag) {
            var what = "`\(f.name)`"
            if f.count > 1 { what += ", \(f.count) elements" }
            if let ref = f.typeRef { what += ", `\(structsByTag[ref]?.cSpelling ?? ref)`" }
            what += ": bytes \(f.offset) ..< \(f.offset + f.size) (\(f.size) byte\(f.size == 1 ? "" : "s"))"
            out += "    /// \(what)\n"
            let countArg = f.count == 1 ? "" : ", count: \(f.count)"
            out += "    @inlinable public static var \(SwiftNaming.escaped(f.swiftName)): ABIField { ABIField(offset: \(f.offset), size: \(f.size)\(countArg)) }\n"
        }
        out += "}\n"
        return out
    }

    // MARK: - Bit fields

    static func rawType(forWidth width: Int) -> String { "UInt\(width)" }

    static func mask(_ row: BitRow) -> UInt64 {
        let ones: UInt64 = row.width == 64 ? .max : (UInt64(1) << UInt64(row.width)) - 1
        return ones << UInt64(row.low)
    }

    static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16, uppercase: true) }

    func emitBits(_ t: SpecTable) -> String {
        guard let type = t.swiftType, let width = t.width else { return "" }
        let raw = Self.rawType(forWidth: width)
        var out = tableDoc(t)
        out += "@frozen\npublic struct \(type): RawRepresentable, Hashable, Sendable {\n"
        out += "    /// The whole \(width)-bit `\(t.family ?? t.id)` value, reserved bits included.\n"
        out += "    public var rawValue: \(raw)\n"
        out += "    /// Wraps a raw value as it is; reserved bits are kept (see `hasReservedBitsSet`).\n"
        out += "    @inlinable public init(rawValue: \(raw)) { self.rawValue = rawValue }\n\n"
        let reserved = t.bits.filter(\.isReserved).reduce(UInt64(0)) { $0 | Self.mask($1) }
        let preserved = t.bits.filter(\.isPreserved).reduce(UInt64(0)) { $0 | Self.mask($1) }
        out += "    /// Reserved bits that must be zero (RsvdZ).\n"
        out += "    @inlinable public static var reservedMask: \(raw) { \(Self.hex(reserved)) }\n"
        out += "    /// Reserved bits that are preserved (RsvdP): writes leave them as they were.\n"
        out += "    @inlinable public static var preservedMask: \(raw) { \(Self.hex(preserved)) }\n"
        out += "    /// Whether any reserved bit is set.\n"
        out += "    @inlinable public var hasReservedBitsSet: Bool { rawValue & Self.reservedMask != 0 }\n"
        out += "    /// The register after a write of `value`: RsvdP bits keep their current value.\n"
        out += "    @inlinable public func writing(_ value: \(raw)) -> Self { Self(rawValue: (value & ~Self.preservedMask) | (rawValue & Self.preservedMask)) }\n"
        for b in t.bits where b.isNamed {
            let name = SwiftNaming.escaped(b.swiftName ?? SwiftNaming.lowerCamel(b.name))
            let range = b.low == b.high ? "bit \(b.low)" : "bits \(b.low):\(b.high)"
            out += "\n    /// `\(b.name)`, \(range)\(b.doc.map { ". " + $0 } ?? "")\n"
            if b.width == 1 {
                out += "    @inlinable public var \(name): Bool {\n"
                out += "        get { rawValue & (1 << \(b.low)) != 0 }\n"
                out += "        set { rawValue = newValue ? rawValue | (1 << \(b.low)) : rawValue & ~(1 << \(b.low)) }\n    }\n"
            } else {
                let fieldMask = Self.hex(b.width == 64 ? .max : (UInt64(1) << UInt64(b.width)) - 1)
                out += "    @inlinable public var \(name): \(raw) {\n"
                out += "        get { (rawValue >> \(b.low)) & \(fieldMask) }\n"
                out += "        set { rawValue = (rawValue & ~(\(fieldMask) << \(b.low))) | ((newValue & \(fieldMask)) << \(b.low)) }\n    }\n"
            }
        }
        out += "}\n"
        return out
    }

    // MARK: - Translation

    func emitDispositions(_ t: SpecTable) -> String {
        var out = tableDoc(t)
        // One extension per covered code type.
        for id in t.covers {
            guard let covered = set.tables.first(where: { $0.id == id }), let type = covered.swiftType else { continue }
            let rows = t.dispositions.filter { d in covered.codes.contains { $0.name == d.xen } }
            out += "extension \(type) {\n"
            out += "    /// What XenViridian does with this \(covered.family ?? "value"), as declared in `\(t.location.file)`.\n"
            out += "    /// Numbers the table does not list get the table's default answer.\n"
            out += "    public var disposition: XenDisposition {\n        switch rawValue {\n"
            for d in rows {
                guard let code = codeIndex[d.xen]?.row, code.alias == nil else { continue }
                let via = d.viridian.isEmpty ? "" : " via \(d.viridian.joined(separator: ", "))"
                out += "        case \(code.value.swiftLiteral): return \(caseExpression(d)) // \(d.xen)\(via)\n"
            }
            if let def = t.defaultDisposition {
                out += "        default: return \(caseExpression(def))\n"
            }
            out += "        }\n    }\n}\n"
        }
        return out
    }

    private func caseExpression(_ d: DispositionRow) -> String {
        switch d.disposition {
        case .translated: return ".translated"
        case .layer: return ".layer"
        case .subops: return ".subops"
        case .rejected: return ".rejected(\(errnoExpression(d.errno)))"
        }
    }

    private func errnoExpression(_ name: String?) -> String {
        guard let name, let (t, r) = codeIndex[name] else { return "nil" }
        return "." + SwiftNaming.escaped(SwiftNaming.memberName(for: r.name, prefix: t.prefix, override: r.swiftName))
    }

    func emitErrnoMap(_ t: SpecTable) -> String {
        var out = tableDoc(t)
        for id in t.covers {
            guard let covered = set.tables.first(where: { $0.id == id }), let type = covered.swiftType else { continue }
            out += "extension \(type) {\n"
            out += "    /// The Xen errno a guest sees for this \(covered.family ?? "value") (nil: success, the guest sees 0),\n"
            out += "    /// as declared in `\(t.location.file)`. This is the one place that mapping is made.\n"
            out += "    public var xenErrno: XenErrno? {\n        switch rawValue {\n"
            for m in t.errnoMaps {
                guard let code = covered.codes.first(where: { $0.name == m.from }), code.alias == nil else { continue }
                out += "        case \(code.value.swiftLiteral): return \(m.errno == nil ? "nil" : errnoExpression(m.errno)) // \(m.from)\n"
            }
            out += "        default: return \(errnoExpression(t.defaultErrno))\n"
            out += "        }\n    }\n}\n"
        }
        return out
    }
}
