/// Reads vector files (Specs/README.md, "Conformance vectors"). Every error names its
/// `file:line`.
public enum VectorParser {
    /// The vectors of one file, in order; the first malformed line throws with its `file:line`.
    public static func parse(_ text: String, file: String) throws(VectorSyntaxError) -> [ConformanceVector] {
        var vectors: [ConformanceVector] = []
        var current: ConformanceVector?
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let location = "\(file):\(lineNumber)"
            func fail(_ message: String) -> VectorSyntaxError { VectorSyntaxError(location: location, message: message) }
            let line = stripComment(raw)
            let words = tokens(line)
            guard let head = words.first else { continue }
            if head == "vector" {
                guard current == nil else { throw fail("`vector` inside vector \(current!.name) (missing `end`)") }
                guard words.count >= 2 else { throw fail("`vector` needs a name") }
                let summary = line.split(separator: ":", maxSplits: 1).dropFirst().first.map { String($0).trimmed } ?? ""
                let name = words[1].hasSuffix(":") ? String(words[1].dropLast()) : words[1]
                guard !name.isEmpty, !vectors.contains(where: { $0.name == name }) else { throw fail("vector name `\(name)` is empty or used twice in this file") }
                current = ConformanceVector(name: name, summary: summary, location: location)
                continue
            }
            guard var vector = current else { throw fail("`\(head)` outside a vector") }
            if head == "end" {
                guard words.count == 1 else { throw fail("`end` takes nothing") }
                vectors.append(vector)
                current = nil
                continue
            }
            do {
                switch head {
                case "domains":
                    vector.domains = try smallNumber(words, 1, in: 1...8, fail)
                    var i = 2
                    while i < words.count {
                        switch words[i] {
                        case "vcpus": vector.vcpus = try smallNumber(words, i + 1, in: 1...8, fail)
                        case "max-port": vector.maxPort = UInt32(try smallNumber(words, i + 1, in: 1...131_071, fail))
                        default: throw fail("`domains N [vcpus M] [max-port P]`: unknown `\(words[i])`")
                        }
                        i += 2
                    }
                    guard vector.steps.isEmpty else { throw fail("`domains` must come before the steps") }
                default:
                    vector.steps.append(VectorStep(action: try step(head, words, vector, fail), line: lineNumber))
                }
            }
            current = vector
        }
        if let current { throw VectorSyntaxError(location: current.location, message: "vector \(current.name) has no `end`") }
        return vectors
    }

    // MARK: - Steps

    static func step(_ head: String, _ w: [String], _ v: ConformanceVector, _ fail: (String) -> VectorSyntaxError) throws(VectorSyntaxError) -> VectorStep.Action {
        switch head {
        case "write":
            // write dN FRAME:OFFSET FIELD VALUE
            guard w.count == 5 else { throw fail("`write dN FRAME:OFFSET FIELD VALUE`") }
            return .write(domain: try domain(w[1], v, fail).0, address: try address(w[2], fail), field: try field(w[3], fail), value: try expression(w[4], fail))
        case "read":
            // read dN FRAME:OFFSET FIELD (=> VALUE | as NAME)
            guard w.count >= 4 else { throw fail("`read dN FRAME:OFFSET FIELD => VALUE` or `... as NAME`") }
            let (expect, capture) = try outcome(Array(w[4...]), fail)
            return .read(domain: try domain(w[1], v, fail).0, address: try address(w[2], fail), field: try field(w[3], fail), expect: expect, capture: capture)
        case "call":
            // call dN[.V] HYPERCALL ARG... (=> RESULT) (as NAME)
            guard w.count >= 3 else { throw fail("`call dN[.V] HYPERCALL [ARG...] => RESULT`") }
            let (d, vcpu) = try domain(w[1], v, fail)
            // The hypercall comes first: `=>` or `as` in its place is a syntax error (a trapped
            // range before the fuzzer found it: fuzz-vector-parser).
            guard w[2] != "=>", w[2] != "as" else { throw fail("`call dN[.V] HYPERCALL [ARG...] => RESULT`: the hypercall is missing") }
            let end = w[3...].firstIndex(where: { $0 == "=>" || $0 == "as" }) ?? w.count
            guard end - 3 <= 5 else { throw fail("a hypercall takes at most five arguments") }
            var args: [VectorExpression] = []
            for a in w[3..<end] { args.append(try expression(a, fail)) }
            let (expect, capture) = try outcome(Array(w[end...]), fail)
            return .call(domain: d, vcpu: vcpu, hypercall: try expression(w[2], fail), arguments: args, expect: expect, capture: capture)
        case "upcalls":
            guard w.count == 3 else { throw fail("`upcalls dN[.V] COUNT`") }
            let (d, vcpu) = try domain(w[1], v, fail)
            return .upcalls(domain: d, vcpu: vcpu, count: try expression(w[2], fail))
        case "ack":
            guard w.count == 2 else { throw fail("`ack dN`") }
            return .acknowledge(domain: try domain(w[1], v, fail).0)
        case "advance":
            guard w.count == 2 else { throw fail("`advance NANOSECONDS`") }
            return .advance(nanoseconds: try expression(w[1], fail))
        case "time":
            guard w.count == 4 else { throw fail("`time dN MIN MAX` (ns)") }
            return .time(domain: try domain(w[1], v, fail).0, minimum: try expression(w[2], fail), maximum: try expression(w[3], fail))
        case "console":
            guard w.count == 3, w[2].hasPrefix("\""), w[2].hasSuffix("\""), w[2].count >= 2 else { throw fail("`console dN \"TEXT\"` (\\n between lines)") }
            let text = String(w[2].dropFirst().dropLast())
            var unescaped = ""
            var escape = false
            for c in text {
                if escape { unescaped.append(c == "n" ? "\n" : c); escape = false } else if c == "\\" { escape = true } else { unescaped.append(c) }
            }
            return .console(domain: try domain(w[1], v, fail).0, text: unescaped)
        case "let":
            guard w.count == 4, w[2] == "=", isName(w[1]) else { throw fail("`let NAME = VALUE`") }
            return .bind(name: w[1], value: try expression(w[3], fail))
        default:
            throw fail("unknown step `\(head)` (write, read, call, upcalls, ack, advance, time, console, let)")
        }
    }

    static func smallNumber(_ w: [String], _ i: Int, in range: ClosedRange<Int>, _ fail: (String) -> VectorSyntaxError) throws(VectorSyntaxError) -> Int {
        guard i < w.count, let n = number(w[i]), n <= UInt64(range.upperBound), Int(n) >= range.lowerBound else {
            throw fail("expected a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(n)
    }

    static func outcome(_ w: [String], _ fail: (String) -> VectorSyntaxError) throws(VectorSyntaxError) -> (VectorExpectation, String?) {
        var expect = VectorExpectation.any
        var capture: String?
        var i = 0
        var expected = false
        while i < w.count {
            switch w[i] {
            case "=>":
                guard i + 1 < w.count else { throw fail("`=>` needs a value") }
                expect = w[i + 1] == "any" ? .any : .value(try expression(w[i + 1], fail))
                expected = true
            case "as":
                guard i + 1 < w.count, isName(w[i + 1]) else { throw fail("`as` needs a name") }
                capture = w[i + 1]
            default:
                throw fail("expected `=> VALUE` or `as NAME`, found `\(w[i])`")
            }
            i += 2
        }
        guard expected || capture != nil else { throw fail("a step needs `=> VALUE` (or `=> any`) or `as NAME`") }
        return (expect, capture)
    }

    static func domain(_ word: String, _ v: ConformanceVector, _ fail: (String) -> VectorSyntaxError) throws(VectorSyntaxError) -> (Int, Int) {
        guard word.hasPrefix("d") else { throw fail("`\(word)`: a domain is dN or dN.V") }
        let parts = word.dropFirst().split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let d = Int(parts[0]), d >= 1, d <= v.domains else { throw fail("`\(word)`: no such domain (the vector has \(v.domains))") }
        guard parts.count == 2 else { return (d, 0) }
        guard let vcpu = Int(parts[1]), vcpu >= 0, vcpu < v.vcpus else { throw fail("`\(word)`: no such vCPU (the vector has \(v.vcpus))") }
        return (d, vcpu)
    }

    static func address(_ word: String, _ fail: (String) -> VectorSyntaxError) throws(VectorSyntaxError) -> VectorAddress {
        let parts = word.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw fail("`\(word)`: an address is FRAME:OFFSET") }
        return VectorAddress(frame: try expression(String(parts[0]), fail), offset: try expression(String(parts[1]), fail))
    }

    static func field(_ word: String, _ fail: (String) -> VectorSyntaxError) throws(VectorSyntaxError) -> VectorField {
        switch word {
        case "u8": return VectorField(offset: 0, size: 1, spelling: word)
        case "u16": return VectorField(offset: 0, size: 2, spelling: word)
        case "u32": return VectorField(offset: 0, size: 4, spelling: word)
        case "u64": return VectorField(offset: 0, size: 8, spelling: word)
        default:
            guard let f = SpecNames.field(word), [1, 2, 4, 8].contains(f.size) else {
                throw fail("`\(word)`: not u8/u16/u32/u64 or a Specs struct field of 1, 2, 4 or 8 bytes")
            }
            return VectorField(offset: f.offset, size: f.size, spelling: word)
        }
    }

    // MARK: - Expressions

    /// `a|b`, `a+b`, `a<<b`, `-a`, numbers, names, `$name`, `gpa(F:O)`; no spaces inside.
    static func expression(_ word: String, _ fail: (String) -> VectorSyntaxError) throws(VectorSyntaxError) -> VectorExpression {
        if let i = topLevelIndex(of: "|", in: word) {
            return .or(try expression(String(word[..<i]), fail), try expression(String(word[word.index(after: i)...]), fail))
        }
        if let i = topLevelIndex(of: "+", in: word) {
            return .add(try expression(String(word[..<i]), fail), try expression(String(word[word.index(after: i)...]), fail))
        }
        if let r = word.firstRange(of: "<<") {
            return .shift(try expression(String(word[..<r.lowerBound]), fail), try expression(String(word[r.upperBound...]), fail))
        }
        if word.hasPrefix("-") { return .negate(try expression(String(word.dropFirst()), fail)) }
        if word.hasPrefix("$") {
            let name = String(word.dropFirst())
            guard isName(name) else { throw fail("`\(word)`: not a name") }
            return .capture(name)
        }
        if word.hasPrefix("gpa(") && word.hasSuffix(")") {
            let a = try address(String(word.dropFirst(4).dropLast()), fail)
            return .gpa(a.frame, a.offset)
        }
        if let n = number(word) { return .literal(n) }
        if let c = SpecNames.constant(word) { return .literal(c) }
        throw fail("`\(word)`: not a number, a Specs constant or a $name")
    }

    static func number(_ word: String) -> UInt64? {
        let clean = word.replacingOccurrences(of: "_", with: "")
        if clean.hasPrefix("0x") { return UInt64(clean.dropFirst(2), radix: 16) }
        return UInt64(clean)
    }

    static func topLevelIndex(of c: Character, in word: String) -> String.Index? {
        var depth = 0
        for i in word.indices {
            if word[i] == "(" { depth += 1 } else if word[i] == ")" { depth -= 1 } else if word[i] == c && depth == 0 && i != word.startIndex { return i }
        }
        return nil
    }

    static func isName(_ s: String) -> Bool {
        guard let first = s.first, first.isLetter || first == "_" else { return false }
        return s.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }
    }

    static func stripComment(_ line: Substring) -> String {
        var out = ""
        var quoted = false
        for c in line {
            if c == "\"" { quoted.toggle() }
            if c == "#" && !quoted { break }
            out.append(c)
        }
        return out
    }

    /// Words separated by blanks; a quoted string is one word (with its quotes).
    static func tokens(_ line: String) -> [String] {
        var words: [String] = []
        var word = ""
        var quoted = false
        for c in line {
            if c == "\"" { quoted.toggle(); word.append(c); continue }
            if (c == " " || c == "\t") && !quoted {
                if !word.isEmpty { words.append(word); word = "" }
            } else { word.append(c) }
        }
        if !word.isEmpty { words.append(word) }
        return words
    }
}

extension String {
    var trimmed: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }

    func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}
