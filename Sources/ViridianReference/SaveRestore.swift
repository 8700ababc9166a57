import CGuestAtomics
import GuestABI
import ViridianABI

/// Save and restore of a partition's whole Viridian state: partition MSRs, every VP's SynIC
/// registers (and so the registration of its SIM, SIEF, VP assist pages), synthetic timers
/// with their deadlines and undelivered expirations, queued messages, ports, connections and
/// page mappings, and the partition's reference time. Guest memory (the pages' contents) is the
/// embedder's to save.
///
/// Format: little-endian; magic "XVRS", a version (`ViridianSaveFormat.version`), then the
/// fields in the order `save` writes them. Restore checks everything it reads (sizes, counts
/// against the partition's capacities, reserved bits, references to partitions and VPs) and
/// answers HV_STATUS_INVALID_SAVE_RESTORE_STATE without changing anything when a check fails.
public enum ViridianSaveFormat {
    /// The first four bytes of a saved state, "XVRS" read as a little-endian UInt32.
    @inlinable public static var magic: UInt32 { 0x5352_5658 }  // "XVRS"
    /// The format version `save` writes and `restore` accepts.
    @inlinable public static var version: UInt32 { 1 }
}

extension ViridianReference {
    /// The saved state of `partition`, or nil for an unknown partition.
    @inlinable public func saveState(of partition: PartitionID) -> [UInt8]? {
        lockEntry()
        defer { unlockEntry() }
        guard let p = index(of: partition) else { return nil }
        let s = partitions[p]
        var w = SaveImageWriter()
        w.u32(ViridianSaveFormat.magic)
        w.u32(ViridianSaveFormat.version)
        w.u32(UInt32(s.vps.count))
        w.u64(s.guestOSID)
        w.u64(s.hypercall.rawValue)
        w.u64(s.referenceTSC.rawValue)
        w.u32(s.tscSequence)
        w.u64(referenceTime(p))
        for vp in s.vps {
            w.u64(vp.vpAssistPage.rawValue)
            w.u64(vp.scontrol.rawValue)
            w.u64(vp.simp.rawValue)
            w.u64(vp.siefp.rawValue)
            for i in 0..<16 { w.u64(vp.sints[i]) }
            for t in 0..<4 {
                let timer = vp.timers[t]
                w.u64(timer.config.rawValue)
                w.u64(timer.count)
                w.optional(timer.deadline)
                w.optional(timer.undelivered)
            }
        }
        for q in 0..<s.queues.counts.count {
            w.u32(UInt32(s.queues.counts[q]))
            s.queues.forEachMessage(q) { message in w.bytes.append(contentsOf: message) }
        }
        w.u32(UInt32(s.ports.count))
        s.ports.forEach { id, port in
            w.u32(id)
            switch port.kind {
            case .message(let vp, let sint):
                w.u8(1); w.u32(vp.rawValue); w.u8(sint); w.u16(0); w.u16(0)
            case .event(let vp, let sint, let base, let count):
                w.u8(2); w.u32(vp.rawValue); w.u8(sint); w.u16(base); w.u16(count)
            }
        }
        w.u32(UInt32(s.connections.count))
        s.connections.forEach { id, connection in
            w.u32(id)
            w.u64(partitions[connection.targetPartition].id.rawValue)
            w.u32(connection.targetPort.rawValue)
        }
        w.u32(UInt32(s.mappings.count))
        for m in s.mappings {
            w.u64(m.frame)
            w.u64(partitions[m.sourcePartition].id.rawValue)
            w.u64(m.sourceFrame)
            w.u32(m.flags.rawValue)
        }
        return w.bytes
    }

    /// Replaces `partition`'s Viridian state with `bytes` from `saveState`. The partition must
    /// have the same VP count and enough capacity; its reference time continues from the saved
    /// value and an enabled reference TSC page is republished with a new sequence.
    @inlinable public func restoreState(of partition: PartitionID, from bytes: [UInt8]) -> HVStatus {
        lockEntry()
        defer { unlockEntry() }
        guard let p = index(of: partition) else { return .invalidPartitionId }
        guard let restored = decodeState(p, bytes) else { return .invalidSaveRestoreState }
        var state = partitions[p]
        state.guestOSID = restored.guestOSID
        state.hypercall = restored.hypercall
        state.referenceTSC = restored.referenceTSC
        state.tscSequence = restored.tscSequence
        state.vps = restored.vps
        state.queues = restored.queues
        state.ports = restored.ports
        state.connections = restored.connections
        state.mappings = restored.mappings
        state.referenceOffset = restored.referenceTime &- clock.scaled(clock.tsc)
        partitions[p] = state
        writeReferenceTSCPage(p)
        return .success
    }

    @usableFromInline struct DecodedState {
        @usableFromInline var guestOSID: UInt64
        @usableFromInline var hypercall: HVHypercallMSR
        @usableFromInline var referenceTSC: HVReferenceTSCMSR
        @usableFromInline var tscSequence: UInt32
        @usableFromInline var referenceTime: UInt64
        @usableFromInline var vps: [VirtualProcessorState]
        @usableFromInline var queues: MessageQueues
        @usableFromInline var ports: IDTable<PortState>
        @usableFromInline var connections: IDTable<ConnectionState>
        @usableFromInline var mappings: [GPAMapping]
        @inlinable init(guestOSID: UInt64, hypercall: HVHypercallMSR, referenceTSC: HVReferenceTSCMSR, tscSequence: UInt32, referenceTime: UInt64, vps: [VirtualProcessorState], queues: MessageQueues, ports: IDTable<PortState>, connections: IDTable<ConnectionState>, mappings: [GPAMapping]) { self.guestOSID = guestOSID; self.hypercall = hypercall; self.referenceTSC = referenceTSC; self.tscSequence = tscSequence; self.referenceTime = referenceTime; self.vps = vps; self.queues = queues; self.ports = ports; self.connections = connections; self.mappings = mappings }
    }

