import XenABI

/// The state of one event channel, as Xen keeps it (xen-project/xen xen/include/xen/sched.h,
/// `struct evtchn` and its ECS_* states). `EVTCHNOP_status` reports it as an
/// `EventChannelStatus`.
@frozen
public enum EventChannelState: UInt8, Sendable {
    /// ECS_FREE: not in use; EVTCHNSTAT_closed.
    case free
    /// ECS_RESERVED: port 0, never usable; EVTCHNSTAT_closed.
    case reserved
    /// ECS_UNBOUND: waiting for `remoteDomain` to bind (EVTCHNOP_alloc_unbound).
    case unbound
    /// ECS_INTERDOMAIN: connected to `remotePort` of `remoteDomain`.
    case interdomain
    /// ECS_VIRQ: delivers virtual IRQ `virq`.
    case virq
    /// ECS_IPI: a vCPU-to-vCPU channel inside the domain.
    case ipi

    /// What EVTCHNOP_status reports for this state.
    @inlinable
    public var status: EventChannelStatus {
        switch self {
        case .free, .reserved: return .closed
        case .unbound: return .unbound
        case .interdomain: return .interdomain
        case .virq: return .virq
        case .ipi: return .ipi
        }
    }
}

/// One port of a domain: its binding and the per-port FIFO bookkeeping Xen keeps beside it
/// (xen-project/xen xen/common/event_fifo.c: priority, the queue it was last linked on, and
/// the pending state saved while its event-array page is missing). 16 bytes; a domain holds
/// `maxPort + 1` of them, allocated at creation.
public struct EventChannel: Sendable, Equatable {
    /// The binding: free, reserved, unbound, interdomain, VIRQ or IPI.
    public var state: EventChannelState
    /// FIFO priority, 0 (highest) ... 15; EVTCHN_FIFO_PRIORITY_DEFAULT when bound.
    public var priority: UInt8
    /// The VIRQ number, for `.virq`.
    public var virq: UInt8
    /// FIFO: pending while the port had no event word (Xen `evtchn->pending`).
    @usableFromInline var savedPending: Bool
    /// The vCPU whose upcall this port raises.
    public var notifyVCPU: UInt16
    /// FIFO: the vCPU of the queue this port was last linked on.
    @usableFromInline var lastVCPU: UInt16
    /// `.unbound`: the domain allowed to bind; `.interdomain`: the peer.
    public var remoteDomain: DomainID
    /// FIFO: the priority of the queue this port was last linked on.
    @usableFromInline var lastPriority: UInt8
    /// `.interdomain`: the peer's port.
    public var remotePort: UInt32

    /// A free port: no binding, default FIFO priority, every other field 0.
    @inlinable
    public static var free: EventChannel {
        EventChannel(state: .free, priority: UInt8(EventChannelFIFO.priorityDefault), virq: 0, savedPending: false,
                     notifyVCPU: 0, lastVCPU: 0, remoteDomain: DomainID(0), lastPriority: 0, remotePort: 0)
    }

    @usableFromInline
    init(state: EventChannelState, priority: UInt8, virq: UInt8, savedPending: Bool, notifyVCPU: UInt16, lastVCPU: UInt16,
         remoteDomain: DomainID, lastPriority: UInt8, remotePort: UInt32) {
        self.state = state; self.priority = priority; self.virq = virq; self.savedPending = savedPending
        self.notifyVCPU = notifyVCPU; self.lastVCPU = lastVCPU; self.remoteDomain = remoteDomain
        self.lastPriority = lastPriority; self.remotePort = remotePort
    }
}
