import CGuestAtomics
import GuestABI
import ViridianABI

/// One SIM page slot as the hypervisor and the guest share it (TLFS "SynIC Message Page",
/// "Message Buffers"). The guest may look at its SIM page at any time and on any thread, so
/// the hypervisor writes a message's type word last, and MessagePending and the type are
/// handled so that a slot freed while a sender queues behind it is never left undrained.
@usableFromInline enum SIMSlot {
    @inlinable static var size: Int { Int(SynICLimits.messageSize) }

    /// Whether the slot is free (message type HvMessageTypeNone). Sequentially consistent: the
    /// guest frees a slot with a sequentially consistent store and then reads MessagePending,
    /// and the hypervisor sets MessagePending and then reads the type, so one of them always sees
    /// the other (`deliverMessage`).
    @inline(__always)
    @inlinable static func isFree(_ slot: UnsafeMutableRawPointer) -> Bool {
        UInt32(littleEndian: xv_atomic_load_u32(slot + HvMessageLayout.headerMessageType.offset)) == HVMessageType.none.rawValue
    }

    /// Sets MessagePending in an occupied slot's header: it tells the guest to write EOM once
    /// it has freed the slot, so that the next message can be delivered (TLFS "Message
    /// Buffers"). A locked OR, since the guest owns the rest of the slot meanwhile.
    @inlinable static func setMessagePending(_ slot: UnsafeMutableRawPointer) {
        var pending = HVMessageFlags(rawValue: 0)
        pending.messagePending = true
        _ = xv_atomic_fetch_or_u8(slot + HvMessageLayout.headerMessageFlags.offset, pending.rawValue)
    }

    /// For a sender that found the slot busy: sets MessagePending, then looks again. True when
    /// the guest freed the slot meanwhile (it may have missed the flag, so the sender delivers
    /// now instead of waiting for an EOM that may not come).
    @inlinable static func pendAndRecheck(_ slot: UnsafeMutableRawPointer) -> Bool {
        setMessagePending(slot)
        return isFree(slot)
    }

    /// Writes a whole message into a free slot, the type word last (a release store), so a
    /// guest that sees the type sees the rest: the guest may look at its SIM page at any time,
    /// on any thread. `pending` replaces the message's MessagePending flag when given.
    @inlinable static func publishMessage(_ slot: UnsafeMutableRawPointer, from message: UnsafeRawPointer, pending: Bool? = nil) {
        let typeEnd = HvMessageLayout.headerMessageType.offset + 4
        (slot + typeEnd).copyMemory(from: message + typeEnd, byteCount: size - typeEnd)
        if let pending {
            let at = HvMessageLayout.headerMessageFlags.offset
            var flags = HVMessageFlags(rawValue: slot.load(fromByteOffset: at, as: UInt8.self))
            flags.messagePending = pending
            slot.storeBytes(of: flags.rawValue, toByteOffset: at, as: UInt8.self)
        }
        xv_store_release_u32(slot + HvMessageLayout.headerMessageType.offset,
                             message.loadUnaligned(fromByteOffset: HvMessageLayout.headerMessageType.offset, as: UInt32.self))
    }
}
