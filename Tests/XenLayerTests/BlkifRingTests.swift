import CBlkifRing
import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// A real Xen split-driver protocol over the layer: a blkif frontend in domain 1 and a backend
/// in domain 2, written in C against libxen-dev's xen/io/ring.h and xen/io/blkif.h
/// (Tests/Support/CBlkifRing), sharing a granted ring and data pages and an interdomain event
/// channel, reaching the layer only through a guest's hypercall and its own memory. Over
/// XenNative and over XenViridian (two partitions on the reference hypervisor).
@Suite("A blkif ring between two domains")
struct BlkifRingTests {
    static var layout: xv_ring_layout {
        xv_ring_layout(front: 1, back: 2, front_args: 17, back_args: 17, front_shared_info: 0, back_shared_info: 0,
                       front_grant_frame: 18, ring_frame: 20, data_frame: 21, data_pages: 8, back_ring_frame: 30, back_disk_frame: 31)
    }

    /// The callbacks, with the world behind `context`.
    static func host(_ box: Unmanaged<WorldBox>) -> xv_ring_host {
        xv_ring_host(context: box.toOpaque(),
                     hypercall: { context, domain, rax, rdi, rsi, rdx in
                         Unmanaged<WorldBox>.fromOpaque(context!).takeUnretainedValue().world
                             .hypercall(domain: DomainID(domain), vcpu: 0, XenHypercallRegisters(rax: rax, rdi: rdi, rsi: rsi, rdx: rdx))
                     },
                     frame: { context, domain, gfn in
                         Unmanaged<WorldBox>.fromOpaque(context!).takeUnretainedValue().world.page(DomainID(domain), frame: gfn)
                     })
    }

    @Test("the frontend writes and reads back 64 pages through the backend: every response BLKIF_RSP_OKAY, every page intact, every notification an event on the right port; the ring unmaps and nothing stays pinned", arguments: ["native", "translated"])
    func exchange(_ side: String) throws {
        try #require(xv_blkif_available() == 1, "libxen-dev's headers were not there when the tests were built")
        let w: any XenWorld = side == "native" ? NativeWorld(domains: 2, vcpus: 1) : TranslatedWorld(domains: 2, vcpus: 1)
        let box = Unmanaged.passRetained(WorldBox(w))
        defer { box.release() }
        var host = Self.host(box)
        var layout = Self.layout
        var state = xv_ring_state()
        #expect(xv_blkif_setup(&host, &layout, &state) == 0, "\(side)")
        let viridianBefore = (w as? TranslatedWorld)?.viridianHypercalls ?? 0
        #expect(xv_blkif_exchange(&host, &layout, &state, 64) == 64, "\(side): every read came back as written")
        if let t = w as? TranslatedWorld {
            // Per request: a SignalEvent each way and the copy window mapped and unmapped.
            #expect(t.viridianHypercalls - viridianBefore == 128 * 4, "\(side): \(t.viridianHypercalls - viridianBefore) Viridian calls")
        }
        // The backend's disk holds the last pages written.
        #expect(w.page(DomainID(2), frame: 31) != nil && w.xenDomain(DomainID(2)).grantMappingCount == 1, "\(side)")
        #expect(xv_blkif_teardown(&host, &layout, &state) == 0, "\(side)")
        #expect(w.xenDomain(DomainID(2)).grantMappingCount == 0 && w.page(DomainID(2), frame: 30) == nil, "\(side)")
        for ref in UInt32(8)..<17 { #expect(w.xenDomain(DomainID(1)).grantPins(ref) == (0, 0), "\(side): ref \(ref)") }
    }
}
