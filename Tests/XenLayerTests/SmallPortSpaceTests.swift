import Testing
import XenABI
import XenCore
import XVScenarios

/// A domain whose port space is smaller than one 64-port bucket: the ports past maxPort are
/// not valid (their records do not exist), so FIFO's init_control, which locks every valid
/// port, and port lookups stay within the domain's records.
@Suite("Port spaces below one bucket")
struct SmallPortSpaceTests {
    @Test("maxPort 16: every port binds, the 17th is -ENOSPC, ports past 16 are -EINVAL, and EVTCHNOP_init_control succeeds with them bound")
    func sixteenPorts() {
        onBothWorlds(domains: 1, vcpus: 1, maxPort: 16) { w, side in
            for p in 1...16 { #expect(w.bindIPI(dom1, vcpu: 0) == Int64(p), "\(side)") }
            #expect(w.bindIPI(dom1, vcpu: 0) == errENOSPC, "\(side)")
            #expect(w.status(dom1, port: 17).0 == errEINVAL && w.status(dom1, port: 63).0 == errEINVAL, "\(side)")
            #expect(w.evtchn(dom1, .initControl, [(EvtchnInitControlLayout.controlGfn, WorldLayout.firstFreeFrame),
                                                  (EvtchnInitControlLayout.vcpu, 0)]) == 0, "\(side)")
        }
    }
}
