import ViridianABI

extension PortKind {
    @inlinable var portType: HVPortType {
        switch self {
        case .message: return .message
        case .event: return .event
        }
    }
}

/// A port of a partition: created by the root, owned by the partition that receives on it.
@usableFromInline struct PortState {
    @usableFromInline var kind: PortKind
    @inlinable init(kind: PortKind) { self.kind = kind }
}

/// A connection of a partition: the sending end, naming a port of some partition.
@usableFromInline struct ConnectionState {
    /// Index of the target partition in `ViridianReference.partitions`.
    @usableFromInline var targetPartition: Int
    @usableFromInline var targetPort: PortID
    @inlinable init(targetPartition: Int, targetPort: PortID) { self.targetPartition = targetPartition; self.targetPort = targetPort }
}

/// One page of another partition mapped into a partition (HvCallMapGpaPages style).
@usableFromInline struct GPAMapping {
    /// The frame in the mapping partition's address space.
    @usableFromInline var frame: UInt64
    /// Index of the partition that owns the page.
    @usableFromInline var sourcePartition: Int
    /// The frame in the owning partition's address space.
    @usableFromInline var sourceFrame: UInt64
    @usableFromInline var flags: HVMapGPAFlags
    @inlinable init(frame: UInt64, sourcePartition: Int, sourceFrame: UInt64, flags: HVMapGPAFlags) { self.frame = frame; self.sourcePartition = sourcePartition; self.sourceFrame = sourceFrame; self.flags = flags }
}
