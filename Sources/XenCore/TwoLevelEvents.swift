import GuestABI
import XenABI

/// The 2-level ABI: shared_info's evtchn_pending and evtchn_mask bitmaps (64 words of 64
/// bits), each vCPU's evtchn_pending_sel selector and evtchn_upcall_pending byte. The order of
/// the bit operations is Xen's (xen-project/xen xen/common/event_2l.c), so a guest running
/// concurrently sees the same intermediate states.
extension XenDomain {
    @inline(__always)
    @inlinable static func bitmapWord(_ si: UnsafeMutableRawPointer, _ field: ABIField, _ port: UInt32) -> UnsafeMutableRawPointer {
        si + field.offset(ofElement: Int(port >> 6))
    }

    /// evtchn_2l_set_pending: set the pending bit; when it was clear and the port is unmasked,
    /// set the selector bit; when that was clear, mark the upcall pending.
    @inlinable func twoLevelSetPending(_ port: UInt32) -> Int? {
        guard port < EventChannel2L.nrChannels, let si = sharedInfo else { return nil }
        if GuestWords.testAndSet(Self.bitmapWord(si, SharedInfoLayout.evtchnPending, port), bit64: Int(port & 63)) { return nil }
        // evtchn_check_pollers: a poller of this port wakes, masked or not.
        wakeIfParked(nil, port: port)
        if GuestWords.test(Self.bitmapWord(si, SharedInfoLayout.evtchnMask, port), bit64: Int(port & 63)) { return nil }
        return raiseSelector(si, port)
    }

    /// evtchn_2l_unmask: clear the mask bit; when it was set and the port is pending, set the
    /// selector bit and, when that was clear, mark the upcall pending.
    @inlinable func twoLevelUnmask(_ port: UInt32) -> Int? {
        guard port < EventChannel2L.nrChannels, let si = sharedInfo else { return nil }
        guard GuestWords.testAndClear(Self.bitmapWord(si, SharedInfoLayout.evtchnMask, port), bit64: Int(port & 63)),
              GuestWords.test(Self.bitmapWord(si, SharedInfoLayout.evtchnPending, port), bit64: Int(port & 63)) else { return nil }
        return raiseSelector(si, port)
    }

    @inline(__always)
    @inlinable func raiseSelector(_ si: UnsafeMutableRawPointer, _ port: UInt32) -> Int? {
        let vcpu = Int(channelPointer(port).pointee.notifyVCPU)
        guard let info = vcpuInfo(si, vcpu) else { return nil }
        let selector = info + VcpuInfoLayout.evtchnPendingSel.offset
        if GuestWords.testAndSet(selector, bit64: Int(port >> 6)) { return nil }
        guard Self.markEventsPending(info: info) else { return nil }
        wakeIfParked(vcpu, port: nil)
        return vcpu
    }

    /// The 2-level pending bit of `port` (for FIFO's switch-over, Xen setup_ports).
    @inlinable func twoLevelIsPending(_ port: UInt32) -> Bool {
        guard port < EventChannel2L.nrChannels, let si = sharedInfo else { return false }
        return GuestWords.test(Self.bitmapWord(si, SharedInfoLayout.evtchnPending, port), bit64: Int(port & 63))
    }
}
