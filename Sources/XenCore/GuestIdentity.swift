import XenABI

/// What a Xen guest finds when it looks for its hypervisor (CPUID 0x40000000 and up, the
/// hypercall-page MSR, the hypercall instruction), chosen by the embedder per domain. The
/// layout follows Xen 4.17 (Specs/translation/identity.tbl names the source lines), so a guest
/// that runs on Xen finds everything where it looks for it.
public struct XenGuestIdentity: Sendable {
    /// Whether Viridian is offered to the guest as well as Xen.
    public var layout: XenIdentityLayout
    /// Which instruction the hypercall page's stubs use.
    public var virtualization: HardwareVirtualization
    /// The Xen version leaf 1 reports (EAX = major << 16 | minor).
    public var versionMajor: UInt16
    /// The minor version leaf 1 reports (EAX low 16 bits).
    public var versionMinor: UInt16
    /// How many leaves follow leaf 0 (Xen's toolstack `hv_limit`/`hv2_limit`): 0 means
    /// XEN_CPUID_MAX_NUM_LEAVES; anything else is clamped to 2 ... XEN_CPUID_MAX_NUM_LEAVES.
    public var leafLimit: UInt32
    /// Leaf 4 feature bits the embedder vouches for (APIC/x2APIC virtualisation depend on its
    /// hardware; IOMMU_MAPPINGS is set unconditionally by Xen 4.17). The layer always adds
    /// VCPU_ID_PRESENT, DOMID_PRESENT and UPCALL_VECTOR, which it implements.
    public var hvmFeatures: XenHVMCPUIDFeatures
    /// Leaf 3, the time leaf: the embedder's TSC policy.
    public var time: XenTimeLeaf

    /// An identity; the defaults are Xen 4.17 alone on VT-x with every leaf offered, the IOMMU_MAPPINGS feature and an all-zero time leaf.
    @inlinable public init(layout: XenIdentityLayout = .xenOnly, virtualization: HardwareVirtualization = .vmx,
                versionMajor: UInt16 = 4, versionMinor: UInt16 = 17, leafLimit: UInt32 = 0,
                hvmFeatures: XenHVMCPUIDFeatures = .iommuMappings, time: XenTimeLeaf = XenTimeLeaf()) {
        self.layout = layout
        self.virtualization = virtualization
        self.versionMajor = versionMajor
        self.versionMinor = versionMinor
        self.leafLimit = leafLimit
        self.hvmFeatures = hvmFeatures
        self.time = time
    }

    /// Bits leaf 4 always carries: the layer fills EBX and ECX, and implements
    /// HVMOP_set_evtchn_upcall_vector.
    @inlinable public static var layerHVMFeatures: XenHVMCPUIDFeatures { [.vcpuIdPresent, .domidPresent, .upcallVector] }
}

/// Whether a guest sees Xen alone or Viridian as well.
public enum XenIdentityLayout: Sendable, Hashable {
    /// Xen at CPUID 0x40000000 and MSR 0x40000000; Viridian is the layer's alone, reached
    /// through `ViridianTarget`, never through the guest's CPUID, MSR or hypercall path.
    case xenOnly
    /// Xen's Viridian-enabled layout: Viridian keeps CPUID 0x40000000-0x400000FF, MSRs
    /// 0x40000000-0x400001FF and EAX-bit-31 hypercalls; Xen moves to CPUID 0x40000100 and MSR
    /// 0x40000200. Those Viridian accesses are the embedder's to carry out (see Docs/Layer.md
    /// for what it must keep away from the layer's own SynIC and connection ids).
    case xenWithViridian

    /// Where Xen's leaves start.
    @inlinable public var cpuidBase: UInt32 {
        self == .xenOnly ? XenIdentityCPUID.xenBase : XenIdentityCPUID.xenBaseWithViridian
    }
    /// The hypercall-page MSR, the only Xen MSR.
    @inlinable public var msrBase: UInt32 {
        self == .xenOnly ? XenIdentityMSR.xenBase : XenIdentityMSR.xenBaseWithViridian
    }
}

/// The hardware virtualisation the guest runs on: it decides the hypercall instruction.
public enum HardwareVirtualization: Sendable, Hashable {
    /// Intel VT-x: VMCALL (0F 01 C1).
    case vmx
    /// AMD-V: VMMCALL (0F 01 D9).
    case svm
}

/// CPUID leaf 3 (xen/arch-x86/cpuid.h "Leaf 4"): the guest's TSC as the embedder runs it.
/// Xen fills it from the domain's TSC mode and scaling (xen/arch/x86/traps.c).
public struct XenTimeLeaf: Sendable, Hashable {
    /// Sub-leaf 0 EAX: bit 0 TSC emulated, bit 1 host TSC safe, bit 2 RDTSCP available.
    public var features: UInt32
    /// Sub-leaf 0 EBX: tsc_mode (0 default, 1 always emulate, 2 never emulate).
    public var tscMode: UInt32
    /// Sub-leaf 0 ECX: guest TSC frequency in kHz.
    public var tscKHz: UInt32
    /// Sub-leaf 0 EDX: incarnation (migration count).
    public var incarnation: UInt32
    /// Sub-leaf 1 EAX/EBX: the TSC offset (0 when the TSC is emulated).
    public var offset: UInt64
    /// Sub-leaf 1 ECX/EDX: TSC-to-nanoseconds multiplier and shift (pvclock scaling).
    public var mulFrac: UInt32
    /// Sub-leaf 1 ECX/EDX: the shift that goes with `mulFrac` (signed; a negative shift divides).
    public var shift: Int8
    /// Sub-leaf 2 EAX: host TSC frequency in kHz.
    public var hostKHz: UInt32

    /// A time leaf; every field defaults to 0.
    @inlinable public init(features: UInt32 = 0, tscMode: UInt32 = 0, tscKHz: UInt32 = 0, incarnation: UInt32 = 0,
                offset: UInt64 = 0, mulFrac: UInt32 = 0, shift: Int8 = 0, hostKHz: UInt32 = 0) {
        self.features = features
        self.tscMode = tscMode
        self.tscKHz = tscKHz
        self.incarnation = incarnation
        self.offset = offset
        self.mulFrac = mulFrac
        self.shift = shift
        self.hostKHz = hostKHz
    }
}

/// Who answers a guest's CPUID leaf, MSR access or hypercall.
public enum XenIdentityAnswer<Value> {
    /// Xen's, and this is the answer.
    case xen(Value)
    /// Viridian's (only in `.xenWithViridian`): the embedder hands it to its Viridian target.
    case viridian
    /// Not in the hypervisor range: the embedder's own CPU policy answers.
    case notHypervisor
}

extension XenIdentityAnswer {
    /// Xen's answer transformed; the routing answers pass through.
    @inlinable
    public func map<T>(_ transform: (Value) -> T) -> XenIdentityAnswer<T> {
        switch self {
        case .xen(let value): return .xen(transform(value))
        case .viridian: return .viridian
        case .notHypervisor: return .notHypervisor
        }
    }
}

extension XenIdentityAnswer: Equatable where Value: Equatable {}
extension XenIdentityAnswer: Sendable where Value: Sendable {}
