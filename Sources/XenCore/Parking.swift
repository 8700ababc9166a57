import CGuestAtomics
import GuestABI
import XenABI

/// What the embedder's thread does for a vCPU after a hypercall that parks it.
public enum XenParkRequest: Sendable, Equatable {
    /// SCHEDOP_block: sleep until an upcall is raised for the vCPU (`XenVCPUWaker.wake`).
    case block
    /// SCHEDOP_poll: sleep until a polled port is pending (`wake`), or until Xen system time
    /// `deadline` (ns) when there is one; then call `XenDomain.resume`.
    case poll(deadline: UInt64?)
}

/// How the layer wakes a parked vCPU's thread: called on the delivering thread, possibly with
/// a port lock held, so it only signals (a semaphore, a futex, an eventfd) and never calls into
/// the layer. It may come before the thread has gone to sleep: the thread's wait must count it.
public protocol XenVCPUWaker: AnyObject {
    /// Wakes the thread running `vcpu` of `domain` if it sleeps in SCHEDOP_block or poll, or makes its next wait return at once. May be called with a port lock held: signal only.
    func wake(domain: DomainID, vcpu: Int)
}

/// SCHEDOP_block and SCHEDOP_poll (xen-project/xen xen/common/sched/core.c do_sched_op,
/// do_poll, vcpu_block_enable_events; xen/common/event_channel.c evtchn_check_pollers; XTF
/// xsa-221). The hypercall returns 0 to the guest and leaves a park request
/// (`parkRequest`): the embedder's thread sleeps until `XenVCPUWaker.wake` or the poll's
/// deadline, in a loop such as `while domain.parkRequest(v) != nil { wait }`. An event for the
/// vCPU clears the request before waking it, once.
extension XenDomain {
    /// The park request of `vcpu`, nil when it should run.
    @inlinable public func parkRequest(_ vcpu: Int) -> XenParkRequest? {
        guard vcpu >= 0, vcpu < vcpuCount else { return nil }
        let parked = xv_load_acquire_u64(words + DomainWords.parked)
        if parked & (1 << UInt64(vcpu)) != 0 { return .block }
        guard parked & (1 << UInt64(32 + vcpu)) != 0 else { return nil }
        let deadline = xv_load_acquire_u64(timerWord(vcpu, VCPUWords.pollTimeout))
        return .poll(deadline: deadline == 0 ? nil : deadline)
    }

    /// The embedder resumes `vcpu` without a wake (its poll deadline passed): the request goes.
    @inlinable public func resume(_ vcpu: Int) {
        guard vcpu >= 0, vcpu < vcpuCount else { return }
        _ = xv_atomic_fetch_and_u64(words + DomainWords.parked, ~(1 << UInt64(vcpu) | 1 << UInt64(32 + vcpu)))
    }

    /// The delivery path's check: a blocked `vcpu` whose upcall was raised, or a vCPU polling
    /// `port` (or any port), wakes. One relaxed load while nobody is parked.
    @inline(__always)
    @inlinable func wakeIfParked(_ vcpu: Int?, port: UInt32?) {
        guard xv_load_relaxed_u64(words + DomainWords.parked) != 0 else { return }
        wakeParked(vcpu, port: port)
    }

    @inlinable func wakeParked(_ vcpu: Int?, port: UInt32?) {
        let parked = xv_load_acquire_u64(words + DomainWords.parked)
        for v in 0..<vcpuCount {
            let blockBit = UInt64(1) << UInt64(v), pollBit = UInt64(1) << UInt64(32 + v)
            var bits: UInt64 = 0
            if let vcpu, vcpu == v { bits = (blockBit | pollBit) & parked }
            if let port, parked & pollBit != 0 {
                let polled = xv_load_acquire_u32(timerWord(v, VCPUWords.pollPort))
                if polled == 0 || polled == port { bits |= pollBit }
            }
            guard bits != 0 else { continue }
            // Whoever clears the bit wakes: one wake per park.
            if xv_atomic_fetch_and_u64(words + DomainWords.parked, ~bits) & bits != 0 {
                wakerBox?._withUnsafeGuaranteedRef { $0.waker.wake(domain: id, vcpu: v) }
            }
        }
    }

    /// SCHEDOP_block: event delivery enabled (vcpu_info's upcall mask cleared), then parked
    /// unless an upcall is already pending.
    @inlinable func schedBlock(_ v: Int) -> Int64 {
        guard let info = vcpuInfoPointer(v) else { return 0 }
        xv_store_release_u8(info + VcpuInfoLayout.evtchnUpcallMask.offset, 0)
        _ = xv_atomic_fetch_or_u64(words + DomainWords.parked, 1 << UInt64(v))
        // Looked at after parking, so an upcall raised in between is not missed.
        if xv_load_acquire_u8(info + VcpuInfoLayout.evtchnUpcallPending.offset) != 0 { resume(v) }
        return 0
    }

    /// SCHEDOP_poll (do_poll): more than 128 ports is -EINVAL; the vCPU is marked polling
    /// first; an upcall already pending, or a listed port already pending, ends it at once (0);
    /// a port that cannot be read is -EFAULT and one that is not valid -EINVAL (XTF xsa-221:
    /// never a trap), either way not parked. Otherwise the vCPU stays parked until one of its
    /// ports (any port, when it listed several or none) becomes pending, or the timeout.
    @inlinable func schedPoll(_ v: Int, arg: UInt64) -> Int64 {
        guard memory.argumentReadable(at: arg, size: SchedPollLayout.size),
              let list = memory.argument(UInt64.self, at: arg, SchedPollLayout.ports),
              let count = memory.argument(UInt32.self, at: arg, SchedPollLayout.nrPorts),
              let timeout = memory.argument(UInt64.self, at: arg, SchedPollLayout.timeout) else {
            return XenErrno.efault.hypercallReturnValue
        }
        guard count <= 128 else { return XenErrno.einval.hypercallReturnValue }
        xv_store_release_u32(timerWord(v, VCPUWords.pollPort), 0)
        xv_store_release_u64(timerWord(v, VCPUWords.pollTimeout), timeout)
        _ = xv_atomic_fetch_or_u64(words + DomainWords.parked, 1 << UInt64(32 + v))
        if let info = vcpuInfoPointer(v), xv_load_acquire_u8(info + VcpuInfoLayout.evtchnUpcallPending.offset) != 0 {
            resume(v)
            return 0
        }
        var last: UInt32 = 0
        var i: UInt32 = 0
        while i < count {
            guard let port = memory.argument(UInt32.self, at: list &+ UInt64(4 * i), ABIField(offset: 0, size: 4)) else {
                resume(v)
                return XenErrno.efault.hypercallReturnValue
            }
            guard isValid(port) else {
                resume(v)
                return XenErrno.einval.hypercallReturnValue
            }
            if isPending(port) {
                resume(v)
                return 0
            }
            last = port
            i += 1
        }
        if count == 1 { xv_store_release_u32(timerWord(v, VCPUWords.pollPort), last) }
        return 0
    }

    /// Whether `port`'s pending bit is set, in the ABI in use (evtchn_is_pending).
    @inlinable func isPending(_ port: UInt32) -> Bool {
        if usesFIFO {
            guard let word = eventWord(port) else { return false }
            return GuestWords.load32(word) & (1 << EventChannelFIFO.pending) != 0
        }
        return twoLevelIsPending(port)
    }
}
