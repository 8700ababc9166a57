import GuestABI
import XenABI

/// How event-channel effects leave a domain: to another domain, or to another vCPU's
/// interrupt. The Xen semantics of every operation live in XenCore; a fabric carries out only
/// what crosses the domain or vCPU boundary. XenNative's fabric does it directly, as Xen does;
/// XenViridian's does it through the Viridian target (the translation rule, Docs/Layer.md
/// "The translation rule, concretely"). Fabrics are classes: handlers call them without copying or boxing. XenCore never
/// calls a fabric with a port lock held, so a fabric may reach a target that calls back into
/// any domain's interrupt path on the same thread (Docs/Threading.md).
public protocol EventFabric: AnyObject {
    /// The guest memory the fabric's domains use (`GuestRAMRegion` in the scenarios, the embedder's own type otherwise).
    associatedtype Memory: GuestMemory

    /// Whether a domain with this id exists (Xen: rcu_lock_domain_by_id, else -ESRCH).
    func domainExists(_ id: DomainID) -> Bool

    /// `port` of `domain` became unbound, waiting for `remote` (EVTCHNOP_alloc_unbound, or the
    /// peer closing an interdomain channel). `.portsExhausted` when the fabric has no room for
    /// another bindable port.
    func offer(_ domain: XenDomain<Memory>, port: UInt32, to remote: DomainID) -> LayerOutcome

    /// The unbound `port` of `domain` was closed or reset.
    func withdraw(_ domain: XenDomain<Memory>, port: UInt32)

    /// Binds `localPort` of `domain` (allocated, its record still free) to `remotePort` of
    /// `remote`, which must be unbound and waiting for `domain` (else `.portInvalid`). On `.ok`
    /// both ends are bound: the remote port is interdomain and names `localPort`, and the
    /// fabric has made `localPort` interdomain (`XenDomain.bindInterdomain`), both under the
    /// locks that make the two ends change together where the fabric reaches the peer directly.
    /// Called with `domain`'s event lock held and no port lock.
    func connect(_ domain: XenDomain<Memory>, localPort: UInt32, to remote: DomainID, remotePort: UInt32) -> LayerOutcome

    /// The interdomain `port` of `domain` (as `channel` read it) is being closed: its peer port
    /// becomes unbound, waiting for `domain` again, and the fabric frees `port`'s record
    /// (`XenDomain.freeChannel`). Called with `domain`'s event lock held and no port lock; the
    /// peer may have closed its end meanwhile.
    func disconnect(_ domain: XenDomain<Memory>, port: UInt32, channel: EventChannel)

    /// EVTCHNOP_send on the interdomain `port` of `domain`, from `vcpu`, as `channel` read it
    /// under the port's lock: the peer port becomes pending, and its vCPU gets its upcall when
    /// that is due. Called with no lock held. Returns nil when `channel` no longer holds (the
    /// peer end was closed or rebound meanwhile), and the send reads the port again.
    func send(_ domain: XenDomain<Memory>, port: UInt32, channel: EventChannel, from vcpu: Int) -> LayerOutcome?

    /// Raise the upcall of `vcpu` of `domain`; the caller runs on `current`.
    func raiseUpcall(_ domain: XenDomain<Memory>, vcpu: Int, from current: Int)

    /// The notify vCPU of an unbound or interdomain `port` changed (EVTCHNOP_bind_vcpu).
    func notifyVCPUChanged(_ domain: XenDomain<Memory>, port: UInt32)

    /// `vcpu`'s upcall vector changed (HVM_PARAM_CALLBACK_IRQ for all vCPUs, or
    /// HVMOP_set_evtchn_upcall_vector). `.invalidArgument` when the fabric cannot deliver it.
    func upcallVectorChanged(_ domain: XenDomain<Memory>, vcpu: Int) -> LayerOutcome

    /// HVMOP_flush_tlbs from `vcpu`: flush the guest TLBs of every vCPU of `domain`, all
    /// address spaces (native: the embedder; translated: one HvCallFlushVirtualAddressSpace).
    func flushTLBs(_ domain: XenDomain<Memory>, from vcpu: Int) -> LayerOutcome

    /// VCPUOP_send_nmi for `vcpu` (both sides: the embedder's `XenUpcallSink.nmi`).
    func raiseNMI(_ domain: XenDomain<Memory>, vcpu: Int)

    /// SCHEDOP_yield from `vcpu` (native: the embedder; translated: HvCallNotifyLongSpinWait).
    func yieldVCPU(_ domain: XenDomain<Memory>, vcpu: Int)

    /// The domain shut down with `reason` (both sides: the embedder's `XenUpcallSink.shutdown`).
    func domainShutdown(_ domain: XenDomain<Memory>, reason: UInt8)

