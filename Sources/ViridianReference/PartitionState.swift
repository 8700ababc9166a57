import GuestABI
import ViridianABI

/// Everything the reference knows about one partition. Arrays are sized at creation.
@usableFromInline struct PartitionState {
    @usableFromInline let id: PartitionID
    @usableFromInline let config: PartitionConfiguration
    /// HV_X64_MSR_GUEST_OS_ID (partition-wide).
    @usableFromInline var guestOSID: UInt64 = 0
    /// HV_X64_MSR_HYPERCALL (partition-wide).
    @usableFromInline var hypercall = HVHypercallMSR(rawValue: 0)
    /// HV_X64_MSR_REFERENCE_TSC (partition-wide).
    @usableFromInline var referenceTSC = HVReferenceTSCMSR(rawValue: 0)
    /// The last TscSequence written to the reference TSC page (never 0 or 0xFFFFFFFF once
    /// written, as KVM does: both have meant "invalid").
    @usableFromInline var tscSequence: UInt32 = 0
    /// Added (mod 2^64) to the clock's scaled TSC to give this partition's reference time: the
    /// TscOffset of its reference TSC page.
    @usableFromInline var referenceOffset: UInt64
    @usableFromInline var vps: [VirtualProcessorState]
    @usableFromInline var ports: IDTable<PortState>
    @usableFromInline var connections: IDTable<ConnectionState>
    /// Pages of other partitions mapped here, sorted by `frame`.
    @usableFromInline var mappings: [GPAMapping]
    @usableFromInline var queues: MessageQueues

    @inlinable init(id: PartitionID, config: PartitionConfiguration, referenceOffset: UInt64) {
        self.id = id
        self.config = config
        self.referenceOffset = referenceOffset
        vps = Array(repeating: VirtualProcessorState(), count: config.vpCount)
        ports = IDTable(capacity: config.maxPorts)
        connections = IDTable(capacity: config.maxConnections)
        mappings = []
        mappings.reserveCapacity(config.maxMappedPages)
        queues = MessageQueues(vpCount: config.vpCount, depth: config.messageQueueDepth)
    }

    /// Index in `mappings` of the mapping of `frame`, or where it would be inserted.
    @inlinable func mappingIndex(_ frame: UInt64) -> (index: Int, found: Bool) {
        var low = 0, high = mappings.count
        while low < high {
            let mid = (low + high) / 2
            if mappings[mid].frame < frame { low = mid + 1 } else { high = mid }
        }
        return (low, low < mappings.count && mappings[low].frame == frame)
    }

    /// Whether the hypercall interface is usable: KVM routes a hypercall instruction to the
    /// Viridian handler once the guest OS id is nonzero (Linux arch/x86/kvm/hyperv.h
    /// kvm_hv_hypercall_enabled), without requiring the hypercall page; KVM's selftests call
    /// that way, so the reference does the same.
    @inlinable var hypercallsEnabled: Bool { guestOSID != 0 }
}
