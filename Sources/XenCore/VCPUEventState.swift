import GuestABI
import XenABI

/// A vCPU's event-channel state that Xen keeps outside guest memory: its upcall vector, its
/// VIRQ bindings and its FIFO control block and queue tails (xen-project/xen
/// xen/include/xen/sched.h `struct vcpu`, xen/common/event_fifo.c `struct evtchn_fifo_vcpu`).
struct VCPUEventState {
    /// HVMOP_set_evtchn_upcall_vector's vector; 0 when none is set.
    var upcallVector: UInt8 = 0
    /// True once EVTCHNOP_init_control mapped this vCPU's control block.
    var hasControlBlock = false
    /// Guest-physical address of the FIFO control block.
    var controlBlock = GuestPhysicalAddress(0)
    /// Port bound to each VIRQ on this vCPU (0: none). Global VIRQs live on vCPU 0.
    var virqPorts = InlineArray<24, UInt32>(repeating: 0)
    /// FIFO: the last port linked on each priority queue (0: the queue is empty as far as Xen
    /// knows).
    var queueTails = InlineArray<16, UInt32>(repeating: 0)
}
