import CGuestAtomics
import GuestABI
import XenABI

/// One Xen domain's event-channel state and the Xen semantics that touch only that domain: the
/// port table, the 2-level and FIFO pending/mask/link logic on the domain's own guest memory,
/// and marking a vCPU's upcall pending. Nothing here reaches another domain or another vCPU's
/// interrupt: those effects go through an `EventFabric` (direct in XenNative, Viridian in
/// XenViridian), which is what makes the native baseline and the translation comparable.
///
/// Storage is sized at creation (`maxPort + 1` ports, the vCPUs, the FIFO event-array frame
/// list); nothing allocates afterwards. Threads (Docs/Threading.md): hypercalls of different
/// vCPUs run at the same time. Each port's record is read and written only under its own lock
/// (Xen's chn->lock), which sits beside it on a cache line of its own; binding changes also
/// hold the domain's event lock (Xen's d->event_lock); FIFO queue tails are under one lock per
/// queue (the per-queue lock of Xen's event_fifo.c). Words other paths read without those
/// locks (the valid-port count, the ABI in use, event-array pages, upcall vectors, control
/// blocks, HVM_PARAM_CALLBACK_IRQ) are published with release stores and read with acquire
/// loads. Words shared with the guest are updated atomically, because the guest's vCPUs run.
public final class XenDomain<Memory: GuestMemory> {
    /// The domain's id, fixed at creation.
    public let id: DomainID
    /// The domain's guest-physical memory as the embedder supplied it; every guest read and write goes through it.
    public let memory: Memory
    /// Number of vCPUs (1 ... 32), fixed at creation; vCPU indices run 0 ..< `vcpuCount`.
    public let vcpuCount: Int
    /// The highest port number the domain may use (`DomainConfiguration.maxPort`); ports run 0 ... `maxPort`.
    public let maxPort: UInt32
    /// The frame that showed shared_info at creation (`sharedInfoPage` stays; where the guest
    /// sees it now is `sharedInfoLocation`).
    public let sharedInfoFrame: GuestFrameNumber
    /// The domain's shared_info page (Xen's d->shared_info), fixed for the domain's life.
    public let sharedInfoPage: UnsafeMutableRawPointer
    /// The guest-visible identity (CPUID leaves, hypercall-page MSR, hypercall classes).
    public let identity: XenGuestIdentity
    /// The strings xen_version reports.
    public let version: XenVersionIdentity
    /// Where CONSOLEIO_write lines go; none attached, console_io is -EPERM (Xen's answer to a
    /// domain that is not a console domain). Set before the domain's vCPUs run.
    @exclusivity(unchecked) public var consoleSink: (any XenConsoleSink)?
    /// Wakes parked vCPUs' threads (SCHEDOP_block, SCHEDOP_poll). Set before the domain's
    /// vCPUs run; without one a parked vCPU is woken by nothing but its upcall.
    @inlinable public var waker: (any XenVCPUWaker)? {
        get { wakerBox?.takeUnretainedValue().waker }
        set {
            wakerBox?.release()
            wakerBox = newValue.map { Unmanaged.passRetained(WakerBox($0)) }
        }
    }
    /// The waker, held in a box the domain retains by hand, so the delivery path reaches it
    /// through a guaranteed reference and counts no references (`xv bench --check` holds the
    /// wake path to zero retains).
    @usableFromInline @exclusivity(unchecked) var wakerBox: Unmanaged<WakerBox>?
    /// The embedder's guest-physical map, through which memory_op changes it. Set before the
    /// domain's vCPUs run; without one, the memory_op calls that would change the map answer
    /// -EOPNOTSUPP, and the rest still answer.
    @inlinable public var physmap: (any XenPhysmap)? {
        get { physmapBox?.takeUnretainedValue().physmap }
        set {
            physmapBox?.release()
            physmapBox = newValue.map { Unmanaged.passRetained(PhysmapBox($0)) }
        }
    }
    /// The physmap in a box retained by hand, so the grant paths reach it through a guaranteed
    /// reference and count no references (`withPhysmap`).
    @usableFromInline @exclusivity(unchecked) var physmapBox: Unmanaged<PhysmapBox>?

    /// Runs `body` on the embedder's physmap without a retain; nil when there is none.
    @inline(__always)
    @inlinable package func withPhysmap<R>(_ body: (any XenPhysmap) -> R) -> R? {
        physmapBox?._withUnsafeGuaranteedRef { body($0.physmap) }
    }

