import CGuestAtomics
import GuestABI
import XenABI

/// The FIFO ABI: an event word per port in guest-supplied event-array pages (PENDING, MASKED,
/// LINKED, BUSY and a 17-bit LINK), and per vCPU a control block with a READY bit and a HEAD
/// per priority. Xen links a newly pending, unmasked event at the tail of its vCPU's queue for
/// its priority; the guest consumes from HEAD. Xen keeps the tails. Behaviour follows
/// xen-project/xen xen/common/event_fifo.c (4.17).
extension XenDomain {
    @inlinable static var pendingBit: UInt32 { 1 << EventChannelFIFO.pending }
    @inlinable static var maskedBit: UInt32 { 1 << EventChannelFIFO.masked }
    @inlinable static var linkedBit: UInt32 { 1 << EventChannelFIFO.linked }

    /// The tail of `vcpu`'s queue for `priority`, and its lock (Xen's per-queue lock,
    /// xen/common/event_fifo.c `struct evtchn_fifo_queue`).
    @inline(__always)
    @inlinable func queueTail(_ vcpu: Int, _ priority: Int) -> UnsafeMutablePointer<UInt32> {
        (vcpuWords + vcpu * VCPUWords.stride + VCPUWords.queueTails + 4 * priority).assumingMemoryBound(to: UInt32.self)
    }

    @inline(__always)
    @inlinable func queueLock(_ vcpu: Int, _ priority: Int) -> UnsafeMutableRawPointer {
        vcpuWords + vcpu * VCPUWords.stride + VCPUWords.queueLocks + 4 * priority
    }

    /// evtchn_fifo_set_pending on the port's notify vCPU. The caller holds the port's lock;
    /// the queue is changed under its own lock, as Xen's lock_old_queue and q->lock do.
    @inlinable func fifoSetPending(_ port: UInt32) -> Int? {
        let c = channelPointer(port)
        guard let word = eventWord(port) else {
            // The event-array page is missing: remember, re-raise when it is added.
            c.pointee.savedPending = true
            return nil
        }
        let vcpu = Int(c.pointee.notifyVCPU)
        let priority = Int(c.pointee.priority)
        let wasPending = GuestWords.testAndSet(word, bit32: Int(EventChannelFIFO.pending))
        // evtchn_fifo_set_pending checks the pollers once the event is pending.
        if !wasPending { wakeIfParked(nil, port: port) }
        // No control block on that vCPU: the guest may not unmask before it maps one, so the
        // event stays pending and unlinked.
        guard let cb = controlBlock(vcpu) else { return nil }
        if GuestWords.load32(word) & Self.maskedBit != 0 { return nil }
        if GuestWords.testAndSet(word, bit32: Int(EventChannelFIFO.linked)) { return nil }
        // A port that was the tail of the queue it last sat on leaves that queue empty.
        let lastVCPU = Int(c.pointee.lastVCPU), lastPriority = Int(c.pointee.lastPriority)
        if lastVCPU != vcpu || lastPriority != priority {
            if lastVCPU < vcpuCount {
                xv_spin_lock(queueLock(lastVCPU, lastPriority))
                if queueTail(lastVCPU, lastPriority).pointee == port { queueTail(lastVCPU, lastPriority).pointee = 0 }
                xv_spin_unlock(queueLock(lastVCPU, lastPriority))
            }
            c.pointee.lastVCPU = UInt16(vcpu)
            c.pointee.lastPriority = UInt8(priority)
        }
        // Link after the tail when the tail is still linked; otherwise the queue is empty and
        // HEAD names this port.
        xv_spin_lock(queueLock(vcpu, priority))
        var linked = false
        let tail = queueTail(vcpu, priority).pointee
        if tail != 0, tail != port, let tailWord = eventWord(tail) { linked = Self.setLink(tailWord, to: port) }
        if !linked {
            GuestWords.store32(cb + EvtchnFifoControlBlockLayout.head.offset(ofElement: priority), port)
        }
        queueTail(vcpu, priority).pointee = port
        xv_spin_unlock(queueLock(vcpu, priority))
        if linked { return nil }
        if GuestWords.testAndSet(cb + EvtchnFifoControlBlockLayout.ready.offset, bit32: priority) { return nil }
        return markEventsPending(vcpu) ? vcpu : nil
    }

