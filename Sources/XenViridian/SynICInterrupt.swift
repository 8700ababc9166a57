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
    /// delivers the next message). One caller drains at a time: the others leave word that
    /// there is more to do, and the drainer goes round again (`DrainState`).
    public func interrupt(vp: Int, vector: UInt8) {
        guard vp >= 0, vp < domain.vcpuCount else { return }
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
            takeEventFlags(vp)
            // An upcall another vCPU asked for with its IPI. Only the drainer gets here, so a
            // load and a store do: a request raised before the store is served by the delivery
            // after it, one raised after it finds this call still running (its IPI asks it to
            // go round) or none (its IPI makes the next drainer).
            if xv_load_acquire_u32(upcallRequested + vp) != 0 {
                xv_store_release_u32(upcallRequested + vp, 0)
                deliverUpcall(vp)
            }
            if xv_cas_u32(state, DrainState.running, 0) { break }
            // Asked again meanwhile: clear the request and go round.
            xv_store_release_u32(state, DrainState.running)
        }
    }

    /// Event flags of the event SINTs below the slot high-water mark: each set flag is taken
    /// (atomically cleared) and its port made pending (TLFS "Event Flags": the guest clears the
    /// flags it consumes). A flag is taken under its port's lock, after checking that the slot
    /// still maps to that port, so an event for a port being closed is never carried to the
    /// port that takes its slot next.
    @inline(__always)
    func takeEventFlags(_ vp: Int) {
        let highWater = slots.highWater
        guard highWater > 0 else { return }
        let sief = page(vp, 1)
        var base = 0
        var sint = EventFlagSlots.firstEventSINT
        while base < highWater {
            let area = sief + HvSynicEventFlagsPageLayout.sinteventFlags.offset(ofElement: sint)
            let words = (min(EventFlagSlots.flagsPerSINT, highWater - base) + 63) / 64
            for w in 0..<words {
                let word = area + 8 * w
                var bits = UInt64(littleEndian: xv_atomic_load_u64(word))
                while bits != 0 {
                    let bit = bits.trailingZeroBitCount
                    bits &= bits &- 1
                    takeFlag(word, bit: bit, slot: base + 64 * w + bit, vp: vp)
                }
            }
            base += EventFlagSlots.flagsPerSINT
            sint += 1
        }
    }

    @inline(__always)
    func takeFlag(_ word: UnsafeMutableRawPointer, bit: Int, slot k: Int, vp: Int) {
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
    /// hold a slot; one OR over their type words keeps that off the common path.
    @inline(__always)
    func drainMessages(_ vp: Int) {
        let sim = page(vp, 0)
        drainSlot(vp, sim, sint: Int(ControlIDs.sint))
        var others: UInt32 = 0
        for sint in 1..<Int(SynICLimits.sintCount) {
            others |= sim.load(fromByteOffset: HvMessagePageLayout.sintMessage.offset(ofElement: sint) + HvMessageLayout.headerMessageType.offset,
                               as: UInt32.self)
        }
        guard others != 0 else { return }
        for sint in 1..<Int(SynICLimits.sintCount) { drainSlot(vp, sim, sint: sint) }
    }

    func drainSlot(_ vp: Int, _ sim: UnsafeMutableRawPointer, sint: Int) {
        let slot = sim + HvMessagePageLayout.sintMessage.offset(ofElement: sint)
        while UInt32(littleEndian: slot.load(fromByteOffset: HvMessageLayout.headerMessageType.offset, as: UInt32.self)) != 0 {
            let verdict = sint == Int(ControlIDs.sint) ? applyControlMessage(UnsafeRawPointer(slot)) : .wrongSint
            countControlMessage(verdict)
            let flags = HVMessageFlags(rawValue: slot.load(fromByteOffset: HvMessageLayout.headerMessageFlags.offset, as: UInt8.self))
            slot.storeBytes(of: 0, toByteOffset: HvMessageLayout.headerMessageType.offset, as: UInt32.self)
            if flags.messagePending {
                _ = target.writeMSR(partition: partition, vp: VPIndex(UInt32(vp)), msr: .eom, value: 0)
            }
        }
    }
}
