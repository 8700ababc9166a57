import GuestABI
import XenABI

/// The FIFO ABI: an event word per port in guest-supplied event-array pages (PENDING, MASKED,
/// LINKED, BUSY and a 17-bit LINK), and per vCPU a control block with a READY bit and a HEAD
/// per priority. Xen links a newly pending, unmasked event at the tail of its vCPU's queue for
/// its priority; the guest consumes from HEAD. Xen keeps the tails. Behaviour follows
/// xen-project/xen xen/common/event_fifo.c (4.17).
extension XenDomain {
    static var pendingBit: UInt32 { 1 << EventChannelFIFO.pending }
    static var maskedBit: UInt32 { 1 << EventChannelFIFO.masked }
    static var linkedBit: UInt32 { 1 << EventChannelFIFO.linked }

    /// evtchn_fifo_set_pending on the port's notify vCPU.
    func fifoSetPending(_ port: UInt32) -> Int? {
        guard let word = eventWord(port) else {
            // The event-array page is missing: remember, re-raise when it is added.
            update(port) { $0.savedPending = true }
            return nil
        }
        let c = ports[Int(port)]
        let vcpu = Int(c.notifyVCPU)
        let priority = Int(c.priority)
        _ = GuestWords.testAndSet(word, bit32: Int(EventChannelFIFO.pending))
        // No control block on that vCPU: the guest may not unmask before it maps one, so the
        // event stays pending and unlinked.
        guard let cb = controlBlock(vcpu) else { return nil }
        if GuestWords.load32(word) & Self.maskedBit != 0 { return nil }
        if GuestWords.testAndSet(word, bit32: Int(EventChannelFIFO.linked)) { return nil }

        // A port that was the tail of the queue it last sat on leaves that queue empty.
        let lastVCPU = Int(c.lastVCPU), lastPriority = Int(c.lastPriority)
        if lastVCPU < vcpuCount, vcpus[lastVCPU].queueTails[lastPriority] == port {
            vcpus[lastVCPU].queueTails[lastPriority] = 0
        }
        if lastVCPU != vcpu || lastPriority != priority {
            update(port) { $0.lastVCPU = UInt16(vcpu); $0.lastPriority = UInt8(priority) }
        }

        // Link after the tail when the tail is still linked; otherwise the queue is empty and
        // HEAD names this port.
        var linked = false
        let tail = vcpus[vcpu].queueTails[priority]
        if tail != 0, let tailWord = eventWord(tail) { linked = Self.setLink(tailWord, to: port) }
        if !linked {
            GuestWords.store32(cb + EvtchnFifoControlBlockLayout.head.offset(ofElement: priority), port)
        }
        vcpus[vcpu].queueTails[priority] = port
        if linked { return nil }
        if GuestWords.testAndSet(cb + EvtchnFifoControlBlockLayout.ready.offset, bit32: priority) { return nil }
        return markEventsPending(vcpu) ? vcpu : nil
    }

    /// evtchn_fifo_set_link: write LINK of the tail word, only while the tail is LINKED (the
    /// guest unlinks words it consumes). Other bits, BUSY included, are kept.
    static func setLink(_ tailWord: UnsafeMutableRawPointer, to port: UInt32) -> Bool {
        var w = GuestWords.load32(tailWord)
        while true {
            guard w & linkedBit != 0 else { return false }
            let new = (w & ~EventChannelFIFO.linkMask) | port
            let found = GuestWords.compareExchange32(tailWord, expected: w, desired: new)
            if found == w { return true }
            w = found
        }
    }

    /// evtchn_fifo_unmask: clear MASKED, and re-raise when PENDING.
    func fifoUnmask(_ port: UInt32) -> Int? {
        guard let word = eventWord(port) else { return nil }
        _ = GuestWords.testAndClear(word, bit32: Int(EventChannelFIFO.masked))
        guard GuestWords.load32(word) & Self.pendingBit != 0 else { return nil }
        return fifoSetPending(port)
    }

    /// Maps `vcpu`'s control block; the first one switches the domain to FIFO (Xen
    /// evtchn_fifo_init_control, map_control_block and setup_ports). The caller validated the
    /// vCPU, offset and alignment.
    func fifoInitControl(vcpu: Int, control: GuestPhysicalAddress) -> LayerOutcome {
        guard !vcpus[vcpu].hasControlBlock else { return .invalidArgument }
        guard memory.hostAddress(of: control.frame) != nil else { return .invalidArgument }
        vcpus[vcpu].hasControlBlock = true
        vcpus[vcpu].controlBlock = control
        if !usesFIFO {
            // setup_ports: carry each bound port's 2-level pending state over and give it the
            // default priority; the events are raised when their event-array page arrives.
            for p in 1..<validPorts {
                let pending = twoLevelIsPending(p)
                update(p) {
                    if pending { $0.savedPending = true }
                    $0.priority = UInt8(EventChannelFIFO.priorityDefault)
                }
            }
            usesFIFO = true
            eventArrayPages = 0
            for v in 0..<vcpuCount { vcpus[v].queueTails = InlineArray(repeating: 0) }
        }
        return .ok
    }

    /// Adds one event-array page (Xen add_page_to_event_array), re-raising events that were
    /// pending while their page was missing. Returns the vCPUs to upcall through `raise`.
    func fifoExpandArray(_ frame: GuestFrameNumber, raise: (Int) -> Void) -> LayerOutcome {
        guard usesFIFO else { return .notSupported }
        guard eventArrayPages < Self.maxEventArrayPages else { return .portsExhausted }
        guard memory.hostAddress(of: frame) != nil else { return .invalidArgument }
        eventArray[eventArrayPages] = frame
        let first = UInt32(eventArrayPages * Self.eventWordsPerPage)
        eventArrayPages += 1
        var port = first
        while port < first + UInt32(Self.eventWordsPerPage) && isValid(port) {
            if ports[Int(port)].savedPending {
                update(port) { $0.savedPending = false }
                if let v = fifoSetPending(port) { raise(v) }
            }
            port += 1
        }
        return .ok
    }

    /// Back to the 2-level ABI (Xen evtchn_fifo_destroy, on EVTCHNOP_reset). The guest's
    /// control blocks and event words are left as they are; Xen stops using them.
    func fifoDestroy() {
        usesFIFO = false
        eventArrayPages = 0
        for v in 0..<vcpuCount {
            vcpus[v].hasControlBlock = false
            vcpus[v].queueTails = InlineArray(repeating: 0)
        }
    }
}
