import Foundation
import Testing

/// Every public declaration of the library modules carries a doc comment (`///`, or the end of
/// a `/** */` block) on the line before it, attribute lines such as `@inlinable` or `@frozen`
/// skipped. Generated files count too: the generator writes their comments (`xv-specgen`).
///
/// The scan is line-based, not a parser. A declaration is a line whose leading attributes and
/// modifiers include `public` or `open` before a declaration keyword (`func`, `init`, `var`,
/// `let`, `struct`, `class`, `enum`, `protocol`, `typealias`, `subscript`, `extension`, `case`,
/// ...). Inside a public enum, every `case` line of its body counts; inside a public protocol,
/// every requirement line (`func`, `init`, `var`, `subscript`, `associatedtype`, `typealias`);
/// inside a `public extension`, every member not marked otherwise. Comments and string literals
/// are skipped when braces are counted, so `{` in a comment does not move the scan's depth.
@Suite("Public declarations have doc comments")
struct PublicDocCommentTests {
    /// The library modules whose public surface must be documented (the C ABI's exports and
    /// the embedding behind them included).
    static let modules = [
        "GuestABI", "XenABI", "ViridianABI", "XenCore", "XenNative", "XenViridian", "ViridianReference", "XVScenarios",
        "XenViridianC", "XVEmbedding", "XVConformance", "XVKVMHost",
    ]

    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("every public declaration in the library modules has a doc comment")
    func everyPublicDeclarationIsDocumented() throws {
        var offenders: [String] = []
        var files = 0
        var declarations = 0
        for module in Self.modules {
            let directory = Self.repositoryRoot.appendingPathComponent("Sources/\(module)")
            let paths = try #require(FileManager.default.subpaths(atPath: directory.path), "no Sources/\(module)")
            for path in paths.sorted() where path.hasSuffix(".swift") {
                let text = try String(contentsOf: directory.appendingPathComponent(path), encoding: .utf8)
                let result = DocCommentScan.scan(text)
                files += 1
                declarations += result.declarations
                offenders += result.undocumented.map { "Sources/\(module)/\(path):\($0.line): \($0.text)" }
            }
        }
        #expect(files > 0)
        #expect(declarations > 1000, "the scan found only \(declarations) public declarations; is it still reading the sources?")
        #expect(offenders.isEmpty, "\(offenders.count) public declaration(s) without a doc comment:\n\(offenders.joined(separator: "\n"))")
    }

    @Test("the scan reports what lacks a comment and accepts what has one")
    func scanRules() {
        let source = """
        /// Documented.
        public struct A {
            public var undocumented: Int
            /// Documented, behind attributes.
            @inlinable
            @discardableResult
            public func f() -> Int { 0 }
            @inlinable public init() { undocumented = 0 }
            var internalOne: Int { 0 }  // public in a comment: { not a declaration
            let s = "public var notOne { "
        }

        /** Documented by a block. */
        public enum E {
            /// Documented case.
            case a
            case b, c
            var v: Int {
                switch self {
                case .a: return 1
                default: return 0
                }
            }
        }

        public protocol P {
            /// Documented requirement.
            func g()
            var h: Int { get }
        }

        enum Internal {
            case notPublic
        }

        public extension A {
            func implicitlyPublic() {}
            private func hidden() {}
        }
        """
        let result = DocCommentScan.scan(source)
        #expect(result.undocumented.map(\.line) == [3, 8, 17, 26, 29, 36, 37])
        #expect(result.declarations == 12)
    }
}

/// The line-based scan of `PublicDocCommentTests`.
enum DocCommentScan {
    struct Result {
        /// Declarations that need a doc comment.
        var declarations = 0
        /// Those without one: 1-based line and the line's text.
        var undocumented: [(line: Int, text: String)] = []
    }

    static let modifiers: Set<String> = [
        "public", "open", "internal", "private", "fileprivate", "package", "final", "static", "class", "nonisolated",
        "override", "mutating", "nonmutating", "convenience", "required", "indirect", "lazy", "weak", "unowned",
        "dynamic", "optional", "prefix", "postfix", "infix", "consuming", "borrowing", "__consuming",
    ]
    static let keywords: Set<String> = [
        "func", "init", "var", "let", "struct", "class", "enum", "protocol", "typealias", "subscript", "extension",
        "actor", "case", "associatedtype", "deinit", "macro", "operator", "precedencegroup",
    ]

    /// What one line declares: its modifiers and keyword.
    struct Declaration {
        var modifiers: [String]
        var keyword: String
        var isPublic: Bool { modifiers.contains("public") || modifiers.contains("open") }
    }

    /// A container whose body lines count: `enum`, `protocol`, `extension`, or `type` (others).
    struct Container {
        var bodyDepth: Int
        var kind: String
    }

    /// Comment and string state carried from one line to the next.
    struct LexState {
        var blockDepth = 0
        var inMultilineString = false
        var inComment: Bool { blockDepth > 0 || inMultilineString }
    }

