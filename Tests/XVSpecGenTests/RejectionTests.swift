import Testing
@testable import XVSpecGen

/// A table the generator must refuse, and where and why.
struct Rejection: CustomTestStringConvertible, Sendable {
    let name: String
    let table: String
    /// `Specs/broken.tbl:LINE` the diagnostic must point at.
    let line: Int
    /// Text the diagnostic's message must contain.
    let message: String
    var testDescription: String { name }
}

/// Header lines shared by the cases: an xen code table named `t` (rows start at line 8).
private let codeHeader = """
@interface xen
@source fixture
@table t
@kind constant
@family F
@swift FixtureCodes UInt8
@prefix F_
"""

private let structHeader = """
@interface xen
@source fixture
@table s
@kind struct
@c struct s
@size 16
"""

private let hypercallTable = """
@interface xen
@source fixture
@table xen.hc
@kind hypercall
@family HYPERVISOR
@swift FixtureHypercall UInt64
@prefix HC_
HC_a 0
HC_b 1
"""

private let dispositionHeader = hypercallTable + """

@table d
@kind disposition
@covers xen.hc
@default rejected - XEN_EINVAL
"""
/// Header of a Viridian hypercall table named `c` (rows start at line 7).
private let viridianCallHeader = """
@interface viridian
@source x
@table c
@kind hypercall
@family HVCALL
@swift C UInt16
"""

// In dispositionHeader the disposition table starts at line 10 and its rows at line 14.

