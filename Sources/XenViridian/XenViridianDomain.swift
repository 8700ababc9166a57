import CGuestAtomics
import GuestABI
import XenABI
import ViridianABI

/// The translation layer for one Xen domain: the same Xen semantics as XenNative (XenCore),
/// with every effect that leaves the domain carried out through the Viridian target. This
/// object reads and writes only its own domain's memory and state (the translation rule,
/// Docs/Layer.md):
///
/// - an interdomain send is one HvCallSignalEvent on the connection the root made into the
///   peer's partition; the peer's layer, interrupted by the SINT, turns the event flag into the
///   Xen pending bit and the upcall (`interrupt(vp:vector:)`);
/// - an upcall due on another vCPU is one HvCallSendSyntheticClusterIpi with the guest's upcall
///   vector;
/// - a binding that changes the other end (bind_interdomain, close) is announced to the peer's
///   layer with HvCallPostMessage on its control port;
/// - the guest's upcall vector is the vector of the domain's event SINTs.
///
/// Control messages are authenticated by the port they arrive on and checked against the
/// root's records before they change anything (`ControlMessages.swift`).
///
/// Threads (Docs/Threading.md): hypercalls of every vCPU and `interrupt` for every VP may run at
/// once. Binding changes hold the domain's event lock (XenCore) and post control messages from
/// VP 0 under it; the root serialises its own records; the interrupt path takes flags under
/// port locks and drains each VP's SynIC one caller at a time.
public final class XenViridianDomain<Target: ViridianTarget & ViridianRootServices, Memory: GuestMemory, Sink: XenUpcallSink>: EventFabric {
    /// The domain's Xen state (XenCore), created by this layer and owned by it.
    public let domain: XenDomain<Memory>
    /// The root this domain's layer registered with: the records of partitions, offers and links, and the grant directory.
    public let root: XenViridianRoot<Target>
    /// The embedder's hooks for upcalls, NMIs, shutdown and vCPU state.
    public let sink: Sink
    /// The Viridian partition that runs the domain (`LayerConfiguration.partition`).
    public let partition: PartitionID
    @usableFromInline let target: Target
    @usableFromInline let layer: LayerConfiguration
    @usableFromInline let slots: EventFlagSlots
    /// Per vCPU: an upcall was requested by synthetic IPI and not yet delivered (0 or 1).
    @usableFromInline let upcallRequested: UnsafeMutablePointer<UInt32>
    /// Per vCPU, `DrainState.stride` words apart: who is draining the VP's SynIC (`interrupt`).
    @usableFromInline let drainStates: UnsafeMutablePointer<UInt32>
    /// [0] Viridian hypercalls issued (relaxed: exact while each VP's calls come from one
    /// thread at a time, as in the benchmarks), then one count per `ControlVerdict`.
    @usableFromInline let counters: UnsafeMutablePointer<UInt64>
    /// Viridian hypercalls this layer has issued (for the benchmarks' calls-per-operation).
    @inlinable public var viridianHypercalls: Int { Int(xv_load_relaxed_u64(counters)) }
    /// Host addresses of the layer's frames, three per vCPU (`frame(_:_:)`), reached through
    /// the partition's memory and never through the guest's.
    @usableFromInline let layerPages: UnsafeMutablePointer<UnsafeMutableRawPointer>
    /// Per vCPU, which copy windows hold a mapping (bits 0 and 1); the vCPU's own word.
    @usableFromInline let copyWindowsMapped: UnsafeMutablePointer<UInt8>
    /// What the layer concluded about every message it took from its SIM pages.
    @inlinable public var controlMessages: ControlMessageCounts { ControlMessageCounts(counters + 1) }