    /// memory_op state (`PhysmapState`), under the physmap lock (Xen's p2m lock).
    @usableFromInline @exclusivity(unchecked) var physmapState: PhysmapState
    /// The memory map XENMEM_memory_map returns, fixed at creation.
    @usableFromInline let memoryMap: [XenE820Entry]
    /// Grant-table frames: host pages (allocated when the table grows to them) and where the
    /// guest maps each (`PhysmapState.noFrame` while unmapped), `maxGrantFrames` of each.
    @usableFromInline let grantFramePages: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    @usableFromInline let grantFrameLocations: UnsafeMutablePointer<UInt64>
    /// Xen's max_grant_frames.
    public let maxGrantFrames: UInt32
    /// The grant table's version and status frames (`GrantTable.swift`).
    @usableFromInline @exclusivity(unchecked) var grantState: GrantTableState
    /// v2 status frames (host pages, allocated while the table is v2) and where the guest maps
    /// each; `statusFrames(for: maxGrantFrames)` of each.
    @usableFromInline let statusFramePages: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    @usableFromInline let statusFrameLocations: UnsafeMutablePointer<UInt64>
    /// Active grant state, one page of 512 `ActiveGrant`s per grant frame, allocated as the
    /// table grows.
    @usableFromInline let activeGrantPages: UnsafeMutablePointer<UnsafeMutablePointer<ActiveGrant>?>
    /// The grant mappings this domain holds of other domains' grants (Xen's maptrack): pages of
    /// `GrantTableLimits.maptrackPerFrame` handles, allocated as they are needed, up to
    /// `maxMaptrackFrames`; free handles are linked through their records. Under the grant lock.
    @usableFromInline let maptrackPages: UnsafeMutablePointer<UnsafeMutablePointer<GrantMapping>?>
    @usableFromInline @exclusivity(unchecked) var maptrackPageCount = 0
    @usableFromInline @exclusivity(unchecked) var maptrackFree = GrantMapping.none
    /// The frames the domain's grant mappings occupy (`mapsGrant`): an open-addressed set of
    /// frame + 1, twice the maptrack's handles in size. Under the grant lock. (A placeholder
    /// pointer, never read, while the capacity is 0.)
    @usableFromInline @exclusivity(unchecked) var mappedFrames = UnsafeMutablePointer<UInt64>(bitPattern: 8)!
    @usableFromInline @exclusivity(unchecked) var mappedFrameCapacity = 0
    /// Xen's max_maptrack_frames.
    public let maxMaptrackFrames: Int
    /// Handles of grant mappings a restore brought back and `finishRestore` has not shown yet.
    /// Under the grant lock.
    @usableFromInline @exclusivity(unchecked) var restoringMappings: [UInt32] = []

    /// Port records, `PortRecords.stride` bytes each: the channel, then its lock word.
    @usableFromInline let records: UnsafeMutableRawPointer
    /// Per port, under the event lock: allocated (not ECS_FREE) as far as allocation goes.
    @usableFromInline let allocated: UnsafeMutablePointer<Bool>
    /// The event lock, the valid-port count, the ABI flag, the event-array page count and
    /// HVM_PARAM_CALLBACK_IRQ (`DomainWords`), each on its own cache line.
    @usableFromInline let words: UnsafeMutableRawPointer
    /// No port below this is free: where the lowest-free search starts (an index, not a
    /// change of Xen's lowest-first choice). Under the event lock.
    @usableFromInline @exclusivity(unchecked) var freeSearchStart: UInt32 = 1
    /// VIRQ bindings, under the event lock.
    @usableFromInline let vcpus: UnsafeMutablePointer<VCPUEventState>
    /// Per vCPU, `VCPUWords.stride` bytes: upcall vector, control block, then the FIFO queue
    /// tails and their locks.
    @usableFromInline let vcpuWords: UnsafeMutableRawPointer
    /// FIFO event-array pages, as guest frame numbers (raw UInt64, published before the count).
    @usableFromInline let eventArray: UnsafeMutablePointer<UInt64>
    /// HVM parameters (HVM_NR_PARAMS of them), as HVMOP_set_param or the embedder set them.
    /// Under the event lock; CALLBACK_IRQ is also published in `words`.
    @usableFromInline @exclusivity(unchecked) var hvmParams = InlineArray<39, UInt64>(repeating: 0)

    /// HVM_PARAM_CALLBACK_IRQ as the guest last set it.
    @inline(__always)
    @inlinable public var callbackParameter: UInt64 { xv_load_acquire_u64(words + DomainWords.callbackIrq) }

    /// Ports per allocation bucket. Xen grows `valid_evtchns` by EVTCHNS_PER_BUCKET = PAGE_SIZE /
    /// next_power_of_2(sizeof(struct evtchn)) ports (xen/common/event_channel.c); struct evtchn
    /// is 33-64 bytes on x86_64, hence 64. It is visible to a guest only as which unused port
    /// numbers answer -EINVAL rather than "closed".
    @inlinable public static var portsPerBucket: UInt32 { 64 }
    /// EVTCHN_FIFO_EVENT_WORDS_PER_PAGE (xen/common/event_fifo.c): 4096 / 4.
    @inlinable static var eventWordsPerPage: Int { 1024 }
    /// EVTCHN_FIFO_MAX_EVENT_ARRAY_PAGES: 2^17 ports / 1024 words per page.
    @inlinable static var maxEventArrayPages: Int { Int(EventChannelFIFO.nrChannels) / eventWordsPerPage }

