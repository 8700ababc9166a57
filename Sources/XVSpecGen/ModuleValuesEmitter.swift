/// Writes `Tests/ABITests/Generated/ABIModuleValues.swift`: the values the generated ABI modules
/// actually hold, by spec name, read through their public API. The ABI tests compare these with
/// the catalog (so the emitted Swift says what the tables say) and exercise every bit-field
/// accessor.
struct ModuleValuesEmitter {
    let set: SpecSet

    private func member(_ t: SpecTable, _ r: CodeRow) -> String {
        SwiftNaming.escaped(SwiftNaming.memberName(for: r.name, prefix: t.prefix, override: r.swiftName))
    }

    /// The smallest raw value no row of `t` uses (to exercise a table's default answer).
    private func unusedValue(_ t: SpecTable) -> UInt64 {
        let used = Set(t.codes.filter { !$0.value.isNegative }.map(\.value.magnitude))
        var v: UInt64 = 0
        while used.contains(v) { v += 1 }
        return v
    }

    /// Disposition and errno-map answers read back through the generated switches.
    private func dispositions() -> String {
        var out = "    /// (spec name, disposition the generated switch returns).\n"
        out += "    static let dispositions: [(String, XenDisposition)] = [\n"
        var defaults = ""
        for t in set.tables where t.kind == .disposition {
            for id in t.covers {
                guard let covered = set.tables.first(where: { $0.id == id }), let type = covered.swiftType else { continue }
                for r in covered.codes {
                    out += "        (\(CatalogEmitter.quoted(r.name)), \(type).\(member(covered, r)).disposition),\n"
                }
                defaults += "        (\(CatalogEmitter.quoted(t.id)), \(CatalogEmitter.quoted(id)), \(type)(rawValue: \(unusedValue(covered))).disposition),\n"
            }
        }
        out += "    ]\n\n"
        out += "    /// (disposition table, covered table, answer for a number no row lists).\n"
        out += "    static let defaultDispositions: [(String, String, XenDisposition)] = [\n" + defaults + "    ]\n\n"
        out += "    /// (status or outcome name, errno the generated switch returns).\n"
        out += "    static let errnoMappings: [(String, XenErrno?)] = [\n"
        var mapDefaults = ""
        for t in set.tables where t.kind == .errnoMap {
            for id in t.covers {
                guard let covered = set.tables.first(where: { $0.id == id }), let type = covered.swiftType else { continue }
                for r in covered.codes {
                    out += "        (\(CatalogEmitter.quoted(r.name)), \(type).\(member(covered, r)).xenErrno),\n"
                }
                mapDefaults += "        (\(CatalogEmitter.quoted(t.id)), \(type)(rawValue: \(unusedValue(covered))).xenErrno),\n"
            }
        }
        out += "    ]\n\n"
        out += "    /// (errno-map table, answer for a value no row lists).\n"
        out += "    static let defaultErrnoMappings: [(String, XenErrno?)] = [\n" + mapDefaults + "    ]\n"
        return out
    }

    func emit() -> String {
        let structs = StructExpansion.structsByTag(set)
        var out = Banner.swift(sources: set.files.map(\.path))
        out += "import GuestABI\nimport XenABI\nimport ViridianABI\nimport XenCore\n\n"
        out += "enum ABIModuleValues {\n"
        out += "    /// (spec name, value as the module holds it).\n"
        out += "    static let constants: [(String, ModuleInteger)] = [\n"
        for t in set.tables where t.kind?.isCode == true {
            guard let type = t.swiftType else { continue }
            for r in t.codes {
                let member = SwiftNaming.escaped(SwiftNaming.memberName(for: r.name, prefix: t.prefix, override: r.swiftName))
                let expr = t.representation == .namespace ? "\(type).\(member)" : "\(type).\(member).rawValue"
                out += "        (\(CatalogEmitter.quoted(r.name)), ModuleInteger(\(expr))),\n"
            }
        }
        out += "    ]\n\n"
        out += "    /// (C tag, size, [(field, layout)]).\n"
        out += "    static let structs: [(String, Int, [(String, ABIField)])] = [\n"
        for t in set.tables where t.kind == .struct {
            let type = t.swiftType ?? SwiftNaming.upperCamel(t.cTag ?? t.id) + "Layout"
            out += "        (\(CatalogEmitter.quoted(t.cTag ?? "")), \(type).size, [\n"
            for f in StructExpansion.expand(t, structsByTag: structs) {
                out += "            (\(CatalogEmitter.quoted(f.name)), \(type).\(SwiftNaming.escaped(f.swiftName))),\n"
            }
            out += "        ]),\n"
        }
        out += "    ]\n\n"
        out += "    /// (register name, reserved mask, preserved mask, [(field, mask the accessor sets when given all ones)]).\n"
        out += "    static let bitfields: [(String, UInt64, UInt64, [(String, UInt64)])] = [\n"
        for t in set.tables where t.kind == .bitfield {
            guard let type = t.swiftType else { continue }
            out += "        (\(CatalogEmitter.quoted(t.family ?? t.id)), UInt64(\(type).reservedMask), UInt64(\(type).preservedMask), [\n"
            for b in t.bits where b.isNamed {
                let name = SwiftNaming.escaped(b.swiftName ?? SwiftNaming.lowerCamel(b.name))
                let setter = b.width == 1 ? "v.\(name) = true" : "v.\(name) = ~0"
                out += "            (\(CatalogEmitter.quoted(b.name)), { var v = \(type)(rawValue: 0); \(setter); return UInt64(v.rawValue) }()),\n"
            }
            out += "        ]),\n"
        }
        out += "    ]\n\n"
        out += dispositions()
        out += "}\n"
        return out
    }
}
