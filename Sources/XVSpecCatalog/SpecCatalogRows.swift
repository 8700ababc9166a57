/// Every row of the spec tables as plain data. The rows are generated from `Specs/` into
/// `Generated/SpecCatalog.swift`; this file declares their shapes. Used by `xv specs` and by the
/// conformance tests; the core modules do not depend on it.
public enum SpecCatalog {}

/// A code row: hypercall, sub-op, errno, MSR, status, message type, constant or flag.
public struct SpecConstant: Sendable, Hashable {
    public let interface: String
    public let kind: String
    public let family: String
    /// The canonical C spelling (Xen public headers; Linux Hyper-V headers for Viridian).
    public let name: String
    public let magnitude: UInt64
    public let isNegative: Bool
    /// Bare attributes from the table: `rep`, `simple`, `fast`, `ro`, `rw`, `wo`, ...
    public let attributes: [String]
    /// The row whose value this one deliberately shares, if any.
    public let alias: String?
    /// Whether the libxen-dev conformance suite compiles this row.
    public let checkedAgainstC: Bool
    /// `Type.member` in the generated Swift.
    public let swift: String
    /// `file:line` of the row.
    public let location: String

    /// The value as a signed 64-bit integer when it fits (every value but unsigned ones above Int64.max).
    public var int64Value: Int64? {
        if isNegative { return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }
}

public struct SpecStructField: Sendable, Hashable {
    /// Field name, dotted for nested members (`time.tsc_timestamp`).
    public let name: String
    public let offset: Int
    public let size: Int
    public let count: Int
}

public struct SpecStruct: Sendable, Hashable {
    public let interface: String
    /// The C tag (`shared_info`).
    public let name: String
    /// `struct shared_info` or `union grant_entry_v2`.
    public let cSpelling: String
    public let size: Int
    public let checkedAgainstC: Bool
    public let location: String
    public let fields: [SpecStructField]
}

public struct SpecBit: Sendable, Hashable {
    public let name: String
    public let low: Int
    public let high: Int
}

public struct SpecBitfield: Sendable, Hashable {
    public let interface: String
    public let name: String
    public let width: Int
    public let location: String
    public let fields: [SpecBit]
}

public struct SpecDisposition: Sendable, Hashable {
    /// The Xen hypercall or sub-op (C name); for `defaultDispositions`, the table id.
    public let xen: String
    /// `translated`, `layer`, `rejected` or `subops`.
    public let disposition: String
    /// Viridian calls, MSRs or pages used (C names).
    public let viridian: [String]
    /// XEN_E* answered by a rejected row.
    public let errno: String?
    public let note: String?
    public let location: String
}

public struct SpecErrnoMapping: Sendable, Hashable {
    /// An HV_STATUS_* or layer outcome name.
    public let from: String
    /// XEN_E*, or nil for success.
    public let errno: String?
    public let note: String?
    public let location: String
}

public struct SpecTableInfo: Sendable, Hashable {
    public let id: String
    public let interface: String
    public let kind: String
    public let source: String
    public let location: String
}