    /// VCPUOP_initialise's register state, and VCPUOP_up/down's run state (both sides: the
    /// embedder's `XenUpcallSink.initialiseVCPU` and `vcpuPowerChanged`).
    func initialiseVCPU(_ domain: XenDomain<Memory>, vcpu: Int, _ context: XenVCPUContext) -> Bool
    /// VCPUOP_up (`up` true) or VCPUOP_down of `vcpu`: the embedder starts or stops running it (both sides: `XenUpcallSink.vcpuPowerChanged`).
    func vcpuPowerChanged(_ domain: XenDomain<Memory>, vcpu: Int, up: Bool)

    /// The guest's clock: its reference TSC page form and a TSC value near now (within a
    /// 100 ns tick), or nil when the side has no valid clock (a disabled reference TSC page).
    func timeBase(_ domain: XenDomain<Memory>) -> XenTimeBase?

    /// Arms `vcpu`'s one timer for Xen system time `deadline` (ns; one in the past fires at
    /// once), or disarms it (nil). When it fires, the side calls `XenDomain.timerFired`.
    /// Native: the embedder's timer; translated: the VP's synthetic timer 0.
    func armTimer(_ domain: XenDomain<Memory>, vcpu: Int, deadline: UInt64?)

    /// Whether `frame` is one the side keeps for itself in the domain's guest-physical space
    /// (a translated domain's layer frames). memory_op never places or populates such a frame,
    /// and answers as it does for a frame the embedder cannot back, so the guest cannot tell
    /// that the frame exists. Native: none.
    func ownsFrame(_ domain: XenDomain<Memory>, _ frame: GuestFrameNumber) -> Bool

    // MARK: Grants (`GrantMapping.swift`, `GrantAccess.swift`)

    /// Asks `granter`'s table to pin `ref` for `domain` (`XenDomain.acquireGrant`, run by the
    /// granter's own side). Native: directly; translated: through the root, to the granter's
    /// layer.
    func acquireGrant(_ domain: XenDomain<Memory>, granter: DomainID, ref: UInt32, writable: Bool, use: GrantUse) -> GrantAcquisition
    /// Drops a pin `acquireGrant` took.
    func releaseGrant(_ domain: XenDomain<Memory>, granter: DomainID, ref: UInt32, writable: Bool)
    /// Shows `granter`'s frame at `domain`'s `frame`, which the caller has emptied (native: the
    /// embedder's physmap; translated: HvCallMapGpaPages from the granter's partition). False
    /// when it cannot be shown.
    func mapGrantedFrame(_ domain: XenDomain<Memory>, at frame: GuestFrameNumber, granter: DomainID, granterFrame: UInt64, writable: Bool) -> Bool
    /// Takes that page away again: `frame` becomes a hole.
    func unmapGrantedFrame(_ domain: XenDomain<Memory>, at frame: GuestFrameNumber, granter: DomainID, granterFrame: UInt64)
    /// The host address through which `domain`'s vCPU may reach `granter`'s frame for a copy,
    /// in copy window `window` (0 source, 1 destination; translated: mapped into one of the
    /// vCPU's layer frames, with the grant's rights), until `releaseGrantedPages`. Nil when the
    /// target refuses.
    func grantedPage(_ domain: XenDomain<Memory>, vcpu: Int, window: Int, granter: DomainID, granterFrame: UInt64, writable: Bool) -> UnsafeMutableRawPointer?
    /// Ends every copy window `grantedPage` opened for `vcpu` (translated: unmaps them from its layer frames); called after each GNTTABOP_copy entry, once its bytes are copied or it failed.
    func releaseGrantedPages(_ domain: XenDomain<Memory>, vcpu: Int)
    /// Whether `granter`'s table holds a pin of `ref` by `domain` on `granterFrame` (writable:
    /// a write pin): what a restore checks before it shows a saved grant mapping again, so an
    /// image can show no page its granter did not grant.
    func grantHeld(_ domain: XenDomain<Memory>, granter: DomainID, ref: UInt32, granterFrame: UInt64, writable: Bool) -> Bool
}

/// The clock a domain's Xen time derives from (`PVClock`): the page form, and a TSC near now.
public struct XenTimeBase: Sendable, Equatable {
    /// The reference TSC page's scale and offset the guest's clock follows (TLFS "Partition Reference TSC Mechanism").
    public var page: ReferenceTSCParameters
    /// A TSC value read near now (within one 100 ns reference tick), in TSC ticks.
    public var tsc: UInt64
    /// A time base from the page form and a TSC near now.
    @inlinable public init(page: ReferenceTSCParameters, tsc: UInt64) {
        self.page = page
        self.tsc = tsc
    }
}