    /// Creates the domain and sets up its partition's SynIC on every VP: guest OS id, message
    /// and event-flag pages in the layer frames, SINTs unmasked with AutoEOI on the bootstrap
    /// vector, and control ports and connections to and from every domain the root already
    /// knows.
    ///
    /// `memory` is the guest's view: every address and frame number a hypercall names resolves
    /// through it. `partitionMemory` is the partition's memory as the target sees it, through
    /// which the layer reaches its own frames. The layer frames must be backed there and absent
    /// from the guest's view (`.layerFramesVisibleToGuest` otherwise), as Hyper-V's overlay
    /// pages are not guest RAM: so no guest address can name them (Docs/Layer.md, "The guest
    /// cannot name a layer frame").
    /// (One memory type serves both views: Embedded Swift has no generic initialisers on
    /// classes, and a view is usually the same map with fewer regions.)
    public init(_ config: DomainConfiguration, layer: LayerConfiguration, memory: Memory, partitionMemory: Memory,
                root: XenViridianRoot<Target>, sink: Sink) throws(DomainConfigurationError) {
        let frameCount = LayerConfiguration.layerFrameCount(vcpuCount: max(config.vcpuCount, 0))
        guard layer.layerFrames.rawValue <= UInt64.max >> guestPageShift - UInt64(frameCount) else { throw .layerFramesNotBacked }
        let sharedInfoPage = memory.hostAddress(of: config.sharedInfoFrame)
        for f in 0..<frameCount {
            let frame = GuestFrameNumber(layer.layerFrames.rawValue + UInt64(f))
            guard let page = partitionMemory.hostAddress(of: frame) else { throw .layerFramesNotBacked }
            guard memory.hostAddress(of: frame) == nil, page != sharedInfoPage else { throw .layerFramesVisibleToGuest }
        }
        guard layer.bootstrapVector >= 0x10 else { throw .targetRefused }
        let domain = try XenDomain(config, memory: memory)
        guard root.register(config.id, partition: layer.partition, maxPort: config.maxPort) else { throw .invalidDomainID }
        self.domain = domain
        self.root = root
        self.sink = sink
        self.partition = layer.partition
        self.target = root.target
        self.layer = layer
        layerPages = .allocate(capacity: max(frameCount, 1))
        for f in 0..<frameCount {
            layerPages[f] = partitionMemory.hostAddress(of: GuestFrameNumber(layer.layerFrames.rawValue + UInt64(f)))!
        }
        slots = EventFlagSlots(maxPort: config.maxPort)
        upcallRequested = .allocate(capacity: config.vcpuCount)
        upcallRequested.initialize(repeating: 0, count: config.vcpuCount)
        drainStates = .allocate(capacity: config.vcpuCount * DrainState.stride)
        drainStates.initialize(repeating: 0, count: config.vcpuCount * DrainState.stride)
        copyWindowsMapped = .allocate(capacity: config.vcpuCount)
        copyWindowsMapped.initialize(repeating: 0, count: config.vcpuCount)
        counters = .allocate(capacity: 1 + ControlMessageCounts.verdicts)
        counters.initialize(repeating: 0, count: 1 + ControlMessageCounts.verdicts)
        guard setUpSynIC() else { throw .targetRefused }
        root.registerGranter(config.id, self)
    }

    deinit {
        slots.deallocate()
        upcallRequested.deallocate()
        drainStates.deallocate()
        counters.deallocate()
        layerPages.deallocate()
        copyWindowsMapped.deallocate()
    }

    /// The hypercall entry: `registers` from `vcpu`; the value for RAX.
    @inline(__always)
    @inlinable public func hypercall(vcpu: Int, _ registers: XenHypercallRegisters) -> Int64 {
        domain.hypercall(registers, vcpu: vcpu, fabric: self)
    }

    @inline(__always)
    @inlinable func drainState(_ vp: Int) -> UnsafeMutablePointer<UInt32> { drainStates + vp * DrainState.stride }

    /// Counts one Viridian hypercall (relaxed load and store: no locked instruction on the
    /// fast path for a statistic).
    @inline(__always)
    @inlinable func countHypercall() { xv_store_relaxed_u64(counters, xv_load_relaxed_u64(counters) &+ 1) }

    @inlinable func countControlMessage(_ verdict: ControlVerdict) {
        guard Int(verdict.rawValue) < ControlMessageCounts.verdicts else { return }
        _ = xv_fetch_add_relaxed_u64(counters + 1 + Int(verdict.rawValue), 1)
    }

    // MARK: - Frames and SynIC setup

    /// Layer frame `n` of VP `vp` (0: SynIC message page, 1: event-flags page, 2: hypercall
    /// input page), as the target addresses it.
    @inline(__always)
    @inlinable func frame(_ vp: Int, _ n: Int) -> GuestFrameNumber { GuestFrameNumber(layer.layerFrames.rawValue &+ UInt64(3 * vp + n)) }
    /// The same frame's host page.
    @inline(__always)
    @inlinable func page(_ vp: Int, _ n: Int) -> UnsafeMutableRawPointer { layerPages[3 * vp + n] }

    /// Bit 63 "open source", OS type 3 "Xen" (TLFS "Reporting the Guest OS Identity"), version
    /// 4.17 in bits 31:16.
    @inlinable static var guestOSID: UInt64 { 1 << 63 | 3 << 56 | 0x0411 << 16 }

    @inlinable func setUpSynIC() -> Bool {
        guard target.writeMSR(partition: partition, vp: VPIndex(0), msr: .guestOsId, value: Self.guestOSID) == .done else { return false }
        // The reference TSC page, enabled (TLFS "Reference TSC Page"). A target that refuses it
        // leaves the domain without pvclock (`timeBase` is nil), not without events.
        _ = target.writeMSR(partition: partition, vp: VPIndex(0), msr: .referenceTsc, value: referenceTSCFrame.rawValue << 12 | 1)
        for v in 0..<domain.vcpuCount {
            let vp = VPIndex(UInt32(v))
            guard target.writeMSR(partition: partition, vp: vp, msr: .simp, value: frame(v, 0).rawValue << 12 | 1) == .done,
                  target.writeMSR(partition: partition, vp: vp, msr: .siefp, value: frame(v, 1).rawValue << 12 | 1) == .done,
                  programSINTs(v, vector: layer.bootstrapVector),
                  target.writeMSR(partition: partition, vp: vp, msr: .scontrol, value: 1) == .done else { return false }
        }
        return true
    }

