import GuestABI
import XenABI

/// One entry of the memory map XENMEM_memory_map returns (the BIOS INT 15h E820 format: base,
/// length, type; 20 bytes packed in guest memory).
public struct XenE820Entry: Sendable, Equatable {
    /// First byte of the range (guest-physical).
    public var address: UInt64
    /// Length of the range in bytes.
    public var size: UInt64
    /// 1 RAM, 2 reserved, 3 ACPI reclaimable, 4 ACPI NVS, 5 unusable.
    public var type: UInt32

    /// An entry as given, unchecked.
    @inlinable public init(address: UInt64, size: UInt64, type: UInt32) {
        self.address = address
        self.size = size
        self.type = type
    }

    /// E820 type 1: usable RAM.
    @inlinable public static var ram: UInt32 { 1 }
    /// E820 type 2: reserved.
    @inlinable public static var reserved: UInt32 { 2 }
}

/// What the embedder tells the layer about a domain's memory: Xen's reservation figures
/// (d->tot_pages, d->max_pages), the highest frame mapped so far, the host's page count, and
/// the memory map the toolstack gave the domain (XENMEM_set_memory_map).
public struct XenMemoryConfiguration: Sendable {
    /// RAM pages the domain has at creation (XENMEM_current_reservation); populate_physmap and
    /// increase_reservation add to it, decrease_reservation and a page add_to_physmap
    /// replaces take from it.
    public var pages: UInt64
    /// The most RAM pages the domain may have (XENMEM_maximum_reservation); an extent that
    /// would pass it is not allocated.
    public var maxPages: UInt64
    /// The highest guest frame mapped so far (XENMEM_maximum_gpfn, Xen's p2m max_mapped_pfn);
    /// raised by every frame the domain's map gains, never lowered.
    public var maximumGpfn: UInt64
    /// The host's page count (XENMEM_maximum_ram_page, Xen's max_page).
    public var hostPages: UInt64
    /// The domain's memory map; empty, XENMEM_memory_map is -ENOSYS (Xen's answer when the
    /// toolstack set none). At most `MemoryOpLimits.memoryMapEntries` entries.
    public var memoryMap: [XenE820Entry]

    /// A configuration with the given figures; all default to 0 and the map to empty (XENMEM_memory_map then answers -ENOSYS).
    @inlinable public init(pages: UInt64 = 0, maxPages: UInt64 = 0, maximumGpfn: UInt64 = 0, hostPages: UInt64 = 0, memoryMap: [XenE820Entry] = []) {
        self.pages = pages
        self.maxPages = maxPages
        self.maximumGpfn = maximumGpfn
        self.hostPages = hostPages
        self.memoryMap = memoryMap
    }

    /// A domain whose RAM is frames 0 ..< `frames`, all present, that may grow to `maxPages`
    /// (default: no growth), on a host of `hostPages` pages (default: the same), with one RAM
    /// entry in its memory map.
    @inlinable public static func flat(frames: UInt64, maxPages: UInt64? = nil, hostPages: UInt64? = nil) -> XenMemoryConfiguration {
        XenMemoryConfiguration(pages: frames, maxPages: maxPages ?? frames, maximumGpfn: frames == 0 ? 0 : frames - 1,
                               hostPages: hostPages ?? frames,
                               memoryMap: [XenE820Entry(address: 0, size: frames << guestPageShift, type: XenE820Entry.ram)])
    }
}
