import Foundation

/// The names tests give themselves, for "every spec row is named by a test" checks: the display
/// names of `@Test("...")` and the `name: "..."` of parameterised stages in the Swift files of
/// one directory.
public struct TestNames {
    public var names: [String]

    public init(directory: URL, extra: [String] = []) throws {
        names = extra
        for file in try FileManager.default.contentsOfDirectory(atPath: directory.path) where file.hasSuffix(".swift") {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            for pattern in [#"@Test\("([^"]*)""#, #"name: "([^"]*)""#] {
                let regex = try NSRegularExpression(pattern: pattern)
                for match in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    names.append(String(text[Range(match.range(at: 1), in: text)!]))
                }
            }
        }
    }

    /// Whether some name contains `row` as a whole word (HV_X64_MSR_SINT1 is not named by a test
    /// that names HV_X64_MSR_SINT10).
    public func names(_ row: String) -> Bool {
        names.contains { name in
            var search = name[...]
            while let r = search.range(of: row) {
                let after = r.upperBound == name.endIndex ? nil : name[r.upperBound]
                if after.map({ !($0.isLetter || $0.isNumber || $0 == "_") }) ?? true { return true }
                search = name[r.upperBound...]
            }
            return false
        }
    }
}