    /// Every SINT of VP `v` unmasked, AutoEOI, on `vector` (TLFS "SINTx Registers": vector in
    /// bits 7:0, AutoEOI bit 17).
    @inlinable func programSINTs(_ v: Int, vector: UInt8) -> Bool {
        let value = UInt64(vector) | 1 << 17
        for s in 0..<16 {
            guard target.writeMSR(partition: partition, vp: VPIndex(UInt32(v)), msr: HVMSR(rawValue: HVMSR.sint0.rawValue + UInt32(s)),
                                  value: value) == .done else { return false }
        }
        return true
    }

    // MARK: - Viridian calls

    /// A fast hypercall from VP `vp`; its status.
    @inline(__always)
    @inlinable func fastCall(_ code: HVCallCode, vp: Int, rdx: UInt64, r8: UInt64) -> HVStatus {
        var input = HVHypercallInput(rawValue: 0)
        input.callCode = UInt64(code.rawValue)
        input.fast = true
        countHypercall()
        return target.hypercall(partition: partition, vp: VPIndex(UInt32(truncatingIfNeeded: vp)), input: input, rdx: rdx, r8: r8).status
    }

    /// HvCallPostMessage of a control message from VP 0 into `peer`'s control port for this
    /// domain, from VP 0's input page (a layer frame: no guest vCPU can rewrite it while the
    /// target reads it). Every post comes from a binding change, which holds the domain's
    /// event lock, so one input page serves them all.
    @inlinable func postControl(to peer: DomainID, type: ControlMessageType, port: UInt32, fromPort: UInt32) -> HVStatus {
        let inputFrame = frame(0, 2)
        let page = page(0, 2)
        page.initializeMemory(as: UInt8.self, repeating: 0, count: HvInputPostMessageLayout.size)
        page.storeBytes(of: XenViridianRoot<Target>.controlConnection(to: peer).rawValue.littleEndian,
                        toByteOffset: HvInputPostMessageLayout.connectionid.offset, as: UInt32.self)
        page.storeBytes(of: type.rawValue.littleEndian, toByteOffset: HvInputPostMessageLayout.messageType.offset, as: UInt32.self)
        page.storeBytes(of: ControlIDs.payloadSize.littleEndian, toByteOffset: HvInputPostMessageLayout.payloadSize.offset, as: UInt32.self)
        let payload = page + HvInputPostMessageLayout.payload.offset
        payload.storeBytes(of: port.littleEndian, toByteOffset: XvControlMessageLayout.port.offset, as: UInt32.self)
        payload.storeBytes(of: domain.id.rawValue.littleEndian, toByteOffset: XvControlMessageLayout.fromDomain.offset, as: UInt16.self)
        payload.storeBytes(of: fromPort.littleEndian, toByteOffset: XvControlMessageLayout.fromPort.offset, as: UInt32.self)
        var input = HVHypercallInput(rawValue: 0)
        input.callCode = UInt64(HVCallCode.postMessage.rawValue)
        // The peer's control queue can be full while its layer drains on another thread: try
        // again a bounded number of times (a peer whose vCPUs do not run keeps it full, and
        // the caller then gets the status).
        var status = HVStatus.insufficientBuffers
        for attempt in 0..<Self.postAttempts {
            countHypercall()
            status = target.hypercall(partition: partition, vp: VPIndex(0), input: input, rdx: inputFrame.rawValue << 12, r8: 0).status
            guard status == .insufficientBuffers else { break }
            if attempt & 15 == 15 { sched_yield() } else { xv_cpu_relax() }
        }
        return status
    }

    /// VCPUOP_send_nmi: Viridian has no guest call that sends an NMI, so the embedder injects it.
    @inlinable public func raiseNMI(_ domain: XenDomain<Memory>, vcpu: Int) { sink.nmi(domain: domain.id, vcpu: vcpu) }

    /// SCHEDOP_yield: HvCallNotifyLongSpinWait, fast (TLFS "HvCallNotifyLongSpinWait": RDX
    /// holds the spin count). Xen's yield says nothing of spinning, so the count is all ones:
    /// a long wait. One Viridian call per Xen call.
    @inlinable public func yieldVCPU(_ domain: XenDomain<Memory>, vcpu: Int) {
        _ = fastCall(.notifyLongSpinWait, vp: vcpu, rdx: UInt64(UInt32.max), r8: 0)
    }

