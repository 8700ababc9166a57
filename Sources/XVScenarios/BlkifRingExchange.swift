import CBlkifRing
import GuestABI
import XenABI
import XenCore

/// The blkif ring of `Tests/Support/CBlkifRing` (a frontend in domain 1, a backend in domain 2,
/// written in C against libxen-dev's ring.h and blkif.h) on one side's world: the tests' and
/// `xv bench`'s way to run it. The C code reaches the world only through a guest's hypercall
/// and a guest's own frames.
public final class BlkifRingExchange {
    /// Whether the ring was built (libxen-dev's headers were there when its C file compiled).
    public static var isAvailable: Bool { xv_blkif_available() == 1 }

    /// The world (two one-vCPU domains, native or translated) the ring runs on; kept alive by this object.
    public let world: any XenWorld
    private let box: Unmanaged<WorldReference>
    @exclusivity(unchecked) private var host: xv_ring_host
    @exclusivity(unchecked) private var layout: xv_ring_layout
    @exclusivity(unchecked) private var state = xv_ring_state()

    /// Where the two guests keep the ring's pages (frames of `WorldLayout`'s map).
    public static var layout: xv_ring_layout {
        xv_ring_layout(front: 1, back: 2, front_args: 17, back_args: 17, front_shared_info: 0, back_shared_info: 0,
                       front_grant_frame: 18, ring_frame: 20, data_frame: 21, data_pages: 8, back_ring_frame: 30, back_disk_frame: 31)
    }

    /// A world of two one-vCPU domains on the chosen side, the ring not yet set up.
    public init(native: Bool) {
        world = native ? NativeWorld(domains: 2, vcpus: 1) : TranslatedWorld(domains: 2, vcpus: 1)
        box = .passRetained(WorldReference(world))
        layout = Self.layout
        host = xv_ring_host(context: box.toOpaque(),
                            hypercall: { context, domain, rax, rdi, rsi, rdx in
                                Unmanaged<WorldReference>.fromOpaque(context!)._withUnsafeGuaranteedRef {
                                    $0.world.hypercall(domain: DomainID(domain), vcpu: 0, XenHypercallRegisters(rax: rax, rdi: rdi, rsi: rsi, rdx: rdx))
                                }
                            },
                            frame: { context, domain, gfn in
                                Unmanaged<WorldReference>.fromOpaque(context!)._withUnsafeGuaranteedRef { $0.world.page(DomainID(domain), frame: gfn) }
                            })
    }

    deinit { box.release() }

    /// Grants, the event channel and the backend's mapping: 0, or the C code's step code.
    public func setUp() -> Int64 { xv_blkif_setup(&host, &layout, &state) }
    /// `requests` writes and read-backs: how many came back intact, or a negative step code.
    public func exchange(_ requests: UInt32) -> Int64 { xv_blkif_exchange(&host, &layout, &state, requests) }
    /// Unmaps the backend's mapping of the ring page (GNTTABOP_unmap_grant_ref in C): the hypercall's nonzero return, else the unmap's GNTST status (0: okay).
    public func tearDown() -> Int64 { xv_blkif_teardown(&host, &layout, &state) }
}

/// Holds a world for a C callback's context or another thread: the holder keeps the world
/// alive, and the threading contract (Docs/Threading.md) is what makes the shared use safe.
public final class WorldReference: @unchecked Sendable {
    /// The world held.
    public let world: any XenWorld
    /// Holds `world` (a strong reference).
    public init(_ world: any XenWorld) { self.world = world }
}
