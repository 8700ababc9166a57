/// A small JSON writer that keeps keys in the order given (the `xv specs --json` format is
/// documented with its keys in order) and writes 64-bit integers exactly.
enum JSONValue {
    case string(String)
    case integer(magnitude: UInt64, negative: Bool)
    case bool(Bool)
    /// A finite number, written with up to 3 decimals (benchmark figures).
    case number(Double)
    case null
    case array([JSONValue])
    case object([(String, JSONValue)])

    static func int(_ v: Int) -> JSONValue { .integer(magnitude: UInt64(v.magnitude), negative: v < 0) }
    static func string(_ s: String?) -> JSONValue { s.map { .string($0) } ?? .null }

    func write(into out: inout String, indent: Int? = nil, level: Int = 0) {
        switch self {
        case .string(let s): Self.writeString(s, into: &out)
        case .integer(let m, let negative): out += negative && m != 0 ? "-\(m)" : "\(m)"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let d): out += d.isFinite ? Self.decimal(d) : "null"
        case .null: out += "null"
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                if let indent { out += "\n" + String(repeating: " ", count: indent * (level + 1)) }
                item.write(into: &out, indent: indent, level: level + 1)
            }
            if let indent, !items.isEmpty { out += "\n" + String(repeating: " ", count: indent * level) }
            out += "]"
        case .object(let pairs):
            out += "{"
            for (i, (key, value)) in pairs.enumerated() {
                if i > 0 { out += "," }
                Self.writeString(key, into: &out)
                out += ":"
                value.write(into: &out, indent: nil, level: level + 1)
            }
            out += "}"
        }
    }

    /// `d` rounded to 3 decimals, without exponent or trailing zeros.
    static func decimal(_ d: Double) -> String {
        let scaled = (d * 1000).rounded()
        let negative = scaled < 0
        let m = UInt64(abs(scaled))
        var s = "\(m / 1000)"
        let frac = m % 1000
        if frac != 0 {
            var f = String(frac)
            f = String(repeating: "0", count: 3 - f.count) + f
            while f.hasSuffix("0") { f.removeLast() }
            s += "." + f
        }
        return negative && m != 0 ? "-" + s : s
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
