import Foundation
@testable import XVSpecGen

/// Paths of the test's own files and of the repository, found from this source file.
enum Fixture {
    static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let repositoryRoot = testsDirectory.deletingLastPathComponent().deletingLastPathComponent()

    /// The fixture tables, as the generator takes them (path relative to a pretend root).
    static func tinyTables() throws -> [(path: String, text: String)] {
        try ["tiny-xen", "tiny-viridian", "tiny-translation"].map { name in
            let url = testsDirectory.appendingPathComponent("Fixtures/\(name).tbl")
            return ("Specs/\(name).tbl", try String(contentsOf: url, encoding: .utf8))
        }
    }

    /// The generator's diagnostics for one table file (`Specs/broken.tbl`) next to a valid errno table.
    static func diagnostics(for text: String) -> [String] {
        let errno = """
        @interface xen
        @source fixture
        @table xen.errno
        @kind errno
        @family XEN_E
        @swift FixtureErrno Int32
        @prefix XEN_
        XEN_EPERM 1
        XEN_EINVAL 22
        """
        return SpecGenerator.generate([("Specs/base.tbl", errno), ("Specs/broken.tbl", text)]).diagnostics.map(\.description)
    }
}