    /// Creates the domain and allocates all its storage. Throws `DomainConfigurationError` for a reserved id, a vCPU count outside 1 ... 32, a port limit outside 1 ..< 2^17, an unbacked shared_info frame, an invalid memory configuration, or a grant frame limit or grant version out of range.
    public init(_ config: DomainConfiguration, memory: Memory) throws(DomainConfigurationError) {
        guard config.id < DomainID.firstReserved else { throw .invalidDomainID }
        guard config.vcpuCount >= 1, config.vcpuCount <= Int(XenLimits.legacyMaxVCPUs) else { throw .vcpuCountOutOfRange }
        guard config.maxPort >= 1, config.maxPort < EventChannelFIFO.nrChannels else { throw .maxPortOutOfRange }
        guard let sharedInfoPage = memory.hostAddress(of: config.sharedInfoFrame) else { throw .sharedInfoNotBacked }
        guard config.memory.memoryMap.count <= Int(MemoryOpLimits.memoryMapEntries),
              config.memory.maxPages >= config.memory.pages else { throw .memoryConfigurationInvalid }
        guard config.maxGrantFrames >= 1, UInt64(config.maxGrantFrames) <= MemoryOpLimits.maxGrantFrames,
              config.maxGrantVersion == 1 || config.maxGrantVersion == 2 else { throw .grantFramesOutOfRange }
        id = config.id
        self.memory = memory
        vcpuCount = config.vcpuCount
        maxPort = config.maxPort
        sharedInfoFrame = config.sharedInfoFrame
        self.sharedInfoPage = sharedInfoPage
        physmapState = PhysmapState(config.memory, sharedInfoFrame: config.sharedInfoFrame)
        memoryMap = config.memory.memoryMap
        maxGrantFrames = config.maxGrantFrames
        grantFramePages = .allocate(capacity: Int(config.maxGrantFrames))
        grantFramePages.initialize(repeating: nil, count: Int(config.maxGrantFrames))
        grantFrameLocations = .allocate(capacity: Int(config.maxGrantFrames))
        grantFrameLocations.initialize(repeating: PhysmapState.noFrame, count: Int(config.maxGrantFrames))
        grantState = GrantTableState(maxVersion: config.maxGrantVersion)
        let statusCapacity = Int(Self.statusFrames(for: config.maxGrantFrames))
        statusFramePages = .allocate(capacity: statusCapacity)
        statusFramePages.initialize(repeating: nil, count: statusCapacity)
        statusFrameLocations = .allocate(capacity: statusCapacity)
        statusFrameLocations.initialize(repeating: PhysmapState.noFrame, count: statusCapacity)
        activeGrantPages = .allocate(capacity: Int(config.maxGrantFrames))
        activeGrantPages.initialize(repeating: nil, count: Int(config.maxGrantFrames))
        maxMaptrackFrames = max(1, config.maxMaptrackFrames)
        maptrackPages = .allocate(capacity: maxMaptrackFrames)
        maptrackPages.initialize(repeating: nil, count: maxMaptrackFrames)
        identity = config.identity
        version = config.version
        let portCount = Int(config.maxPort) + 1
        records = .allocate(byteCount: portCount * PortRecords.stride, alignment: PortRecords.stride)
        for p in 0..<portCount {
            (records + p * PortRecords.stride).initializeMemory(as: EventChannel.self, to: .free)
            (records + p * PortRecords.stride + PortRecords.lockOffset).initializeMemory(as: UInt32.self, repeating: 0,
                                                                                       count: (PortRecords.stride - PortRecords.lockOffset) / 4)
        }
        allocated = .allocate(capacity: portCount)
        allocated.initialize(repeating: false, count: portCount)
        words = .allocate(byteCount: DomainWords.size, alignment: 64)
        words.initializeMemory(as: UInt64.self, repeating: 0, count: DomainWords.size / 8)
        vcpus = .allocate(capacity: config.vcpuCount)
        vcpus.initialize(repeating: VCPUEventState(), count: config.vcpuCount)
        vcpuWords = .allocate(byteCount: config.vcpuCount * VCPUWords.stride, alignment: 64)
        vcpuWords.initializeMemory(as: UInt64.self, repeating: 0, count: config.vcpuCount * VCPUWords.stride / 8)
        eventArray = .allocate(capacity: Self.maxEventArrayPages)
        eventArray.initialize(repeating: 0, count: Self.maxEventArrayPages)
        xv_store_release_u32(words + DomainWords.shutdownCode, UInt32.max)
        // Xen starts an HVM domain with vCPU 0 up and the others down until INIT/SIPI.
        xv_store_release_u32(vcpuWords + VCPUWords.online, 1)
        xv_store_release_u32(vcpuWords + VCPUWords.initialised, 1)
        initialiseRunstates()
        setWallclock(seconds: config.wallclockAtBoot.seconds, nanoseconds: config.wallclockAtBoot.nanoseconds)
        // evtchn_init: port 0 is allocated and reserved. The first bucket, cut at maxPort as
        // later buckets are: the port records end there, and a valid port past them would be
        // read and locked out of bounds (EVTCHNOP_init_control locks every valid port).
        xv_store_release_u32(words + DomainWords.validPorts, min(Self.portsPerBucket, config.maxPort + 1))
        channelPointer(0).pointee.state = .reserved
        publishBinding(0)
        allocated[0] = true
        // grant_table_init: the table starts with INITIAL_NR_GRANT_FRAMES, zeroed (GTF_invalid).
        withPhysmapLock { growGrantTable(to: UInt32(GrantTableLimits.initialFrames)) }
    }

