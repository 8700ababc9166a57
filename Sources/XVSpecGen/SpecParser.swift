/// Parses one table file into `SpecTable`s. Syntax errors are collected, not thrown one by one,
/// so a broken file reports every bad line at once. Cross-table checks live in `SpecValidator`.
public struct SpecParser {
    public private(set) var diagnostics: [SpecDiagnostic] = []
    private let path: String

    public init(path: String) { self.path = path }

    public mutating func parse(_ text: String) -> SpecFile {
        var defaults = SpecTable(id: "", location: SpecLocation(file: path, line: 0))
        var tables: [SpecTable] = []
        var current: SpecTable?
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let here = SpecLocation(file: path, line: lineNumber)
            var (body, doc) = Self.splitDoc(Self.stripComment(String(rawLine)))
            body = body.trimmingSpaces()
            if body.isEmpty { continue }
            let tokens = body.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if tokens[0].hasPrefix("@") {
                let word = String(tokens[0].dropFirst())
                let args = Array(tokens.dropFirst())
                if word == "table" {
                    if let finished = current { tables.append(finished) }
                    guard args.count == 1 else { error(here, "@table takes exactly one id"); current = nil; continue }
                    var table = defaults
                    table.id = args[0]
                    table.location = here
                    current = table
                    continue
                }
                if current == nil {
                    applyDirective(word, args, doc: doc, to: &defaults, at: here)
                } else {
                    applyDirective(word, args, doc: doc, to: &current!, at: here)
                }
                continue
            }
            guard current != nil else { error(here, "row outside any @table"); continue }
            parseRow(tokens, doc: doc, into: &current!, at: here)
        }
        if let finished = current { tables.append(finished) }
        return SpecFile(path: path, tables: tables)
    }

    // MARK: - Lines

    /// `#` starts a comment at the beginning of a line or after white space.
    static func stripComment(_ line: String) -> String {
        var previous: Character = " "
        var out = ""
        for c in line {
            if c == "#" && (previous == " " || previous == "\t") { break }
            out.append(c)
            previous = c
        }
        return out
    }

    /// `body -- doc text`.
    static func splitDoc(_ line: String) -> (String, String?) {
        guard let range = line.range(of: " -- ") ?? (line.hasPrefix("-- ") ? line.range(of: "-- ") : nil) else {
            return (line, nil)
        }
        let doc = String(line[range.upperBound...]).trimmingSpaces()
        return (String(line[..<range.lowerBound]), doc.isEmpty ? nil : doc)
    }

    // MARK: - Directives

    private mutating func applyDirective(_ word: String, _ args: [String], doc: String?, to table: inout SpecTable, at here: SpecLocation) {
        let joined = (args.joined(separator: " ") + (doc.map { " -- " + $0 } ?? "")).trimmingSpaces()
        func one() -> String? {
            guard args.count == 1 else { error(here, "@\(word) takes exactly one argument"); return nil }
            return args[0]
        }
        switch word {
        case "interface":
            guard let a = one() else { return }
            guard let v = SpecInterface(rawValue: a) else { return error(here, "unknown interface '\(a)' (xen, viridian, translation)") }
            table.interface = v
        case "kind":
            guard let a = one() else { return }
            guard let v = SpecKind(rawValue: a) else {
                return error(here, "unknown kind '\(a)' (\(SpecKind.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            table.kind = v
        case "family": table.family = one()
        case "source":
            guard !joined.isEmpty else { return error(here, "@source needs text") }
            table.source = table.source.map { $0 + "; " + joined } ?? joined
        case "doc":
            guard !joined.isEmpty else { return error(here, "@doc needs text") }
            table.doc = table.doc.map { $0 + " " + joined } ?? joined
        case "swift":
            guard (1...3).contains(args.count) else { return error(here, "@swift TYPE [RAW] [struct|flags|extend|namespace]") }
            table.swiftType = args[0]
            if args.count >= 2 {
                guard Self.rawTypes[args[1]] != nil else {
                    return error(here, "unknown raw type '\(args[1])' (\(Self.rawTypes.keys.sorted().joined(separator: ", ")))")
                }
                table.rawType = args[1]
            }
            if args.count == 3 {
                guard let r = SwiftRepresentation(rawValue: args[2]) else { return error(here, "unknown representation '\(args[2])'") }
                table.representation = r
            }
        case "prefix": table.prefix = one()
        case "c":
            guard args.count == 2, args[0] == "struct" || args[0] == "union" else { return error(here, "@c struct TAG | @c union TAG") }
            table.cSpelling = args.joined(separator: " ")
        case "size":
            guard let a = one() else { return }
            guard let n = Int(a), n > 0 else { return error(here, "@size needs a positive byte count") }
            table.size = n
        case "width":
            guard let a = one() else { return }
            guard let n = Int(a), [8, 16, 32, 64].contains(n) else { return error(here, "@width must be 8, 16, 32 or 64") }
            table.width = n
        case "covers":
            guard !args.isEmpty else { return error(here, "@covers needs table ids") }
            table.covers += args
        case "check":
            guard let a = one() else { return }
            switch a {
            case "c": table.checkAgainstC = true
            case "none": table.checkAgainstC = false
            default: error(here, "@check c|none")
            }
        case "subops": table.subopsOf = one()
        case "default":
            // Disposition tables: `@default DISPOSITION VIRIDIAN|- ERRNO|-`; errno maps: `@default ERRNO`.
            if args.count == 1 {
                table.defaultErrno = args[0]
            } else if let row = parseDisposition(["*"] + args, note: doc, at: here) {
                table.defaultDisposition = row
            }
        default:
            error(here, "unknown directive @\(word)")
        }
    }

    // MARK: - Rows

    private mutating func parseRow(_ tokens: [String], doc: String?, into table: inout SpecTable, at here: SpecLocation) {
        guard let kind = table.kind else { return error(here, "row before @kind in table '\(table.id)'") }
        switch kind {
        case .hypercall, .subop, .errno, .constant, .msr, .status, .message, .flag, .outcome:
            guard tokens.count >= 2 else { return error(here, "a code row is NAME VALUE [attributes]") }
            guard let value = Self.parseValue(tokens[1]) else { return error(here, "bad value '\(tokens[1])' for \(tokens[0])") }
            var row = CodeRow(name: tokens[0], value: value, flags: [], doc: doc, location: here)
            for attr in tokens.dropFirst(2) {
                if let (k, v) = Self.keyValue(attr) {
                    switch k {
                    case "swift": row.swiftName = v
                    case "alias": row.alias = v
                    case "gate": row.gates.append(v)
                    default: error(here, "unknown attribute '\(k)='")
                    }
                } else {
                    row.flags.append(attr)
                }
            }
            table.codes.append(row)
        case .struct:
            guard tokens.count >= 3, let offset = Int(tokens[1]), let size = Int(tokens[2]) else {
                return error(here, "a struct row is FIELD OFFSET SIZE [count=N] [type=TAG] [union] [swift=NAME]")
            }
            var row = FieldRow(name: tokens[0], offset: offset, size: size, count: 1, typeRef: nil, isUnion: false, swiftName: nil, location: here)
            for attr in tokens.dropFirst(3) {
                if let (k, v) = Self.keyValue(attr) {
                    switch k {
                    case "count":
                        guard let n = Int(v), n > 0 else { error(here, "count must be a positive integer"); continue }
                        row.count = n
                    case "type": row.typeRef = v
                    case "swift": row.swiftName = v
                    default: error(here, "unknown attribute '\(k)='")
                    }
                } else if attr == "union" {
                    row.isUnion = true
                } else {
                    error(here, "unknown attribute '\(attr)'")
                }
            }
            table.fields.append(row)
        case .bitfield:
            guard tokens.count >= 2, let (low, high) = Self.parseBitRange(tokens[1]) else {
                return error(here, "a bitfield row is FIELD BIT or FIELD LOW:HIGH")
            }
            var row = BitRow(name: tokens[0], low: low, high: high, swiftName: nil, doc: doc, location: here)
            for attr in tokens.dropFirst(2) {
                if let (k, v) = Self.keyValue(attr), k == "swift" { row.swiftName = v } else { error(here, "unknown attribute '\(attr)'") }
            }
            table.bits.append(row)
        case .disposition:
            if let row = parseDisposition(tokens, note: doc, at: here) { table.dispositions.append(row) }
        case .errnoMap:
            guard tokens.count == 2 else { return error(here, "an errno-map row is FROM ERRNO|success") }
            table.errnoMaps.append(ErrnoMapRow(from: tokens[0], errno: tokens[1] == "success" ? nil : tokens[1], note: doc, location: here))
        }
    }

    private mutating func parseDisposition(_ tokens: [String], note: String?, at here: SpecLocation) -> DispositionRow? {
        guard tokens.count == 4 else {
            error(here, "a disposition row is XEN-NAME DISPOSITION VIRIDIAN[,...]|- ERRNO|-")
            return nil
        }
        guard let d = Disposition(rawValue: tokens[1]) else {
            error(here, "unknown disposition '\(tokens[1])' (\(Disposition.allCases.map(\.rawValue).joined(separator: ", ")))")
            return nil
        }
        let viridian = tokens[2] == "-" ? [] : tokens[2].split(separator: ",").map(String.init)
        return DispositionRow(xen: tokens[0], disposition: d, viridian: viridian, errno: tokens[3] == "-" ? nil : tokens[3], note: note, location: here)
    }

    // MARK: - Lexical helpers

    /// Raw integer types a code table may use, with their bit width and signedness.
    public static let rawTypes: [String: (bits: Int, signed: Bool)] = [
        "UInt8": (8, false), "UInt16": (16, false), "UInt32": (32, false), "UInt64": (64, false),
        "Int8": (8, true), "Int16": (16, true), "Int32": (32, true), "Int64": (64, true),
    ]

    static func keyValue(_ token: String) -> (String, String)? {
        guard let eq = token.firstIndex(of: "="), eq != token.startIndex else { return nil }
        return (String(token[..<eq]), String(token[token.index(after: eq)...]))
    }

    /// Decimal, `0x` hex, `0b` binary, `bit(N)` (= 1 << N), with an optional leading `-`.
    public static func parseValue(_ token: String) -> SpecValue? {
        var text = Substring(token)
        var negative = false
        if text.hasPrefix("-") { negative = true; text = text.dropFirst() }
        let magnitude: UInt64?
        if text.hasPrefix("bit(") && text.hasSuffix(")") {
            guard let n = Int(text.dropFirst(4).dropLast()), (0..<64).contains(n) else { return nil }
            magnitude = UInt64(1) << UInt64(n)
        } else if text.hasPrefix("0x") || text.hasPrefix("0X") {
            magnitude = UInt64(text.dropFirst(2).filter { $0 != "_" }, radix: 16)
        } else if text.hasPrefix("0b") {
            magnitude = UInt64(text.dropFirst(2).filter { $0 != "_" }, radix: 2)
        } else {
            magnitude = UInt64(text.filter { $0 != "_" }, radix: 10)
        }
        guard let m = magnitude else { return nil }
        return SpecValue(magnitude: m, isNegative: negative)
    }

    static func parseBitRange(_ token: String) -> (Int, Int)? {
        let parts = token.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 1, let b = Int(parts[0]), b >= 0 { return (b, b) }
        if parts.count == 2, let lo = Int(parts[0]), let hi = Int(parts[1]), lo >= 0, hi >= 0 { return (lo, hi) }
        return nil
    }

    private mutating func error(_ location: SpecLocation, _ message: String) {
        diagnostics.append(SpecDiagnostic(location, message))
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}
