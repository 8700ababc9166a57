import GuestABI
import XenABI

/// One Xen domain's event-channel state and the Xen semantics that touch only that domain: the
/// port table, the 2-level and FIFO pending/mask/link logic on the domain's own guest memory,
/// and marking a vCPU's upcall pending. Nothing here reaches another domain or another vCPU's
/// interrupt: those effects go through an `EventFabric` (direct in XenNative, Viridian in
/// XenViridian), which is what makes the native baseline and the translation comparable.
///
/// Storage is sized at creation (`maxPort + 1` ports, the vCPUs, the FIFO event-array frame
/// list); nothing allocates afterwards. Not thread-safe: the embedder serialises calls into one
/// domain. Words shared with the guest are updated atomically, because the guest's vCPUs run.
public final class XenDomain<Memory: GuestMemory> {
    public let id: DomainID
    public let memory: Memory
    public let vcpuCount: Int
    public let maxPort: UInt32
    public let sharedInfoFrame: GuestFrameNumber
    /// The guest-visible identity (CPUID leaves, hypercall-page MSR, hypercall classes).
    public let identity: XenGuestIdentity

    let ports: UnsafeMutablePointer<EventChannel>
    /// Ports below this are valid (Xen `valid_evtchns`): it grows a bucket at a time.
    var validPorts: UInt32 = 0
    /// No port below this is free: where the lowest-free search starts (an index, not a
    /// change of Xen's lowest-first choice).
    var freeSearchStart: UInt32 = 1
    let vcpus: UnsafeMutablePointer<VCPUEventState>
    /// The FIFO ABI is in use (EVTCHNOP_init_control succeeded once; EVTCHNOP_reset ends it).
    public internal(set) var usesFIFO = false
    /// FIFO event-array pages, as guest frame numbers, `eventArrayPages` of them.
    let eventArray: UnsafeMutablePointer<GuestFrameNumber>
    var eventArrayPages = 0
    /// HVM parameters (HVM_NR_PARAMS of them), as HVMOP_set_param or the embedder set them.
    var hvmParams = InlineArray<39, UInt64>(repeating: 0)
    /// HVM_PARAM_CALLBACK_IRQ as the guest last set it.
    @inline(__always)
    public var callbackParameter: UInt64 { hvmParams[Int(HVMParam.callbackIrq.rawValue)] }

    /// Ports per allocation bucket. Xen grows `valid_evtchns` by EVTCHNS_PER_BUCKET = PAGE_SIZE /
    /// next_power_of_2(sizeof(struct evtchn)) ports (xen/common/event_channel.c); struct evtchn
    /// is 33-64 bytes on x86_64, hence 64. It is visible to a guest only as which unused port
    /// numbers answer -EINVAL rather than "closed".
    public static var portsPerBucket: UInt32 { 64 }
    /// EVTCHN_FIFO_EVENT_WORDS_PER_PAGE (xen/common/event_fifo.c): 4096 / 4.
    static var eventWordsPerPage: Int { 1024 }
    /// EVTCHN_FIFO_MAX_EVENT_ARRAY_PAGES: 2^17 ports / 1024 words per page.
    static var maxEventArrayPages: Int { Int(EventChannelFIFO.nrChannels) / eventWordsPerPage }

    public init(_ config: DomainConfiguration, memory: Memory) throws(DomainConfigurationError) {
        guard config.id < DomainID.firstReserved else { throw .invalidDomainID }
        guard config.vcpuCount >= 1, config.vcpuCount <= Int(XenLimits.legacyMaxVCPUs) else { throw .vcpuCountOutOfRange }
        guard config.maxPort >= 1, config.maxPort < EventChannelFIFO.nrChannels else { throw .maxPortOutOfRange }
        guard memory.hostAddress(of: config.sharedInfoFrame) != nil else { throw .sharedInfoNotBacked }
        id = config.id
        self.memory = memory
        vcpuCount = config.vcpuCount
        maxPort = config.maxPort
        sharedInfoFrame = config.sharedInfoFrame
        identity = config.identity
        ports = .allocate(capacity: Int(config.maxPort) + 1)
        ports.initialize(repeating: .free, count: Int(config.maxPort) + 1)
        vcpus = .allocate(capacity: config.vcpuCount)
        vcpus.initialize(repeating: VCPUEventState(), count: config.vcpuCount)
        eventArray = .allocate(capacity: Self.maxEventArrayPages)
        eventArray.initialize(repeating: GuestFrameNumber(0), count: Self.maxEventArrayPages)
        // evtchn_init: port 0 is allocated and reserved.
        validPorts = Self.portsPerBucket
        ports[0].state = .reserved
    }

    deinit {
        ports.deinitialize(count: Int(maxPort) + 1)
        ports.deallocate()
        vcpus.deinitialize(count: vcpuCount)
        vcpus.deallocate()
        eventArray.deallocate()
    }

    // MARK: - Ports

    /// The highest port count of the ABI in use (Xen `max_evtchns`).
    @inline(__always)
    var abiPortLimit: UInt32 { usesFIFO ? EventChannelFIFO.nrChannels : EventChannel2L.nrChannels }

    /// Xen `port_is_valid`: below `valid_evtchns`.
    @inline(__always)
    public func isValid(_ port: UInt32) -> Bool { port < validPorts }

    /// The channel at a valid port (the caller checked `isValid`).
    @inline(__always)
    public func channel(_ port: UInt32) -> EventChannel { ports[Int(port)] }

    @inline(__always)
    func update(_ port: UInt32, _ body: (inout EventChannel) -> Void) { body(&ports[Int(port)]) }