    /// evtchn_fifo_set_link: write LINK of the tail word, only while the tail is LINKED (the
    /// guest unlinks words it consumes). Other bits, BUSY included, are kept.
    @inlinable static func setLink(_ tailWord: UnsafeMutableRawPointer, to port: UInt32) -> Bool {
        var w = GuestWords.load32(tailWord)
        while true {
            guard w & linkedBit != 0 else { return false }
            let new = (w & ~EventChannelFIFO.linkMask) | port
            let found = GuestWords.compareExchange32(tailWord, expected: w, desired: new)
            if found == w { return true }
            w = found
        }
    }

    /// evtchn_fifo_unmask: clear MASKED, and re-raise when PENDING. The caller holds the
    /// port's lock.
    @inlinable func fifoUnmask(_ port: UInt32) -> Int? {
        guard let word = eventWord(port) else { return nil }
        _ = GuestWords.testAndClear(word, bit32: Int(EventChannelFIFO.masked))
        guard GuestWords.load32(word) & Self.pendingBit != 0 else { return nil }
        return fifoSetPending(port)
    }

    /// Maps `vcpu`'s control block; the first one switches the domain to FIFO (Xen
    /// evtchn_fifo_init_control, map_control_block and setup_ports). The caller validated the
    /// vCPU, offset and alignment, and holds the event lock. The switch holds every port's
    /// lock, so no send, unmask or arriving event sees half of it.
    @inlinable func fifoInitControl(vcpu: Int, control: GuestPhysicalAddress) -> LayerOutcome {
        guard controlBlockAddress(vcpu) == nil else { return .invalidArgument }
        guard memory.hostAddress(of: control.frame) != nil else { return .invalidArgument }
        if usesFIFO {
            publishControlBlock(vcpu, control)
            return .ok
        }
        let valid = lockAllChannels()
        publishControlBlock(vcpu, control)
        // setup_ports: carry each bound port's 2-level pending state over and give it the
        // default priority; the events are raised when their event-array page arrives.
        for p in 1..<valid {
            let pending = twoLevelIsPending(p)
            let c = channelPointer(p)
            if pending { c.pointee.savedPending = true }
            c.pointee.priority = UInt8(EventChannelFIFO.priorityDefault)
        }
        xv_store_release_u32(words + DomainWords.eventArrayPages, 0)
        for v in 0..<vcpuCount {
            for q in 0..<16 { queueTail(v, q).pointee = 0 }
        }
        xv_store_release_u32(words + DomainWords.usesFIFO, 1)
        unlockAllChannels(valid)
        return .ok
    }

    @inlinable func publishControlBlock(_ vcpu: Int, _ control: GuestPhysicalAddress?) {
        xv_store_release_u64(vcpuWords + vcpu * VCPUWords.stride + VCPUWords.controlBlock, control.map { $0.rawValue | 1 } ?? 0)
    }

    /// Adds one event-array page (Xen add_page_to_event_array), re-raising events that were
    /// pending while their page was missing. Returns the vCPUs to upcall through `raise`,
    /// called with no lock but the event lock held. The caller holds the event lock.
    @inlinable func fifoExpandArray(_ frame: GuestFrameNumber, raise: (Int) -> Void) -> LayerOutcome {
        guard usesFIFO else { return .notSupported }
        let pages = eventArrayPages
        guard pages < Self.maxEventArrayPages else { return .portsExhausted }
        guard memory.hostAddress(of: frame) != nil else { return .invalidArgument }
        xv_store_release_u64(eventArray + pages, frame.rawValue)
        xv_store_release_u32(words + DomainWords.eventArrayPages, UInt32(pages + 1))
        let first = UInt32(pages * Self.eventWordsPerPage)
        var port = first
        while port < first + UInt32(Self.eventWordsPerPage) && isValid(port) {
            let upcall: Int? = withChannel(port) {
                guard $0.savedPending else { return nil }
                $0.savedPending = false
                return fifoSetPending(port)
            }
            if let v = upcall { raise(v) }
            port += 1
        }
        return .ok
    }

    /// Back to the 2-level ABI (Xen evtchn_fifo_destroy, on EVTCHNOP_reset). The guest's
    /// control blocks and event words are left as they are; Xen stops using them. The caller
    /// holds the event lock; every port's lock is taken for the switch.
    @inlinable func fifoDestroy() {
        let valid = lockAllChannels()
        xv_store_release_u32(words + DomainWords.usesFIFO, 0)
        xv_store_release_u32(words + DomainWords.eventArrayPages, 0)
        for v in 0..<vcpuCount {
            publishControlBlock(v, nil)
            for q in 0..<16 { queueTail(v, q).pointee = 0 }
        }
        unlockAllChannels(valid)
    }
}