    /// A guest shutdown has no Viridian call (a Hyper-V guest powers off through ACPI): the
    /// embedder is told, as on the native side.
    @inlinable public func domainShutdown(_ domain: XenDomain<Memory>, reason: UInt8) { sink.shutdown(domain: domain.id, reason: reason) }
    /// Hands VCPUOP_initialise's register state to `XenUpcallSink.initialiseVCPU` (Viridian has no guest call for it); its answer is the call's (false: -EINVAL).
    @inlinable public func initialiseVCPU(_ domain: XenDomain<Memory>, vcpu: Int, _ context: XenVCPUContext) -> Bool {
        sink.initialiseVCPU(domain: domain.id, vcpu: vcpu, context)
    }
    /// Hands VCPUOP_up/down to `XenUpcallSink.vcpuPowerChanged`: the embedder starts or stops running the vCPU.
    @inlinable public func vcpuPowerChanged(_ domain: XenDomain<Memory>, vcpu: Int, up: Bool) { sink.vcpuPowerChanged(domain: domain.id, vcpu: vcpu, up: up) }

    /// The layer frames (SynIC message and event-flag pages, hypercall input pages, the
    /// reference TSC page, the grant copy windows): memory_op never lets the guest's map reach them.
    @inlinable public func ownsFrame(_ domain: XenDomain<Memory>, _ frame: GuestFrameNumber) -> Bool {
        frame.rawValue >= layer.layerFrames.rawValue
            && frame.rawValue - layer.layerFrames.rawValue < UInt64(LayerConfiguration.layerFrameCount(vcpuCount: domain.vcpuCount))
    }

    // MARK: - Grants (through the root: `GrantRoot.swift`)

    /// Pins `ref` of `granter`'s table: the domain's own table directly for a self-grant, otherwise through the root to the granter's layer (GNTST_bad_domain when none answers).
    @inlinable public func acquireGrant(_ domain: XenDomain<Memory>, granter: DomainID, ref: UInt32, writable: Bool, use: GrantUse) -> GrantAcquisition {
        if granter == domain.id { return domain.acquireGrant(ref: ref, grantee: granter, writable: writable, use: use, fabric: self) }
        return root.acquireGrant(granter: granter, ref: ref, grantee: domain.id, writable: writable, use: use, as: XenViridianDomain<Target, Memory, Sink>.self)
    }

    /// Drops a pin `acquireGrant` took: directly for a self-grant, otherwise through the root.
    @inlinable public func releaseGrant(_ domain: XenDomain<Memory>, granter: DomainID, ref: UInt32, writable: Bool) {
        if granter == domain.id { domain.releaseGrant(ref: ref, writable: writable, fabric: self); return }
        root.releaseGrant(granter: granter, ref: ref, writable: writable, as: XenViridianDomain<Target, Memory, Sink>.self)
    }

    /// HvCallMapGpaPages of the granter's frame into this partition (a self-grant too: the
    /// target maps the partition's own frame).
    @inlinable public func mapGrantedFrame(_ domain: XenDomain<Memory>, at frame: GuestFrameNumber, granter: DomainID, granterFrame: UInt64, writable: Bool) -> Bool {
        countHypercall()
        return root.mapGrantedFrame(into: domain.id, at: frame, from: granter, granterFrame: granterFrame, writable: writable)
    }

    /// Asks the granter (this domain's own table for a self-grant, else through the root) whether it holds the pin.
    @inlinable public func grantHeld(_ domain: XenDomain<Memory>, granter: DomainID, ref: UInt32, granterFrame: UInt64, writable: Bool) -> Bool {
        if granter == domain.id { return domain.holdsPin(ref: ref, grantee: granter, frame: granterFrame, writable: writable) }
        return root.grantHeld(granter: granter, ref: ref, grantee: domain.id, frame: granterFrame, writable: writable, as: XenViridianDomain<Target, Memory, Sink>.self)
    }

    /// Unmaps the grant at `frame` through the root (one Viridian unmap, counted as a hypercall): the frame becomes a hole in this partition.
    @inlinable public func unmapGrantedFrame(_ domain: XenDomain<Memory>, at frame: GuestFrameNumber, granter: DomainID, granterFrame: UInt64) {
        countHypercall()
        _ = root.unmapGrantedFrame(from: domain.id, at: frame)
    }

    /// The vCPU's copy window `window` (a layer frame), with the granter's frame mapped there
    /// by the target, reached through the target's view (so with the mapping's rights).
    @inlinable public func grantedPage(_ domain: XenDomain<Memory>, vcpu: Int, window: Int, granter: DomainID, granterFrame: UInt64, writable: Bool) -> UnsafeMutableRawPointer? {
        let frame = copyWindow(vcpu, window)
        countHypercall()
        guard root.mapGrantedFrame(into: domain.id, at: frame, from: granter, granterFrame: granterFrame, writable: writable) else { return nil }
        copyWindowsMapped[vcpu] |= 1 << UInt8(window)
        return target.hostAddress(partition: partition, frame: frame, write: writable)
    }

