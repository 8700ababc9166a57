import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// Each EVTCHNOP's checks and errno choices, on both sides (xen-project/xen
/// xen/common/event_channel.c, 4.17).
@Suite("EVTCHNOP sub-ops, both sides")
struct EventChannelOpTests {
    @Test("EVTCHNOP_alloc_unbound: DOMID_SELF and own id, another domain -EPERM, unknown -ESRCH, port written back")
    func allocUnbound() {
        onBothWorlds { w, side in
            #expect(w.allocUnbound(dom1, remote: dom2) == 1, "\(side)")
            #expect(w.evtchn(dom1, .allocUnbound, [(EvtchnAllocUnboundLayout.dom, 1), (EvtchnAllocUnboundLayout.remoteDom, 0x7FF0)]) == 0, "\(side)")
            #expect(w.readArgument(dom1, EvtchnAllocUnboundLayout.port) == 2, "\(side)")
            #expect(w.status(dom1, port: 2).2 & 0xFFFF == 1, "\(side): DOMID_SELF as remote is the caller")
            #expect(w.evtchn(dom1, .allocUnbound, [(EvtchnAllocUnboundLayout.dom, 2), (EvtchnAllocUnboundLayout.remoteDom, 1)]) == errEPERM, "\(side)")
            #expect(w.evtchn(dom1, .allocUnbound, [(EvtchnAllocUnboundLayout.dom, 9), (EvtchnAllocUnboundLayout.remoteDom, 1)]) == errESRCH, "\(side)")
            // A remote domain that does not exist (yet) is accepted, as in Xen.
            #expect(w.allocUnbound(dom1, remote: DomainID(77)) == 3, "\(side)")
        }
    }

    @Test("EVTCHNOP_bind_interdomain: unknown domain -ESRCH, port not unbound for the caller -EINVAL, loopback")
    func bindInterdomain() {
        onBothWorlds { w, side in
            let p = UInt32(w.allocUnbound(dom2, remote: dom1))
            #expect(w.bindInterdomain(dom1, remote: DomainID(9), remotePort: p) == errESRCH, "\(side)")
            #expect(w.bindInterdomain(dom1, remote: dom2, remotePort: p + 1) == errEINVAL, "\(side): a free port")
            #expect(w.bindInterdomain(dom1, remote: dom2, remotePort: 5000) == errEINVAL, "\(side): beyond every port")
            let other = UInt32(w.allocUnbound(dom2, remote: dom2))
            #expect(w.bindInterdomain(dom1, remote: dom2, remotePort: other) == errEINVAL, "\(side): offered to another domain")
            #expect(w.bindInterdomain(dom1, remote: dom2, remotePort: p) == 1, "\(side)")
            #expect(w.bindInterdomain(dom1, remote: dom2, remotePort: p) == errEINVAL, "\(side): already bound")
            // Loopback inside dom2: bind to its own port offered to itself.
            let loop = w.bindInterdomain(dom2, remote: .selfDomain, remotePort: other)
            #expect(loop == 3, "\(side)")
            w.acknowledgeEvents(dom2, vcpu: 0)
            #expect(w.send(dom2, port: other) == 0, "\(side)")
            #expect(w.isPending(dom2, port: UInt32(loop)), "\(side): loopback delivers to the other end")
        }
    }

