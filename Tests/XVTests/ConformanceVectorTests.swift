import Foundation
import Testing
import XVConformance
import XVSpecCatalog

/// The conformance runner and the repository's vectors (Specs/conformance, format in
/// Specs/README.md): every vector passes on both sides or is a listed deviation, the vectors call
/// every hypercall the tables do not reject, and the runner reports what does not match.
@Suite struct ConformanceVectorTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Specs/conformance").standardized

    static func files() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "vec" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    static func deviations() throws -> KnownDeviations {
        let list = directory.appendingPathComponent("known-deviations.txt")
        return try KnownDeviations(parsing: String(contentsOf: list, encoding: .utf8), file: "known-deviations.txt")
    }

    @Test func repositoryVectorsPassOnBothSides() throws {
        let known = try Self.deviations()
        var verdicts: [VectorVerdict] = []
        for f in try Self.files() {
            verdicts += try ConformanceSuite.run(String(contentsOf: f, encoding: .utf8), file: f.lastPathComponent, deviations: known)
        }
        #expect(verdicts.count >= 26)
        for v in verdicts where v.kind == .failed { Issue.record("\(v.line)") }
        // Every listed deviation names a vector that exists, and shows as a deviation.
        let names = Set(verdicts.map(\.name))
        for e in known.entries.values { #expect(names.contains(e.name), "\(e.location): \(e.name) is not a vector") }
        #expect(verdicts.filter { if case .knownDeviation = $0.kind { return true } else { return false } }.count == known.entries.count)
    }

    /// Every hypercall whose disposition is not `rejected` is called by some vector.
    @Test func vectorsCoverEveryImplementedHypercall() throws {
        var called = Set<UInt64>()
        for f in try Self.files() {
            for v in try VectorParser.parse(String(contentsOf: f, encoding: .utf8), file: f.lastPathComponent) {
                for s in v.steps {
                    if case .call(_, _, .literal(let n), _, _, _) = s.action { called.insert(n) }
                }
            }
        }
        let implemented = SpecCatalog.dispositions.filter { $0.xen.hasPrefix("__HYPERVISOR_") && $0.disposition != "rejected" }
        #expect(implemented.count >= 13)
        for row in implemented {
            let number = try #require(SpecCatalog.constants.first { $0.name == row.xen }).magnitude
            #expect(called.contains(number), "no vector calls \(row.xen) (\(row.location))")
        }
    }

    @Test func aWrongExpectationFailsOnBothSidesWithItsLine() throws {
        let text = """
        vector wrong: send on port 0 is -EINVAL, not -ENOENT
          domains 1
          write d1 16:0 evtchn_send.port 0
          call d1 event_channel_op EVTCHNOP_send gpa(16:0) => -XEN_ENOENT
        end
        vector right: the same, expected right
          domains 1
          call d1 event_channel_op EVTCHNOP_send gpa(16:0) => -XEN_EINVAL
          upcalls d1 0
        end
        """
        let verdicts = try ConformanceSuite.run(text, file: "t.vec", deviations: KnownDeviations())
        #expect(verdicts.map(\.kind) == [.failed, .passed])
        #expect(verdicts[0].failures[.native]?.location == "t.vec:4")
        #expect(verdicts[0].failures[.translated]?.location == "t.vec:4")
        #expect(verdicts[0].line.contains("expected -2 (-ENOENT), got -22 (-EINVAL)"))
    }

    @Test func aListedDeviationMustFailWhereListed() throws {
        let text = """
        vector passes: xen_version answers 4.17
          domains 1
          call d1 xen_version XENVER_version 0 => 4<<16|17
        end
        vector fails: a wrong answer on both sides
          domains 1
          call d1 xen_version XENVER_version 0 => 5
        end
        """
        let list = try KnownDeviations(parsing: "passes both it used to fail\nfails translated only translated, supposedly\n", file: "d.txt")
        let verdicts = try ConformanceSuite.run(text, file: "t.vec", deviations: list)
        #expect(verdicts.map(\.kind) == [.failed, .failed])
        #expect(verdicts[0].note?.contains("passes on native and translated") == true)
        #expect(verdicts[1].note?.contains("does not list") == true)
        let right = try KnownDeviations(parsing: "fails both the reason\n", file: "d.txt")
        #expect(try ConformanceSuite.run(text, file: "t.vec", deviations: right).map(\.kind) == [.passed, .knownDeviation("the reason")])
    }

    @Test(arguments: [
        ("vector a\n  call d1 xen_version 0 0 => 0\n", "t.vec:1: vector a has no `end`"),
        ("vector a\n  frobnicate d1\nend\n", "t.vec:2: unknown step `frobnicate`"),
        ("vector a\n  domains 1\n  call d2 xen_version 0 0 => 0\nend\n", "t.vec:3: `d2`: no such domain"),
        ("vector a\n  call d1 NOT_A_CONSTANT => 0\nend\n", "t.vec:2: `NOT_A_CONSTANT`: not a number"),
        ("vector a\n  write d1 16:0 evtchn_send.nope 1\nend\n", "t.vec:2: `evtchn_send.nope`"),
        ("vector a\n  call d1 xen_version 0 0\nend\n", "t.vec:2: a step needs `=> VALUE`"),
        ("  upcalls d1 0\n", "t.vec:1: `upcalls` outside a vector"),
        ("vector a\nend\nvector a\nend\n", "t.vec:3: vector name `a`"),
        // fuzz-vector-parser's first find: a `call` whose hypercall is `=>` trapped on a range.
        ("vector a\n  call d1 => 0\nend\n", "t.vec:2: `call dN[.V] HYPERCALL [ARG...] => RESULT`: the hypercall is missing"),
        ("vector a\n  call d1 as x\nend\n", "t.vec:2: `call dN[.V] HYPERCALL [ARG...] => RESULT`: the hypercall is missing"),
    ])
    func malformedVectorsNameTheirLine(text: String, message: String) {
        #expect(throws: VectorSyntaxError.self) { try VectorParser.parse(text, file: "t.vec") }
        do { _ = try VectorParser.parse(text, file: "t.vec") } catch { #expect(error.description.hasPrefix(message), "\(error)") }
    }

    /// Memory a vector names outside the guest's view (frame 48 and up, or past a page) is a
    /// failed step, never an access: the translated side's layer frames lie right there.
    @Test func vectorsCannotReachPastTheGuestsView() throws {
        let text = """
        vector layer-frame: frame 48 is the first layer frame of a translated domain
          domains 1
          write d1 48:0 u64 1
        end
        vector past-page: a u64 at offset 4092 crosses its page
          domains 1
          read d1 16:4092 u64 => 0
        end
        """
        let verdicts = try ConformanceSuite.run(text, file: "t.vec", deviations: KnownDeviations())
        #expect(verdicts.map(\.kind) == [.failed, .failed])
        #expect(verdicts.allSatisfy { $0.failures.count == 2 })
    }
}