let rejections: [Rejection] = [
    Rejection(name: "duplicate name", table: codeHeader + "\nF_a 1\nF_a 2", line: 9, message: "duplicate name 'F_a'"),
    Rejection(name: "aliased number without alias=", table: codeHeader + "\nF_a 1\nF_b 1", line: 9, message: "aliases the number 1 of F_a"),
    Rejection(name: "alias to a missing row", table: codeHeader + "\nF_a 1\nF_b 1 alias=F_zz", line: 9, message: "alias 'F_zz' is no row"),
    Rejection(name: "alias with another value", table: codeHeader + "\nF_a 1\nF_b 2 alias=F_a", line: 9, message: "alias of F_a but 2 != 1"),
    Rejection(name: "value too wide for the raw type", table: codeHeader + "\nF_a 256", line: 8, message: "does not fit UInt8"),
    Rejection(name: "negative value in an unsigned type", table: codeHeader + "\nF_a -1", line: 8, message: "negative value in unsigned UInt8"),
    Rejection(name: "bad number", table: codeHeader + "\nF_a 0xZZ", line: 8, message: "bad value '0xZZ'"),
    Rejection(name: "unknown attribute", table: codeHeader + "\nF_a 1 colour=red", line: 8, message: "unknown attribute 'colour='"),
    Rejection(name: "Swift name collision", table: codeHeader + "\nF_a_b 1\nF_A_B 2", line: 9, message: "collides with F_a_b"),
    Rejection(name: "forbidden Swift name", table: codeHeader + "\nF_self 1", line: 8, message: "Swift name 'self' is not usable"),
    Rejection(name: "missing @source", table: "@interface xen\n@table t\n@kind constant\n@family F\n@swift X UInt8\nF_a 1", line: 2, message: "has no @source"),
    Rejection(name: "code table without @swift", table: "@interface xen\n@source x\n@table t\n@kind constant\n@family F\nF_a 1", line: 3, message: "needs @swift TYPE RAW"),
    Rejection(name: "unknown directive", table: codeHeader + "\n@colour red\nF_a 1", line: 8, message: "unknown directive @colour"),
    Rejection(name: "unknown kind", table: "@interface xen\n@source x\n@table t\n@kind widget", line: 4, message: "unknown kind 'widget'"),
    Rejection(name: "row outside a table", table: "@interface xen\nF_a 1", line: 2, message: "row outside any @table"),
    Rejection(name: "duplicate table id", table: codeHeader + "\nF_a 1\n@table t\n@kind constant\n@family G\n@swift Other UInt8\nG_a 1", line: 9, message: "duplicate table id 't'"),
    Rejection(name: "one file, two interfaces", table: codeHeader + "\nF_a 1\n@table u\n@interface viridian\n@kind constant\n@family G\n@swift Other UInt8\nG_a 1", line: 3, message: "one file, one interface"),
    Rejection(name: "struct field past the size", table: structHeader + "\na 0 8\nb 8 16", line: 8, message: "run past the struct's size 16"),
    Rejection(name: "overlapping struct fields", table: structHeader + "\na 0 8\nb 4 8", line: 8, message: "b overlaps a"),
    Rejection(name: "nested field without its parent", table: structHeader + "\na.x 0 8", line: 7, message: "parent field 'a' is not declared"),
    Rejection(name: "nested field outside its parent", table: structHeader + "\na 0 8 union\na.x 4 8", line: 8, message: "lies outside its parent a"),
    Rejection(name: "type= names no struct", table: structHeader + "\na 0 8 type=nothing", line: 7, message: "type 'nothing' is no struct table"),
    Rejection(name: "type= size mismatch", table: structHeader + "\na 0 16 type=s2\n@table s2\n@kind struct\n@c struct s2\n@size 8\nx 0 8", line: 7, message: "type s2 is 8 bytes"),
    Rejection(name: "array size not a multiple of count", table: structHeader + "\na 0 10 count=3", line: 7, message: "not a multiple of count 3"),
    Rejection(name: "overlapping bit fields", table: "@interface viridian\n@source x\n@table b\n@kind bitfield\n@swift B\n@width 8\nlo 0:3\nhi 3:7", line: 8, message: "overlaps lo"),
    Rejection(name: "bit outside the register", table: "@interface viridian\n@source x\n@table b\n@kind bitfield\n@swift B\n@width 8\nlo 0:8", line: 7, message: "outside a 8-bit register"),
    Rejection(name: "row without a disposition", table: dispositionHeader + "\nHC_a layer - -", line: 9, message: "HC_b has no disposition"),
    Rejection(name: "disposition for no such row", table: dispositionHeader + "\nHC_a layer - -\nHC_b layer - -\nHC_c layer - -", line: 16, message: "'HC_c' is no row of the covered tables"),
    Rejection(name: "rejected without errno", table: dispositionHeader + "\nHC_a rejected - -\nHC_b layer - -", line: 14, message: "'rejected' needs the XEN_E*"),
    Rejection(name: "translated without Viridian names", table: dispositionHeader + "\nHC_a translated - -\nHC_b layer - -", line: 14, message: "'translated' needs the Viridian"),
    Rejection(name: "dangling Viridian reference", table: dispositionHeader + "\nHC_a translated HVCALL_NOPE -\nHC_b layer - -", line: 14, message: "'HVCALL_NOPE' is no Viridian row"),
    Rejection(name: "errno that is no XEN_E row", table: dispositionHeader + "\nHC_a rejected - XEN_ENOPE\nHC_b layer - -", line: 14, message: "'XEN_ENOPE' is no XEN_E* row"),
    Rejection(name: "subops without a sub-op table", table: dispositionHeader + "\nHC_a subops - -\nHC_b layer - -", line: 14, message: "no table declares @subops HC_a"),
    Rejection(name: "two dispositions for one row", table: dispositionHeader + "\nHC_a layer - -\nHC_a layer - -\nHC_b layer - -", line: 15, message: "second disposition for HC_a"),
    Rejection(name: "unknown disposition", table: dispositionHeader + "\nHC_a maybe - -", line: 14, message: "unknown disposition 'maybe'"),
    Rejection(name: "@covers names no table", table: hypercallTable + "\n@table d\n@kind disposition\n@covers xen.nope\n@default rejected - XEN_EINVAL", line: 10, message: "@covers names table 'xen.nope'"),
    Rejection(name: "disposition table without @default", table: hypercallTable + "\n@table d\n@kind disposition\n@covers xen.hc\nHC_a layer - -\nHC_b layer - -", line: 10, message: "needs @default"),
    Rejection(name: "@subops names no hypercall", table: codeHeader + "\n@subops HC_nope\nF_a 1", line: 3, message: "@subops names 'HC_nope'"),
    Rejection(name: "misspelt bare attribute", table: codeHeader + "\nF_a 1 nolinx", line: 8, message: "unknown attribute 'nolinx'"),
    Rejection(name: "ref outside the Viridian interface", table: codeHeader + "\nF_a 1 ref", line: 8, message: "unknown attribute 'ref'"),
    Rejection(name: "simple and rep at once", table: viridianCallHeader + "\nHVCALL_A 1 simple rep", line: 7, message: "`simple` or `rep`, not both"),
    Rejection(name: "two MSR accesses", table: "@interface viridian\n@source x\n@table m\n@kind msr\n@family HV_X64_MSR\n@swift M UInt32\nHV_X64_MSR_A 1 ro rw", line: 7, message: "one access"),
    Rejection(name: "gate= without ref", table: "@interface viridian\n@source x\n@table viridian.cpuid3_ebx\n@kind flag\n@family F\n@swift P UInt32 flags\nHV_P bit(1)\n@table c\n@kind hypercall\n@family HVCALL\n@swift C UInt16\nHVCALL_A 1 simple gate=HV_P", line: 12, message: "gate= only means something on a `ref` row"),
    Rejection(name: "gate naming no privilege row", table: viridianCallHeader + "\nHVCALL_A 1 simple ref gate=HV_NOPE", line: 7, message: "gate 'HV_NOPE' is no row of a CPUID privilege"),
    Rejection(name: "status without an errno mapping", table: "@interface viridian\n@source x\n@table st\n@kind status\n@family HV_STATUS\n@swift S UInt16\nHV_A 0\nHV_B 1\n@table m\n@kind errno-map\n@covers st\n@default XEN_EINVAL\nHV_A success", line: 8, message: "HV_B has no errno mapping"),
]

