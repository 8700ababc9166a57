import Testing
import XenABI
import XenCore
@testable import XenViridian
import XVScenarios

/// The root's records (XenViridianRoot): closing a port removes its link and its offer in one
/// step, so no peer's bind can land between the two (the threaded runs found a link left to a
/// freed port when they were two calls).
@Suite("Root records")
struct RootRecordsTests {
    @Test("root close of a linked port: both links gone, the far port offered back, the port's own offer withdrawn")
    func closeLinkedPort() {
        let w = TranslatedWorld(domains: 2, vcpus: 1)
        let d1 = DomainID(1), d2 = DomainID(2)
        let u = UInt32(w.allocUnbound(d2, remote: d1))
        #expect(w.root.isOffered(d2, port: u, to: d1))
        let l = UInt32(w.bindInterdomain(d1, remote: d2, remotePort: u))
        #expect(w.root.link(of: d1, port: l)?.port == u && w.root.link(of: d2, port: u)?.port == l)
        #expect(!w.root.isOffered(d2, port: u, to: d1), "the bind took the offer")
        let other = w.root.close(d2, port: u)
        #expect(other?.domain == d1 && other?.port == l)
        #expect(w.root.link(of: d2, port: u) == nil && w.root.link(of: d1, port: l) == nil)
        #expect(w.root.isOffered(d1, port: l, to: d2), "d1's end waits for d2 again, as Xen leaves it")
        #expect(w.root.close(d2, port: u) == nil, "a second close finds nothing")
    }

    @Test("root close of an offered port: the offer is withdrawn, nothing else changes; hostile ports and domains change nothing")
    func closeOfferedPort() {
        let w = TranslatedWorld(domains: 2, vcpus: 1)
        let d1 = DomainID(1), d2 = DomainID(2)
        let u = UInt32(w.allocUnbound(d2, remote: d1))
        #expect(w.root.close(d2, port: u) == nil)
        #expect(!w.root.isOffered(d2, port: u, to: d1))
        #expect(w.bindInterdomain(d1, remote: d2, remotePort: u) == XenErrno.einval.hypercallReturnValue, "a withdrawn offer cannot be bound")
        for (d, p) in [(d2, UInt32.max), (d2, 1024), (DomainID(9), 1), (DomainID(0x7FF0), 1), (DomainID(0xFFFF), 0)] {
            #expect(w.root.close(d, port: p) == nil && w.root.link(of: d, port: p) == nil && !w.root.isOffered(d, port: p, to: d1))
        }
    }
}
