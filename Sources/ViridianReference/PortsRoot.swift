import CGuestAtomics
import ViridianABI

/// Ports and connections, created by the root (TLFS "Inter-Partition Communication": HvCallCreatePort,
/// HvCallConnectPort, HvCallDeletePort, HvCallDisconnectPort are root-partition calls; the
/// reference offers them as API to its embedder).
extension ViridianReference: ViridianRootServices {
    /// Creates port `port` in `partition` (the receiving partition). Statuses:
    /// INVALID_PARTITION_ID, INVALID_PORT_ID (id over 24 bits or in use), INVALID_VP_INDEX,
    /// INVALID_PARAMETER (SINT over 15, event flags empty or beyond the 2048 of a SINT),
    /// INSUFFICIENT_MEMORY (the partition's port capacity is used up).
    @inlinable public func createPort(in partition: PartitionID, port: PortID, kind: PortKind) -> HVStatus {
        lockEntry()
        defer { unlockEntry() }
        guard let p = index(of: partition) else { return .invalidPartitionId }
        guard !HVPortIDBits(rawValue: port.rawValue).hasReservedBitsSet else { return .invalidPortId }
        let vp: VPIndex, sint: UInt8
        switch kind {
        case .message(let v, let s):
            vp = v; sint = s
        case .event(let v, let s, let base, let count):
            vp = v; sint = s
            guard count > 0, Int(base) + Int(count) <= Int(SynICLimits.eventFlagsCount) else { return .invalidParameter }
        }
        guard vpIndex(p, vp) != nil else { return .invalidVpIndex }
        guard sint < UInt8(SynICLimits.sintCount) else { return .invalidParameter }
        guard partitions[p].ports[port.rawValue] == nil else { return .invalidPortId }
        guard partitions[p].ports.insert(PortState(kind: kind), for: port.rawValue) else { return .insufficientMemory }
        return .success
    }

    /// Deletes a port. Connections to it stay and answer HV_STATUS_INVALID_PORT_ID.
    @inlinable public func deletePort(in partition: PartitionID, port: PortID) -> HVStatus {
        lockEntry()
        defer { unlockEntry() }
        guard let p = index(of: partition) else { return .invalidPartitionId }
        return partitions[p].ports.remove(port.rawValue) == nil ? .invalidPortId : .success
    }

    /// Connects `connection` of partition `from` (the sender) to `port` of partition `to`.
    /// Statuses: INVALID_PARTITION_ID, INVALID_CONNECTION_ID (id over 24 bits or in use),
    /// INVALID_PORT_ID (no such port), INSUFFICIENT_MEMORY (capacity used up).
    @inlinable public func connectPort(from partition: PartitionID, connection: ConnectionID, to target: PartitionID, port: PortID) -> HVStatus {
        lockEntry()
        defer { unlockEntry() }
        guard let p = index(of: partition), let t = index(of: target) else { return .invalidPartitionId }
        guard !HVConnectionIDBits(rawValue: connection.rawValue).hasReservedBitsSet else { return .invalidConnectionId }
        guard partitions[t].ports[port.rawValue] != nil else { return .invalidPortId }
        guard partitions[p].connections[connection.rawValue] == nil else { return .invalidConnectionId }
        guard partitions[p].connections.insert(ConnectionState(targetPartition: t, targetPort: port), for: connection.rawValue) else {
            return .insufficientMemory
        }
        return .success
    }

    /// Removes a connection.
    @inlinable public func disconnectPort(from partition: PartitionID, connection: ConnectionID) -> HVStatus {
        lockEntry()
        defer { unlockEntry() }
        guard let p = index(of: partition) else { return .invalidPartitionId }
        return partitions[p].connections.remove(connection.rawValue) == nil ? .invalidConnectionId : .success
    }
}
