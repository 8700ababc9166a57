import CGuestAtomics
import GuestABI
import XenABI
import ViridianABI

/// The receiving side: the target raised an interrupt on one of the domain's VPs (an event
/// SINT, the control SINT, or a synthetic IPI). The embedder calls `interrupt(vp:vector:)`
/// where it would inject the vector; the layer drains what the SynIC holds for that VP and
/// raises the guest's upcall where Xen would.
extension XenViridianDomain {
    public func interrupt(vp: Int, vector: UInt8) {
        guard vp >= 0, vp < domain.vcpuCount else { return }
        if interrupting[vp] != 0 {
            // Raised again from inside (an EOM redelivering, an event we caused): the outer
            // call loops once more.
            interrupting[vp] = 2
            return
        }
        repeat {
            interrupting[vp] = 1
            drainMessages(vp)
            takeEventFlags(vp)
        } while interrupting[vp] == 2
        interrupting[vp] = 0
        if upcallRequested[vp] {
            upcallRequested[vp] = false
            deliverUpcall(vp)
        }
    }

    /// Event flags of the event SINTs below the slot high-water mark: each set flag is taken
    /// (atomically cleared) and its port made pending (TLFS "Event Flags": the guest clears the
    /// flags it consumes).
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
                guard xv_atomic_load_u64(word) != 0 else { continue }
                var bits = UInt64(littleEndian: xv_atomic_exchange_u64(word, 0))
                while bits != 0 {
                    let k = base + 64 * w + bits.trailingZeroBitCount
                    bits &= bits &- 1
                    let port = slots.portOfSlot[k]
                    guard port != 0 else { continue }
                    // Only a port that can be signalled from outside takes the event.
                    let r = domain.deliver(port) { $0.state == .interdomain || $0.state == .unbound }
                    if let target = r.upcall { raiseUpcall(domain, vcpu: target, from: vp) }
                }
            }
            base += EventFlagSlots.flagsPerSINT
            sint += 1
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
            controlMessages.count(verdict)
            let flags = HVMessageFlags(rawValue: slot.load(fromByteOffset: HvMessageLayout.headerMessageFlags.offset, as: UInt8.self))
            slot.storeBytes(of: 0, toByteOffset: HvMessageLayout.headerMessageType.offset, as: UInt32.self)
            if flags.messagePending {
                _ = target.writeMSR(partition: partition, vp: VPIndex(UInt32(vp)), msr: .eom, value: 0)
            }
        }
    }
}
