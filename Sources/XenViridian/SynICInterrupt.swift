import CGuestAtomics
import GuestABI
import XenABI
import ViridianABI

/// The receiving side: the target raised an interrupt on one of the domain's VPs (an event
/// SINT, the control SINT, or a synthetic IPI). The embedder calls `interrupt(vp:vector:)`
/// where it would inject the vector; the layer drains what the SynIC holds for that VP and
/// raises the guest's upcall where Xen would.
extension XenViridianDomain {
    /// `interrupt` may run for one VP on several threads at once (each sender's target calls
    /// it on the sender's thread), and again on the same thread from inside itself (an EOM that
    /// delivers the next message). Event flags need no turn-taking: each is taken under its
    /// port's lock by an atomic clear, so of two callers that find one flag, one delivers it.
    /// Messages do: one caller drains the SIM page at a time, and only when a slot holds one
    /// (`drainMessagesInTurn`), so the event path takes no lock or word of the VP's own.
    @inlinable public func interrupt(vp: Int, vector: UInt8) {
        guard vp >= 0, vp < domain.vcpuCount else { return }
        // The layer's own messages (control and timer) first; a message in any other slot
        // only when this interrupt carried no event flag (see `messageWaiting`).
        if messageWaiting(vp, slots: Self.layerMessageSINTs) { drainMessagesInTurn(vp) }
        if !takeEventFlags(vp), messageWaiting(vp, slots: Self.otherMessageSINTs) { drainMessagesInTurn(vp) }
        // An upcall another vCPU asked for with its IPI. The request is stored before the IPI
        // is sent, so the call that IPI causes finds it, unless a concurrent call took it first
        // and delivers it; the exchange lets exactly one of them deliver.
        if xv_load_acquire_u32(upcallRequested + vp) != 0, xv_exchange_u32(upcallRequested + vp, 0) != 0 {
            deliverUpcall(vp)
        }
    }

    /// The SINTs whose message slots the layer's own ports and timers use: the control SINT and
    /// the timer SINT, as a bit mask.
    @inlinable static var layerMessageSINTs: UInt32 { 1 << ControlIDs.sint | 1 << ControlIDs.timerSint }
    /// Every other SINT. A message reaches one of them only through a message port the layer
    /// did not create (the root's or an embedder's); its slot must still be freed, so that
    /// port's sender is not blocked for good. An interrupt that carried event flags skips
    /// these slots (16 loads less on every event delivery), and the next one without a flag
    /// frees them: the message raised an interrupt of its own. Under unbroken event traffic
    /// that can wait, and then only that foreign port's sender waits.
    @inlinable static var otherMessageSINTs: UInt32 { 0xFFFF & ~layerMessageSINTs }

    /// Whether a message slot of the SINTs in `slots` holds a message (TLFS "SynIC Message Page":
    /// a slot is free while its message type is HvMessageTypeNone). The target writes a slot
    /// before it raises the interrupt, so the call that interrupt causes sees it.
    @inline(__always)
    @inlinable func messageWaiting(_ vp: Int, slots: UInt32) -> Bool {
        let sim = page(vp, 0)
        var types: UInt32 = 0
        var mask = slots
        while mask != 0 {
            let sint = mask.trailingZeroBitCount
            mask &= mask &- 1
            types |= xv_load_acquire_u32(sim + HvMessagePageLayout.sintMessage.offset(ofElement: sint) + HvMessageLayout.headerMessageType.offset)
        }
        return types != 0
    }

    /// Drains the SIM page, one caller at a time: a caller that finds another draining leaves
    /// word (`DrainState.again`) and returns, and the drainer goes round once more.
    @inlinable func drainMessagesInTurn(_ vp: Int) {
        let state = drainState(vp)
        var s = xv_load_acquire_u32(state)
        while true {
            if s & DrainState.running != 0 {
                if xv_cas_u32(state, s, s | DrainState.again) { return }
            } else if xv_cas_u32(state, s, DrainState.running) {
                break
            }
            s = xv_load_acquire_u32(state)
        }
        while true {
            drainMessages(vp)
            if xv_cas_u32(state, DrainState.running, 0) { break }
            // Asked again meanwhile: clear the request and go round.
            xv_store_release_u32(state, DrainState.running)
        }
    }

