import GuestABI
import ViridianABI

/// HvCallPostMessage and HvCallSignalEvent (TLFS "Inter-Partition Communication"). Both look up
/// the caller's connection, then the port it names in the target partition, and deliver to the
/// port's VP and SINT. Neither allocates.
extension ViridianReference {
    /// The port a connection of partition `p` leads to, or the status that says why not.
    @inline(__always)
    @inlinable func resolveConnection(_ p: Int, _ connectionID: UInt32) -> (target: Int, port: PortState, portID: UInt32)? {
        guard let connection = partitions[p].connections[connectionID],
              let port = partitions[connection.targetPartition].ports[connection.targetPort.rawValue] else { return nil }
        return (connection.targetPartition, port, connection.targetPort.rawValue)
    }

    /// HvCallPostMessage. Statuses (TLFS HvCallPostMessage): RsvdZ bits set (the reserved
    /// field, connection id bits 31:24) → INVALID_HYPERCALL_INPUT, as KVM and QEMU answer
    /// reserved bits; message type 0 or with bit 31 set, or payload over 240 bytes →
    /// INVALID_PARAMETER; unknown connection → INVALID_CONNECTION_ID; its port deleted or not a
    /// message port → INVALID_PORT_ID; the target SynIC or SIM page disabled →
    /// INVALID_SYNIC_STATE; no buffer left → INSUFFICIENT_BUFFERS. A busy slot is not an error:
    /// the message waits with MessagePending set (kvm-unit-tests hyperv_connections.c).
    @inlinable func postMessage(_ a: HypercallArguments) -> HVStatus {
        let connectionID = a.u32(HvInputPostMessageLayout.connectionid.offset)
        let reserved = a.u32(HvInputPostMessageLayout.reserved.offset)
        let messageType = a.u32(HvInputPostMessageLayout.messageType.offset)
        let payloadSize = a.u32(HvInputPostMessageLayout.payloadSize.offset)
        guard reserved == 0, HVConnectionIDBits(rawValue: connectionID).hasReservedBitsSet == false else { return .invalidHypercallInput }
        guard messageType != 0, messageType & SynICLimits.messageTypeHypervisorMask == 0,
              payloadSize <= SynICLimits.messagePayloadByteCount else { return .invalidParameter }
        guard let (target, port, portID) = resolveConnection(a.p, connectionID) else {
            return partitions[a.p].connections[connectionID] == nil ? .invalidConnectionId : .invalidPortId
        }
        guard case .message(let vp, let sint) = port.kind else { return .invalidPortId }
        return withUnsafeTemporaryAllocation(byteCount: Self.messageSize, alignment: 8) { message in
            let m = message.baseAddress!
            m.initializeMemory(as: UInt8.self, repeating: 0, count: Self.messageSize)
            m.storeBytes(of: messageType.littleEndian, toByteOffset: HvMessageLayout.headerMessageType.offset, as: UInt32.self)
            m.storeBytes(of: UInt8(payloadSize), toByteOffset: HvMessageLayout.headerPayloadSize.offset, as: UInt8.self)
            m.storeBytes(of: portID.littleEndian, toByteOffset: HvMessageLayout.headerUPort.offset, as: UInt32.self)
            (m + HvMessageLayout.payload.offset).copyMemory(from: a.block + HvInputPostMessageLayout.payload.offset, byteCount: Int(payloadSize))
            return deliverMessage(target, Int(vp.rawValue), sint: Int(sint), message: UnsafeRawPointer(m))
        }
    }

    /// HvCallSignalEvent (fast or memory form; the input is one qword: connection id in bits
    /// 31:0, flag number in 47:32, RsvdZ 63:48). Statuses: RsvdZ bits (including connection id
    /// bits 31:24) → INVALID_HYPERCALL_INPUT (KVM kvm_hvcall_signal_event); unknown connection
    /// → INVALID_CONNECTION_ID; port deleted or not an event port → INVALID_PORT_ID; flag number
    /// not below the port's flag count → INVALID_PARAMETER (TLFS); the target's SynIC or SIEF
    /// page disabled, or the SINT masked → INVALID_SYNIC_STATE (TLFS).
    @inlinable func signalEvent(_ a: HypercallArguments) -> HVStatus {
        let connectionID = a.u32(HvInputSignalEventLayout.connectionid.offset)
        let flagNumber = a.u16(HvInputSignalEventLayout.flagNumber.offset)
        let reserved = a.u16(HvInputSignalEventLayout.rsvdz.offset)
        guard reserved == 0, !HVConnectionIDBits(rawValue: connectionID).hasReservedBitsSet else { return .invalidHypercallInput }
        guard let (target, port, _) = resolveConnection(a.p, connectionID) else {
            return partitions[a.p].connections[connectionID] == nil ? .invalidConnectionId : .invalidPortId
        }
        guard case .event(let vp, let sint, let baseFlag, let flagCount) = port.kind else { return .invalidPortId }
        guard flagNumber < flagCount else { return .invalidParameter }
        return setEventFlag(target, Int(vp.rawValue), sint: Int(sint), flag: Int(baseFlag) + Int(flagNumber), deferred: a.deferred)
    }
}
