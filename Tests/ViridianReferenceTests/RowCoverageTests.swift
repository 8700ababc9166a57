import Foundation
import Testing
import XVSpecCatalog

/// "Every Viridian table row the reference claims to implement has a test that names it": the
/// rows marked `ref` in Specs/viridian/ are read from the catalog, and each name must appear
/// in the display name of some @Test in this directory.
@Test("every `ref` row of Specs/viridian is named by a ViridianReference test")
func everyClaimedRowHasANamedTest() throws {
    let claimed = SpecCatalog.constants.filter { $0.interface == "viridian" && $0.attributes.contains("ref") }.map(\.name)
    #expect(claimed.count >= 60, "the catalog lists the claims")
    let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    var names: [String] = []
    for file in try FileManager.default.contentsOfDirectory(atPath: directory.path) where file.hasSuffix(".swift") {
        let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
        // The display names of @Test("...") and the `name:` of parameterised stages.
        for pattern in [#"@Test\("([^"]*)""#, #"name: "([^"]*)""#] {
            let regex = try NSRegularExpression(pattern: pattern)
            for match in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                names.append(String(text[Range(match.range(at: 1), in: text)!]))
            }
        }
    }
    // Parameterised tests name each case.
    names += PrivilegeGatingTests.msrStages.map(\.name) + PrivilegeGatingTests.callStages.map(\.name)
    // A row is named when its name appears as a whole word (HV_X64_MSR_SINT1 must not be
    // satisfied by HV_X64_MSR_SINT10).
    func isNamed(_ row: String) -> Bool {
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
    let unnamed = claimed.filter { !isNamed($0) }
    #expect(unnamed.isEmpty, "claimed rows without a test naming them: \(unnamed)")
}
