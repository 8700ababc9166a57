import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

extension XenWorld {
    func initControl(_ d: DomainID, vcpu: UInt32, gfn: UInt64, offset: UInt32 = 0) -> Int64 {
        evtchn(d, .initControl, [(EvtchnInitControlLayout.controlGfn, gfn), (EvtchnInitControlLayout.offset, UInt64(offset)),
                                 (EvtchnInitControlLayout.vcpu, UInt64(vcpu))])
    }
    func expandArray(_ d: DomainID, gfn: UInt64) -> Int64 { evtchn(d, .expandArray, [(EvtchnExpandArrayLayout.arrayGfn, gfn)]) }
    func setPriority(_ d: DomainID, port: UInt32, _ priority: UInt32) -> Int64 {
        evtchn(d, .setPriority, [(EvtchnSetPriorityLayout.port, UInt64(port)), (EvtchnSetPriorityLayout.priority, UInt64(priority))])
    }
    func word(_ d: DomainID, page gfn: UInt64, port: UInt32) -> UInt32 {
        ram(d).region.hostAddress(of: GuestFrameNumber(gfn))!.load(fromByteOffset: Int(port % 1024) * 4, as: UInt32.self)
    }
    func control(_ d: DomainID, gfn: UInt64, _ field: ABIField, element: Int = 0) -> UInt32 {
        ram(d).region.hostAddress(of: GuestFrameNumber(gfn))!.load(fromByteOffset: field.offset(ofElement: element), as: UInt32.self)
    }
}

let fifoPending: UInt32 = 1 << 31, fifoMasked: UInt32 = 1 << 30, fifoLinked: UInt32 = 1 << 29

@Suite("FIFO event channels, both sides")
struct FIFOTests {
    @Test("EVTCHNOP_init_control: -ENOENT vCPU, offset and alignment -EINVAL, bad frame -EINVAL, twice -EINVAL, link_bits")
    func initControlChecks() {
        onBothWorlds { w, side in
            let cb = WorldLayout.firstFreeFrame
            #expect(w.initControl(dom1, vcpu: 4, gfn: cb) == errENOENT, "\(side)")
            #expect(w.initControl(dom1, vcpu: 0, gfn: cb, offset: 4096 - 64) == errEINVAL, "\(side): block crosses the page")
            #expect(w.initControl(dom1, vcpu: 0, gfn: cb, offset: 4) == errEINVAL, "\(side): not 8-aligned")
            #expect(w.initControl(dom1, vcpu: 0, gfn: 0xFFFF_FFFF_FFFF_FFFE) == errEINVAL, "\(side)")
            #expect(w.initControl(dom1, vcpu: 0, gfn: cb, offset: 4096 - 72) == 0, "\(side)")
            #expect(w.readArgument(dom1, EvtchnInitControlLayout.linkBits) == 17, "\(side)")
            #expect(w.initControl(dom1, vcpu: 0, gfn: cb + 1) == errEINVAL, "\(side): already initialised")
        }
    }

    @Test("XSA-188 (XTF): a failed EVTCHNOP_init_control leaves no FIFO state, EVTCHNOP_expand_array is -EOPNOTSUPP")
    func xsa188() {
        onBothWorlds { w, side in
            #expect(w.initControl(dom1, vcpu: 0, gfn: UInt64.max - 1) == errEINVAL, "\(side)")
            #expect(w.expandArray(dom1, gfn: WorldLayout.firstFreeFrame) == errEOPNOTSUPP, "\(side)")
            #expect(w.setPriority(dom1, port: 0, 3) == errENOSYS, "\(side): EVTCHNOP_set_priority on 2-level")
            #expect(w.initControl(dom1, vcpu: 0, gfn: WorldLayout.firstFreeFrame) == 0, "\(side): the retry works")
        }
    }

