import CGuestAtomics
import GuestABI
import XenABI
import XenCore

/// The native baseline: Xen's own handling of the same hypercalls, with no Viridian underneath.
/// Every domain's state is in reach, so an interdomain send sets the peer's pending bit
/// directly and an upcall is an injection into the embedder's APIC (xen-project/xen
/// xen/common/event_channel.c evtchn_send, xen/arch/x86/hvm/irq.c hvm_assert_evtchn_irq).
/// It is the "native" side of every benchmark and the oracle of the differential tests.
///
/// Threads (Docs/Threading.md): hypercalls of any vCPUs of any domains may run at once. An
/// interdomain send takes its own port's lock to read the binding, then the peer port's lock to
/// make it pending; binds and closes take both ports' locks in address order (Xen's
/// double_evtchn_lock), so both ends change together. Domains may be created while others
/// run; they are never destroyed before the system.
public final class XenNativeSystem<Memory: GuestMemory, Sink: XenNativeSink>: EventFabric {
    /// The embedder's hooks (upcalls, NMIs, TLB flushes, yield, TSC, timers, shutdown, vCPU state), retained for the system's life and shared by all its domains.
    public let sink: Sink
    /// Domains by id: the opaque pointer of each, retained once at creation and released in
    /// deinit, 0 for none. Published with a release store, read with an acquire load, so a
    /// lookup on the send path is a load, not a retain (Xen follows a plain pointer to the
    /// remote domain).
    @usableFromInline let directory: UnsafeMutablePointer<UInt64>
    /// Serialises `createDomain`.
    @usableFromInline let creationLock: UnsafeMutablePointer<UInt32>

    /// An empty system (no domains) that reports to `sink`. Allocates the domain directory for every non-reserved domain id.
    public init(sink: Sink) {
        self.sink = sink
        directory = .allocate(capacity: Int(DomainID.firstReserved.rawValue))
        directory.initialize(repeating: 0, count: Int(DomainID.firstReserved.rawValue))
        creationLock = .allocate(capacity: 1)
        creationLock.initialize(to: 0)
    }