    /// Event flags of the event SINTs below the slot high-water mark: each set flag is taken
    /// (atomically cleared) and its port made pending (TLFS "Event Flags": the guest clears the
    /// flags it consumes). A flag is taken under its port's lock, after checking that the slot
    /// still maps to that port, so an event for a port being closed is never carried to the
    /// port that takes its slot next. True when a flag was set (taken here or by a concurrent
    /// caller).
    @inline(__always)
    @discardableResult
    @inlinable func takeEventFlags(_ vp: Int) -> Bool {
        let highWater = slots.highWater
        guard highWater > 0 else { return false }
        var saw = false
        let sief = page(vp, 1)
        var base = 0
        var sint = EventFlagSlots.firstEventSINT
        while base < highWater {
            let area = sief + HvSynicEventFlagsPageLayout.sinteventFlags.offset(ofElement: sint)
            let words = (min(EventFlagSlots.flagsPerSINT, highWater - base) + 63) / 64
            for w in 0..<words {
                let word = area + 8 * w
                var bits = UInt64(littleEndian: xv_atomic_load_u64(word))
                if bits != 0 { saw = true }
                while bits != 0 {
                    let bit = bits.trailingZeroBitCount
                    bits &= bits &- 1
                    takeFlag(word, bit: bit, slot: base + 64 * w + bit, vp: vp)
                }
            }
            base += EventFlagSlots.flagsPerSINT
            sint += 1
        }
        return saw
    }

    @inline(__always)
    @inlinable func takeFlag(_ word: UnsafeMutableRawPointer, bit: Int, slot k: Int, vp: Int) {
        let mask = (UInt64(1) << UInt64(bit)).littleEndian
        // A slot reassigned between the load and the lock is read again (its new port's flag).
        for _ in 0..<4 {
            let port = slots.port(ofSlot: k)
            guard port != 0 else {
                // The slot is free: a flag its last port left behind.
                _ = xv_atomic_fetch_and_u64(word, ~mask)
                return
            }
            var moved = false
            let r = domain.deliver(port) { c in
                guard slots.port(ofSlot: k) == port else {
                    moved = true
                    return false
                }
                // Only a port that can be signalled from outside takes the event; one being
                // freed leaves the flag to the close that withdraws its slot.
                guard c.state == .interdomain || c.state == .unbound else { return false }
                return xv_atomic_fetch_and_u64(word, ~mask) & mask != 0
            }
            if let target = r.upcall { raiseUpcall(domain, vcpu: target, from: vp) }
            if !moved { return }
        }
    }

    /// Every message in the VP's SIM page: each is judged (`applyControlMessage`), applied only
    /// when authenticated and consistent with the root's records, counted, and its slot freed,
    /// with EOM written when the hypervisor has more waiting (TLFS "Message Buffers"). The
    /// other SINTs' slots are drained too, so that a message the layer never asked for cannot
    /// hold a slot. The caller has the VP's turn (`drainMessagesInTurn`).
    @inline(__always)
    @inlinable func drainMessages(_ vp: Int) {
        let sim = page(vp, 0)
        for sint in 0..<Int(SynICLimits.sintCount) { drainSlot(vp, sim, sint: sint) }
    }

    @inlinable func drainSlot(_ vp: Int, _ sim: UnsafeMutableRawPointer, sint: Int) {
        let slot = sim + HvMessagePageLayout.sintMessage.offset(ofElement: sint)
        while UInt32(littleEndian: xv_load_acquire_u32(slot + HvMessageLayout.headerMessageType.offset)) != 0 {
            let type = UInt32(littleEndian: xv_load_acquire_u32(slot + HvMessageLayout.headerMessageType.offset))
            let timer = sint == Int(ControlIDs.timerSint) && type == HVMessageType.timerExpired.rawValue
            if !timer {
                let verdict = sint == Int(ControlIDs.sint) ? applyControlMessage(UnsafeRawPointer(slot)) : .wrongSint
                countControlMessage(verdict)
            }
            // TLFS "Message Buffers": free the slot, then read MessagePending (both sequentially
            // consistent, against the hypervisor's set-then-look), then EOM if it was set.
            xv_atomic_store_u32(slot + HvMessageLayout.headerMessageType.offset, 0)
            let flags = HVMessageFlags(rawValue: xv_atomic_load_u8(slot + HvMessageLayout.headerMessageFlags.offset))
            if flags.messagePending {
                _ = target.writeMSR(partition: partition, vp: VPIndex(UInt32(vp)), msr: .eom, value: 0)
            }
            // The vCPU's Xen timer (synthetic timer 0): after the slot is free, so a timer armed
            // again from here finds it free.
            if timer { domain.timerFired(vcpu: vp, fabric: self) }
        }
    }
}
