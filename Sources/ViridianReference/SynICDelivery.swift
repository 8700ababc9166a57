import CGuestAtomics
import GuestABI
import ViridianABI

/// SynIC delivery (TLFS "Synthetic Interrupt Controller"): messages into SIM slots, event flags
/// into the SIEF page, and the SINT interrupt that announces them.
extension ViridianReference {
    @inlinable static var messageSize: Int { Int(SynICLimits.messageSize) }

    /// Raises SINT `sint` of VP `v` unless it is masked or in polling mode (TLFS "SINTx
    /// Registers": a polling SINT never interrupts; the guest polls its slot or flags).
    @inlinable func assertSINT(_ p: Int, _ v: Int, sint: Int, deferred: UnsafeMutablePointer<DeferredInterrupts>? = nil) {
        // One word of the VP's state, not a copy of all of it: this runs on every delivery.
        let s = HVSINTMSR(rawValue: partitions[p].vps[v].sints[sint])
        guard !s.masked, !s.polling else { return }
        let vector = UInt8(truncatingIfNeeded: s.vector)
        if let deferred, deferred.pointee.addSINT(partitions[p].id, VPIndex(UInt32(v)), vector, s.autoEoi) { return }
        host.raiseInterrupt(partition: partitions[p].id, vp: VPIndex(UInt32(v)), vector: vector, autoEOI: s.autoEoi)
    }

    /// The host address of the SIM slot of `sint` on VP `v`, when the SIM page is enabled and
    /// backed.
    @inlinable func messageSlot(_ p: Int, _ v: Int, sint: Int) -> UnsafeMutableRawPointer? {
        let simp = partitions[p].vps[v].simp
        guard simp.enable, let page = hostAddress(p, frame: simp.gpfn, write: true) else { return nil }
        return page + HvMessagePageLayout.sintMessage.offset(ofElement: sint)
    }

    /// Delivers a whole 256-byte message to `sint` of VP `v`: straight into the slot when it is
    /// free and nothing waits before it, otherwise into the queue with MessagePending set.
    @inlinable func deliverMessage(_ p: Int, _ v: Int, sint: Int, message: UnsafeRawPointer) -> HVStatus {
        guard partitions[p].vps[v].canDeliverMessages, let slot = messageSlot(p, v, sint: sint) else {
            return .invalidSynicState
        }
        let q = MessageQueues.index(vp: v, sint: sint)
        if partitions[p].queues.isEmpty(q) && SIMSlot.isFree(slot) {
            SIMSlot.publishMessage(slot, from: message)
            assertSINT(p, v, sint: sint)
            return .success
        }
        guard partitions[p].queues.push(q, message: message) else { return .insufficientBuffers }
        if SIMSlot.isFree(slot) || SIMSlot.pendAndRecheck(slot) { _ = drainQueue(p, v, sint: sint, slot: slot) }
        return .success
    }

    /// Moves the oldest queued message into a free slot; true when one was delivered.
    @inlinable func drainQueue(_ p: Int, _ v: Int, sint: Int, slot: UnsafeMutableRawPointer) -> Bool {
        let q = MessageQueues.index(vp: v, sint: sint)
        // The message entering the slot carries MessagePending when more wait behind it.
        guard SIMSlot.isFree(slot), partitions[p].queues.pop(q, into: slot) else { return false }
        assertSINT(p, v, sint: sint)
        return true
    }

    /// After EOM (or an EOI of the SINT's vector, or the SIM page becoming usable): deliver what
    /// waits for `sint`'s slot, queued messages first, then undelivered timer expirations.
    @inlinable func retryDelivery(_ p: Int, _ v: Int, sint: Int) {
        guard partitions[p].vps[v].canDeliverMessages, let slot = messageSlot(p, v, sint: sint) else { return }
        if drainQueue(p, v, sint: sint, slot: slot) { return }
        for t in 0..<Int(SynICLimits.stimerCount) {
            let timer = partitions[p].vps[v].timers[t]
            if timer.undelivered != nil, !timer.config.directMode, Int(timer.config.sintx) == sint {
                if deliverTimer(p, v, timer: t, now: referenceTime(p)) { return }
            }
        }
    }

    /// Retries every SINT of VP `v` (EOM, SCONTROL or SIMP enabled).
    @inlinable func retryAllDeliveries(_ p: Int, _ v: Int) {
        for s in 0..<Int(SynICLimits.sintCount) { retryDelivery(p, v, sint: s) }
    }

    /// Sets event flag `flag` in the SIEF area of `sint` on VP `v` and raises the SINT when the
    /// flag was clear (an already-set flag raises nothing: TLFS "Event Flags"; QEMU
    /// hw/hyperv/hyperv.c hyperv_set_event_flag). A disabled SynIC or SIEF page, or a masked
    /// SINT, is HV_STATUS_INVALID_SYNIC_STATE (TLFS HvCallSignalEvent).
    @inlinable func setEventFlag(_ p: Int, _ v: Int, sint: Int, flag: Int, deferred: UnsafeMutablePointer<DeferredInterrupts>? = nil) -> HVStatus {
        // Field reads, not a copy of the VP's state: this runs on every SignalEvent.
        let siefp = partitions[p].vps[v].siefp
        guard partitions[p].vps[v].scontrol.enable, siefp.enable, !HVSINTMSR(rawValue: partitions[p].vps[v].sints[sint]).masked,
              let page = hostAddress(p, frame: siefp.gpfn, write: true) else { return .invalidSynicState }
        let byte = page + HvSynicEventFlagsPageLayout.sinteventFlags.offset(ofElement: sint) + flag >> 3
        let bit = UInt8(1) << UInt8(flag & 7)
        // A locked OR: the guest clears the flags it consumes with locked instructions on the
        // same words while this runs, and a plain read-modify-write could bring a cleared flag
        // back or lose one being set.
        if xv_atomic_fetch_or_u8(byte, bit) & bit == 0 {
            assertSINT(p, v, sint: sint, deferred: deferred)
        }
        return .success
    }
}