    static func scan(_ text: String) -> Result {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var result = Result()
        var lex = LexState()
        var depth = 0
        var stack: [Container] = []
        var pending: Container?
        for (index, line) in lines.enumerated() {
            let startsInComment = lex.inComment
            let code = codeOnly(line, &lex)
            let declaration = startsInComment ? nil : parse(code)
            var opened: Container?
            if let declaration {
                let context = stack.last.flatMap { $0.bodyDepth == depth ? $0.kind : nil }
                let kw = declaration.keyword
                let needs: Bool
                if declaration.isPublic {
                    needs = true
                } else if context == "enum" {
                    needs = kw == "case"
                } else if context == "protocol" {
                    needs = ["func", "init", "var", "subscript", "associatedtype", "typealias"].contains(kw)
                } else if context == "extension" {
                    needs = ["func", "init", "var", "let", "subscript", "typealias", "struct", "class", "enum"].contains(kw)
                        && !declaration.modifiers.contains { ["private", "fileprivate", "internal", "package"].contains($0) }
                } else {
                    needs = false
                }
                if ["enum", "protocol", "extension", "struct", "class", "actor"].contains(kw), declaration.isPublic || (context == "extension" && needs) {
                    opened = Container(bodyDepth: depth + 1, kind: ["enum", "protocol", "extension"].contains(kw) ? kw : "type")
                }
                if needs {
                    result.declarations += 1
                    if !isDocumented(lines, before: index) {
                        result.undocumented.append((index + 1, line.trimmingCharacters(in: .whitespaces)))
                    }
                }
            }
            let opens = code.filter { $0 == "{" }.count
            let closes = code.filter { $0 == "}" }.count
            if let opened {
                if code.contains("{") { stack.append(opened) } else { pending = opened }
            } else if let p = pending, code.contains("{") {
                stack.append(p)
                pending = nil
            }
            depth += opens - closes
            while let top = stack.last, top.bodyDepth > depth { stack.removeLast() }
        }
        return result
    }

    /// Whether the line before `index`, attribute-only lines skipped, is a doc comment.
    static func isDocumented(_ lines: [String], before index: Int) -> Bool {
        var j = index - 1
        while j >= 0, isAttributeLine(lines[j]) { j -= 1 }
        guard j >= 0 else { return false }
        let previous = lines[j].trimmingCharacters(in: .whitespaces)
        return previous.hasPrefix("///") || previous.hasSuffix("*/")
    }

    /// A line holding only attributes (`@inlinable`, `@inline(__always)`, `@frozen @usableFromInline`).
    static func isAttributeLine(_ line: String) -> Bool {
        var rest = Substring(line.trimmingCharacters(in: .whitespaces))
        guard rest.hasPrefix("@") else { return false }
        while rest.hasPrefix("@") {
            guard let attribute = skipAttribute(rest) else { return false }
            rest = attribute.drop { $0 == " " || $0 == "\t" }
        }
        return rest.isEmpty
    }

    /// `text` after one leading `@name` or `@name(...)`, or nil when it does not start with one.
    static func skipAttribute(_ text: Substring) -> Substring? {
        guard text.hasPrefix("@") else { return nil }
        var rest = text.dropFirst()
        let name = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
        guard !name.isEmpty else { return nil }
        rest = rest.dropFirst(name.count)
        if rest.hasPrefix("(") {
            guard let close = rest.firstIndex(of: ")") else { return nil }
            rest = rest[rest.index(after: close)...]
        }
        return rest
    }

    /// The declaration a line of code (comments and strings removed) starts with, if any.
    static func parse(_ code: String) -> Declaration? {
        var rest = Substring(code).drop { $0 == " " || $0 == "\t" }
        while rest.hasPrefix("@") {
            guard let after = skipAttribute(rest) else { return nil }
            rest = after.drop { $0 == " " || $0 == "\t" }
        }
        var found: [String] = []
        while true {
            let word = String(rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" })
            guard !word.isEmpty else { return nil }
            rest = rest.dropFirst(word.count)
            if modifiers.contains(word) {
                if rest.hasPrefix("(") {  // private(set), nonisolated(unsafe)
                    guard let close = rest.firstIndex(of: ")") else { return nil }
                    rest = rest[rest.index(after: close)...]
                }
                found.append(word)
                rest = rest.drop { $0 == " " || $0 == "\t" }
                continue
            }
            return keywords.contains(word) ? Declaration(modifiers: found, keyword: word) : nil
        }
    }

    /// The line without its comments and the contents of its string literals.
    static func codeOnly(_ line: String, _ state: inout LexState) -> String {
        let bytes = Array(line.utf8)
        var out: [UInt8] = []
        var i = 0
        func at(_ s: String) -> Bool {
            let p = Array(s.utf8)
            return i + p.count <= bytes.count && Array(bytes[i..<i + p.count]) == p
        }
        while i < bytes.count {
            if state.blockDepth > 0 {
                if at("*/") { state.blockDepth -= 1; i += 2 } else if at("/*") { state.blockDepth += 1; i += 2 } else { i += 1 }
                continue
            }
            if state.inMultilineString {
                if at("\"\"\"") { state.inMultilineString = false; i += 3 } else { i += 1 }
                continue
            }
            if at("//") { break }
            if at("/*") { state.blockDepth += 1; i += 2; continue }
            if at("\"\"\"") { state.inMultilineString = true; i += 3; continue }
            if bytes[i] == UInt8(ascii: "\"") {
                i += 1
                while i < bytes.count, bytes[i] != UInt8(ascii: "\"") {
                    if bytes[i] == UInt8(ascii: "\\") { i += 1 }
                    i += 1
                }
                i += 1
                out += Array("\"\"".utf8)
                continue
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
