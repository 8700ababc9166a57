/// Guest-visible Viridian integers as newtypes (Hyper-V TLFS). Guest-controlled: validate
/// before use. Named constants (HV_PARTITION_ID_SELF, ...) are generated from `Specs/viridian/`.

/// HV_VP_INDEX: a virtual processor's index within its partition (TLFS "Virtual Processor Index").
@frozen
public struct VPIndex: RawRepresentable, Hashable, Comparable, Sendable {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// HV_PARTITION_ID: a partition identifier (TLFS "Partitions").
@frozen
public struct PartitionID: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt64) { self.rawValue = rawValue }
}

/// HV_CONNECTION_ID: the id a partition posts messages or signals events on (low 24 bits;
/// TLFS "Inter-Partition Communication").
@frozen
public struct ConnectionID: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
}

/// HV_PORT_ID: the receiving end of a connection (low 24 bits).
@frozen
public struct PortID: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
}