@Suite("Generator rejects broken tables with file:line")
struct RejectionTests {
    @Test("a broken table is refused, pointing at the line", arguments: rejections)
    func rejected(_ r: Rejection) {
        let diagnostics = Fixture.diagnostics(for: r.table)
        let hit = diagnostics.contains { $0.hasPrefix("Specs/broken.tbl:\(r.line): ") && $0.contains(r.message) }
        #expect(hit, "expected Specs/broken.tbl:\(r.line): …\(r.message)…, got \(diagnostics)")
    }

    @Test("nothing is generated while a diagnostic stands")
    func nothingWritten() {
        let output = SpecGenerator.generate([("Specs/broken.tbl", codeHeader + "\nF_a 1\nF_b 1")])
        #expect(!output.diagnostics.isEmpty)
        #expect(output.files.isEmpty)
    }

    @Test("the same base with a valid table generates without diagnostics")
    func validBaseline() {
        #expect(Fixture.diagnostics(for: codeHeader + "\nF_a 1\nF_b 2 -- two").isEmpty)
    }
}

@Suite("Lexical rules")
struct LexicalTests {
    @Test func values() {
        #expect(SpecParser.parseValue("42") == SpecValue(magnitude: 42))
        #expect(SpecParser.parseValue("0x7FF0") == SpecValue(magnitude: 0x7FF0))
        #expect(SpecParser.parseValue("-13") == SpecValue(magnitude: 13, isNegative: true))
        #expect(SpecParser.parseValue("bit(31)") == SpecValue(magnitude: 1 << 31))
        #expect(SpecParser.parseValue("0xFFFFFFFFFFFFFFFF") == SpecValue(magnitude: .max))
        #expect(SpecParser.parseValue("0b101") == SpecValue(magnitude: 5))
        #expect(SpecParser.parseValue("bit(64)") == nil)
        #expect(SpecParser.parseValue("0x1FFFFFFFFFFFFFFFF") == nil)
        #expect(SpecParser.parseValue("twelve") == nil)
        #expect(SpecParser.parseValue("-0") == SpecValue(magnitude: 0))
    }

    @Test func commentsAndDocs() {
        #expect(SpecParser.stripComment("A 1 # note") == "A 1 ")
        #expect(SpecParser.stripComment("A#B 1") == "A#B 1")
        #expect(SpecParser.splitDoc("A 1 -- the doc").1 == "the doc")
        #expect(SpecParser.splitDoc("A 1").1 == nil)
    }

    @Test func swiftNames() {
        #expect(SwiftNaming.memberName(for: "EVTCHNOP_bind_interdomain", prefix: "EVTCHNOP_", override: nil) == "bindInterdomain")
        #expect(SwiftNaming.memberName(for: "HV_STATUS_INVALID_HYPERCALL_CODE", prefix: "HV_STATUS_", override: nil) == "invalidHypercallCode")
        #expect(SwiftNaming.memberName(for: "XEN_EPERM", prefix: "XEN_", override: nil) == "eperm")
        #expect(SwiftNaming.lowerCamel("u.interdomain.port") == "uInterdomainPort")
        #expect(SwiftNaming.lowerCamel("__spacer") == "spacer")
        #expect(SwiftNaming.escaped("default") == "`default`")
        #expect(SpecGenerator.outputStem("Specs/xen/event-channels.tbl") == "EventChannels")
    }
}
