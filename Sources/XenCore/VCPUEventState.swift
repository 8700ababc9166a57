import GuestABI
import XenABI

/// A vCPU's event-channel state that Xen keeps outside guest memory and changes only with the
/// domain's event lock held: its VIRQ bindings (xen-project/xen xen/include/xen/sched.h
/// `struct vcpu`). What other paths read without that lock (the upcall vector, the FIFO
/// control block, the queue tails) is in the domain's per-vCPU words (`VCPUWords`).
@usableFromInline struct VCPUEventState {
    /// Port bound to each VIRQ on this vCPU (0: none). Global VIRQs live on vCPU 0.
    @usableFromInline var virqPorts = InlineArray<24, UInt32>(repeating: 0)
}
