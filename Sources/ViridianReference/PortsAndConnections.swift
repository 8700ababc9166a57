import ViridianABI

extension PortKind {
    var portType: HVPortType {
        switch self {
        case .message: return .message
        case .event: return .event
        }
    }
}

/// A port of a partition: created by the root, owned by the partition that receives on it.
struct PortState {
    var kind: PortKind
}

/// A connection of a partition: the sending end, naming a port of some partition.
struct ConnectionState {
    /// Index of the target partition in `ViridianReference.partitions`.
    var targetPartition: Int
    var targetPort: PortID
}

/// One page of another partition mapped into a partition (HvCallMapGpaPages style).
struct GPAMapping {
    /// The frame in the mapping partition's address space.
    var frame: UInt64
    /// Index of the partition that owns the page.
    var sourcePartition: Int
    /// The frame in the owning partition's address space.
    var sourceFrame: UInt64
    var flags: HVMapGPAFlags
}
