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
    /// The frame that shows the domain's shared_info page at creation. The host page behind
    /// it becomes the domain's shared_info page for its whole life (Xen's d->shared_info): the
    /// layer keeps the structure byte-exact there, XENMEM_add_to_physmap moves it to the frame
    /// the guest names (through the embedder's `XenPhysmap`), and the embedder must not free
    /// it while the domain exists.
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
    /// The domain's reservation, highest frame and memory map (memory_op).
    public var memory: XenMemoryConfiguration
    /// Grant-table frames the domain may have (Xen's max_grant_frames): 1 ...
    /// `MemoryOpLimits.maxGrantFrames`, default libxl's 32.
    public var maxGrantFrames: UInt32
    /// The highest grant table version the domain may use (Xen's max_version): 1 or 2,
    /// default 2 (libxl's default where Xen offers v2).
    public var maxGrantVersion: UInt32
    /// Pages of grant mappings the domain may hold of other domains' grants (Xen's
    /// max_maptrack_frames; 256 handles a page), default Xen's 1024.
    public var maxMaptrackFrames: Int

    /// A domain `id` of `vcpuCount` vCPUs whose ports run 0 ... `maxPort` and whose shared_info sits at `sharedInfoFrame`; every other setting defaults as its property says.
    @inlinable public init(id: DomainID, vcpuCount: Int, maxPort: UInt32 = 1023, sharedInfoFrame: GuestFrameNumber,
                identity: XenGuestIdentity = XenGuestIdentity(), version: XenVersionIdentity = XenVersionIdentity(),
                wallclockAtBoot: (seconds: UInt64, nanoseconds: UInt32) = (0, 0),
                memory: XenMemoryConfiguration = XenMemoryConfiguration(), maxGrantFrames: UInt32 = UInt32(MemoryOpLimits.defaultGrantFrames),
                maxGrantVersion: UInt32 = 2, maxMaptrackFrames: Int = Int(GrantTableLimits.defaultMaptrackFrames)) {
        self.id = id
        self.vcpuCount = vcpuCount
        self.maxPort = maxPort
        self.sharedInfoFrame = sharedInfoFrame
        self.identity = identity
        self.version = version
        self.wallclockAtBoot = wallclockAtBoot
        self.memory = memory
        self.maxGrantFrames = maxGrantFrames
        self.maxGrantVersion = maxGrantVersion
        self.maxMaptrackFrames = maxMaptrackFrames
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
    /// The memory map has more than `MemoryOpLimits.memoryMapEntries` entries, or maxPages
    /// is below pages.
    case memoryConfigurationInvalid
    /// maxGrantFrames is 0 or above `MemoryOpLimits.maxGrantFrames`, or maxGrantVersion is not
    /// 1 or 2.
    case grantFramesOutOfRange
    /// The frames the translation layer needs are not backed by its partition's memory.
    case layerFramesNotBacked
    /// A frame the translation layer owns is in the guest's memory view (the guest could name
    /// it in a hypercall), or shares its host page with shared_info.
    case layerFramesVisibleToGuest
    /// The Viridian target refused to set up the domain's partition (HV_STATUS or #GP).
    case targetRefused
}
