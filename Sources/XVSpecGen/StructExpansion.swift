/// A struct field after expansion: a field declared `type=TAG` (and not an array) is followed by
/// the fields of TAG's own table, renamed `field.member` and shifted by the field's offset, so
/// `vcpu_info.time.tsc_timestamp` is a field of `vcpu_info` without being written twice.
public struct ExpandedField: Sendable {
    public var name: String
    public var offset: Int
    public var size: Int
    public var count: Int
    public var typeRef: String?
    public var swiftName: String
    public var location: SpecLocation
}

public enum StructExpansion {
    /// Expanded fields of `table`, in table order. Recursion stops at depth 8 (a cycle is
    /// reported by the validator through the size check before it can get here in practice).
    public static func expand(_ table: SpecTable, structsByTag: [String: SpecTable], depth: Int = 0) -> [ExpandedField] {
        var out: [ExpandedField] = []
        for field in table.fields {
            let swift = field.swiftName ?? SwiftNaming.lowerCamel(field.name)
            out.append(ExpandedField(name: field.name, offset: field.offset, size: field.size, count: field.count,
                                     typeRef: field.typeRef, swiftName: swift, location: field.location))
            guard field.count == 1, let ref = field.typeRef, let inner = structsByTag[ref], depth < 8 else { continue }
            for child in expand(inner, structsByTag: structsByTag, depth: depth + 1) {
                out.append(ExpandedField(
                    name: field.name + "." + child.name, offset: field.offset + child.offset, size: child.size,
                    count: child.count, typeRef: child.typeRef,
                    swiftName: swift + child.swiftName.prefix(1).uppercased() + child.swiftName.dropFirst(),
                    location: field.location))
            }
        }
        return out
    }

    public static func structsByTag(_ set: SpecSet) -> [String: SpecTable] {
        var map: [String: SpecTable] = [:]
        for t in set.tables where t.kind == .struct { if let tag = t.cTag, map[tag] == nil { map[tag] = t } }
        return map
    }
}
