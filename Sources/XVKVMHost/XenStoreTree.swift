import XenABI

/// The minimal xenstore's tree: absolute paths to values, every parent a node of its own (an
/// empty value unless written). Not thread-safe: the xenstore thread alone uses it, except
/// before the run starts.
///
/// Limits, against the full xenstored (xen-project/xen tools/xenstored): no permissions (any
/// domain reads and writes any node), transactions apply at once (TRANSACTION_END never
/// reports EAGAIN), and no quotas beyond the wire protocol's sizes.
struct XenStoreTree {
    private(set) var nodes: [String: String] = ["/": ""]

    /// The absolute path of `path` as domain `domain` names it (relative paths live under
    /// /local/domain/<domain>); nil for a path xenstored refuses (empty, too long, a
    /// character outside [A-Za-z0-9_@/-], a doubled or trailing slash).
    static func absolute(_ path: String, domain: UInt16) -> String? {
        guard !path.isEmpty else { return nil }
        let full = path.hasPrefix("/") ? path : "/local/domain/\(domain)/" + path
        let limit = path.hasPrefix("/") ? Int(XenStoreLimits.absolutePathMax) : Int(XenStoreLimits.relativePathMax)
        guard path.utf8.count <= limit else { return nil }
        guard full.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x2F || $0 == 0x5F || $0 == 0x40 }) else { return nil }
        if full != "/", full.hasSuffix("/") || full.contains("//") { return nil }
        return full
    }

    func read(_ path: String) -> String? { nodes[path] }

    /// Writes a node, creating its parents.
    mutating func write(_ path: String, _ value: String) {
        var parent = path
        while let slash = parent.lastIndex(of: "/"), parent != "/" {
            parent = slash == parent.startIndex ? "/" : String(parent[..<slash])
            if nodes[parent] == nil { nodes[parent] = "" }
        }
        nodes[path] = value
    }

    mutating func mkdir(_ path: String) { if nodes[path] == nil { write(path, "") } }

    /// Removes a node and everything under it; false when there was no such node.
    mutating func remove(_ path: String) -> Bool {
        guard nodes[path] != nil, path != "/" else { return false }
        for key in nodes.keys where key == path || key.hasPrefix(path + "/") { nodes.removeValue(forKey: key) }
        return true
    }

    /// The names of a node's children, sorted; nil when there is no such node.
    func children(_ path: String) -> [String]? {
        guard nodes[path] != nil else { return nil }
        let prefix = path == "/" ? "/" : path + "/"
        var names = Set<String>()
        for key in nodes.keys where key.hasPrefix(prefix) && key != path {
            let rest = key.dropFirst(prefix.count)
            if let name = rest.split(separator: "/").first { names.insert(String(name)) }
        }
        return names.sorted()
    }
}
