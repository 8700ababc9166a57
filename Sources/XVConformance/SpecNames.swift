import XVSpecCatalog

/// The names a vector may use, from the Specs tables (so a vector reads like the C it
/// replays): every Xen constant, errno, hypercall and sub-op row by its C spelling
/// (`EVTCHNOP_send`, `DOMID_SELF`, `XEN_EINVAL`), hypercalls also by their short names
/// (`event_channel_op` for `__HYPERVISOR_event_channel_op`), and every Xen struct field.
public enum SpecNames {
    static let constants: [String: UInt64] = {
        var table: [String: UInt64] = [:]
        for row in SpecCatalog.constants where row.interface == "xen" {
            let value = row.isNegative ? 0 &- row.magnitude : row.magnitude
            table[row.name] = value
            if row.name.hasPrefix("__HYPERVISOR_") { table[String(row.name.dropFirst("__HYPERVISOR_".count))] = value }
        }
        return table
    }()

    static let fields: [String: (offset: Int, size: Int, count: Int)] = {
        var table: [String: (Int, Int, Int)] = [:]
        for s in SpecCatalog.structs where s.interface == "xen" {
            for f in s.fields { table["\(s.name).\(f.name)"] = (f.offset, f.size, f.count) }
            table["\(s.name).size"] = (0, s.size, 1)
        }
        return table
    }()

    /// The value of a constant name, if the tables have it.
    public static func constant(_ name: String) -> UInt64? { constants[name] }

    /// A struct field (`evtchn_send.port`, `shared_info.evtchn_pending[3]`): its offset and
    /// element size, or nil.
    public static func field(_ spelling: String) -> (offset: Int, size: Int)? {
        var name = Substring(spelling)
        var index = 0
        if name.hasSuffix("]"), let open = name.lastIndex(of: "[") {
            guard let i = Int(name[name.index(after: open)..<name.index(before: name.endIndex)]) else { return nil }
            index = i
            name = name[..<open]
        }
        guard let f = fields[String(name)], index >= 0, index < max(f.count, 1) else { return nil }
        // An array field's size is the whole array's (the tables give bytes).
        let element = f.count > 1 ? f.size / f.count : f.size
        return (f.offset + index * element, element)
    }
}

extension SpecNames {
    /// The Xen errno row whose value is `value` (`EINVAL` for 22).
    static func errnoName(_ value: Int64) -> String? {
        SpecCatalog.constants.first { $0.interface == "xen" && $0.kind == "errno" && !$0.isNegative && Int64($0.magnitude) == value }
            .map { $0.name.hasPrefix("XEN_") ? String($0.name.dropFirst(4)) : $0.name }
    }
}
