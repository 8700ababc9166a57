/// Guest-visible Viridian integers as newtypes (Hyper-V TLFS). Guest-controlled: validate
/// before use. Named constants (HV_PARTITION_ID_SELF, ...) are generated from `Specs/viridian/`.

/// HV_VP_INDEX: a virtual processor's index within its partition (TLFS "Virtual Processor Index").
@frozen
public struct VPIndex: RawRepresentable, Hashable, Comparable, Sendable {
    /// The VP index as the 32-bit number the guest passes; may be past the partition's VP count.
    public var rawValue: UInt32
    /// Wraps a raw 32-bit VP index; no range check.
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Wraps a raw 32-bit VP index (unlabelled form of `init(rawValue:)`).
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    /// Orders VP indices numerically.
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// HV_PARTITION_ID: a partition identifier (TLFS "Partitions").
@frozen
public struct PartitionID: RawRepresentable, Hashable, Sendable {
    /// The partition id as the 64-bit number passed in hypercall input (HV_PARTITION_ID_SELF included).
    public var rawValue: UInt64
    /// Wraps a raw 64-bit partition id; no check that the partition exists.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Wraps a raw 64-bit partition id (unlabelled form of `init(rawValue:)`).
    @inlinable public init(_ rawValue: UInt64) { self.rawValue = rawValue }
}

/// HV_CONNECTION_ID: the id a partition posts messages or signals events on (low 24 bits;
/// TLFS "Inter-Partition Communication").
@frozen
public struct ConnectionID: RawRepresentable, Hashable, Sendable {
    /// The connection id as the 32-bit number passed in hypercall input; only the low 24 bits name a connection.
    public var rawValue: UInt32
    /// Wraps a raw 32-bit connection id; the upper bits are kept, not masked.
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Wraps a raw 32-bit connection id (unlabelled form of `init(rawValue:)`).
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
}

/// HV_PORT_ID: the receiving end of a connection (low 24 bits).
@frozen
public struct PortID: RawRepresentable, Hashable, Sendable {
    /// The port id as a 32-bit number; only the low 24 bits name a port.
    public var rawValue: UInt32
    /// Wraps a raw 32-bit port id; the upper bits are kept, not masked.
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Wraps a raw 32-bit port id (unlabelled form of `init(rawValue:)`).
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
}
