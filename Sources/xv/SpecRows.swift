import XVSpecCatalog

/// Every spec row as the JSON objects `xv specs --json` prints (format in README.md).
enum SpecRows {
    /// Code rows use the kinds: flag tables and layer outcomes are reported as constants.
    static func jsonKind(_ tableKind: String) -> String {
        tableKind == "flag" || tableKind == "outcome" ? "constant" : tableKind
    }

    /// Rows of every interface, or of `interface` only.
    static func all(interface: String? = nil) -> [JSONValue] {
        func wanted(_ i: String) -> Bool { interface == nil || interface == i }
        var rows: [JSONValue] = []
        for c in SpecCatalog.constants where wanted(c.interface) {
            var pairs: [(String, JSONValue)] = [
                ("interface", .string(c.interface)), ("kind", .string(jsonKind(c.kind))), ("family", .string(c.family)),
                ("name", .string(c.name)), ("value", .integer(magnitude: c.magnitude, negative: c.isNegative)),
            ]
            if !c.attributes.isEmpty { pairs.append(("attributes", .array(c.attributes.map { .string($0) }))) }
            if let alias = c.alias { pairs.append(("alias", .string(alias))) }
            pairs.append(("swift", .string(c.swift)))
            rows.append(.object(pairs))
        }
        for s in SpecCatalog.structs where wanted(s.interface) {
            rows.append(.object([
                ("interface", .string(s.interface)), ("kind", .string("struct")), ("name", .string(s.name)),
                ("c", .string(s.cSpelling)), ("size", .int(s.size)),
                ("fields", .array(s.fields.map { f in
                    .object([("name", .string(f.name)), ("offset", .int(f.offset)), ("size", .int(f.size)), ("count", .int(f.count))])
                })),
            ]))
        }
        for b in SpecCatalog.bitfields where wanted(b.interface) {
            rows.append(.object([
                ("interface", .string(b.interface)), ("kind", .string("bitfield")), ("name", .string(b.name)),
                ("width", .int(b.width)),
                ("fields", .array(b.fields.map { f in
                    .object([("name", .string(f.name)), ("low", .int(f.low)), ("high", .int(f.high))])
                })),
            ]))
        }
        for d in SpecCatalog.dispositions where wanted("translation") {
            rows.append(.object([
                ("interface", .string("translation")), ("kind", .string("disposition")), ("xen", .string(d.xen)),
                ("disposition", .string(d.disposition)), ("viridian", .array(d.viridian.map { .string($0) })),
                ("errno", .string(d.errno)), ("note", .string(d.note)),
            ]))
        }
        for m in SpecCatalog.errnoMappings where wanted("translation") {
            rows.append(.object([
                ("interface", .string("translation")), ("kind", .string("errno-map")), ("from", .string(m.from)),
                ("errno", .string(m.errno)), ("note", .string(m.note)),
            ]))
        }
        return rows
    }
}
