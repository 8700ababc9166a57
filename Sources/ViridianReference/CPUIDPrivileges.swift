import ViridianABI

/// What a partition is offered and allowed, as its CPUID leaves 0x40000003 and 0x40000004 say
/// (TLFS "Feature and Interface Discovery"). The reference gates every synthetic MSR and
/// hypercall it implements on these bits: the `gate=` attributes of the `ref` rows in
/// `Specs/viridian/` (generated into `ReferenceMSR.isPermitted(by:)` and
/// `ReferenceHypercall.isPermitted(by:)`).
@frozen
public struct CPUIDPrivileges: Sendable, Hashable {
    /// 0x40000003 EAX: partition privilege mask bits 31:0 (synthetic MSR access).
    public var eax: HVPrivilegesLow
    /// 0x40000003 EBX: partition privilege mask bits 63:32 (hypercall access).
    public var ebx: HVPrivilegesHigh
    /// 0x40000003 EDX: feature bits.
    public var edx: HVFeatures
    /// 0x40000004 EAX: implementation recommendations.
    public var recommendations: HVRecommendations

    /// The given leaf bits; each defaults to empty (nothing offered).
    @inlinable
    public init(eax: HVPrivilegesLow = [], ebx: HVPrivilegesHigh = [], edx: HVFeatures = [], recommendations: HVRecommendations = []) {
        self.eax = eax
        self.ebx = ebx
        self.edx = edx
        self.recommendations = recommendations
    }

    /// Nothing offered: every gated MSR raises #GP and every gated call is denied.
    @inlinable public static var none: CPUIDPrivileges { CPUIDPrivileges() }

    /// Everything the reference implements: the privileges of a partition that may use every
    /// `ref` row (a guest partition that also owns memory-sharing rights).
    @inlinable public static var all: CPUIDPrivileges {
        CPUIDPrivileges(
            eax: [.timeRefCount, .synic, .syntheticTimers, .apicAccess, .hypercall, .vpIndex, .referenceTSC, .frequencyMSRs],
            ebx: [.accessPartitionID, .postMessages, .signalEvents, .createPort, .connectPort, .createPartitions],
            edx: [.frequencyMSRs, .sintPolling, .stimerDirectMode],
            recommendations: [.remoteTLBFlush, .clusterIPI, .exProcessorMasks]
        )
    }
}
