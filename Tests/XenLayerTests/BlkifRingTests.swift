import CBlkifRing
import Foundation
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
    @Test("the frontend writes and reads back 64 pages through the backend: every response BLKIF_RSP_OKAY, every page intact, every notification an event on the right port; the ring unmaps and nothing stays pinned",
          .enabled(if: BlkifRingExchange.isAvailable || ProcessInfo.processInfo.environment["CI"] != nil, "libxen-dev's headers were absent when the ring was built (a failure under CI)"),
          arguments: ["native", "translated"])
    func exchange(_ side: String) throws {
        try #require(BlkifRingExchange.isAvailable, "libxen-dev's headers were not there when the ring was built")
        let ring = BlkifRingExchange(native: side == "native")
        let w = ring.world
        #expect(ring.setUp() == 0, "\(side)")
        let viridianBefore = (w as? TranslatedWorld)?.viridianHypercalls ?? 0
        #expect(ring.exchange(64) == 64, "\(side): every read came back as written")
        if let t = w as? TranslatedWorld {
            // Per request: a SignalEvent each way and the copy window mapped and unmapped.
            #expect(t.viridianHypercalls - viridianBefore == 128 * 4, "\(side): \(t.viridianHypercalls - viridianBefore) Viridian calls")
        }
        // The backend holds its mapping of the ring until it tears down.
        #expect(w.page(DomainID(2), frame: 31) != nil && w.xenDomain(DomainID(2)).grantMappingCount == 1, "\(side)")
        #expect(ring.tearDown() == 0, "\(side)")
        #expect(w.xenDomain(DomainID(2)).grantMappingCount == 0 && w.page(DomainID(2), frame: 30) == nil, "\(side)")
        for ref in UInt32(8)..<17 { #expect(w.xenDomain(DomainID(1)).grantPins(ref) == (0, 0), "\(side): ref \(ref)") }
    }
}