    deinit {
        records.deallocate()
        allocated.deallocate()
        words.deallocate()
        vcpus.deinitialize(count: vcpuCount)
        vcpus.deallocate()
        vcpuWords.deallocate()
        eventArray.deallocate()
        for f in 0..<Int(maxGrantFrames) {
            grantFramePages[f]?.deallocate()
            activeGrantPages[f]?.deallocate()
        }
        for f in 0..<Int(Self.statusFrames(for: maxGrantFrames)) { statusFramePages[f]?.deallocate() }
        statusFramePages.deallocate()
        statusFrameLocations.deallocate()
        activeGrantPages.deallocate()
        for f in 0..<maptrackPageCount { maptrackPages[f]?.deallocate() }
        if mappedFrameCapacity > 0 { mappedFrames.deallocate() }
        maptrackPages.deallocate()
        wakerBox?.release()
        physmapBox?.release()
        grantFramePages.deallocate()
        grantFrameLocations.deallocate()
    }

    // MARK: - Locks

    @inline(__always)
    @inlinable func channelPointer(_ port: UInt32) -> UnsafeMutablePointer<EventChannel> {
        (records + Int(port) * PortRecords.stride).assumingMemoryBound(to: EventChannel.self)
    }

    @inline(__always)
    @inlinable func channelLock(_ port: UInt32) -> UnsafeMutableRawPointer { records + Int(port) * PortRecords.stride + PortRecords.lockOffset }

    /// The port's binding as one word (state, remote domain, remote port), published with a
    /// release store by every change of those fields (under the port's lock), so a send reads
    /// it with one acquire load and no lock (`binding`).
    @inline(__always)
    @inlinable func bindingWord(_ port: UInt32) -> UnsafeMutableRawPointer { records + Int(port) * PortRecords.stride + PortRecords.bindingOffset }

    /// Publishes the record's binding fields; the caller holds the port's lock.
    @inline(__always)
    @inlinable func publishBinding(_ port: UInt32) {
        let c = channelPointer(port).pointee
        xv_store_release_u64(bindingWord(port), UInt64(c.state.rawValue) | UInt64(c.remoteDomain.rawValue) << 16 | UInt64(c.remotePort) << 32)
    }

    /// The port's binding as last published: a channel with the state, remote domain and remote
    /// port (the other fields zero). A valid port only.
    @inline(__always)
    @inlinable public func binding(_ port: UInt32) -> EventChannel {
        let w = xv_load_acquire_u64(bindingWord(port))
        var c = EventChannel.free
        c.state = EventChannelState(rawValue: UInt8(truncatingIfNeeded: w)) ?? .free
        c.remoteDomain = DomainID(UInt16(truncatingIfNeeded: w >> 16))
        c.remotePort = UInt32(truncatingIfNeeded: w >> 32)
        return c
    }

    /// Takes `port`'s lock (Xen's chn->lock). A leaf lock: nothing that can call into a fabric,
    /// a target or another lock (but the FIFO queue locks) runs while it is held.
    @inline(__always)
    @inlinable public func lockChannel(_ port: UInt32) { xv_spin_lock(channelLock(port)) }
    /// Releases `port`'s lock taken by `lockChannel(_:)`.
    @inline(__always)
    @inlinable public func unlockChannel(_ port: UInt32) { xv_spin_unlock(channelLock(port)) }

    /// Runs `body` on `port`'s record with its lock held.
    @inline(__always)
    @inlinable public func withChannel<R>(_ port: UInt32, _ body: (inout EventChannel) -> R) -> R {
        lockChannel(port)
        defer { unlockChannel(port) }
        return body(&channelPointer(port).pointee)
    }

    /// Takes the locks of `a` (a port of `first`) and `b` (a port of `second`) in address
    /// order, so two threads locking the same pair never wait on each other (Xen's
    /// double_evtchn_lock). The same port twice is locked once.
    @inlinable package static func lockPair(_ first: XenDomain, _ a: UInt32, _ second: XenDomain, _ b: UInt32) {
        let la = first.channelLock(a), lb = second.channelLock(b)
        if la == lb { xv_spin_lock(la); return }
        if la < lb { xv_spin_lock(la); xv_spin_lock(lb) } else { xv_spin_lock(lb); xv_spin_lock(la) }
    }

