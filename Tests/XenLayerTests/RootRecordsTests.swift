import Testing
import GuestABI
import XenABI
import ViridianABI
import ViridianReference
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

    @Test("the root's records follow the domains it has, not the 32,752 ids there could be: ids far apart take a chunk each, and every domain is found by its id and its partition")
    func recordsAreSparse() {
        let router = LayerInterruptRouter()
        let reference = LayerInterruptRouter.Reference(host: router)!
        let root = XenViridianRoot(target: reference)
        #expect(root.allocatedChunks == 0)
        var partitions: [PartitionID] = []
        let rams = (0..<4).map { _ in GuestRAM(frameCount: 1) }
        for (i, id) in [UInt16(1), 2, 300, 30_000].enumerated() {
            let p = try! reference.createPartition(PartitionConfiguration(vpCount: 1), memory: rams[i].region)
            partitions.append(p)
            #expect(root.register(DomainID(id), partition: p, maxPort: 63))
        }
        #expect(root.allocatedChunks == 3, "ids 1 and 2 share a chunk; 300 and 30,000 take one each")
        #expect(root.domainCount == 4)
        for (id, p) in zip([UInt16(1), 2, 300, 30_000], partitions) {
            #expect(root.partition(of: DomainID(id)) == p && root.domain(in: p) == DomainID(id))
        }
        #expect(root.partition(of: DomainID(3)) == nil && root.partition(of: DomainID(0x7FEF)) == nil && root.partition(of: DomainID(0x7FF0)) == nil)
        #expect(!root.register(DomainID(300), partition: partitions[0], maxPort: 63), "taken")
    }
}
