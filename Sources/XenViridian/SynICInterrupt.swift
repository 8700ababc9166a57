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
            drainControlMessages(vp)
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
        guard highWater > 0, let sief = domain.memory.hostAddress(of: frame(vp, 1)) else { return }
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
                    guard port != 0, let target = domain.setPending(port) else { continue }
                    raiseUpcall(domain, vcpu: target, from: vp)
                }
            }
            base += EventFlagSlots.flagsPerSINT
            sint += 1
        }
    }

    /// Control messages in the SINT 0 slot: apply each, free the slot, and write EOM when the
    /// hypervisor has more waiting (TLFS "Message Buffers").
    func drainControlMessages(_ vp: Int) {
        guard let sim = domain.memory.hostAddress(of: frame(vp, 0)) else { return }
        let slot = sim + HvMessagePageLayout.sintMessage.offset(ofElement: Int(EventFlagSlots.controlSINT))
        while true {
            let type = UInt32(littleEndian: slot.load(fromByteOffset: HvMessageLayout.headerMessageType.offset, as: UInt32.self))
            guard type != 0 else { return }
            let payload = slot + HvMessageLayout.payload.offset
            let port = UInt32(littleEndian: payload.load(fromByteOffset: ControlMessage.portOffset, as: UInt32.self))
            let from = DomainID(UInt16(littleEndian: payload.load(fromByteOffset: ControlMessage.fromDomainOffset, as: UInt16.self)))
            let fromPort = UInt32(littleEndian: payload.load(fromByteOffset: ControlMessage.fromPortOffset, as: UInt32.self))
            switch type {
            case ControlMessage.bound: _ = domain.peerBound(port, to: from, remotePort: fromPort)
            case ControlMessage.closed: domain.peerClosed(port, by: from)
            default: break
            }
            let flags = HVMessageFlags(rawValue: slot.load(fromByteOffset: HvMessageLayout.headerMessageFlags.offset, as: UInt8.self))
            slot.storeBytes(of: 0, toByteOffset: HvMessageLayout.headerMessageType.offset, as: UInt32.self)
            if flags.messagePending {
                _ = target.writeMSR(partition: partition, vp: VPIndex(UInt32(vp)), msr: .eom, value: 0)
            }
        }
    }
}