    @inlinable package static func unlockPair(_ first: XenDomain, _ a: UInt32, _ second: XenDomain, _ b: UInt32) {
        let la = first.channelLock(a), lb = second.channelLock(b)
        xv_spin_unlock(la)
        if la != lb { xv_spin_unlock(lb) }
    }

    /// The domain's event lock (Xen's d->event_lock): every binding change holds it.
    @inline(__always)
    @inlinable func lockEvents() { xv_spin_lock(words + DomainWords.eventLock) }
    @inline(__always)
    @inlinable func unlockEvents() { xv_spin_unlock(words + DomainWords.eventLock) }

    /// Every valid port's lock, in ascending order (the FIFO ABI switch, which changes how
    /// every port delivers). The caller holds the event lock.
    @inlinable func lockAllChannels() -> UInt32 {
        let valid = validPorts
        for p in 0..<valid { lockChannel(p) }
        return valid
    }

    @inlinable func unlockAllChannels(_ valid: UInt32) {
        for p in 0..<valid { unlockChannel(p) }
    }

    // MARK: - Ports

    /// Ports below this are valid (Xen `valid_evtchns`): it grows a bucket at a time.
    @inline(__always)
    @inlinable var validPorts: UInt32 { xv_load_acquire_u32(words + DomainWords.validPorts) }

    /// The FIFO ABI is in use (EVTCHNOP_init_control succeeded once; EVTCHNOP_reset ends it).
    @inline(__always)
    @inlinable public var usesFIFO: Bool { xv_load_acquire_u32(words + DomainWords.usesFIFO) != 0 }

    /// FIFO event-array pages added so far.
    @inline(__always)
    @inlinable var eventArrayPages: Int { Int(xv_load_acquire_u32(words + DomainWords.eventArrayPages)) }

    /// The highest port count of the ABI in use (Xen `max_evtchns`).
    @inline(__always)
    @inlinable var abiPortLimit: UInt32 { usesFIFO ? EventChannelFIFO.nrChannels : EventChannel2L.nrChannels }

    /// Xen `port_is_valid`: below `valid_evtchns`.
    @inline(__always)
    @inlinable public func isValid(_ port: UInt32) -> Bool { port < validPorts }

    /// A snapshot of the channel at a valid port (the caller checked `isValid`), taken under
    /// its lock.
    @inline(__always)
    @inlinable public func channel(_ port: UInt32) -> EventChannel { withChannel(port) { $0 } }

    /// Xen `get_free_port`: the lowest free, non-busy port, growing `valid_evtchns` a bucket at
    /// a time. A bucket once added stays, even when the caller then fails. Under the event
    /// lock; the port it returns is marked allocated (still ECS_FREE until bound).
    @inlinable func allocatePort() -> UInt32? {
        var port = freeSearchStart
        let valid = validPorts
        while port < valid && allocated[Int(port)] { port += 1 }
        freeSearchStart = port
        while port <= maxPort && port < abiPortLimit {
            if port >= validPorts {
                xv_store_release_u32(words + DomainWords.validPorts, min(validPorts + Self.portsPerBucket, maxPort + 1))
                allocated[Int(port)] = true
                return port
            }
            if !allocated[Int(port)] && !isBusy(port) {
                allocated[Int(port)] = true
                return port
            }
            port += 1
        }
        return nil
    }

    /// A freed port is FIFO-busy while its event word is still LINKED: the guest has not
    /// consumed it yet (xen/common/event_fifo.c evtchn_fifo_is_busy).
    @inlinable func isBusy(_ port: UInt32) -> Bool {
        guard usesFIFO, let word = eventWord(port) else { return false }
        return GuestWords.load32(word) & (1 << EventChannelFIFO.linked) != 0
    }

    /// Binds an allocated port (Xen `evtchn_port_init`: default FIFO priority), under its lock.
    @inlinable func bind(_ port: UInt32, state: EventChannelState, notifyVCPU: Int = 0, remoteDomain: DomainID = DomainID(0),
              remotePort: UInt32 = 0, virq: UInt8 = 0) {
        lockChannel(port)
        setBindingLocked(port, state: state, notifyVCPU: notifyVCPU, remoteDomain: remoteDomain, remotePort: remotePort, virq: virq)
        unlockChannel(port)
    }

    /// Sets the record's binding and publishes it; the caller holds the port's lock.
    @inline(__always)
    @inlinable func setBindingLocked(_ port: UInt32, state: EventChannelState, notifyVCPU: Int = 0, remoteDomain: DomainID = DomainID(0),
                          remotePort: UInt32 = 0, virq: UInt8 = 0) {
        let c = channelPointer(port)
        c.pointee.state = state
        c.pointee.notifyVCPU = UInt16(notifyVCPU)
        c.pointee.remoteDomain = remoteDomain
        c.pointee.remotePort = remotePort
        c.pointee.virq = virq
        c.pointee.priority = UInt8(EventChannelFIFO.priorityDefault)
        publishBinding(port)
    }

