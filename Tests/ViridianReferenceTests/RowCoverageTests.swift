import Foundation
import Testing
import XVSpecCatalog
import XVTestSupport

/// "Every Viridian table row the reference claims to implement has a test that names it": the
/// rows marked `ref` in Specs/viridian/ are read from the catalog, and each name must appear
/// in the display name of some @Test in this directory.
@Test("every `ref` row of Specs/viridian is named by a ViridianReference test")
func everyClaimedRowHasANamedTest() throws {
    let claimed = SpecCatalog.constants.filter { $0.interface == "viridian" && $0.attributes.contains("ref") }.map(\.name)
    #expect(claimed.count >= 60, "the catalog lists the claims")
    // Parameterised tests name each case.
    let names = try TestNames(directory: URL(fileURLWithPath: #filePath).deletingLastPathComponent(),
                              extra: PrivilegeGatingTests.msrStages.map(\.name) + PrivilegeGatingTests.callStages.map(\.name))
    let unnamed = claimed.filter { !names.names($0) }
    #expect(unnamed.isEmpty, "claimed rows without a test naming them: \(unnamed)")
}
