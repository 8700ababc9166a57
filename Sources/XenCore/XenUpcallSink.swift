import XenABI

/// The embedder's virtual local APICs, as far as Xen events go: a vCPU's upcall is the
/// injection of its callback vector (HVM_PARAM_CALLBACK_IRQ of the vector type, or the
/// per-vCPU HVMOP_set_evtchn_upcall_vector). XenNative calls it where Xen would inject; the
/// translation layer calls it once it has turned Viridian event flags, messages or a
/// synthetic IPI into the guest's pending bits.
public protocol XenUpcallSink: AnyObject {
    /// Inject `vector` into `vcpu` of `domain` (the guest's callback vector, 0x10 ... 0xFF). Called on the delivering thread (possibly another vCPU's) with no lock of the layer held (Docs/Threading.md); it latches the interrupt for the vCPU's next entry.
    func upcall(domain: DomainID, vcpu: Int, vector: UInt8)
    /// VCPUOP_send_nmi: inject an NMI into the vCPU. Xen latches one NMI (v->arch.nmi_pending)
    /// until the vCPU takes it; the embedder's virtual APIC latches it the same way. Viridian
    /// gives a guest no call that sends an NMI (a synthetic IPI's vector is 0x10 or above), so
    /// the layer hands it to the embedder too.
    func nmi(domain: DomainID, vcpu: Int)
    /// The domain shut down (SCHEDOP_shutdown, or VCPUOP_down of its last vCPU), once, with
    /// its shutdown code (Xen's domain_shutdown: the first reason given, or the one
    /// SCHEDOP_shutdown_code set before). The embedder stops the domain's vCPUs; Xen pauses
    /// them. Called on the shutting-down vCPU's thread, no lock held.
    func shutdown(domain: DomainID, reason: UInt8)
    /// VCPUOP_initialise: the guest gives `vcpu`, which is down and has never had one, the
    /// register state it will start from (checked as Xen checks it). The embedder loads it into
    /// its vCPU, or returns false to refuse it (a state its CPU model does not allow; the
    /// guest gets -EINVAL). Called under the domain's event lock: do not call back into the
    /// layer.
    func initialiseVCPU(domain: DomainID, vcpu: Int, _ context: XenVCPUContext) -> Bool
    /// VCPUOP_up or VCPUOP_down changed whether `vcpu` runs: the embedder starts running it
    /// (from the state VCPUOP_initialise or INIT/SIPI gave it), or stops running it (a vCPU
    /// that takes itself down stops when its hypercall returns). Xen's vcpu_wake and
    /// vcpu_sleep_nosync. No lock held.
    func vcpuPowerChanged(domain: DomainID, vcpu: Int, up: Bool)
}

/// What the native baseline, which plays Xen itself, needs of its embedder beyond upcalls: the
/// guest TLB flushes Xen carries out for HVMOP_flush_tlbs (xen/arch/x86/hvm/hvm.c
/// hvmop_flush_tlb_all: every vCPU of the domain, all address spaces). On the translated side
/// the Viridian target does this work, so a layer's sink needs only `XenUpcallSink`.
public protocol XenNativeSink: XenUpcallSink {
    /// HVMOP_flush_tlbs: flush the guest TLBs of every vCPU of `domain`, all address spaces, before returning. Called on the requesting vCPU's thread, no lock held.
    func flushTLBs(domain: DomainID)
    /// SCHEDOP_yield: give the physical CPU to someone else, if the embedder has anyone
    /// (Xen's vcpu_yield). The translated side asks its target (HvCallNotifyLongSpinWait).
    func yieldVCPU(domain: DomainID, vcpu: Int)
    /// The guests' TSC now (what RDTSC returns on their vCPUs) and its frequency: Xen's system
    /// time is this TSC scaled, from TSC 0, as Xen's NOW() is the host's uptime.
    func guestTSC() -> UInt64
    /// The frequency of `guestTSC()` in Hz; read when time is set up, must not change while the domain runs.
    var guestTSCHz: UInt64 { get }
    /// Arms the embedder's timer for `vcpu` at Xen system time `deadline` (ns, on the
    /// `guestTSC` clock; one already past fires at once), replacing the one armed before, or
    /// disarms it (nil). When it fires, the embedder calls `XenNativeSystem.timerExpired`.
    func armTimer(domain: DomainID, vcpu: Int, deadline: UInt64?)
}