    @inlinable func decodeState(_ p: Int, _ bytes: [UInt8]) -> DecodedState? {
        let config = partitions[p].config
        var r = SaveImageReader(bytes: bytes)
        guard r.u32() == ViridianSaveFormat.magic, r.u32() == ViridianSaveFormat.version,
              let vpCount = r.u32(), Int(vpCount) == config.vpCount,
              let guestOSID = r.u64(), let hypercall = r.u64(), let referenceTSC = r.u64(),
              let tscSequence = r.u32(), let referenceTime = r.u64() else { return nil }
        var vps = Array(repeating: VirtualProcessorState(), count: config.vpCount)
        for v in 0..<config.vpCount {
            guard let assist = r.u64(), let scontrol = r.u64(), let simp = r.u64(), let siefp = r.u64() else { return nil }
            vps[v].vpAssistPage = HVVPAssistPageMSR(rawValue: assist)
            vps[v].scontrol = HVSControlMSR(rawValue: scontrol)
            vps[v].simp = HVSIMPMSR(rawValue: simp)
            vps[v].siefp = HVSIEFPMSR(rawValue: siefp)
            for i in 0..<16 {
                guard let raw = r.u64() else { return nil }
                let sint = HVSINTMSR(rawValue: raw)
                guard sint.masked || sint.vector >= UInt64(SynICLimits.firstValidVector) else { return nil }
                vps[v].sints[i] = raw
            }
            for t in 0..<4 {
                guard let config = r.u64(), let count = r.u64(), let deadline = r.optional(), let undelivered = r.optional() else { return nil }
                let c = HVSTimerConfigMSR(rawValue: config)
                guard !c.hasReservedBitsSet else { return nil }
                vps[v].timers[t] = SyntheticTimerState(config: c, count: count, deadline: deadline, undelivered: undelivered)
            }
        }
        var queues = MessageQueues(vpCount: config.vpCount, depth: config.messageQueueDepth)
        for q in 0..<config.vpCount * Int(SynICLimits.sintCount) {
            guard let n = r.u32(), Int(n) <= config.messageQueueDepth else { return nil }
            for _ in 0..<Int(n) {
                guard let message = r.bytes(Self.messageSize) else { return nil }
                let pushed = message.withUnsafeBytes { queues.push(q, message: $0.baseAddress!) }
                guard pushed else { return nil }
            }
        }
        var ports = IDTable<PortState>(capacity: config.maxPorts)
        guard let portCount = r.u32(), Int(portCount) <= config.maxPorts else { return nil }
        for _ in 0..<Int(portCount) {
            guard let id = r.u32(), !HVPortIDBits(rawValue: id).hasReservedBitsSet, let kind = r.u8(), let vp = r.u32(),
                  let sint = r.u8(), let base = r.u16(), let count = r.u16(),
                  Int(vp) < config.vpCount, sint < UInt8(SynICLimits.sintCount) else { return nil }
            let portKind: PortKind
            switch kind {
            case 1: portKind = .message(vp: VPIndex(vp), sint: sint)
            case 2:
                guard count > 0, Int(base) + Int(count) <= Int(SynICLimits.eventFlagsCount) else { return nil }
                portKind = .event(vp: VPIndex(vp), sint: sint, baseFlag: base, flagCount: count)
            default: return nil
            }
            guard ports.insert(PortState(kind: portKind), for: id) else { return nil }
        }
        var connections = IDTable<ConnectionState>(capacity: config.maxConnections)
        guard let connectionCount = r.u32(), Int(connectionCount) <= config.maxConnections else { return nil }
        for _ in 0..<Int(connectionCount) {
            guard let id = r.u32(), !HVConnectionIDBits(rawValue: id).hasReservedBitsSet, let target = r.u64(), let port = r.u32(),
                  let t = index(of: PartitionID(target)),
                  connections.insert(ConnectionState(targetPartition: t, targetPort: PortID(port)), for: id) else { return nil }
        }
        guard let mappingCount = r.u32(), Int(mappingCount) <= config.maxMappedPages else { return nil }
        var mappings: [GPAMapping] = []
        mappings.reserveCapacity(config.maxMappedPages)
        for _ in 0..<Int(mappingCount) {
            guard let frame = r.u64(), let source = r.u64(), let sourceFrame = r.u64(), let flags = r.u32(),
                  let s = index(of: PartitionID(source)), Self.checkMapFlags(HVMapGPAFlags(rawValue: flags)) == .success,
                  memories[s].hostAddress(of: GuestFrameNumber(sourceFrame)) != nil,
                  mappings.last.map({ $0.frame < frame }) ?? true else { return nil }
            mappings.append(GPAMapping(frame: frame, sourcePartition: s, sourceFrame: sourceFrame, flags: HVMapGPAFlags(rawValue: flags)))
        }
        guard r.isAtEnd else { return nil }
        return DecodedState(guestOSID: guestOSID, hypercall: HVHypercallMSR(rawValue: hypercall), referenceTSC: HVReferenceTSCMSR(rawValue: referenceTSC),
                            tscSequence: tscSequence, referenceTime: referenceTime, vps: vps, queues: queues, ports: ports,
                            connections: connections, mappings: mappings)
    }
}
