/// How spec (C) names become Swift names. The rule is mechanical so a reader can go from one
/// to the other: strip the table's `@prefix`, split on `_` and `.`, then lowerCamelCase.
/// Tables override a name with `swift=NAME` where the rule gives a bad result.
public enum SwiftNaming {
    /// Names a static member may not take (they mean something else on a RawRepresentable).
    public static let forbidden: Set<String> = ["self", "Type", "init", "rawValue", "specName", "Protocol", "allCases"]

    static let keywords: Set<String> = [
        "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import", "inout", "internal",
        "let", "open", "operator", "private", "protocol", "public", "rethrows", "static", "struct", "subscript",
        "typealias", "var", "break", "case", "catch", "continue", "default", "defer", "do", "else", "fallthrough", "for",
        "guard", "if", "in", "repeat", "return", "throw", "switch", "where", "while", "as", "false", "is", "nil",
        "super", "throws", "true", "try", "Any", "Self",
    ]

    /// lowerCamelCase from `_`/`.`-separated words. Each word keeps its inner capitals unless it
    /// is all capitals (C macro style), which is lowercased first.
    public static func lowerCamel(_ name: String) -> String {
        let words = name.split(whereSeparator: { $0 == "_" || $0 == "." }).map(String.init)
        var out = ""
        for word in words {
            let normalized = word == word.uppercased() ? word.lowercased() : word
            if out.isEmpty {
                out = normalized.prefix(1).lowercased() + normalized.dropFirst()
            } else {
                out += normalized.prefix(1).uppercased() + normalized.dropFirst()
            }
        }
        return out
    }

    /// UpperCamelCase (for type names derived from C tags).
    public static func upperCamel(_ name: String) -> String {
        let lower = lowerCamel(name)
        return lower.prefix(1).uppercased() + lower.dropFirst()
    }

    /// The member name for a code row: override, or prefix-stripped lowerCamel.
    public static func memberName(for name: String, prefix: String?, override: String?) -> String {
        if let o = override { return o }
        var base = name
        if let p = prefix, base.hasPrefix(p), base.count > p.count { base = String(base.dropFirst(p.count)) }
        return lowerCamel(base)
    }

    /// Whether `name` can be used as a Swift identifier as it is (keywords are escaped by the emitter).
    public static func isValidIdentifier(_ name: String) -> Bool {
        guard let first = name.first, first == "_" || first.isLetter else { return false }
        return name.allSatisfy { $0 == "_" || $0.isLetter || $0.isNumber }
    }

    /// Escapes a keyword with backticks.
    public static func escaped(_ name: String) -> String { keywords.contains(name) ? "`\(name)`" : name }
}
