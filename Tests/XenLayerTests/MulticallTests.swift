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
}
