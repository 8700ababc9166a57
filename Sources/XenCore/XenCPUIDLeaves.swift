import ViridianABI
import XenABI

/// Xen's hypervisor CPUID leaves, as Xen 4.17 answers an HVM guest (xen-project/xen
/// xen/arch/x86/cpuid.c guest_cpuid routes the range, xen/arch/x86/traps.c
/// cpuid_hypervisor_leaves fills it; the layout is in Specs/translation/identity.tbl and the
/// constants in Specs/xen/cpuid.tbl).
extension XenGuestIdentity {
    /// The leaf count after clamping: leaf 0 EAX is `base + limit`, and leaves past it are zeros.
    @inlinable public var effectiveLeafLimit: UInt32 {
        leafLimit == 0 ? XenCPUID.maxNumLeaves : min(max(leafLimit, XenIdentityCPUID.minLeaves), XenCPUID.maxNumLeaves)
    }

    /// Answers CPUID `leaf`/`subleaf` for `vcpu` of domain `domain`. Every input is the
    /// guest's and any value is answered: leaves in Xen's part of the hypervisor range get
    /// Xen's values (zeros past the limit or for sub-leaves Xen does not define).
    @inlinable public func cpuid(leaf: UInt32, subleaf: UInt32, vcpu: UInt32, domain: DomainID) -> XenIdentityAnswer<CPUIDResult> {
        guard leaf >= XenIdentityCPUID.xenBase, leaf <= XenIdentityCPUID.hypervisorLast else { return .notHypervisor }
        if layout == .xenWithViridian, leaf <= XenIdentityCPUID.viridianLast { return .viridian }
        let base = layout.cpuidBase
        let limit = effectiveLeafLimit
        var r = CPUIDResult()
        // In the Xen-only layout 0x40000100-0x400001FF reach here too and, past the limit, are
        // zeros: Xen's range falls through the same way.
        let index = leaf &- base
        guard index <= limit else { return .xen(r) }
        switch index {
        case 0:
            r.eax = base + limit
            r.ebx = XenCPUID.signatureEBX
            r.ecx = XenCPUID.signatureECX
            r.edx = XenCPUID.signatureEDX
        case 1:
            r.eax = UInt32(versionMajor) << 16 | UInt32(versionMinor)
        case 2:
            r.eax = XenHypercallPageLayout.count
            r.ebx = layout.msrBase
            // ECX (features 1) is PV-only: MMU_PT_UPDATE_PRESERVE_AD means nothing to HVM.
        case 3:
            switch subleaf {
            case 0:
                r.eax = time.features
                r.ebx = time.tscMode
                r.ecx = time.tscKHz
                r.edx = time.incarnation
            case 1:
                r.eax = UInt32(truncatingIfNeeded: time.offset)
                r.ebx = UInt32(truncatingIfNeeded: time.offset >> 32)
                r.ecx = time.mulFrac
                r.edx = UInt32(bitPattern: Int32(time.shift))
            case 2:
                r.eax = time.hostKHz
            default:
                break
            }
        case 4:
            guard subleaf == 0 else { break }
            r.eax = hvmFeatures.union(Self.layerHVMFeatures).rawValue
            r.ebx = vcpu
            r.ecx = UInt32(domain.rawValue)
        default:
            // Leaf 5 (PV parameters) is empty for an HVM guest.
            break
        }
        return .xen(r)
    }
}

extension XenDomain {
    /// CPUID for this domain's `vcpu` (the embedder names the trapping vCPU; the layer does not
    /// check it against vcpuCount, since Xen reports whatever vcpu_id it runs on).
    @inlinable public func cpuid(leaf: UInt32, subleaf: UInt32, vcpu: Int) -> XenIdentityAnswer<CPUIDResult> {
        identity.cpuid(leaf: leaf, subleaf: subleaf, vcpu: UInt32(truncatingIfNeeded: vcpu), domain: id)
    }
}