    /// Xen `get_free_port`: the lowest free, non-busy port, growing `valid_evtchns` a bucket at
    /// a time. A bucket once added stays, even when the caller then fails.
    func allocatePort() -> UInt32? {
        var port = freeSearchStart
        while port < validPorts && ports[Int(port)].state != .free { port += 1 }
        freeSearchStart = port
        while port <= maxPort && port < abiPortLimit {
            if port >= validPorts {
                validPorts = min(validPorts + Self.portsPerBucket, maxPort + 1)
                return port
            }
            if ports[Int(port)].state == .free && !isBusy(port) { return port }
            port += 1
        }
        return nil
    }

    /// A freed port is FIFO-busy while its event word is still LINKED: the guest has not
    /// consumed it yet (xen/common/event_fifo.c evtchn_fifo_is_busy).
    func isBusy(_ port: UInt32) -> Bool {
        guard usesFIFO, let word = eventWord(port) else { return false }
        return GuestWords.load32(word) & (1 << EventChannelFIFO.linked) != 0
    }

    /// Binds a freshly allocated port (Xen `evtchn_port_init`: default FIFO priority).
    func bind(_ port: UInt32, state: EventChannelState, notifyVCPU: Int = 0, remoteDomain: DomainID = DomainID(0),
              remotePort: UInt32 = 0, virq: UInt8 = 0) {
        update(port) {
            $0.state = state
            $0.notifyVCPU = UInt16(notifyVCPU)
            $0.remoteDomain = remoteDomain
            $0.remotePort = remotePort
            $0.virq = virq
            $0.priority = UInt8(EventChannelFIFO.priorityDefault)
        }
    }

    /// Xen `evtchn_free`: clear the pending event, back to ECS_FREE on vCPU 0.
    func free(_ port: UInt32) {
        clearPending(port)
        release(port)
    }

    /// Back to ECS_FREE on vCPU 0 without touching the guest's pending state: `free`, and a port
    /// that was allocated for a bind that then failed.
    func release(_ port: UInt32) {
        update(port) {
            $0.state = .free
            $0.notifyVCPU = 0
            $0.savedPending = false
        }
        freeSearchStart = min(freeSearchStart, port)
    }

    // MARK: - Guest structures

    @inline(__always)
    var sharedInfo: UnsafeMutableRawPointer? { memory.hostAddress(of: sharedInfoFrame) }

    @inline(__always)
    func vcpuInfo(_ sharedInfo: UnsafeMutableRawPointer, _ vcpu: Int) -> UnsafeMutableRawPointer {
        sharedInfo + SharedInfoLayout.vcpuInfo.offset(ofElement: vcpu)
    }

    /// The FIFO event word of `port`, when its event-array page exists and is backed.
    @inline(__always)
    func eventWord(_ port: UInt32) -> UnsafeMutableRawPointer? {
        let page = Int(port) / Self.eventWordsPerPage
        guard page < eventArrayPages, let base = memory.hostAddress(of: eventArray[page]) else { return nil }
        return base + (Int(port) % Self.eventWordsPerPage) * 4
    }

    @inline(__always)
    func controlBlock(_ vcpu: Int) -> UnsafeMutableRawPointer? {
        let v = vcpus[vcpu]
        guard v.hasControlBlock, let page = memory.hostAddress(of: v.controlBlock.frame) else { return nil }
        return page + Int(v.controlBlock.offsetInPage)
    }

    // MARK: - Pending, mask, upcall

    /// Xen `vcpu_mark_events_pending`: set evtchn_upcall_pending; true when it was clear,
    /// which is when Xen raises the upcall.
    @inline(__always)
    func markEventsPending(_ vcpu: Int) -> Bool {
        guard let si = sharedInfo else { return false }
        return !GuestWords.testAndSetByte(vcpuInfo(si, vcpu) + VcpuInfoLayout.evtchnUpcallPending.offset)
    }

    /// Xen `evtchn_port_set_pending` on the port's notify vCPU. Returns the vCPU whose upcall
    /// must be raised, or nil.
    @inline(__always)
    public func setPending(_ port: UInt32) -> Int? {
        usesFIFO ? fifoSetPending(port) : twoLevelSetPending(port)
    }

    func clearPending(_ port: UInt32) {
        if usesFIFO {
            if let word = eventWord(port) { _ = GuestWords.testAndClear(word, bit32: Int(EventChannelFIFO.pending)) }
        } else if let si = sharedInfo, port < EventChannel2L.nrChannels {
            _ = GuestWords.testAndClear(si + SharedInfoLayout.evtchnPending.offset(ofElement: Int(port >> 6)), bit64: Int(port & 63))
        }
    }

    /// Xen `evtchn_port_unmask`; returns the vCPU whose upcall must be raised, or nil.
    public func unmask(_ port: UInt32) -> Int? {
        usesFIFO ? fifoUnmask(port) : twoLevelUnmask(port)
    }

    /// The vector that announces an upcall on `vcpu`: its HVMOP_set_evtchn_upcall_vector
    /// vector, else the domain's HVM_PARAM_CALLBACK_IRQ vector, else none (xen/arch/x86/hvm/irq.c
    /// hvm_assert_evtchn_irq). GSI and PCI INTx callbacks are refused when set.
    public func upcallVector(_ vcpu: Int) -> UInt8? {
        let v = vcpus[vcpu].upcallVector
        if v != 0 { return v }
        if callbackParameter >> 56 == UInt64(HVMCallbackType.vector.rawValue) { return UInt8(truncatingIfNeeded: callbackParameter) }
        return nil
    }
}
