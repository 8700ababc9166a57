/// Writes `Sources/XVSpecCatalog/Generated/SpecCatalog.swift`: every row of every table as data,
/// for `xv specs --json` and for the tests that compare the tables with the C compiler.
struct CatalogEmitter {
    let set: SpecSet

    static func quoted(_ s: String) -> String {
        var out = "\""
        for c in s {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out.append(c)
            }
        }
        return out + "\""
    }

    static func quotedOrNil(_ s: String?) -> String { s.map(quoted) ?? "nil" }

    /// A catalog array is built row by row, one `append` statement each, by a function the
    /// optimizer leaves alone: as one array literal, a thousand rows made a single expression
    /// that took the type checker over 11 GB and 20 s in every build.
    static func arrayHeader(_ name: String, _ type: String) -> String {
        let maker = "make" + name.prefix(1).uppercased() + name.dropFirst()
        return "    public static let \(name): [\(type)] = \(maker)()\n    @_optimize(none)\n    static func \(maker)() -> [\(type)] {\n        var rows: [\(type)] = []\n"
    }

    static var arrayFooter: String { "        return rows\n    }\n\n" }

    /// Turns the rows between a header and a footer (elements at an indentation of 8, each on
    /// one line or spanning to a closing `]),`) into `rows.append(...)` statements.
    static func statements(_ text: String) -> String {
        var out: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let isTopLevel = line.hasPrefix("        ") && !line.hasPrefix("         ")
            guard isTopLevel, !line.hasPrefix("        var rows"), !line.hasPrefix("        return rows") else { out.append(line); continue }
            var l = String(line)
            if !l.hasPrefix("        ]") { l = "        rows.append(" + l.dropFirst(8) }
            if l.hasSuffix(",") { l = String(l.dropLast()) + ")" }
            out.append(Substring(l))
        }
        return out.joined(separator: "\n")
    }

    func emit() -> String {
        let structs = StructExpansion.structsByTag(set)
        var out = Banner.swift(sources: set.files.map(\.path))
        out += "\nextension SpecCatalog {\n"
        out += "    /// Every code row (hypercalls, sub-ops, errno, MSRs, statuses, messages, constants, flags).\n"
        out += Self.arrayHeader("constants", "SpecConstant")
        for t in set.tables where t.kind?.isCode == true {
            for r in t.codes {
                let member = SwiftNaming.memberName(for: r.name, prefix: t.prefix, override: r.swiftName)
                let flags = "[" + (r.flags + r.gates.map { "gate=\($0)" }).map(Self.quoted).joined(separator: ", ") + "]"
                out += "        SpecConstant(interface: \(Self.quoted(t.interface?.rawValue ?? "")), kind: \(Self.quoted(t.kind?.rawValue ?? "")), "
                out += "family: \(Self.quoted(t.family ?? "")), name: \(Self.quoted(r.name)), magnitude: \(r.value.magnitude), isNegative: \(r.value.isNegative), "
                out += "attributes: \(flags), alias: \(Self.quotedOrNil(r.alias)), checkedAgainstC: \(t.isCheckedAgainstC), "
                out += "swift: \(Self.quoted((t.swiftType ?? "") + "." + member)), location: \(Self.quoted(r.location.description))),\n"
            }
        }
        out += Self.arrayFooter
        out += "    /// Every struct layout, with nested fields expanded (dotted names).\n"
        out += Self.arrayHeader("structs", "SpecStruct")
        for t in set.tables where t.kind == .struct {
            out += "        SpecStruct(interface: \(Self.quoted(t.interface?.rawValue ?? "")), name: \(Self.quoted(t.cTag ?? "")), "
            out += "cSpelling: \(Self.quoted(t.cSpelling ?? "")), size: \(t.size ?? 0), checkedAgainstC: \(t.isCheckedAgainstC), "
            out += "location: \(Self.quoted(t.location.description)), fields: [\n"
            for f in StructExpansion.expand(t, structsByTag: structs) {
                out += "            SpecStructField(name: \(Self.quoted(f.name)), offset: \(f.offset), size: \(f.size), count: \(f.count)),\n"
            }
            out += "        ]),\n"
        }
        out += Self.arrayFooter
        out += "    /// Every bit-field register layout.\n"
        out += Self.arrayHeader("bitfields", "SpecBitfield")
        for t in set.tables where t.kind == .bitfield {
            out += "        SpecBitfield(interface: \(Self.quoted(t.interface?.rawValue ?? "")), name: \(Self.quoted(t.family ?? t.id)), "
            out += "width: \(t.width ?? 0), location: \(Self.quoted(t.location.description)), fields: [\n"
            for b in t.bits {
                out += "            SpecBit(name: \(Self.quoted(b.name)), low: \(b.low), high: \(b.high)),\n"
            }
            out += "        ]),\n"
        }
        out += Self.arrayFooter
        out += "    /// Every translation disposition row.\n"
        out += Self.arrayHeader("dispositions", "SpecDisposition")
        for t in set.tables where t.kind == .disposition {
            for d in t.dispositions {
                out += "        SpecDisposition(xen: \(Self.quoted(d.xen)), disposition: \(Self.quoted(d.disposition.rawValue)), "
                out += "viridian: [\(d.viridian.map(Self.quoted).joined(separator: ", "))], errno: \(Self.quotedOrNil(d.errno)), "
                out += "note: \(Self.quotedOrNil(d.note)), location: \(Self.quoted(d.location.description))),\n"
            }
        }
        out += Self.arrayFooter
        out += "    /// The answers for numbers a disposition table does not list (`@default`), by table id.\n"
        out += Self.arrayHeader("defaultDispositions", "SpecDisposition")
        for t in set.tables where t.kind == .disposition {
            guard let d = t.defaultDisposition else { continue }
            out += "        SpecDisposition(xen: \(Self.quoted(t.id)), disposition: \(Self.quoted(d.disposition.rawValue)), "
            out += "viridian: [], errno: \(Self.quotedOrNil(d.errno)), note: \(Self.quotedOrNil(d.note)), location: \(Self.quoted(d.location.description))),\n"
        }
        out += Self.arrayFooter
        out += "    /// The one table from Viridian statuses and layer outcomes to guest-visible errno.\n"
        out += Self.arrayHeader("errnoMappings", "SpecErrnoMapping")
        for t in set.tables where t.kind == .errnoMap {
            for m in t.errnoMaps {
                out += "        SpecErrnoMapping(from: \(Self.quoted(m.from)), errno: \(Self.quotedOrNil(m.errno)), note: \(Self.quotedOrNil(m.note)), "
                out += "location: \(Self.quoted(m.location.description))),\n"
            }
        }
        out += Self.arrayFooter
        out += "    /// Provenance of every table.\n"
        out += Self.arrayHeader("tables", "SpecTableInfo")
        for t in set.tables {
            out += "        SpecTableInfo(id: \(Self.quoted(t.id)), interface: \(Self.quoted(t.interface?.rawValue ?? "")), "
            out += "kind: \(Self.quoted(t.kind?.rawValue ?? "")), source: \(Self.quoted(t.source ?? "")), location: \(Self.quoted(t.location.description))),\n"
        }
        out += Self.arrayFooter + "}\n"
        return Self.statements(out)
    }
}
