import GuestABI
import XenABI

/// What the embedder decides when it creates a Xen domain.
public struct DomainConfiguration: Sendable {
    /// The domain's id: 0 ... 0x7FEF (DOMID_FIRST_RESERVED is 0x7FF0).
    public var id: DomainID
    /// vCPUs, 1 ... 32. Each vCPU's vcpu_info is its slot in shared_info
    /// (XEN_LEGACY_MAX_VCPUS); VCPUOP_register_vcpu_info, which lifts the limit, belongs to the
    /// vCPU operations.
    public var vcpuCount: Int
    /// The highest port number the domain may allocate (Xen's `max_evtchn_port`, which libxl
    /// sets from `max_event_channels`, default 1023). At most 2^17 - 1; the 2-level ABI stops
    /// at 4095 whatever this says.
    public var maxPort: UInt32
    /// Where the domain's shared_info page lives in its guest-physical address space. The
    /// embedder maps that frame to a page it owns, as Xen maps its shared_info page
    /// (XENMAPSPACE_shared_info); the layer keeps the structure byte-exact there.
    public var sharedInfoFrame: GuestFrameNumber
    /// What the guest finds at CPUID 0x40000000 and up, its hypercall-page MSR and hypercall
    /// instruction (Docs/Layer.md, "Guest-visible identity").
    public var identity: XenGuestIdentity
    /// The strings xen_version reports (extraversion, compile information, changeset, domain
    /// handle).
    public var version: XenVersionIdentity
    /// The wall-clock time (seconds and nanoseconds since the Unix epoch) at Xen system time 0,
    /// which shared_info's wc_sec, wc_nsec and wc_sec_hi carry (Xen's wc_sec, wc_nsec plus the
    /// domain's time offset). `XenDomain.setWallclock` changes it later.
    public var wallclockAtBoot: (seconds: UInt64, nanoseconds: UInt32)

    public init(id: DomainID, vcpuCount: Int, maxPort: UInt32 = 1023, sharedInfoFrame: GuestFrameNumber,
                identity: XenGuestIdentity = XenGuestIdentity(), version: XenVersionIdentity = XenVersionIdentity(),
                wallclockAtBoot: (seconds: UInt64, nanoseconds: UInt32) = (0, 0)) {
        self.id = id
        self.vcpuCount = vcpuCount
        self.maxPort = maxPort
        self.sharedInfoFrame = sharedInfoFrame
        self.identity = identity
        self.version = version
        self.wallclockAtBoot = wallclockAtBoot
    }
}

/// Why a domain could not be created.
public enum DomainConfigurationError: Error, Sendable, Equatable {
    /// The id is DOMID_SELF or above (reserved ids), or already used.
    case invalidDomainID
    /// vcpuCount is outside 1 ... 32.
    case vcpuCountOutOfRange
    /// maxPort is 0 or above 2^17 - 1.
    case maxPortOutOfRange
    /// The shared_info frame is not backed by the domain's memory.
    case sharedInfoNotBacked
    /// The frames the translation layer needs are not backed by its partition's memory.
    case layerFramesNotBacked
    /// A frame the translation layer owns is in the guest's memory view (the guest could name
    /// it in a hypercall), or shares its host page with shared_info.
    case layerFramesVisibleToGuest
    /// The Viridian target refused to set up the domain's partition (HV_STATUS or #GP).
    case targetRefused
}
