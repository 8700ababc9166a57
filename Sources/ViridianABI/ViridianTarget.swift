/// The Viridian interface as a guest partition's code sees it (defined beside the ABI so that the
/// layer depends on the protocol only, never on an implementation): hypercalls, synthetic MSRs and
/// CPUID. The layer issues every Viridian operation through this protocol; ViridianReference
/// implements it in process, and an embedder can put a real Viridian (a guest-side adapter
/// issuing real hypercalls) behind it.
///
/// Registers follow the x64 hypercall convention (TLFS "Hypercall Interface"): RCX holds the
/// input value, RDX and R8 the input and output GPAs, or for a fast call the two 64-bit input
/// parameters. The caller is named by partition and VP index, as the hypervisor knows it from
/// the trapping processor.
public protocol ViridianTarget {
    /// A hypercall from `vp` of `partition`.
    func hypercall(partition: PartitionID, vp: VPIndex, input: HVHypercallInput, rdx: UInt64, r8: UInt64) -> HypercallCompletion
    /// RDMSR of a synthetic MSR by `vp` of `partition`.
    func readMSR(partition: PartitionID, vp: VPIndex, msr: HVMSR) -> MSRRead
    /// WRMSR of a synthetic MSR by `vp` of `partition`.
    func writeMSR(partition: PartitionID, vp: VPIndex, msr: HVMSR, value: UInt64) -> MSRWrite
    /// CPUID of a hypervisor leaf (0x40000000...) as `partition` sees it.
    func cpuid(partition: PartitionID, leaf: UInt32) -> CPUIDResult
}

/// What the guest sees after a hypercall instruction.
@frozen
public struct HypercallCompletion: Sendable, Hashable {
    /// The result value (RAX): status and reps completed.
    public var result: HVHypercallResult
    /// For a rep call stopped before its last rep: the input value (RCX) with the rep start
    /// index advanced, with which the guest re-executes the call (TLFS "Rep Hypercall
    /// Restarting": the hypervisor does not advance RIP). Nil when the call is complete.
    public var continuation: HVHypercallInput?
    /// The hypercall interface is not enabled (HV_X64_MSR_HYPERCALL disabled or guest OS id 0):
    /// the instruction raises #UD and RAX is untouched (Linux arch/x86/kvm/hyperv.c behaves so).
    public var raisesInvalidOpcode: Bool

    /// A completion with the given result value (RAX); by default complete (no continuation) and not #UD.
    @inlinable
    public init(result: HVHypercallResult, continuation: HVHypercallInput? = nil, raisesInvalidOpcode: Bool = false) {
        self.result = result
        self.continuation = continuation
        self.raisesInvalidOpcode = raisesInvalidOpcode
    }

    /// A completed call with `status` and `repsCompleted`.
    @inlinable
    public static func completed(_ status: HVStatus, reps: UInt64 = 0) -> HypercallCompletion {
        var r = HVHypercallResult(rawValue: 0)
        r.status = UInt64(status.rawValue)
        r.repsCompleted = reps
        return HypercallCompletion(result: r)
    }

    /// The status in the result value.
    @inlinable public var status: HVStatus { HVStatus(rawValue: UInt16(truncatingIfNeeded: result.status)) }
}

/// The outcome of RDMSR.
@frozen
public enum MSRRead: Sendable, Hashable {
    /// The access succeeds and reads this 64-bit value (EDX:EAX).
    case value(UInt64)
    /// The access raises #GP(0): unknown or not offered MSR, or not readable.
    case generalProtection
}

/// The outcome of WRMSR.
@frozen
public enum MSRWrite: Sendable, Hashable {
    /// The write took effect.
    case done
    /// The access raises #GP(0): unknown, not offered, read-only, or a value the MSR refuses.
    case generalProtection
}

/// EAX, EBX, ECX, EDX of a CPUID leaf.
@frozen
public struct CPUIDResult: Sendable, Hashable {
    /// EAX as the leaf returns it.
    public var eax: UInt32
    /// EBX as the leaf returns it.
    public var ebx: UInt32
    /// ECX as the leaf returns it.
    public var ecx: UInt32
    /// EDX as the leaf returns it.
    public var edx: UInt32
    /// The four registers of a leaf; unspecified ones are 0 (an all-zero leaf).
    @inlinable
    public init(eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0, edx: UInt32 = 0) {
        self.eax = eax; self.ebx = ebx; self.ecx = ecx; self.edx = edx
    }
}