    /// Unmaps every copy window `grantedPage` mapped for `vcpu` (one Viridian call each); called after each GNTTABOP_copy entry.
    @inlinable public func releaseGrantedPages(_ domain: XenDomain<Memory>, vcpu: Int) {
        for window in 0..<2 where copyWindowsMapped[vcpu] & (1 << UInt8(window)) != 0 {
            countHypercall()
            _ = root.unmapGrantedFrame(from: domain.id, at: copyWindow(vcpu, window))
        }
        copyWindowsMapped[vcpu] = 0
    }

    /// Copy window `window` (0 or 1) of VP `vp`: after the reference TSC page.
    @inline(__always)
    @inlinable func copyWindow(_ vp: Int, _ window: Int) -> GuestFrameNumber {
        GuestFrameNumber(layer.layerFrames.rawValue &+ UInt64(3 * domain.vcpuCount + 1 + 2 * vp + window))
    }

    /// A vCPU's Xen timer on its VP's synthetic timer 0, one-shot, in message mode on
    /// `ControlIDs.timerSint` (TLFS "Synthetic Timers": SINT 0 is not allowed there). Message mode, not direct mode: the expiry arrives as an
    /// HVMSG_TIMER_EXPIRED in the SIM slot the layer already drains, naming its timer, with no
    /// interrupt vector of its own to reserve beside the guest's; an expiry that finds the slot
    /// busy waits for the EOM instead of being lost. COUNT is absolute reference time, the
    /// deadline's 100 ns tick rounded up (one already past expires at once).
    @inlinable public func armTimer(_ domain: XenDomain<Memory>, vcpu: Int, deadline: UInt64?) {
        let vp = VPIndex(UInt32(vcpu))
        _ = target.writeMSR(partition: partition, vp: vp, msr: .stimer0Config, value: 0)
        guard let deadline else { return }
        var config = HVSTimerConfigMSR(rawValue: 0)
        config.enable = true
        config.sintx = UInt64(ControlIDs.timerSint)
        let count = deadline / 100 + (deadline % 100 == 0 ? 0 : 1)
        _ = target.writeMSR(partition: partition, vp: vp, msr: .stimer0Count, value: max(count, 1))
        _ = target.writeMSR(partition: partition, vp: vp, msr: .stimer0Config, value: config.rawValue)
    }

    /// The partition's reference TSC page: the layer's last frame.
    @inlinable var referenceTSCFrame: GuestFrameNumber { GuestFrameNumber(layer.layerFrames.rawValue &+ UInt64(3 * domain.vcpuCount)) }

    /// The partition's clock: the reference TSC page as the target last wrote it (read between
    /// two reads of an unchanged, valid TscSequence, TLFS "Reference TSC Page"), and a TSC near
    /// now, from HV_X64_MSR_TIME_REF_COUNT (the first TSC at which the page shows that time).
    /// Nil while the page is disabled or invalid (sequence 0 or 0xFFFFFFFF: the hypervisor's
    /// "use HV_X64_MSR_TIME_REF_COUNT instead"), or the MSRs cannot be read.
    @inlinable public func timeBase(_ domain: XenDomain<Memory>) -> XenTimeBase? {
        // A page the embedder turned off is stale, whatever it still holds.
        guard case .value(let msr) = target.readMSR(partition: partition, vp: VPIndex(0), msr: .referenceTsc), msr & 1 != 0 else { return nil }
        let page = layerPages[3 * domain.vcpuCount]
        for _ in 0..<16 {
            let sequence = xv_load_acquire_u32(page + HvReferenceTscPageLayout.tscSequence.offset)
            guard sequence != 0, sequence != UInt32.max else { return nil }
            let scale = UInt64(littleEndian: xv_atomic_load_u64(page + HvReferenceTscPageLayout.tscScale.offset))
            let offset = Int64(bitPattern: UInt64(littleEndian: xv_atomic_load_u64(page + HvReferenceTscPageLayout.tscOffset.offset)))
            guard xv_load_acquire_u32(page + HvReferenceTscPageLayout.tscSequence.offset) == sequence else { continue }
            guard scale != 0, case .value(let now) = target.readMSR(partition: partition, vp: VPIndex(0), msr: .timeRefCount) else { return nil }
            let p = ReferenceTSCParameters(scale: scale, offset: offset)
            return XenTimeBase(page: p, tsc: p.tsc(atReferenceTime: now))
        }
        return nil
    }