    deinit {
        for d in 0..<Int(DomainID.firstReserved.rawValue) where directory[d] != 0 {
            Unmanaged<XenDomain<Memory>>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(directory[d]))!).release()
        }
        directory.deallocate()
        creationLock.deallocate()
    }

    /// Creates a domain; its shared_info frame must be backed.
    @discardableResult
    @inlinable public func createDomain(_ config: DomainConfiguration, memory: Memory) throws(DomainConfigurationError) -> XenDomain<Memory> {
        guard config.id < DomainID.firstReserved else { throw .invalidDomainID }
        xv_spin_lock(creationLock)
        defer { xv_spin_unlock(creationLock) }
        guard directory[Int(config.id.rawValue)] == 0 else { throw .invalidDomainID }
        let domain = try XenDomain(config, memory: memory)
        let opaque = Unmanaged.passRetained(domain).toOpaque()
        xv_store_release_u64(directory + Int(config.id.rawValue), UInt64(UInt(bitPattern: opaque)))
        return domain
    }

    /// The domain's opaque pointer, when it exists.
    @inline(__always)
    @inlinable func entry(_ id: DomainID) -> UnsafeRawPointer? {
        guard id < DomainID.firstReserved else { return nil }
        return UnsafeRawPointer(bitPattern: UInt(xv_load_acquire_u64(directory + Int(id.rawValue))))
    }

    /// Domain `id`, or nil when it was never created or is a reserved id. One acquire load; the system keeps the domain alive.
    @inline(__always)
    @inlinable public func domain(_ id: DomainID) -> XenDomain<Memory>? {
        entry(id).map { Unmanaged<XenDomain<Memory>>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Runs `body` on domain `id` without a retain (the system owns its domains); nil when
    /// there is no such domain.
    @inline(__always)
    @inlinable public func withDomain<R>(_ id: DomainID, _ body: (XenDomain<Memory>) -> R) -> R? {
        guard let e = entry(id) else { return nil }
        return Unmanaged<XenDomain<Memory>>.fromOpaque(e)._withUnsafeGuaranteedRef(body)
    }

    /// The hypercall entry: `registers` from `vcpu` of `domain`; the value for RAX. An unknown
    /// domain is -ESRCH.
    @inlinable public func hypercall(domain id: DomainID, vcpu: Int, _ registers: XenHypercallRegisters) -> Int64 {
        withDomain(id) { $0.hypercall(registers, vcpu: vcpu, fabric: self) } ?? XenErrno.esrch.hypercallReturnValue
    }

    // MARK: - EventFabric

    /// Whether domain `id` has been created.
    @inlinable public func domainExists(_ id: DomainID) -> Bool { domain(id) != nil }

    /// Native Xen needs no bookkeeping to offer a port: always `.ok`.
    @inlinable public func offer(_ domain: XenDomain<Memory>, port: UInt32, to remote: DomainID) -> LayerOutcome { .ok }

    /// Native Xen has nothing to withdraw: does nothing.
    @inlinable public func withdraw(_ domain: XenDomain<Memory>, port: UInt32) {}

    /// Both ends under both ports' locks: the peer's port must still be unbound for this
    /// domain (Xen evtchn_bind_interdomain).
    @inlinable public func connect(_ domain: XenDomain<Memory>, localPort: UInt32, to remote: DomainID, remotePort: UInt32) -> LayerOutcome {
        let bound: Bool? = withDomain(remote) { peer in
            guard peer.isValid(remotePort) else { return false }
            XenDomain.lockPair(domain, localPort, peer, remotePort)
            defer { XenDomain.unlockPair(domain, localPort, peer, remotePort) }
            guard peer.peerBoundLocked(remotePort, to: domain.id, remotePort: localPort) else { return false }
            domain.bindInterdomainLocked(localPort, remote: remote, remotePort: remotePort)
            return true
        }
        return bound == true ? .ok : .portInvalid
    }

    /// Both ends under both ports' locks (Xen evtchn_close: the peer's port becomes unbound,
    /// waiting for this domain). When the peer closed first, this port is already unbound;
    /// when it was then rebound, the new binding is what closes.
    @inlinable public func disconnect(_ domain: XenDomain<Memory>, port: UInt32, channel: EventChannel) {
        var c = channel
        while c.state == .interdomain, let done = withDomain(c.remoteDomain, { peer -> Bool in
            XenDomain.lockPair(domain, port, peer, c.remotePort)
            defer { XenDomain.unlockPair(domain, port, peer, c.remotePort) }
            let now = domain.channelLocked(port)
            if now.state == .interdomain && !now.isInterdomain(with: c.remoteDomain, remotePort: c.remotePort) {
                c = now
                return false
            }
            if now.state == .interdomain { peer.peerClosedLocked(c.remotePort, by: domain.id, remotePort: port) }
            domain.freeLocked(port)
            return true
        }) {
            if done { return }
        }
        domain.freeChannel(port)
    }

    /// The peer port becomes pending under its own lock, if it is still the other end of
    /// this port; nil (read the port again) when it is not.
    @inline(__always)
    @inlinable public func send(_ domain: XenDomain<Memory>, port: UInt32, channel: EventChannel, from vcpu: Int) -> LayerOutcome? {
        let from = domain.id
        let result: (delivered: Bool, upcall: Int?)? = withDomain(channel.remoteDomain) { peer in
            let r = peer.deliver(channel.remotePort) { $0.isInterdomain(with: from, remotePort: port) }
            if let v = r.upcall { inject(peer, vcpu: v) }
            return r
        }
        return result?.delivered == true ? .ok : nil
    }

    /// Injects `vcpu`'s upcall through the sink (when it has an upcall vector); the calling vCPU does not matter natively.
    @inline(__always)
    @inlinable public func raiseUpcall(_ domain: XenDomain<Memory>, vcpu: Int, from current: Int) { inject(domain, vcpu: vcpu) }

    @inline(__always)
    @inlinable func inject(_ domain: XenDomain<Memory>, vcpu: Int) {
        if let vector = domain.upcallVector(vcpu) { sink.upcall(domain: domain.id, vcpu: vcpu, vector: vector) }
    }

    /// Nothing to do natively: the port record already names its new vCPU.
    @inlinable public func notifyVCPUChanged(_ domain: XenDomain<Memory>, port: UInt32) {}

    /// Any vector can be injected natively: always `.ok`.
    @inlinable public func upcallVectorChanged(_ domain: XenDomain<Memory>, vcpu: Int) -> LayerOutcome { .ok }

    /// Hands the NMI to `XenNativeSink.nmi`.
    @inlinable public func raiseNMI(_ domain: XenDomain<Memory>, vcpu: Int) { sink.nmi(domain: domain.id, vcpu: vcpu) }

    /// Hands SCHEDOP_yield to `XenNativeSink.yieldVCPU`.
    @inlinable public func yieldVCPU(_ domain: XenDomain<Memory>, vcpu: Int) { sink.yieldVCPU(domain: domain.id, vcpu: vcpu) }

    /// Arms or disarms the embedder's timer (`XenNativeSink.armTimer`); it fires back through `timerExpired(domain:vcpu:)`.
    @inlinable public func armTimer(_ domain: XenDomain<Memory>, vcpu: Int, deadline: UInt64?) { sink.armTimer(domain: domain.id, vcpu: vcpu, deadline: deadline) }
    /// Xen keeps no frames of its own in a guest's physical space.
    @inlinable public func ownsFrame(_ domain: XenDomain<Memory>, _ frame: GuestFrameNumber) -> Bool { false }

    // Grants: Xen itself, so the granter's table and pages are reached directly.
    /// Pins `ref` in `granter`'s table directly (`XenDomain.acquireGrant`); GNTST_bad_domain when the granter does not exist.
    @inlinable public func acquireGrant(_ domain: XenDomain<Memory>, granter: DomainID, ref: UInt32, writable: Bool, use: GrantUse) -> GrantAcquisition {
        withDomain(granter) { $0.acquireGrant(ref: ref, grantee: domain.id, writable: writable, use: use, fabric: self) } ?? GrantAcquisition(status: .badDomain)
    }
    /// Drops a pin `acquireGrant` took in `granter`'s table; nothing when the granter is gone.
    @inlinable public func releaseGrant(_ domain: XenDomain<Memory>, granter: DomainID, ref: UInt32, writable: Bool) {
        _ = withDomain(granter) { $0.releaseGrant(ref: ref, writable: writable, fabric: self) }
    }
    /// guest_physmap_add_page of the granter's page, through the grantee's embedder.
    @inlinable public func mapGrantedFrame(_ domain: XenDomain<Memory>, at frame: GuestFrameNumber, granter: DomainID, granterFrame: UInt64, writable: Bool) -> Bool {
        guard let page = withDomain(granter, { $0.memory.hostAddress(of: GuestFrameNumber(granterFrame)) }) ?? nil else { return false }
        return domain.withPhysmap { $0.map(page, at: frame, writable: writable) } ?? false
    }
    /// Makes `frame` a hole again through the grantee's physmap (the page stays the granter's: not released).
    @inlinable public func unmapGrantedFrame(_ domain: XenDomain<Memory>, at frame: GuestFrameNumber, granter: DomainID, granterFrame: UInt64) {
        _ = domain.withPhysmap { $0.unmap(frame, releasing: false) }
    }
    /// The host address of `granter`'s frame, reached directly (no copy window is needed natively); nil when the granter or the frame's backing is missing.
    @inlinable public func grantedPage(_ domain: XenDomain<Memory>, vcpu: Int, window: Int, granter: DomainID, granterFrame: UInt64, writable: Bool) -> UnsafeMutableRawPointer? {
        withDomain(granter) { $0.memory.hostAddress(of: GuestFrameNumber(granterFrame)) } ?? nil
    }
    /// The granter's table, read directly (`XenDomain.holdsPin`); false when the granter is gone.
    @inlinable public func grantHeld(_ domain: XenDomain<Memory>, granter: DomainID, ref: UInt32, granterFrame: UInt64, writable: Bool) -> Bool {
        withDomain(granter) { $0.holdsPin(ref: ref, grantee: domain.id, frame: granterFrame, writable: writable) } ?? false
    }
    /// Nothing to release natively: `grantedPage` maps nothing.
    @inlinable public func releaseGrantedPages(_ domain: XenDomain<Memory>, vcpu: Int) {}

    /// The embedder's timer for `vcpu` of `domain` fired.
    @inlinable public func timerExpired(domain id: DomainID, vcpu: Int) {
        withDomain(id) { $0.timerFired(vcpu: vcpu, fabric: self) }
    }

    /// The embedder's TSC, in the page form a hypervisor writes for its frequency (offset 0:
    /// Xen's system time counts from the host's start, not the domain's).
    /// The TSC is taken at the start of its 100 ns tick, as the translated side can only
    /// find it from HV_X64_MSR_TIME_REF_COUNT, so both sides anchor at the same TSC.
    @inlinable public func timeBase(_ domain: XenDomain<Memory>) -> XenTimeBase? {
        guard let page = ReferenceTSCParameters(tscHz: sink.guestTSCHz) else { return nil }
        return XenTimeBase(page: page, tsc: page.tsc(atReferenceTime: page.referenceTime(atTSC: sink.guestTSC())))
    }

    /// Hands the shutdown to `XenUpcallSink.shutdown`.
    @inlinable public func domainShutdown(_ domain: XenDomain<Memory>, reason: UInt8) { sink.shutdown(domain: domain.id, reason: reason) }
    /// Hands VCPUOP_initialise's state to `XenUpcallSink.initialiseVCPU`; its answer is the call's (false: -EINVAL).
    @inlinable public func initialiseVCPU(_ domain: XenDomain<Memory>, vcpu: Int, _ context: XenVCPUContext) -> Bool {
        sink.initialiseVCPU(domain: domain.id, vcpu: vcpu, context)
    }
    /// Hands VCPUOP_up/down to `XenUpcallSink.vcpuPowerChanged`.
    @inlinable public func vcpuPowerChanged(_ domain: XenDomain<Memory>, vcpu: Int, up: Bool) { sink.vcpuPowerChanged(domain: domain.id, vcpu: vcpu, up: up) }

    /// HVMOP_flush_tlbs: `XenNativeSink.flushTLBs`, which completes the flush before returning; always `.ok`.
    @inlinable public func flushTLBs(_ domain: XenDomain<Memory>, from vcpu: Int) -> LayerOutcome {
        sink.flushTLBs(domain: domain.id)
        return .ok
    }
}

extension XenNativeSystem {
    /// An event raised on `port` of `domain` from outside any hypercall of that domain (what
    /// Xen does when a peer or a VIRQ source signals it): pending bit, then the upcall when due.
    @inline(__always)
    @inlinable public func raise(_ domain: XenDomain<Memory>, port: UInt32) {
        if let target = domain.deliver(port, if: { _ in true }).upcall { inject(domain, vcpu: target) }
    }
}

extension XenNativeSystem {
    /// The image of domain `id` (`XenDomain.saveImage`; Docs/SaveRestore.md), or nil when there
    /// is no such domain. The embedder has stopped the domain's vCPUs.
    public func saveImage(of id: DomainID) -> [UInt8]? {
        withDomain(id) { $0.saveImage(fabric: self) }
    }

    /// Restores `bytes` (from either side) into domain `id`, which no hypercall has changed
    /// yet; false when there is no such domain. Throws, changing nothing, when the image is refused.
    public func restoreImage(of id: DomainID, from bytes: [UInt8]) throws(DomainImageRefusal) -> Bool {
        guard let d = domain(id) else { return false }
        try d.restoreImage(bytes, fabric: self)
        return true
    }

    /// `XenDomain.finishRestore` of domain `id`, once every moving domain is restored; the grant mappings shown (0 for an unknown domain).
    @discardableResult
    public func finishRestore(of id: DomainID) -> Int { withDomain(id) { $0.finishRestore(fabric: self) } ?? 0 }
}