    @Test("FIFO send with EVTCHNOP_set_priority: PENDING and LINKED, HEAD and READY of the priority, upcall; second event linked after the tail")
    func queueing() {
        onBothWorlds { w, side in
            w.setCallbackVector(dom2, 0x70)
            let cb = WorldLayout.firstFreeFrame, array = cb + 1
            let a = UInt32(w.allocUnbound(dom2, remote: dom1)), b = UInt32(w.allocUnbound(dom2, remote: dom1))
            let la = UInt32(w.bindInterdomain(dom1, remote: dom2, remotePort: a))
            let lb = UInt32(w.bindInterdomain(dom1, remote: dom2, remotePort: b))
            #expect(w.initControl(dom2, vcpu: 0, gfn: cb) == 0 && w.initControl(dom2, vcpu: 1, gfn: cb, offset: 2048) == 0, "\(side)")
            #expect(w.expandArray(dom2, gfn: array) == 0, "\(side)")
            #expect(w.setPriority(dom2, port: a, 16) == errEINVAL, "\(side)")
            #expect(w.setPriority(dom2, port: 64, 3) == errEINVAL, "\(side)")
            #expect(w.setPriority(dom2, port: a, 3) == 0, "\(side)")
            #expect(w.send(dom1, port: la) == 0, "\(side)")
            #expect(w.word(dom2, page: array, port: a) & (fifoPending | fifoLinked) == fifoPending | fifoLinked, "\(side)")
            #expect(w.control(dom2, gfn: cb, EvtchnFifoControlBlockLayout.head, element: 3) == a, "\(side)")
            #expect(w.control(dom2, gfn: cb, EvtchnFifoControlBlockLayout.ready) == 1 << 3, "\(side)")
            #expect(w.recorder.count(domain: dom2, vcpu: 0) == 1 && w.upcallPending(dom2, vcpu: 0), "\(side)")
            #expect(w.setPriority(dom2, port: b, 3) == 0, "\(side)")
            #expect(w.send(dom1, port: lb) == 0, "\(side)")
            #expect(w.word(dom2, page: array, port: a) & EventChannelFIFO.linkMask == b, "\(side): b linked after a")
            #expect(w.recorder.count(domain: dom2, vcpu: 0) == 1, "\(side): the queue was not empty, no new upcall")
            // Masked: pending, not linked; unmask links it.
            let c = UInt32(w.allocUnbound(dom2, remote: dom1))
            let lc = UInt32(w.bindInterdomain(dom1, remote: dom2, remotePort: c))
            let word = w.ram(dom2).region.hostAddress(of: GuestFrameNumber(array))! + Int(c) * 4
            word.storeBytes(of: fifoMasked, as: UInt32.self)
            #expect(w.send(dom1, port: lc) == 0, "\(side)")
            #expect(w.word(dom2, page: array, port: c) == fifoMasked | fifoPending, "\(side)")
            #expect(w.unmask(dom2, port: c) == 0, "\(side)")
            #expect(w.word(dom2, page: array, port: c) == fifoPending | fifoLinked, "\(side)")
            #expect(w.control(dom2, gfn: cb, EvtchnFifoControlBlockLayout.head, element: 7) == c, "\(side): default priority queue")
        }
    }

    @Test("switching 2-level → FIFO carries pending events to the event array; EVTCHNOP_reset switches back")
    func switching() {
        onBothWorlds { w, side in
            w.setCallbackVector(dom1, 0x71)
            let ipi = UInt32(w.bindIPI(dom1, vcpu: 0))
            #expect(w.send(dom1, port: ipi) == 0 && w.isPending(dom1, port: ipi), "\(side)")
            w.acknowledgeEvents(dom1, vcpu: 0)
            w.setMasked(dom1, port: ipi, false)
            // Pending again in the 2-level bitmap, then switch.
            #expect(w.send(dom1, port: ipi) == 0, "\(side)")
            let cb = WorldLayout.firstFreeFrame
            #expect(w.initControl(dom1, vcpu: 0, gfn: cb) == 0, "\(side)")
            #expect(w.send(dom1, port: ipi) == 0, "\(side): no event word yet: remembered")
            #expect(w.expandArray(dom1, gfn: cb + 2) == 0, "\(side)")
            #expect(w.word(dom1, page: cb + 2, port: ipi) & (fifoPending | fifoLinked) == fifoPending | fifoLinked, "\(side)")
            #expect(w.xenDomain(dom1).usesFIFO, "\(side)")
            #expect(w.evtchn(dom1, .reset, [(EvtchnResetLayout.dom, UInt64(DomainID.selfDomain.rawValue))]) == 0, "\(side)")
            #expect(!w.xenDomain(dom1).usesFIFO, "\(side)")
            #expect(w.expandArray(dom1, gfn: cb + 3) == errEOPNOTSUPP, "\(side)")
        }
    }
}
