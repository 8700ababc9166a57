import CGuestAtomics
import Foundation
import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios
import XVTestSupport

/// memory_op under the threading contract (Docs/Threading.md): one vCPU moves shared_info back
/// and forth and balloons a frame out and in while another vCPU sends events into shared_info,
/// asks for memory types and the reservation, and a guest thread clears what arrives. Runs
/// under ThreadSanitizer in `.ci/tsan`.
@Suite("Threads: memory_op beside event delivery")
struct PhysmapThreadTests {
    @Test("shared_info moves and ballooning on vCPU 0 while vCPU 1 sends to vCPU 0 and queries: every call answers as it should, the map is consistent afterwards and a last send lands", arguments: ["native", "translated"])
    func physmapBesideEvents(_ side: String) {
        let w: any XenWorld = side == "native" ? NativeWorld(domains: 1, vcpus: 2) : TranslatedWorld(domains: 1, vcpus: 2)
        #expect(w.setCallbackVector(dom1, 0x40) == 0)
        let port = UInt32(w.bindIPI(dom1, vcpu: 0))
        let box = WorldReference(w)
        let rounds = 1500
        let sends = Counter(), stop = Counter()
        let failures = FailureLog()
        runConcurrently([
            {
                let w = box.world
                let selfDom = UInt64(DomainID.selfDomain.rawValue)
                for i in 0..<rounds {
                    let r = w.memoryOp(dom1, vcpu: 0, .addToPhysmap, [(XenAddToPhysmapLayout.domid, selfDom), (XenAddToPhysmapLayout.space, 0),
                                                                      (XenAddToPhysmapLayout.idx, 0), (XenAddToPhysmapLayout.gpfn, UInt64(30 + i % 2))])
                    if r != 0 { failures.add("add_to_physmap \(i): \(r)") }
                    for op in [MemoryOp.decreaseReservation, .populatePhysmap] {
                        let done = w.memoryOp(dom1, vcpu: 0, op, [(XenMemoryReservationLayout.extentStart, w.listAddress), (XenMemoryReservationLayout.nrExtents, 1),
                                                                  (XenMemoryReservationLayout.domid, selfDom)], list: [40])
                        if done != 1 { failures.add("\(op.rawValue) \(i): \(done)") }
                    }
                }
                stop.store(1)
            },
            {
                let w = box.world
                var n = 0
                while stop.load() == 0 {
                    let r = w.evtchn(dom1, vcpu: 1, .send, size: 8, [(EvtchnSendLayout.port, UInt64(port))], slot: 1)
                    if r != 0 { failures.add("send: \(r)") }
                    n += 1
                    w.writeArguments(dom1, size: 2, [(XenMemoryDomainLayout.domid, 0x7FF0)], slot: 2)
                    let pages = w.hypercall(domain: dom1, vcpu: 1, XenHypercallRegisters(rax: XenHypercall.memoryOp.rawValue, rdi: UInt64(MemoryOp.currentReservation.rawValue),
                                                                                          rsi: w.argumentAddress(slot: 2)))
                    if pages < 45 || pages > 48 { failures.add("current_reservation \(pages)") }
                }
                sends.store(n)
            },
            {
                // The guest on vCPU 0 takes its events as they come, through the page it knows.
                let si = box.world.sharedInfo(dom1)
                let word = si + SharedInfoLayout.evtchnPending.offset(ofElement: Int(port / 64))
                while stop.load() == 0 { _ = xv_atomic_fetch_and_u64(word, ~(UInt64(1) << UInt64(port % 64))) }
            },
        ])
        #expect(failures.entries.isEmpty, "\(side): \(failures.entries.prefix(8))")
        #expect(sends.load() > 0, "\(side)")
        // After an even number of moves shared_info is at 31 (the last i is odd), 30 a hole; the
        // two RAM pages it replaced were released, and frame 40 came back each time.
        let d = w.xenDomain(dom1)
        #expect(d.sharedInfoLocation == GuestFrameNumber(31) && w.page(dom1, frame: 31) == w.sharedInfo(dom1) && w.page(dom1, frame: 30) == nil, "\(side)")
        #expect(d.reservation.pages == 46 && w.page(dom1, frame: 40) != nil, "\(side)")
        // A last send still lands in shared_info.
        #expect(w.send(dom1, port: port, vcpu: 1) == 0 && w.isPending(dom1, port: port), "\(side)")
    }
}

final class FailureLog: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ s: String) { lock.withLock { list.append(s) } }
    var entries: [String] { lock.withLock { list } }
}
