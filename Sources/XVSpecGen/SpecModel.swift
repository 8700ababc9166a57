/// The parsed form of the spec tables (`Specs/**/*.tbl`). The grammar is written down in
/// `Specs/README.md`; this file only holds the values the parser produces.

/// A place in a table file, for `file:line: message` diagnostics.
public struct SpecLocation: Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public init(file: String, line: Int) { self.file = file; self.line = line }
    public var description: String { "\(file):\(line)" }
}

/// One error found in the tables.
public struct SpecDiagnostic: Error, Hashable, Sendable, CustomStringConvertible {
    public var location: SpecLocation
    public var message: String
    public init(_ location: SpecLocation, _ message: String) { self.location = location; self.message = message }
    public var description: String { "\(location): \(message)" }
}

/// Which interface a table describes.
public enum SpecInterface: String, Sendable, CaseIterable {
    case xen, viridian, translation
}

/// What the rows of a table are.
public enum SpecKind: String, Sendable, CaseIterable {
    // Code tables: `NAME VALUE [attributes] [-- doc]`.
    case hypercall, subop, errno, constant, msr, status, message, flag, outcome
    // `FIELD OFFSET SIZE [count=N] [type=TAG] [union]`.
    case `struct`
    // `FIELD BIT[:BIT] [-- doc]`; rows named `reserved` are reserved bits.
    case bitfield
    // `XEN-NAME DISPOSITION VIRIDIAN[,VIRIDIAN...]|- ERRNO|- [-- note]`.
    case disposition
    // `FROM ERRNO|success [-- note]`.
    case errnoMap = "errno-map"

    public var isCode: Bool {
        switch self {
        case .hypercall, .subop, .errno, .constant, .msr, .status, .message, .flag, .outcome: return true
        default: return false
        }
    }
}

/// How a code table becomes Swift.
public enum SwiftRepresentation: String, Sendable {
    /// A new `@frozen` RawRepresentable struct with static members (the default).
    case `struct`
    /// A new RawRepresentable struct conforming to OptionSet.
    case flags
    /// An existing (hand-written) RawRepresentable newtype, extended with static members.
    case extend
    /// A caseless enum holding plain integer constants of the raw type.
    case namespace
}

/// An integer as written in a table: up to 64 bits of magnitude and a sign.
public struct SpecValue: Hashable, Sendable, CustomStringConvertible {
    public var magnitude: UInt64
    public var isNegative: Bool
    public init(magnitude: UInt64, isNegative: Bool = false) {
        self.magnitude = magnitude
        self.isNegative = isNegative && magnitude != 0
    }
    public var description: String { isNegative ? "-\(magnitude)" : "\(magnitude)" }
    /// Hex spelling for unsigned values (used in generated code), decimal for negatives.
    public var swiftLiteral: String {
        isNegative ? "-\(magnitude)" : (magnitude < 10 ? "\(magnitude)" : "0x" + String(magnitude, radix: 16, uppercase: true))
    }
}

public struct CodeRow: Sendable {
    public var name: String
    public var value: SpecValue
    public var swiftName: String?
    public var alias: String?
    /// Bare attribute words: `rep`, `simple`, `fast`, `ro`, `rw`, `wo`, `nolinux`, `ref`.
    public var flags: [String]
    /// `gate=ROW` attributes: the flag rows (CPUID privilege, feature or recommendation bits)
    /// that must all be set before the reference hypervisor lets a partition use this row.
    public var gates: [String] = []
    /// Whether the row carries `ref`: ViridianReference implements it.
    public var isImplementedByReference: Bool { flags.contains("ref") }
    public var doc: String?
    public var location: SpecLocation
}

public struct FieldRow: Sendable {
    public var name: String
    public var offset: Int
    public var size: Int
    public var count: Int
    public var typeRef: String?
    public var isUnion: Bool
    public var swiftName: String?
    public var location: SpecLocation
}

public struct BitRow: Sendable {
    public var name: String
    public var low: Int
    public var high: Int
    public var swiftName: String?
    public var doc: String?
    public var location: SpecLocation
    /// RsvdZ bits: must be zero (TLFS "RsvdZ"); a write with one set is refused.
    public var isReserved: Bool { name == "reserved" }
    /// RsvdP bits: preserved (TLFS "RsvdP"); writes are ignored, reads return what was there.
    public var isPreserved: Bool { name == "preserved" }
    /// Neither kind of reserved bit: a named field with an accessor.
    public var isNamed: Bool { !isReserved && !isPreserved }
    public var width: Int { high - low + 1 }
}

public enum Disposition: String, Sendable, CaseIterable {
    /// Carried out through the named Viridian calls, MSRs or pages.
    case translated
    /// Handled inside the layer, with no Viridian call.
    case layer
    /// Refused with the row's errno.
    case rejected
    /// Demultiplexed into a sub-op family whose rows carry their own dispositions.
    case subops
}

public struct DispositionRow: Sendable {
    public var xen: String
    public var disposition: Disposition
    public var viridian: [String]
    public var errno: String?
    public var note: String?
    public var location: SpecLocation
}

public struct ErrnoMapRow: Sendable {
    public var from: String
    /// nil means success (the guest sees 0).
    public var errno: String?
    public var note: String?
    public var location: SpecLocation
}

/// One `@table` block.
public struct SpecTable: Sendable {
    public var id: String
    public var location: SpecLocation
    public var interface: SpecInterface?
    public var kind: SpecKind?
    public var family: String?
    public var source: String?
    public var swiftType: String?
    public var rawType: String?
    public var representation: SwiftRepresentation = .struct
    public var prefix: String?
    public var cSpelling: String?
    public var size: Int?
    public var width: Int?
    public var covers: [String] = []
    public var checkAgainstC: Bool?
    public var subopsOf: String?
    public var defaultDisposition: DispositionRow?
    public var defaultErrno: String?
    public var doc: String?

    public var codes: [CodeRow] = []
    public var fields: [FieldRow] = []
    public var bits: [BitRow] = []
    public var dispositions: [DispositionRow] = []
    public var errnoMaps: [ErrnoMapRow] = []

    /// The C tag of a struct table (`shared_info` for `struct shared_info`).
    public var cTag: String? { cSpelling.flatMap { $0.split(separator: " ").last.map(String.init) } }
    public var isUnion: Bool { cSpelling?.hasPrefix("union ") ?? false }
    /// Rows are checked against libxen-dev unless the table says `@check none`.
    public var isCheckedAgainstC: Bool { checkAgainstC ?? (interface == .xen) }
}

/// One table file.
public struct SpecFile: Sendable {
    /// Path relative to the repository root, e.g. `Specs/xen/hypercalls.tbl`.
    public var path: String
    public var tables: [SpecTable]
    public var interface: SpecInterface? { tables.first?.interface }
}

/// All tables, parsed and validated.
public struct SpecSet: Sendable {
    public var files: [SpecFile]
    public var tables: [SpecTable] { files.flatMap(\.tables) }
}