    /// HvCallFlushVirtualAddressSpace (TLFS "Virtual TLB flush hypercalls") for HVMOP_flush_tlbs:
    /// every processor, every address space, as Xen's paging_flush_tlb(NULL). The input block
    /// is in the calling VP's own input page, past the part control posts use, so no other
    /// thread writes it while the target reads it. One Viridian call per Xen call.
    @inlinable public func flushTLBs(_ domain: XenDomain<Memory>, from vcpu: Int) -> LayerOutcome {
        let block = page(vcpu, 2) + Self.flushInputOffset
        block.initializeMemory(as: UInt8.self, repeating: 0, count: HvTlbFlushLayout.size)
        // From raw values: an option-set array literal allocates in unoptimised builds.
        let flags = HVFlushFlags(rawValue: HVFlushFlags.allProcessors.rawValue | HVFlushFlags.allVirtualAddressSpaces.rawValue)
        block.storeBytes(of: flags.rawValue.littleEndian, toByteOffset: HvTlbFlushLayout.flags.offset, as: UInt64.self)
        var input = HVHypercallInput(rawValue: 0)
        input.callCode = UInt64(HVCallCode.flushVirtualAddressSpace.rawValue)
        countHypercall()
        let gpa = frame(vcpu, 2).rawValue << 12 | UInt64(Self.flushInputOffset)
        let status = target.hypercall(partition: partition, vp: VPIndex(UInt32(vcpu)), input: input, rdx: gpa, r8: 0).status
        return status == .success ? .ok : .targetFailed
    }

    /// Where in a VP's input page the flush input block sits (control posts use the start of
    /// VP 0's).
    @inlinable static var flushInputOffset: Int { 2048 }

    /// How often a control message is posted before a full queue is reported.
    @inlinable static var postAttempts: Int { 4096 }

    /// Creates this partition's event port for Xen `port`, on its slot's SINT and flag, aimed
    /// at the port's notify vCPU.
    @inlinable func createEventPort(_ port: UInt32, slot k: Int) -> HVStatus {
        let vp = VPIndex(UInt32(domain.channel(port).notifyVCPU))
        return target.createPort(in: partition, port: PortID(port),
                                 kind: .event(vp: vp, sint: EventFlagSlots.sint(of: k), baseFlag: EventFlagSlots.flag(of: k), flagCount: 1))
    }

    /// Deletes the port's Viridian event port, then, under the port's lock, withdraws its slot
    /// from the interrupt path and clears its flag on every VP (one the target set before the
    /// deletion, or on the VP the port was aimed at before a bind_vcpu), so the slot's next
    /// port never takes this port's event. The target sets no flag of a deleted port.
    @inlinable func deleteEventPort(_ port: UInt32) {
        guard let k = slots.slot(of: port) else { return }
        _ = target.deletePort(in: partition, port: PortID(port))
        let sint = Int(EventFlagSlots.sint(of: k)), flag = Int(EventFlagSlots.flag(of: k))
        domain.lockChannel(port)
        slots.unpublish(port)
        for vp in 0..<domain.vcpuCount {
            let word = page(vp, 1) + HvSynicEventFlagsPageLayout.sinteventFlags.offset(ofElement: sint) + 8 * (flag / 64)
            _ = xv_atomic_fetch_and_u64(word, ~(UInt64(1) << UInt64(flag % 64)).littleEndian)
        }
        domain.unlockChannel(port)
        slots.release(port)
    }

    // MARK: - EventFabric

    /// Whether the root has a partition registered for domain `id` (else the caller's bind is -ESRCH).
    @inlinable public func domainExists(_ id: DomainID) -> Bool { root.partition(of: id) != nil }

    /// EVTCHNOP_alloc_unbound's Viridian side: a slot in the event-flag page and a one-flag Viridian port for `port`, and the root's offer of it to `remote`. `.portsExhausted` when no slot is left or the target refuses the port.
    @inlinable public func offer(_ domain: XenDomain<Memory>, port: UInt32, to remote: DomainID) -> LayerOutcome {
        guard let k = slots.assign(port) else { return .portsExhausted }
        guard createEventPort(port, slot: k) == .success else {
            slots.release(port)
            return .portsExhausted
        }
        root.offer(domain.id, port: port, to: remote)
        return .ok
    }

    /// The unbound `port` was closed. A peer may have bound it meanwhile (the root linked it,
    /// and the peer's "bound" notice is on its way): then this close is the close of that
    /// channel, and the peer is told, as Xen's close after a bind leaves the peer's port
    /// unbound.
    @inlinable public func withdraw(_ domain: XenDomain<Memory>, port: UInt32) {
        closeBindable(port, freeingRecord: false)
    }

    /// The Viridian side of closing an unbound or interdomain port: the root removes what its
    /// records say the port is linked to (never what the domain's own record says) and any
    /// offer of it, in one step; the port's Viridian event port and slot go; the record is
    /// freed when XenCore has not freed it already; the other end, if any, is told.
    @inlinable func closeBindable(_ port: UInt32, freeingRecord: Bool) {
        let other = root.close(domain.id, port: port)
        deleteEventPort(port)
        if freeingRecord { domain.freeChannel(port) }
        if let other {
            _ = postControl(to: other.domain, type: .closed, port: other.port, fromPort: port)
        }
    }

