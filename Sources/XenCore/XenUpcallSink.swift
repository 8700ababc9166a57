import XenABI

/// The embedder's virtual local APICs, as far as Xen events go: a vCPU's upcall is the
/// injection of its callback vector (HVM_PARAM_CALLBACK_IRQ of the vector type, or the
/// per-vCPU HVMOP_set_evtchn_upcall_vector). XenNative calls it where Xen would inject; the
/// translation layer calls it once it has turned Viridian event flags, messages or a
/// synthetic IPI into the guest's pending bits.
public protocol XenUpcallSink: AnyObject {
    func upcall(domain: DomainID, vcpu: Int, vector: UInt8)
}