    @Test("EVTCHNOP_bind_virq: range, global VIRQs only on vCPU 0, -ENOENT vCPU, -EEXIST twice, per-vCPU VIRQ_TIMER")
    func bindVIRQ() {
        onBothWorlds { w, side in
            #expect(w.bindVIRQ(dom1, virq: 24, vcpu: 0) == errEINVAL, "\(side)")
            #expect(w.bindVIRQ(dom1, virq: VIRQ.console.rawValue, vcpu: 1) == errEINVAL, "\(side): global VIRQ on vCPU 1")
            #expect(w.bindVIRQ(dom1, virq: VIRQ.timer.rawValue, vcpu: 7) == errENOENT, "\(side)")
            #expect(w.bindVIRQ(dom1, virq: VIRQ.timer.rawValue, vcpu: 0) == 1, "\(side)")
            #expect(w.bindVIRQ(dom1, virq: VIRQ.timer.rawValue, vcpu: 1) == 2, "\(side): VIRQ_TIMER is per vCPU")
            #expect(w.bindVIRQ(dom1, virq: VIRQ.timer.rawValue, vcpu: 1) == errEEXIST, "\(side)")
            let (st, vcpu, u) = w.status(dom1, port: 2)
            #expect(st == Int64(EventChannelStatus.virq.rawValue) && vcpu == 1 && u & 0xFFFF_FFFF == UInt64(VIRQ.timer.rawValue), "\(side)")
            #expect(w.close(dom1, port: 2) == 0, "\(side)")
            #expect(w.bindVIRQ(dom1, virq: VIRQ.timer.rawValue, vcpu: 1) == 2, "\(side): close frees the VIRQ")
        }
    }

    @Test("EVTCHNOP_bind_ipi and EVTCHNOP_send on IPI ports: the bound vCPU's selector and upcall")
    func bindIPI() {
        onBothWorlds { w, side in
            w.setCallbackVector(dom1, 0x50)
            #expect(w.bindIPI(dom1, vcpu: 2) == errENOENT, "\(side)")
            let p = UInt32(w.bindIPI(dom1, vcpu: 1))
            #expect(w.send(dom1, port: p, vcpu: 0) == 0, "\(side)")
            #expect(w.isPending(dom1, port: p) && w.upcallPending(dom1, vcpu: 1) && !w.upcallPending(dom1, vcpu: 0), "\(side)")
            #expect(w.recorder.count(domain: dom1, vcpu: 1) == 1 && w.recorder.lastVector(domain: dom1, vcpu: 1) == 0x50, "\(side)")
        }
    }

    @Test("EVTCHNOP_send: port 0, free ports and VIRQ ports -EINVAL, unbound ports drop silently")
    func sendChecks() {
        onBothWorlds { w, side in
            #expect(w.send(dom1, port: 0) == errEINVAL, "\(side)")
            #expect(w.send(dom1, port: 5) == errEINVAL, "\(side): free")
            #expect(w.send(dom1, port: 0xFFFF_FFFF) == errEINVAL, "\(side)")
            let v = UInt32(w.bindVIRQ(dom1, virq: VIRQ.debug.rawValue, vcpu: 0))
            #expect(w.send(dom1, port: v) == errEINVAL, "\(side)")
            let u = UInt32(w.allocUnbound(dom1, remote: dom2))
            #expect(w.send(dom1, port: u) == 0 && !w.isPending(dom1, port: u), "\(side)")
        }
    }

    @Test("EVTCHNOP_unmask and masked sends (xen_shinfo_test: evtchn masked, unmasked, send to local port)")
    func maskedThenUnmasked() {
        onBothWorlds { w, side in
            w.setCallbackVector(dom2, 0x60)
            let p = UInt32(w.allocUnbound(dom2, remote: dom1))
            let l = UInt32(w.bindInterdomain(dom1, remote: dom2, remotePort: p))
            w.setMasked(dom2, port: p, true)
            #expect(w.send(dom1, port: l) == 0, "\(side)")
            #expect(w.isPending(dom2, port: p), "\(side): pending while masked")
            #expect(!w.upcallPending(dom2, vcpu: 0) && w.recorder.count(domain: dom2, vcpu: 0) == 0, "\(side): no upcall while masked")
            // Unmask from vCPU 1: the port's vCPU (0) gets the upcall.
            #expect(w.unmask(dom2, port: p, vcpu: 1) == 0, "\(side)")
            #expect(w.upcallPending(dom2, vcpu: 0) && w.recorder.count(domain: dom2, vcpu: 0) == 1, "\(side)")
            #expect(w.unmask(dom2, port: 4096) == errEINVAL, "\(side)")
            #expect(w.unmask(dom2, port: 40) == 0, "\(side): a free port in an allocated bucket")
            #expect(w.unmask(dom2, port: 64) == errEINVAL, "\(side): beyond the allocated bucket")
        }
    }