    /// Makes the allocated `port` interdomain with `remotePort` of `remote`, under its lock:
    /// what a fabric's `connect` does to the binder's end once the other end is bound.
    @inlinable package func bindInterdomain(_ port: UInt32, remote: DomainID, remotePort: UInt32) {
        bind(port, state: .interdomain, remoteDomain: remote, remotePort: remotePort)
    }

    /// The same, for a fabric that holds the port's lock (`lockPair`).
    @inlinable package func bindInterdomainLocked(_ port: UInt32, remote: DomainID, remotePort: UInt32) {
        setBindingLocked(port, state: .interdomain, remoteDomain: remote, remotePort: remotePort)
    }

    /// Xen `evtchn_free` of the record: clear the pending event, back to ECS_FREE on vCPU 0.
    /// The caller holds the port's lock. The allocation itself is given back by the close
    /// path (`release`).
    @inlinable package func freeLocked(_ port: UInt32) {
        clearPending(port)
        clearRecordLocked(port)
    }

    /// `freeLocked` taking the lock itself.
    @inlinable package func freeChannel(_ port: UInt32) {
        lockChannel(port)
        freeLocked(port)
        unlockChannel(port)
    }

    /// Back to ECS_FREE on vCPU 0, published; the caller holds the port's lock.
    @inline(__always)
    @inlinable func clearRecordLocked(_ port: UInt32) {
        let c = channelPointer(port)
        c.pointee.state = .free
        c.pointee.notifyVCPU = 0
        c.pointee.savedPending = false
        publishBinding(port)
    }

    /// Back to ECS_FREE on vCPU 0 without touching the guest's pending state (a port that was
    /// allocated for a bind that then failed), and the allocation given back. Under the event
    /// lock.
    @inlinable func release(_ port: UInt32) {
        lockChannel(port)
        clearRecordLocked(port)
        unlockChannel(port)
        releaseAllocation(port)
    }

    /// The allocation of a port whose record is free again. Under the event lock.
    @inlinable func releaseAllocation(_ port: UInt32) {
        allocated[Int(port)] = false
        freeSearchStart = min(freeSearchStart, port)
    }

    // MARK: - Guest structures

    @inline(__always)
    @inlinable var sharedInfo: UnsafeMutableRawPointer? { sharedInfoPage }

    /// The host address of `vcpu`'s vcpu_info: where VCPUOP_register_vcpu_info put it, else
    /// its slot in shared_info (Xen's v->vcpu_info). One acquire load on the delivery path.
    @inline(__always)
    @inlinable public func vcpuInfoPointer(_ vcpu: Int) -> UnsafeMutableRawPointer? {
        let registered = xv_load_acquire_u64(vcpuWords + vcpu * VCPUWords.stride + VCPUWords.vcpuInfoHost)
        if registered != 0 { return UnsafeMutableRawPointer(bitPattern: UInt(registered)) }
        guard vcpu < Int(XenLimits.legacyMaxVCPUs), let si = sharedInfo else { return nil }
        return si + SharedInfoLayout.vcpuInfo.offset(ofElement: vcpu)
    }

    /// `vcpuInfoPointer` for a caller that has shared_info at hand already (the 2-level
    /// delivery path), so the page is not looked up twice.
    @inline(__always)
    @inlinable func vcpuInfo(_ si: UnsafeMutableRawPointer, _ vcpu: Int) -> UnsafeMutableRawPointer? {
        let registered = xv_load_acquire_u64(vcpuWords + vcpu * VCPUWords.stride + VCPUWords.vcpuInfoHost)
        if registered != 0 { return UnsafeMutableRawPointer(bitPattern: UInt(registered)) }
        return vcpu < Int(XenLimits.legacyMaxVCPUs) ? si + SharedInfoLayout.vcpuInfo.offset(ofElement: vcpu) : nil
    }

    /// The FIFO event word of `port`, when its event-array page exists and is backed.
    @inline(__always)
    @inlinable func eventWord(_ port: UInt32) -> UnsafeMutableRawPointer? {
        let page = Int(port) / Self.eventWordsPerPage
        guard page < eventArrayPages, let base = memory.hostAddress(of: GuestFrameNumber(xv_load_acquire_u64(eventArray + page))) else { return nil }
        return base + (Int(port) % Self.eventWordsPerPage) * 4
    }

    /// The guest-physical address of `vcpu`'s FIFO control block, when it has one.
    @inline(__always)
    @inlinable func controlBlockAddress(_ vcpu: Int) -> GuestPhysicalAddress? {
        let word = xv_load_acquire_u64(vcpuWords + vcpu * VCPUWords.stride + VCPUWords.controlBlock)
        return word & 1 == 0 ? nil : GuestPhysicalAddress(word & ~1)
    }

    @inline(__always)
    @inlinable func controlBlock(_ vcpu: Int) -> UnsafeMutableRawPointer? {
        guard let at = controlBlockAddress(vcpu), let page = memory.hostAddress(of: at.frame) else { return nil }
        return page + Int(at.offsetInPage)
    }

