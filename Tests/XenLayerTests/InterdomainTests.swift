import Testing
import XenABI
import XenCore
import XVScenarios

@Suite("Interdomain channels")
struct InterdomainTests {
    @Test("EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain, EVTCHNOP_send: the peer's bit, selector and upcall")
    func sendReachesPeer() {
        onBothWorlds { w, side in
            #expect(w.setCallbackVector(dom1, 0x40) == 0, "\(side)")
            #expect(w.setCallbackVector(dom2, 0x41) == 0, "\(side)")
            let unbound = w.allocUnbound(dom2, remote: dom1)
            #expect(unbound == 1, "\(side)")
            let local = w.bindInterdomain(dom1, remote: dom2, remotePort: UInt32(unbound))
            #expect(local == 1, "\(side)")
            // Xen marks the new local port pending at bind.
            #expect(w.isPending(dom1, port: 1), "\(side)")
            #expect(w.recorder.count(domain: dom1, vcpu: 0) == 1, "\(side)")
            #expect(w.status(dom2, port: 1).0 == Int64(EventChannelStatus.interdomain.rawValue), "\(side)")
            #expect(w.send(dom1, port: 1) == 0, "\(side)")
            #expect(w.isPending(dom2, port: 1), "\(side)")
            #expect(w.upcallPending(dom2, vcpu: 0), "\(side)")
            #expect(w.recorder.count(domain: dom2, vcpu: 0) == 1, "\(side)")
            #expect(w.recorder.lastVector(domain: dom2, vcpu: 0) == 0x41, "\(side)")
            // Back the other way.
            #expect(w.send(dom2, port: 1) == 0, "\(side)")
            #expect(w.recorder.count(domain: dom1, vcpu: 0) == 1, "\(side): already pending, no new upcall")
            w.acknowledgeEvents(dom1, vcpu: 0)
            #expect(w.send(dom2, port: 1) == 0, "\(side)")
            #expect(w.recorder.count(domain: dom1, vcpu: 0) == 2, "\(side)")
            // Close one end: the other becomes unbound, waiting for the closer.
            #expect(w.close(dom1, port: 1) == 0, "\(side)")
            let (st, _, u) = w.status(dom2, port: 1)
            #expect(st == Int64(EventChannelStatus.unbound.rawValue), "\(side)")
            #expect(u & 0xFFFF == 1, "\(side)")
            // Rebind works again.
            #expect(w.bindInterdomain(dom1, remote: dom2, remotePort: 1) == 1, "\(side)")
        }
    }
}