    /// EVTCHNOP_bind_interdomain's Viridian side: the root must hold `remote`'s offer of `remotePort` to this domain (else `.portInvalid`); then a local Viridian port, the root's link (a connection each way) and a `bound` control message to the peer. If the message cannot be posted the bind is undone whole (`.wouldBlock` for full message buffers, `.targetFailed` otherwise).
    @inlinable public func connect(_ domain: XenDomain<Memory>, localPort: UInt32, to remote: DomainID, remotePort: UInt32) -> LayerOutcome {
        guard root.isOffered(remote, port: remotePort, to: domain.id) else { return .portInvalid }
        guard let k = slots.assign(localPort) else { return .portsExhausted }
        guard createEventPort(localPort, slot: k) == .success else {
            slots.release(localPort)
            return .portsExhausted
        }
        let linked = root.bind(domain.id, port: localPort, to: remote, remotePort: remotePort)
        guard linked == .ok else {
            deleteEventPort(localPort)
            return linked
        }
        // The local end is bound before the peer hears of it, so the peer's first send finds it.
        domain.bindInterdomain(localPort, remote: remote, remotePort: remotePort)
        let told = postControl(to: remote, type: .bound, port: remotePort, fromPort: localPort)
        guard told == .success else {
            // The peer never learnt of the bind: undo it whole (the root offers the peer's
            // port to this domain again).
            _ = root.unbind(domain.id, port: localPort)
            deleteEventPort(localPort)
            domain.freeChannel(localPort)
            return told == .insufficientBuffers ? .wouldBlock : .targetFailed
        }
        return .ok
    }

    /// Closing an interdomain port removes what the root's records say this port is linked
    /// to, not what `channel` says: a domain's own record never decides which of another
    /// domain's connections go (`closeBindable`, `XenViridianRoot.close`). A port the root had
    /// offered back to its peer (the peer closed first, and its notice has not been taken yet)
    /// is offered no more.
    @inlinable public func disconnect(_ domain: XenDomain<Memory>, port: UInt32, channel: EventChannel) {
        closeBindable(port, freeingRecord: true)
    }

    /// One HvCallSignalEvent: connection = the local port, flag 0 of the peer's one-flag port.
    /// When the connection is gone (the peer closed, and its notice is on its way), the send
    /// is dropped, as Xen drops a send on the unbound port this one is about to become.
    @inline(__always)
    @inlinable public func send(_ domain: XenDomain<Memory>, port: UInt32, channel: EventChannel, from vcpu: Int) -> LayerOutcome? {
        let status = fastCall(.signalEvent, vp: vcpu, rdx: UInt64(port), r8: 0)
        if status == .success { return .ok }
        if status == .invalidPortId { return resignal(port, peer: channel.remoteDomain, from: vcpu) }
        return status == .invalidConnectionId ? .ok : .targetFailed
    }

    /// The peer's port was missing. Either the peer closed it (the close reaches this side as a
    /// control message, and Xen drops a send to a closed end too), or the peer's layer is
    /// re-aiming it for EVTCHNOP_bind_vcpu, which Xen does without losing an event. So signal
    /// again, each try bracketed by the peer's re-aim sequence: the event is dropped only when
    /// a signal found no port while no re-aim overlapped it. A peer that re-aims without end
    /// loses its own event after `resignalAttempts` tries, never the sender's vCPU.
    @inline(never)
    @inlinable func resignal(_ port: UInt32, peer: DomainID, from vcpu: Int) -> LayerOutcome {
        for _ in 0..<Self.resignalAttempts {
            var before = root.retargetSequence(of: peer)
            while before & 1 != 0 {
                xv_cpu_relax()
                before = root.retargetSequence(of: peer)
            }
            let status = fastCall(.signalEvent, vp: vcpu, rdx: UInt64(port), r8: 0)
            if status == .success { return .ok }
            guard status == .invalidPortId else { return status == .invalidConnectionId ? .ok : .targetFailed }
            if root.retargetSequence(of: peer) == before { return .ok }
        }
        return .ok
    }

    /// How many re-aims of the peer's port one send waits out.
    @inlinable static var resignalAttempts: Int { 64 }

    /// The upcall of `vcpu`: injected directly when it is the calling vCPU, otherwise requested with one fast HvCallSendSyntheticClusterIpi on the guest's upcall vector, which the target VP's `interrupt` turns into the injection. Nothing when `vcpu` has no upcall vector.
    @inline(__always)
    @inlinable public func raiseUpcall(_ domain: XenDomain<Memory>, vcpu: Int, from current: Int) {
        if vcpu == current {
            deliverUpcall(vcpu)
            return
        }
        guard let vector = domain.upcallVector(vcpu) else { return }
        xv_store_release_u32(upcallRequested + vcpu, 1)
        // HvCallSendSyntheticClusterIpi, fast: RDX = vector, R8 = processor mask (vCPUs < 32).
        _ = fastCall(.sendIpi, vp: current, rdx: UInt64(vector), r8: 1 << UInt64(vcpu))
    }