    // MARK: - Pending, mask, upcall

    /// Xen `vcpu_mark_events_pending`: set evtchn_upcall_pending; true when it was clear,
    /// which is when Xen raises the upcall.
    @inline(__always)
    @inlinable func markEventsPending(_ vcpu: Int) -> Bool {
        guard let info = vcpuInfoPointer(vcpu) else { return false }
        let raised = Self.markEventsPending(info: info)
        if raised { wakeIfParked(vcpu, port: nil) }
        return raised
    }

    @inline(__always)
    @inlinable static func markEventsPending(info: UnsafeMutableRawPointer) -> Bool {
        !GuestWords.testAndSetByte(info + VcpuInfoLayout.evtchnUpcallPending.offset)
    }

    /// Xen `evtchn_port_set_pending` on the port's notify vCPU. Returns the vCPU whose upcall
    /// must be raised, or nil.
    /// The caller holds the port's lock.
    @inline(__always)
    @inlinable func setPendingLocked(_ port: UInt32) -> Int? {
        usesFIFO ? fifoSetPending(port) : twoLevelSetPending(port)
    }

    /// An event arriving on `port` from outside the domain's hypercalls (a peer's send, a
    /// Viridian event flag): under the port's lock, when `accepts` holds for its record, the
    /// port becomes pending. Returns whether it was delivered and the vCPU whose upcall must
    /// be raised (after the lock is dropped, by the caller).
    @inline(__always)
    @inlinable public func deliver(_ port: UInt32, if accepts: (EventChannel) -> Bool) -> (delivered: Bool, upcall: Int?) {
        guard isValid(port) else { return (false, nil) }
        lockChannel(port)
        defer { unlockChannel(port) }
        guard accepts(channelPointer(port).pointee) else { return (false, nil) }
        return (true, setPendingLocked(port))
    }

    @inlinable func clearPending(_ port: UInt32) {
        if usesFIFO {
            if let word = eventWord(port) { _ = GuestWords.testAndClear(word, bit32: Int(EventChannelFIFO.pending)) }
        } else if let si = sharedInfo, port < EventChannel2L.nrChannels {
            _ = GuestWords.testAndClear(si + SharedInfoLayout.evtchnPending.offset(ofElement: Int(port >> 6)), bit64: Int(port & 63))
        }
    }

    /// Xen `evtchn_port_unmask`; returns the vCPU whose upcall must be raised, or nil. The
    /// caller holds the port's lock.
    @inlinable func unmaskLocked(_ port: UInt32) -> Int? {
        usesFIFO ? fifoUnmask(port) : twoLevelUnmask(port)
    }

    /// The vector that announces an upcall on `vcpu`: its HVMOP_set_evtchn_upcall_vector
    /// vector, else the domain's HVM_PARAM_CALLBACK_IRQ vector, else none (xen/arch/x86/hvm/irq.c
    /// hvm_assert_evtchn_irq). GSI and PCI INTx callbacks are refused when set.
    @inlinable public func upcallVector(_ vcpu: Int) -> UInt8? {
        let v = perVCPUUpcallVector(vcpu)
        if v != 0 { return v }
        let callback = callbackParameter
        if callback >> 56 == UInt64(HVMCallbackType.vector.rawValue) { return UInt8(truncatingIfNeeded: callback) }
        return nil
    }

    /// HVMOP_set_evtchn_upcall_vector's vector of `vcpu`; 0 when none is set.
    @inline(__always)
    @inlinable func perVCPUUpcallVector(_ vcpu: Int) -> UInt8 { xv_load_acquire_u8(vcpuWords + vcpu * VCPUWords.stride + VCPUWords.upcallVector) }

    @inlinable func setPerVCPUUpcallVector(_ vcpu: Int, _ vector: UInt8) {
        xv_store_release_u8(vcpuWords + vcpu * VCPUWords.stride + VCPUWords.upcallVector, vector)
    }
}

/// The layout of a port record: the channel (16 bytes), its lock word, its published binding
/// word, padding to a cache line, as Xen's 64-byte struct evtchn holds its lock.
@usableFromInline enum PortRecords {
    @inlinable static var stride: Int { 64 }
    @inlinable static var lockOffset: Int { 16 }
    /// The published binding word (`XenDomain.binding`), 8-byte aligned.
    @inlinable static var bindingOffset: Int { 24 }
}

