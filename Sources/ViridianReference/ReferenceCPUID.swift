import CGuestAtomics
import ViridianABI

/// Hypervisor CPUID leaves as a partition sees them (TLFS "Feature and Interface Discovery").
extension ViridianReference {
    /// The highest hypervisor leaf the reference answers.
    @inlinable public static var maximumLeaf: UInt32 { HVCPUIDLeaf.implementLimits.rawValue }

    /// CPUID `leaf` for `partition`: vendor "Microsoft Hv", interface "Hv#1", the privilege,
    /// feature and recommendation bits of its configuration, and its VP limit. Leaves the
    /// reference does not define read as zero (as unimplemented hypervisor leaves do).
    @inlinable public func cpuid(partition: PartitionID, leaf: UInt32) -> CPUIDResult {
        lockEntry()
        defer { unlockEntry() }
        guard let p = index(of: partition) else { return CPUIDResult() }
        let privileges = partitions[p].config.privileges
        switch leaf {
        case HVCPUIDLeaf.vendorAndMaxFunctions.rawValue:
            return CPUIDResult(eax: Self.maximumLeaf, ebx: HVCPUIDSignature.vendorEBX, ecx: HVCPUIDSignature.vendorECX, edx: HVCPUIDSignature.vendorEDX)
        case HVCPUIDLeaf.interface.rawValue:
            return CPUIDResult(eax: HVCPUIDSignature.interfaceHv1)
        case HVCPUIDLeaf.features.rawValue:
            return CPUIDResult(eax: privileges.eax.rawValue, ebx: privileges.ebx.rawValue, edx: privileges.edx.rawValue)
        case HVCPUIDLeaf.enlightmentInfo.rawValue:
            return CPUIDResult(eax: privileges.recommendations.rawValue, ebx: partitions[p].config.spinRetryCount)
        case HVCPUIDLeaf.implementLimits.rawValue:
            // EAX: maximum virtual processors; EBX: maximum logical processors.
            let vps = UInt32(partitions[p].vps.count)
            return CPUIDResult(eax: vps, ebx: vps)
        default:
            return CPUIDResult()
        }
    }
}

extension ViridianReference: ViridianTarget {}