    @inline(__always)
    @inlinable func deliverUpcall(_ vcpu: Int) {
        if let vector = domain.upcallVector(vcpu) { sink.upcall(domain: domain.id, vcpu: vcpu, vector: vector) }
    }

    /// EVTCHNOP_bind_vcpu on a bindable port: its Viridian port is deleted and created again aimed at the new VP; connections name the port id and keep working.
    @inlinable public func notifyVCPUChanged(_ domain: XenDomain<Memory>, port: UInt32) {
        guard let k = slots.slot(of: port) else { return }
        // Re-aim the port at the new VP; connections name the port id and keep working. A
        // peer's signal in between finds no port and retries (`resignal`).
        root.beginRetarget(domain.id)
        _ = target.deletePort(in: partition, port: PortID(port))
        _ = createEventPort(port, slot: k)
        root.endRetarget(domain.id)
    }

    /// Reprograms `vcpu`'s event SINTs on its new upcall vector (the bootstrap vector when it has none); `.invalidArgument` when the target refuses the vector.
    @inlinable public func upcallVectorChanged(_ domain: XenDomain<Memory>, vcpu: Int) -> LayerOutcome {
        programSINTs(vcpu, vector: domain.upcallVector(vcpu) ?? layer.bootstrapVector) ? .ok : .invalidArgument
    }
}

extension XenViridianDomain {
    /// Where the target signals Xen `port`: the VP, SINT and flag of its Viridian event port,
    /// or nil when the port has none (not unbound or interdomain).
    @inlinable public func eventFlag(of port: UInt32) -> (vp: Int, sint: Int, flag: Int)? {
        guard port <= domain.maxPort, let k = slots.slot(of: port) else { return nil }
        return (Int(domain.channel(port).notifyVCPU), Int(EventFlagSlots.sint(of: k)), Int(EventFlagSlots.flag(of: k)))
    }

    /// Whether `frame` of the partition's memory is one of the layer's own frames: what an
    /// embedder offering the guest Viridian (`.xenWithViridian`) checks before it hands the
    /// guest's Viridian hypercalls and SynIC MSR writes to the target.
    @inlinable public func isLayerFrame(_ frame: GuestFrameNumber) -> Bool {
        let first = layer.layerFrames.rawValue
        return frame.rawValue >= first && frame.rawValue - first < UInt64(LayerConfiguration.layerFrameCount(vcpuCount: domain.vcpuCount))
    }

    /// The synthetic MSRs the layer programs on every VP of its partition: a guest offered
    /// Viridian must not write them (the embedder keeps such writes from the target).
    @inlinable public static func isLayerMSR(_ msr: HVMSR) -> Bool {
        msr == .guestOsId || msr == .simp || msr == .siefp || msr == .scontrol || msr == .eom || msr == .referenceTsc
            || (msr.rawValue >= HVMSR.sint0.rawValue && msr.rawValue <= HVMSR.sint0.rawValue + 15)
    }

    /// Bindable ports the layer can hold at once (the flag slots of SINTs 1-15).
    @inlinable public static var bindablePortCapacity: Int { EventFlagSlots.capacity }
}

/// Who drains a VP's SynIC: RUNNING while a caller of `interrupt` does, AGAIN when another
/// call came meanwhile (the drainer goes round once more). One 64-byte line per VP.
@usableFromInline enum DrainState {
    @inlinable static var running: UInt32 { 1 }
    @inlinable static var again: UInt32 { 2 }
    @inlinable static var stride: Int { 16 }
}

extension XenViridianDomain: XenGrantGranter {
    /// The root asks this layer about its own domain's grants.
    @inlinable public func acquireGrant(ref: UInt32, grantee: DomainID, writable: Bool, use: GrantUse) -> GrantAcquisition {
        domain.acquireGrant(ref: ref, grantee: grantee, writable: writable, use: use, fabric: self)
    }
    /// Whether this domain's own table holds `grantee`'s pin of `ref`, for the root.
    @inlinable public func holdsPin(ref: UInt32, grantee: DomainID, frame: UInt64, writable: Bool) -> Bool {
        domain.holdsPin(ref: ref, grantee: grantee, frame: frame, writable: writable)
    }
    /// Drops a pin of this domain's own grant `ref`, for the root.
    @inlinable public func releaseGrant(ref: UInt32, writable: Bool) { domain.releaseGrant(ref: ref, writable: writable, fabric: self) }
}