/// Byte offsets of a domain's shared words, each on its own cache line.
@usableFromInline enum DomainWords {
    @inlinable static var eventLock: Int { 0 }
    @inlinable static var validPorts: Int { 64 }
    @inlinable static var usesFIFO: Int { 128 }
    @inlinable static var eventArrayPages: Int { 192 }
    @inlinable static var callbackIrq: Int { 256 }
    /// vm_assist bits (Xen's d->vm_assist), changed with locked bit operations.
    @inlinable static var vmAssist: Int { 320 }
    /// The shutdown code (Xen's d->shutdown_code, ~0 while none) and whether the domain is
    /// shutting down, changed under the event lock.
    @inlinable static var shutdownCode: Int { 320 + 8 }
    @inlinable static var shuttingDown: Int { 320 + 12 }
    /// vCPUs parked by SCHEDOP_block (bit n) and by SCHEDOP_poll (bit 32 + n): one relaxed
    /// load tells the delivery path whether anyone waits.
    @inlinable static var parked: Int { 320 + 16 }
    /// SCHEDOP_watchdog: the two watchdogs' deadlines (Xen system time, 0 while not armed) and
    /// which are in use (bits 0 and 1), under vCPU 0's time lock (they ride on its side timer).
    @inlinable static var watchdogDeadlines: Int { 320 + 24 }
    @inlinable static var watchdogsInUse: Int { 320 + 40 }
    /// What the domain's clock adds to the side's reference time, in 100 ns units (Int64): 0
    /// from creation; a restore sets it so that Xen system time goes on from the saved value
    /// on a clock of another frequency or origin (`XenDomain.clock`).
    @inlinable static var clockOffset: Int { 320 + 48 }
    /// The console line buffer's lock, its fill, then the buffer (Xen's d->pbuf_lock,
    /// d->pbuf_idx and d->pbuf).
    @inlinable static var consoleLock: Int { 384 }
    @inlinable static var consoleFill: Int { 388 }
    @inlinable static var consoleBuffer: Int { 448 }
    /// memory_op's lock (Xen's p2m lock): every change of the guest's map and of
    /// `PhysmapState` holds it.
    @inlinable static var physmapLock: Int { 704 }
    /// The grant table's lock (Xen's grant-table rwlock and its active-entry locks, as one):
    /// active entries, the flags protocol on shared entries, version changes.
    @inlinable static var grantLock: Int { 712 }
    @inlinable static var size: Int { 768 }
}

/// Byte offsets of a vCPU's shared words: the upcall vector and control block (published
/// without a lock), then 16 FIFO queue tails and their 16 locks.
@usableFromInline enum VCPUWords {
    @inlinable static var upcallVector: Int { 0 }
    /// The control block's guest-physical address with bit 0 set, 0 when none is mapped.
    @inlinable static var controlBlock: Int { 8 }
    /// The host address of the vcpu_info VCPUOP_register_vcpu_info placed, 0 while it is the
    /// shared_info slot (published with a release store, read on every event delivery).
    @inlinable static var vcpuInfoHost: Int { 16 }
    /// Its guest-physical address with bit 0 set, 0 when none is registered.
    @inlinable static var vcpuInfoAddress: Int { 24 }
    /// Nonzero while the vCPU is up (the embedder's INIT/SIPI state; Xen's !VPF_down).
    @inlinable static var online: Int { 32 }
    /// VCPUOP_register_vcpu_time_memory_area's address with bit 0 set, 0 when none.
    @inlinable static var timeArea: Int { 40 }
    /// Serialises rewrites of the vCPU's time info and timers (the embedder's tick, a timer's
    /// expiry and the vCPU's own calls may come on different threads).
    @inlinable static var timeLock: Int { 48 }
    /// Xen system time (ns) of the single-shot timer's deadline, 0 while stopped.
    @inlinable static var singleshotDeadline: Int { 64 }
    /// The periodic timer's period (ns, 0 while stopped) and its next deadline.
    @inlinable static var periodicPeriod: Int { 72 }
    @inlinable static var periodicNext: Int { 80 }
    /// Nonzero while the vCPU is inside a multicall (Xen's _MCSF_in_multicall).
    @inlinable static var inMulticall: Int { 88 }
    /// SCHEDOP_poll: the one port polled (Xen's poll_evtchn; 0 for "any port"), and the
    /// timeout (Xen system time, 0 for none).
    @inlinable static var pollPort: Int { 92 }
    @inlinable static var pollTimeout: Int { 96 }
    /// Nonzero once the vCPU has a register state to start from (Xen's is_initialised).
    @inlinable static var initialised: Int { 104 }
    @inlinable static var queueTails: Int { 128 }
    @inlinable static var queueLocks: Int { 192 }
    /// The vCPU's runstate (Xen's v->runstate: state, state_entry_time, time[4]) under the
    /// time lock, then the registered runstate area's address with bit 0 set.
    @inlinable static var runstate: Int { 256 }
    @inlinable static var runstateArea: Int { 304 }
    @inlinable static var stride: Int { 320 }
}

/// Holds a domain's `XenVCPUWaker` (`XenDomain.wakerBox`).
@usableFromInline final class WakerBox {
    @usableFromInline let waker: any XenVCPUWaker
    @usableFromInline init(_ waker: any XenVCPUWaker) { self.waker = waker }
}

/// Holds a domain's `XenPhysmap` (`XenDomain.physmapBox`).
@usableFromInline final class PhysmapBox {
    @usableFromInline let physmap: any XenPhysmap
    @usableFromInline init(_ physmap: any XenPhysmap) { self.physmap = physmap }
}