    @Test("EVTCHNOP_close: port 0 and free ports -EINVAL; an interdomain close leaves the peer unbound")
    func closeChecks() {
        onBothWorlds { w, side in
            #expect(w.close(dom1, port: 0) == errEINVAL, "\(side)")
            #expect(w.close(dom1, port: 3) == errEINVAL, "\(side)")
            let p = UInt32(w.allocUnbound(dom2, remote: dom1))
            let l = UInt32(w.bindInterdomain(dom1, remote: dom2, remotePort: p))
            #expect(w.isPending(dom1, port: l), "\(side)")
            #expect(w.close(dom2, port: p) == 0, "\(side)")
            let (st, _, u) = w.status(dom1, port: l)
            #expect(st == Int64(EventChannelStatus.unbound.rawValue) && u & 0xFFFF == 2, "\(side)")
            #expect(w.close(dom1, port: l) == 0 && !w.isPending(dom1, port: l), "\(side): close clears pending")
            #expect(w.status(dom1, port: l).0 == Int64(EventChannelStatus.closed.rawValue), "\(side)")
        }
    }

    @Test("EVTCHNOP_status: own ports, -EINVAL beyond, another domain -EPERM, unknown -ESRCH")
    func statusChecks() {
        onBothWorlds { w, side in
            #expect(w.status(dom1, port: 0).0 == Int64(EventChannelStatus.closed.rawValue), "\(side): reserved port 0")
            #expect(w.status(dom1, port: 64).0 == errEINVAL, "\(side)")
            #expect(w.status(dom1, port: 1, dom: dom2).0 == errEPERM, "\(side)")
            #expect(w.status(dom1, port: 1, dom: DomainID(30)).0 == errESRCH, "\(side)")
            #expect(w.status(dom1, port: 1, dom: dom1).0 == Int64(EventChannelStatus.closed.rawValue), "\(side)")
        }
    }

    @Test("EVTCHNOP_bind_vcpu: moves interdomain and global VIRQ ports, refuses IPI and per-vCPU VIRQ ports")
    func bindVCPU() {
        onBothWorlds { w, side in
            w.setCallbackVector(dom2, 0x61)
            let p = UInt32(w.allocUnbound(dom2, remote: dom1))
            let l = UInt32(w.bindInterdomain(dom1, remote: dom2, remotePort: p))
            func bindVCPU(_ port: UInt32, _ vcpu: UInt32) -> Int64 {
                w.evtchn(dom2, .bindVcpu, [(EvtchnBindVcpuLayout.port, UInt64(port)), (EvtchnBindVcpuLayout.vcpu, UInt64(vcpu))])
            }
            #expect(bindVCPU(p, 5) == errENOENT, "\(side)")
            #expect(bindVCPU(900, 1) == errEINVAL, "\(side)")
            #expect(bindVCPU(p, 1) == 0, "\(side)")
            #expect(w.status(dom2, port: p).1 == 1, "\(side)")
            #expect(w.send(dom1, port: l) == 0, "\(side)")
            #expect(w.upcallPending(dom2, vcpu: 1) && !w.upcallPending(dom2, vcpu: 0), "\(side): the event follows the port")
            #expect(w.recorder.count(domain: dom2, vcpu: 1) == 1, "\(side)")
            let ipi = UInt32(w.bindIPI(dom2, vcpu: 0))
            #expect(bindVCPU(ipi, 1) == errEINVAL, "\(side)")
            let timer = UInt32(w.bindVIRQ(dom2, virq: VIRQ.timer.rawValue, vcpu: 0))
            #expect(bindVCPU(timer, 1) == errEINVAL, "\(side)")
            let console = UInt32(w.bindVIRQ(dom2, virq: VIRQ.console.rawValue, vcpu: 0))
            #expect(bindVCPU(console, 1) == 0, "\(side)")
        }
    }

