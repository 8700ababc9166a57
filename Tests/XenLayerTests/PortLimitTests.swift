import Testing
import GuestABI
import XenABI
import XenCore
import XenViridian
import XVScenarios

/// Ports onto event flags (Docs/Layer.md): every bindable port takes one flag slot of SINTs
/// 1-15, whatever its number, so a 2-level domain can have all 4095 ports interdomain, and a
/// FIFO domain 30,720 bindable ports at once at any number up to 2^17 - 1.
@Suite("Ports onto SynIC event flags, at the limits")
struct PortLimitTests {
    @Test("2-level: all 4,095 ports of a domain interdomain at once, each delivering to its own port")
    func twoLevelFull() {
        let w = TranslatedWorld(domains: 2, vcpus: 1, maxPort: 4095)
        var pairs: [(UInt32, UInt32)] = []
        for _ in 0..<2047 {
            let remote = UInt32(w.allocUnbound(dom2, remote: dom1))
            let local = UInt32(w.bindInterdomain(dom1, remote: dom2, remotePort: remote))
            pairs.append((local, remote))
        }
        // Domain 1 holds 2,047 interdomain ports; fill the rest with loopback pairs.
        while true {
            let a = w.allocUnbound(dom1, remote: dom1)
            guard a > 0 else { #expect(a == errENOSPC); break }
            let b = w.bindInterdomain(dom1, remote: dom1, remotePort: UInt32(a))
            guard b > 0 else { #expect(b == errENOSPC); break }
        }
        #expect(w.status(dom1, port: 4095).0 != Int64(EventChannelStatus.closed.rawValue), "port 4095 is in use")
        for (local, remote) in [pairs[0], pairs[1000], pairs[2046]] {
            w.acknowledgeEvents(dom2, vcpu: 0)
            #expect(w.send(dom1, port: local) == 0)
            #expect(w.isPending(dom2, port: remote))
        }
        let (_, _, _) = w.status(dom1, port: 4095)
        #expect(w.layer(dom1).eventFlag(of: 4095) != nil, "the last 2-level port has a flag")
    }

    @Test("FIFO: 30,720 bindable ports at once, the next -ENOSPC (translated limit); port 131,071 binds and delivers")
    func fifoLimits() throws {
        let capacity = LayerInterruptRouter.Layer.bindablePortCapacity
        #expect(capacity == 30_720)
        let free = WorldLayout.firstFreeFrame
        let w = TranslatedWorld(domains: 1, vcpus: 1, maxPort: 131_071, frames: free + 130)
        w.setCallbackVector(dom1, 0x44)
        #expect(w.evtchn(dom1, .initControl, [(EvtchnInitControlLayout.controlGfn, free), (EvtchnInitControlLayout.vcpu, 0)]) == 0)
        for page in 0..<128 {
            #expect(w.evtchn(dom1, .expandArray, [(EvtchnExpandArrayLayout.arrayGfn, free + 1 + UInt64(page))]) == 0)
        }
        #expect(w.evtchn(dom1, .expandArray, [(EvtchnExpandArrayLayout.arrayGfn, free)]) == errENOSPC, "128 event-array pages at most")
        // Unbound ports take a flag slot each: 30,720 of them, then -ENOSPC. Native Xen would go
        // on (the documented limit of Docs/Layer.md); IPI ports need no slot.
        var count = 0
        var last: Int64 = 0
        while true {
            last = w.allocUnbound(dom1, remote: dom1)
            if last < 0 { break }
            count += 1
        }
        #expect(count == capacity && last == errENOSPC, "\(count) bindable ports, then \(last)")
        var port: Int64 = 0
        repeat { port = w.bindIPI(dom1, vcpu: 0) } while port > 0 && port < 131_071
        #expect(port == 131_071, "IPI ports fill the rest of the FIFO port space")
        #expect(w.bindIPI(dom1, vcpu: 0) == errENOSPC)
        // Make 131,071 an unbound port with a slot, and bind port 2 to it in loopback.
        #expect(w.close(dom1, port: 131_071) == 0 && w.close(dom1, port: 1) == 0 && w.close(dom1, port: 2) == 0)
        #expect(w.bindIPI(dom1, vcpu: 0) == 1)
        #expect(w.bindIPI(dom1, vcpu: 0) == 2)
        #expect(w.allocUnbound(dom1, remote: dom1) == 131_071)
        #expect(w.layer(dom1).eventFlag(of: 131_071) != nil)
        #expect(w.close(dom1, port: 2) == 0)
        #expect(w.bindInterdomain(dom1, remote: dom1, remotePort: 131_071) == 2)
        let page = w.ram(dom1).region.hostAddress(of: GuestFrameNumber(free + 128))!
        page.storeBytes(of: 0, toByteOffset: 4092, as: UInt32.self)
        #expect(w.send(dom1, port: 2) == 0)
        let word = page.load(fromByteOffset: 4092, as: UInt32.self)
        #expect(word & (1 << 31 | 1 << 29) == 1 << 31 | 1 << 29, "port 131,071's event word is PENDING and LINKED")
        let head = w.ram(dom1).region.hostAddress(of: GuestFrameNumber(free))!.load(fromByteOffset: 8 + 7 * 4, as: UInt32.self)
        // bind_interdomain left port 2 pending (Xen's conservative notify), so it heads the
        // default queue and 131,071 is linked after it.
        let word2 = w.ram(dom1).region.hostAddress(of: GuestFrameNumber(free + 1))!.load(fromByteOffset: 8, as: UInt32.self)
        #expect(head == 2 && word2 & EventChannelFIFO.linkMask == 131_071, "head \(head), port 2 links to \(word2 & EventChannelFIFO.linkMask)")
    }
}
