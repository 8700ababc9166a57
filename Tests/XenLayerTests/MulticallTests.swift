import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// __HYPERVISOR_multicall (Specs/translation/hypercalls.tbl): per-entry results, Xen's rules
/// inside a multicall (XTF xsa-213: no nested multicall, no iret), hostile lists.
@Suite("multicall")
struct MulticallTests {
    /// Writes `entries` (op and up to five arguments) at `address`, result fields 0xEE.
    func write(_ w: any XenWorld, at address: UInt64, _ entries: [(UInt64, [UInt64])]) {
        for (i, (op, args)) in entries.enumerated() {
            let base = address + UInt64(i * MulticallEntryLayout.size)
            _ = w.ram(dom1).region.store(op, at: GuestPhysicalAddress(base))
            _ = w.ram(dom1).region.store(UInt64(0xEE), at: GuestPhysicalAddress(base + 8))
            for (j, a) in args.enumerated() { _ = w.ram(dom1).region.store(a, at: GuestPhysicalAddress(base + 16 + UInt64(8 * j))) }
        }
    }

    func result(_ w: any XenWorld, at address: UInt64, _ i: Int) -> Int64 {
        Int64(bitPattern: w.ram(dom1).region.load(UInt64.self, at: GuestPhysicalAddress(address + UInt64(i * 64 + 8)))!)
    }

    func multicall(_ w: any XenWorld, _ list: UInt64, _ count: UInt64) -> Int64 {
        w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.multicall.rawValue, rdi: list, rsi: count))
    }

    @Test("each entry runs with its result written back: an IPI send, xen_version, an unknown sub-op, a nested multicall (-EINVAL), iret (-ENOSYS), an unknown hypercall; the call itself returns 0")
    func results() {
        onBothWorlds { w, side in
            #expect(w.setCallbackVector(dom1, 0x40) == 0)
            let ipi = UInt32(w.bindIPI(dom1, vcpu: 1))
            w.writeArguments(dom1, size: 4, [(EvtchnSendLayout.port, UInt64(ipi))])
            let list = (WorldLayout.firstFreeFrame + 15) << guestPageShift
            write(w, at: list, [
                (XenHypercall.eventChannelOp.rawValue, [UInt64(EventChannelOp.send.rawValue), w.argumentAddress]),
                (XenHypercall.xenVersion.rawValue, [0]),
                (XenHypercall.xenVersion.rawValue, [99]),
                (XenHypercall.multicall.rawValue, [list, 1]),
                (XenHypercall.iret.rawValue, []),
                (63, []),
            ])
            #expect(multicall(w, list, 6) == 0, "\(side)")
            #expect((0..<6).map { result(w, at: list, $0) } == [0, 0x0004_0011, errENOSYS, errEINVAL, errENOSYS, errENOSYS], "\(side)")
            #expect(w.upcallPending(dom1, vcpu: 1), "\(side): the send took effect")
            // The flag is cleared afterwards: a later multicall runs.
            #expect(multicall(w, list + 64, 1) == 0 && result(w, at: list + 64, 0) == 0x0004_0011, "\(side)")
        }
    }

    @Test("a list that runs off guest memory stops there with -EFAULT, after the entries before it ran; a count of 0 does nothing; the count is a uint32_t")
    func hostileLists() {
        onBothWorlds { w, side in
            let last = WorldLayout.frames << guestPageShift - 64
            write(w, at: last, [(XenHypercall.xenVersion.rawValue, [0])])
            #expect(multicall(w, last, 0xFFFF_FFFF) == errEFAULT, "\(side)")
            #expect(result(w, at: last, 0) == 0x0004_0011, "\(side): the backed entry ran")
            #expect(multicall(w, last + 32, 1) == errEFAULT, "\(side): an entry straddling the end is not read")
            #expect(multicall(w, UInt64.max - 8, 3) == errEFAULT, "\(side)")
            #expect(multicall(w, 0, 0) == 0 && multicall(w, UInt64.max, 1 << 32) == 0, "\(side): nothing to do")
        }
    }

    @Test("repeated entries are coalesced: 8 interdomain sends on one port are one HvCallSignalEvent, consecutive flushes one flush; a different port, or a close between, breaks the run")
    func coalescing() {
        onBothWorlds { w, side in
            #expect(w.setCallbackVector(dom2, 0x41) == 0)
            let remote = UInt32(w.allocUnbound(dom2, remote: dom1))
            let p = UInt32(w.bindInterdomain(dom1, remote: dom2, remotePort: remote))
            let remote2 = UInt32(w.allocUnbound(dom2, remote: dom1))
            let q = UInt32(w.bindInterdomain(dom1, remote: dom2, remotePort: remote2))
            // Two evtchn_send structures: port p at slot 0, port q at slot 1.
            w.writeArguments(dom1, size: 4, [(EvtchnSendLayout.port, UInt64(p))])
            w.writeArguments(dom1, size: 4, [(EvtchnSendLayout.port, UInt64(q))], slot: 1)
            let sendP = (XenHypercall.eventChannelOp.rawValue, [UInt64(EventChannelOp.send.rawValue), w.argumentAddress])
            let sendQ = (XenHypercall.eventChannelOp.rawValue, [UInt64(EventChannelOp.send.rawValue), w.argumentAddress(slot: 1)])
            let flush = (XenHypercall.hvmOp.rawValue, [UInt64(HVMOp.flushTlbs.rawValue), 0])
            let list = (WorldLayout.firstFreeFrame + 15) << guestPageShift
            let t = w as? TranslatedWorld
            var calls = t?.viridianHypercalls ?? 0
            write(w, at: list, Array(repeating: sendP, count: 8))
            #expect(multicall(w, list, 8) == 0 && (0..<8).allSatisfy { result(w, at: list, $0) == 0 }, "\(side)")
            #expect(w.isPending(dom2, port: remote) && w.recorder.count(domain: dom2, vcpu: 0) == 1, "\(side)")
            if let t { #expect(t.viridianHypercalls - calls == 1, "one HvCallSignalEvent for 8 sends"); calls = t.viridianHypercalls }
            // p, q, p: three runs, three signals.
            write(w, at: list, [sendP, sendQ, sendP])
            #expect(multicall(w, list, 3) == 0, "\(side)")
            if let t { #expect(t.viridianHypercalls - calls == 3); calls = t.viridianHypercalls }
            // Three flushes in a row: one.
            write(w, at: list, [flush, flush, flush, sendP, flush])
            #expect(multicall(w, list, 5) == 0 && (0..<5).allSatisfy { result(w, at: list, $0) == 0 }, "\(side)")
            #expect(w.tlbFlushes(dom1) == 2, "\(side): the run of three, then the one after the send")
            if let t { #expect(t.viridianHypercalls - calls == 3, "two flushes and a signal") }
            // A close between two sends: the second is carried out, and fails.
            w.writeArguments(dom1, size: 4, [(EvtchnCloseLayout.port, UInt64(p))], slot: 2)
            write(w, at: list, [sendP, (XenHypercall.eventChannelOp.rawValue, [UInt64(EventChannelOp.close.rawValue), w.argumentAddress(slot: 2)]), sendP])
            #expect(multicall(w, list, 3) == 0, "\(side)")
            #expect((0..<3).map { result(w, at: list, $0) } == [0, 0, errEINVAL], "\(side)")
        }
    }
}
