import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// VCPUOP_get_runstate_info and VCPUOP_register_runstate_memory_area (Specs/translation/vcpu.tbl),
/// with the runstate changes the embedder reports, on both sides.
@Suite("Runstate: get_runstate_info, runstate areas, XEN_RUNSTATE_UPDATE")
struct RunstateTests {
    static let ms: UInt64 = 2_500_000

    static func read(_ p: UnsafeRawPointer) -> (state: Int32, entry: UInt64, time: [UInt64]) {
        (p.loadUnaligned(as: Int32.self), p.loadUnaligned(fromByteOffset: VcpuRunstateInfoLayout.stateEntryTime.offset, as: UInt64.self),
         (0..<4).map { p.loadUnaligned(fromByteOffset: VcpuRunstateInfoLayout.time.offset(ofElement: $0), as: UInt64.self) })
    }

    func vcpuOp(_ w: any XenWorld, _ op: VCPUOp, target: Int, from: Int = 0, arg: UInt64) -> Int64 {
        w.hypercall(domain: dom1, vcpu: from, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(op.rawValue), rsi: UInt64(target), rdx: arg))
    }

    @Test("get_runstate_info: vCPU 0 running and vCPU 1 offline from time 0; the totals, with the current state's time added, sum to now; the same on both sides")
    func info() {
        var results: [[UInt64]] = []
        onBothWorlds { w, side in
            w.advanceTime(toTSC: 10 * Self.ms)
            w.setVCPUUp(dom1, vcpu: 1, true)
            w.advanceTime(toTSC: 15 * Self.ms)
            w.setRunstate(dom1, vcpu: 1, .blocked)
            w.advanceTime(toTSC: 22 * Self.ms)
            let now = w.systemTime(dom1)!
            #expect(vcpuOp(w, .getRunstateInfo, target: 1, arg: w.argumentAddress) == 0, "\(side)")
            let r = Self.read(w.ram(dom1).region.hostAddress(of: WorldLayout.argumentPage)!)
            #expect(r.state == VCPURunstate.blocked.rawValue, "\(side)")
            #expect(r.time.reduce(0, +) == now, "\(side): the totals sum to now")
            #expect(r.time[Int(VCPURunstate.running.rawValue)] + r.time[Int(VCPURunstate.offline.rawValue)] == r.entry, "\(side): before the last change, the totals sum to its entry time")
            #expect(r.time[Int(VCPURunstate.blocked.rawValue)] == now - r.entry, "\(side)")
            #expect(vcpuOp(w, .getRunstateInfo, target: 0, arg: w.argumentAddress) == 0, "\(side)")
            let zero = Self.read(w.ram(dom1).region.hostAddress(of: WorldLayout.argumentPage)!)
            #expect(zero.state == 0 && zero.entry == 0 && zero.time[0] == now, "\(side): vCPU 0 has run since time 0")
            #expect(vcpuOp(w, .getRunstateInfo, target: 0, arg: WorldLayout.frames << guestPageShift - 8) == errEFAULT, "\(side)")
            results.append(r.time + [r.entry, UInt64(r.state)])
        }
        #expect(results.count == 2 && results[0] == results[1])
    }

    @Test("register_runstate_memory_area: a copy at once and at each change; with VMASST_TYPE_runstate_update_flag, XEN_RUNSTATE_UPDATE is clear once written; 0 stops; -EFAULT")
    func area() {
        onBothWorlds { w, side in
            let area = (WorldLayout.firstFreeFrame + 14) << guestPageShift + 200
            let host = w.ram(dom1).region.hostAddress(of: GuestFrameNumber(area >> guestPageShift))! + Int(area & 0xFFF)
            w.writeArguments(dom1, size: 8, [(VcpuRegisterRunstateMemoryAreaLayout.addrH, area)])
            w.advanceTime(toTSC: 4 * Self.ms)
            #expect(vcpuOp(w, .registerRunstateMemoryArea, target: 0, arg: w.argumentAddress) == 0, "\(side)")
            #expect(Self.read(host).state == 0 && Self.read(host).time[0] == 0, "\(side): the caller's own runstate as it stands")
            // The update flag: the guest enables it; after a change the area's entry time is clean.
            #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.vmAssist.rawValue, rdi: 0, rsi: 5)) == 0)
            w.advanceTime(toTSC: 9 * Self.ms)
            w.setRunstate(dom1, vcpu: 0, .runnable)
            let r = Self.read(host)
            #expect(r.state == VCPURunstate.runnable.rawValue && r.entry & RunstateUpdate.flag == 0, "\(side)")
            #expect(r.time[0] == r.entry && r.entry == w.systemTime(dom1)!, "\(side)")
            w.writeArguments(dom1, size: 8, [(VcpuRegisterRunstateMemoryAreaLayout.addrH, 0)])
            #expect(vcpuOp(w, .registerRunstateMemoryArea, target: 0, arg: w.argumentAddress) == 0, "\(side)")
            w.setRunstate(dom1, vcpu: 0, .running)
            #expect(Self.read(host).state == VCPURunstate.runnable.rawValue, "\(side): stopped")
            #expect(vcpuOp(w, .registerRunstateMemoryArea, target: 0, arg: UInt64.max - 2) == errEFAULT, "\(side)")
        }
    }
}
