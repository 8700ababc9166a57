import GuestABI
import ViridianABI

/// How the embedder creates a partition. Everything is sized here; nothing the partition does
/// later allocates.
public struct PartitionConfiguration: Sendable {
    /// Number of virtual processors, 1...`ViridianLimits.maximumProcessors`.
    public var vpCount: Int
    /// CPUID privileges, features and recommendations the partition sees and is gated by.
    public var privileges: CPUIDPrivileges
    /// 0x40000004 EBX: the spinlock retry count the partition is told (0xFFFFFFFF: never notify).
    public var spinRetryCount: UInt32
    /// The bytes the reference writes at the start of the hypercall page when the guest enables
    /// it (TLFS "Establishing the Hypercall Interface"); the rest of the page is filled with
    /// 0xCC (INT3) so a stray jump into it traps.
    public var hypercallStub: HypercallStub
    /// Messages each (VP, SINT) can hold beyond its SIM slot before HvCallPostMessage answers
    /// HV_STATUS_INSUFFICIENT_BUFFERS.
    public var messageQueueDepth: Int
    /// Ports whose target is this partition.
    public var maxPorts: Int
    /// Connections this partition can signal or post on.
    public var maxConnections: Int
    /// Pages of other partitions that can be mapped into this one at a time.
    public var maxMappedPages: Int
    /// Most reps a rep hypercall completes per invocation before it asks the guest to continue
    /// (TLFS "Rep Hypercall Restarting"); 0 means no limit. Real hypervisors stop to bound
    /// latency; a small value here exercises the guest's restart path.
    public var repsPerInvocation: Int

    /// A partition of `vpCount` VPs; the defaults offer every privilege, a VMCALL stub, 8 queued messages per SINT, 64 ports, 64 connections, 256 mapped pages and no rep limit. `createPartition` checks the values.
    @inlinable public init(
        vpCount: Int,
        privileges: CPUIDPrivileges = .all,
        spinRetryCount: UInt32 = 0xFFF,
        hypercallStub: HypercallStub = .intelVMCALL,
        messageQueueDepth: Int = 8,
        maxPorts: Int = 64,
        maxConnections: Int = 64,
        maxMappedPages: Int = 256,
        repsPerInvocation: Int = 0
    ) {
        self.vpCount = vpCount
        self.privileges = privileges
        self.spinRetryCount = spinRetryCount
        self.hypercallStub = hypercallStub
        self.messageQueueDepth = messageQueueDepth
        self.maxPorts = maxPorts
        self.maxConnections = maxConnections
        self.maxMappedPages = maxMappedPages
        self.repsPerInvocation = repsPerInvocation
    }
}

/// Up to 16 bytes of code for the start of the hypercall page.
@frozen
public struct HypercallStub: Sendable {
    /// The stub's code; bytes from `count` on are unused.
    public var bytes: InlineArray<16, UInt8>
    /// Number of bytes of `bytes` the stub uses, 0 ... 16.
    public var count: Int

    /// `count` bytes from `bytes` (at most 16).
    @inlinable public init(_ bytes: InlineArray<16, UInt8>, count: Int) {
        self.bytes = bytes
        self.count = min(max(count, 0), 16)
    }

    /// `vmcall; ret` (Intel VMX).
    @inlinable public static var intelVMCALL: HypercallStub {
        HypercallStub([0x0F, 0x01, 0xC1, 0xC3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], count: 4)
    }

    /// `vmmcall; ret` (AMD SVM).
    @inlinable public static var amdVMMCALL: HypercallStub {
        HypercallStub([0x0F, 0x01, 0xD9, 0xC3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], count: 4)
    }
}

/// Why `ViridianReference.createPartition` refused a configuration.
@frozen
public enum PartitionConfigurationError: Error, Sendable, Equatable {
    /// `vpCount` is outside 1 ... `ViridianLimits.maximumProcessors`.
    case vpCountOutOfRange
    /// A capacity (queue depth, ports, connections, mapped pages or reps per invocation) is negative.
    case negativeCapacity
    /// More than 1,024 partitions (the fast paths' reader table is sized at start).
    case tooManyPartitions
}