    @Test("EVTCHNOP_reset: closes every port, peers left unbound, FIFO back to 2-level; another domain -EPERM")
    func reset() {
        onBothWorlds { w, side in
            let p = UInt32(w.allocUnbound(dom2, remote: dom1))
            let l = UInt32(w.bindInterdomain(dom1, remote: dom2, remotePort: p))
            _ = w.bindIPI(dom1, vcpu: 1)
            #expect(w.evtchn(dom1, .reset, [(EvtchnResetLayout.dom, 2)]) == errEPERM, "\(side)")
            #expect(w.evtchn(dom1, .reset, [(EvtchnResetLayout.dom, 55)]) == errESRCH, "\(side)")
            #expect(w.evtchn(dom1, .reset, [(EvtchnResetLayout.dom, UInt64(DomainID.selfDomain.rawValue))]) == 0, "\(side)")
            #expect(w.status(dom1, port: l).0 == Int64(EventChannelStatus.closed.rawValue), "\(side)")
            #expect(w.status(dom2, port: p).0 == Int64(EventChannelStatus.unbound.rawValue), "\(side)")
            #expect(w.bindInterdomain(dom1, remote: dom2, remotePort: p) == 1, "\(side): the peer can be bound again")
        }
    }

    @Test("EVTCHNOP_bind_pirq is refused with the declared errno; unknown sub-ops -ENOSYS")
    func pirqAndUnknown() {
        onBothWorlds { w, side in
            #expect(w.evtchn(dom1, .bindPirq, [(EvtchnBindPirqLayout.pirq, 1)]) == errEINVAL, "\(side)")
            #expect(w.evtchn(dom1, EventChannelOp(rawValue: 14), []) == errENOSYS, "\(side)")
            #expect(w.evtchn(dom1, EventChannelOp(rawValue: 0xFFFF_FFFF), []) == errENOSYS, "\(side)")
        }
    }

    @Test("argument pointers: unbacked or wrapping is -EFAULT; a structure straddling two pages works")
    func hostilePointers() {
        onBothWorlds { w, side in
            let unbacked = XenHypercallRegisters(rax: XenHypercall.eventChannelOp.rawValue, rdi: 6, rsi: 0x4000_0000)
            #expect(w.hypercall(domain: dom1, vcpu: 0, unbacked) == errEFAULT, "\(side)")
            let wrapping = XenHypercallRegisters(rax: XenHypercall.eventChannelOp.rawValue, rdi: 5, rsi: UInt64.max - 3)
            #expect(w.hypercall(domain: dom1, vcpu: 0, wrapping) == errEFAULT, "\(side)")
            // alloc_unbound whose 8 bytes straddle frames 16 and 17.
            let at = (WorldLayout.argumentPage.rawValue + 1) << guestPageShift - 4
            let ram = w.ram(dom1).region
            _ = ram.store(UInt16(0x7FF0), at: GuestPhysicalAddress(at))
            _ = ram.store(UInt16(2), at: GuestPhysicalAddress(at + 2))
            let r = w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.eventChannelOp.rawValue, rdi: 6, rsi: at))
            #expect(r == 0, "\(side)")
            var port: UInt32 = 0
            _ = withUnsafeMutableBytes(of: &port) { ram.read(at: GuestPhysicalAddress(at + 4), into: $0) }
            #expect(port == 1, "\(side): the port written across the page boundary")
            #expect(w.hypercall(domain: dom1, vcpu: 9, unbacked) == errEINVAL, "\(side): a vCPU the domain lacks")
        }
    }

    @Test("XSA-317 (XTF): alloc_unbound until -ENOSPC with max_event_channels 4096 stops at the 2-level limit")
    func xsa317() {
        onBothWorlds(maxPort: 4095) { w, side in
            var allocated = 0
            var last: Int64 = 0
            for _ in 0..<4100 {
                last = w.allocUnbound(dom1, remote: DomainID(0))
                if last < 0 { break }
                allocated += 1
            }
            #expect(allocated == 4095 && last == errENOSPC, "\(side): ports 1...4095, then -ENOSPC")
        }
    }
}
