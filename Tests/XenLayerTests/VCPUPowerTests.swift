import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// VCPUOP_initialise, VCPUOP_up and VCPUOP_down (Specs/translation/vcpu.tbl
/// `translation.vcpuop`, Specs/translation/vcpu-context.tbl), on both sides.
@Suite("VCPUOP_initialise, up and down")
struct VCPUPowerTests {
    /// A field of cpu_regs, at its place in vcpu_hvm_context.
    static func reg(_ f: ABIField, _ value: UInt64) -> (ABIField, UInt64) {
        (ABIField(offset: VcpuHvmContextLayout.cpuRegs.offset + f.offset, size: f.size), value)
    }

    /// A 64-bit start: paging, PAE and long mode on, a canonical RIP.
    static var longMode: [(ABIField, UInt64)] {
        typealias L = VcpuHvmX8664Layout
        return [(VcpuHvmContextLayout.mode, UInt64(VCPUHVMMode.mode64)), reg(L.rip, 0xFFFF_FFFF_8100_0000), reg(L.rsp, 0x9000),
                reg(L.rbx, 7), reg(L.cr0, 0x8000_0011), reg(L.cr3, 0x2_0000), reg(L.cr4, 0x20), reg(L.efer, 0x100), reg(L.rflags, 2)]
    }

    /// A 32-bit flat protected-mode start (the PVH entry state): CS execute/read, DS/ES/SS
    /// read/write, 4 GiB, TR a 32-bit TSS.
    static var flat32: [(ABIField, UInt64)] {
        typealias L = VcpuHvmX8632Layout
        return [(VcpuHvmContextLayout.mode, UInt64(VCPUHVMMode.mode32)), reg(L.eip, 0x10_0000), reg(L.ebx, 0x8000), reg(L.cr0, 0x11),
                reg(L.csLimit, 0xFFFFF), reg(L.csAr, 0xC9B), reg(L.dsLimit, 0xFFFFF), reg(L.dsAr, 0xC93),
                reg(L.ssLimit, 0xFFFFF), reg(L.ssAr, 0xC93), reg(L.esLimit, 0xFFFFF), reg(L.esAr, 0xC93),
                reg(L.trLimit, 0x67), reg(L.trAr, 0x8B)]
    }

    static func with(_ base: [(ABIField, UInt64)], _ changes: (ABIField, UInt64)...) -> [(ABIField, UInt64)] {
        var out = base.filter { f in !changes.contains { $0.0.offset == f.0.offset } }
        out += changes
        return out
    }

    func initialise(_ w: any XenWorld, vcpu: UInt64 = 1, _ fields: [(ABIField, UInt64)], from: Int = 0) -> Int64 {
        w.writeArguments(dom1, size: VcpuHvmContextLayout.size, fields)
        return w.hypercall(domain: dom1, vcpu: from, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(VCPUOp.initialise.rawValue),
                                                                        rsi: vcpu, rdx: w.argumentAddress))
    }

    func op(_ w: any XenWorld, _ op: VCPUOp, vcpu: UInt64, from: Int = 0) -> Int64 {
        w.hypercall(domain: dom1, vcpu: from, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(op.rawValue), rsi: vcpu))
    }

    func runstate(_ w: any XenWorld, vcpu: Int) -> Int32 {
        _ = w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(VCPUOp.getRunstateInfo.rawValue),
                                                                    rsi: UInt64(vcpu), rdx: w.argumentAddress))
        return Int32(truncatingIfNeeded: w.readArgument(dom1, VcpuRunstateInfoLayout.state))
    }

    @Test("VCPUOP_initialise gives a down vCPU its 64-bit start (Xen's flat long-mode segments, EFER.LMA); VCPUOP_up starts it, once; VCPUOP_down stops it; the last vCPU down powers the domain off")
    func lifecycle() {
        onBothWorlds { w, side in
            #expect(op(w, .up, vcpu: 1) == errEINVAL, "\(side): never initialised")
            #expect(op(w, .up, vcpu: 0) == 0 && w.recorder.powerChanges(domain: dom1).ups == 0, "\(side): vCPU 0 is up already")
            #expect(initialise(w, Self.longMode) == 0, "\(side)")
            let c = w.recorder.context(domain: dom1, vcpu: 1)
            #expect(c?.rip == 0xFFFF_FFFF_8100_0000 && c?.rsp == 0x9000 && c?.rbx == 7 && c?.cr3 == 0x2_0000, "\(side)")
            #expect(c?.efer == 0x500 && c?.cs.attributes == 0xA9B && c?.ss.attributes == 0xC93 && c?.tr == XenVCPUSegment(base: 0, limit: 0x67, attributes: 0x8B),
                    "\(side): LMA added, long-mode segments")
            #expect(op(w, .isUp, vcpu: 1) == 0, "\(side): initialised, still down")
            #expect(initialise(w, Self.longMode) == errEEXIST, "\(side): once")
            #expect(op(w, .up, vcpu: 1) == 0 && op(w, .isUp, vcpu: 1) == 1, "\(side)")
            #expect(w.recorder.powerChanges(domain: dom1) == (1, 0) && runstate(w, vcpu: 1) == VCPURunstate.runnable.rawValue, "\(side)")
            #expect(op(w, .up, vcpu: 1) == 0 && w.recorder.powerChanges(domain: dom1) == (1, 0), "\(side): up already")
            #expect(op(w, .down, vcpu: 1, from: 1) == 0 && op(w, .isUp, vcpu: 1) == 0, "\(side)")
            #expect(w.recorder.powerChanges(domain: dom1) == (1, 1) && runstate(w, vcpu: 1) == VCPURunstate.offline.rawValue, "\(side)")
            #expect(op(w, .down, vcpu: 1) == 0 && w.recorder.powerChanges(domain: dom1) == (1, 1), "\(side): down already")
            #expect(w.recorder.shutdowns(domain: dom1).count == 0, "\(side)")
            #expect(op(w, .down, vcpu: 0) == 0, "\(side): the last vCPU")
            #expect(w.recorder.shutdowns(domain: dom1) == (1, UInt8(ShutdownReason.poweroff.rawValue)) && op(w, .isUp, vcpu: 0) == 1, "\(side): powered off, vCPU 0 as it was")
            #expect(op(w, .up, vcpu: 1) == 0 && op(w, .isUp, vcpu: 1) == 1, "\(side): an initialised vCPU comes up again")
        }
    }

    @Test("VCPUOP_initialise with a 32-bit flat context: registers zero-extended, accessed and busy bits set, null DS and ES allowed")
    func flat32() {
        onBothWorlds { w, side in
            #expect(initialise(w, Self.flat32) == 0, "\(side)")
            let c = w.recorder.context(domain: dom1, vcpu: 1)
            #expect(c?.rip == 0x10_0000 && c?.rbx == 0x8000 && c?.cs.limit == 0xFFFFF && c?.cs.attributes == 0xC9B && c?.tr.attributes == 0x8B, "\(side)")
        }
        onBothWorlds { w, side in
            typealias L = VcpuHvmX8632Layout
            // A data segment's accessed bit is Xen's to set; TR's busy bit too (type 9 becomes 0xB).
            #expect(initialise(w, Self.with(Self.flat32, Self.reg(L.dsAr, 0), Self.reg(L.esAr, 0), Self.reg(L.ssAr, 0xC92), Self.reg(L.trAr, 0x89))) == 0, "\(side)")
            #expect(w.recorder.context(domain: dom1, vcpu: 1)?.ss.attributes == 0xC93 && w.recorder.context(domain: dom1, vcpu: 1)?.tr.attributes == 0x8B, "\(side)")
        }
    }

    @Test("VCPUOP_initialise refusals: -EINVAL for each check arch_set_info_hvm_guest makes, and for the embedder's refusal; -EFAULT; -ENOENT; nothing initialised")
    func refusals() {
        typealias L32 = VcpuHvmX8632Layout
        typealias L64 = VcpuHvmX8664Layout
        let bad32: [(String, [(ABIField, UInt64)])] = [
            ("pad1", Self.with(Self.flat32, Self.reg(L32.pad1, 1))),
            ("pad2", Self.with(Self.flat32, (ABIField(offset: VcpuHvmContextLayout.cpuRegs.offset + L32.pad2.offset + 4, size: 2), 1))),
            ("null CS", Self.with(Self.flat32, Self.reg(L32.csAr, 0))),
            ("null SS", Self.with(Self.flat32, Self.reg(L32.ssAr, 0))),
            ("null TR", Self.with(Self.flat32, Self.reg(L32.trAr, 0))),
            ("data CS", Self.with(Self.flat32, Self.reg(L32.csAr, 0xC93))),
            ("read-only SS", Self.with(Self.flat32, Self.reg(L32.ssAr, 0xC91))),
            ("execute-only DS", Self.with(Self.flat32, Self.reg(L32.dsAr, 0xC99))),
            ("system CS", Self.with(Self.flat32, Self.reg(L32.csAr, 0xC8B))),
            ("code TR", Self.with(Self.flat32, Self.reg(L32.trAr, 0x9B))),
            ("16-bit TSS", Self.with(Self.flat32, Self.reg(L32.trAr, 0x81))),
            ("CS not present", Self.with(Self.flat32, Self.reg(L32.csAr, 0xC1B))),
            ("attribute bits 12-15", Self.with(Self.flat32, Self.reg(L32.csAr, 0x1C9B))),
            ("EIP past CS limit", Self.with(Self.flat32, Self.reg(L32.csAr, 0x49B), Self.reg(L32.eip, 0x10_0000))),
            ("SS.DPL != CS.DPL", Self.with(Self.flat32, Self.reg(L32.ssAr, 0xCF3))),
            ("DS.DPL > CS.DPL", Self.with(Self.flat32, Self.reg(L32.dsAr, 0xCF3))),
            ("LMA without LME", Self.with(Self.flat32, Self.reg(L32.efer, 0x400))),
            ("CR4.VMXE", Self.with(Self.flat32, Self.reg(L32.cr4, 1 << 13))),
            ("EFER.SVME", Self.with(Self.flat32, Self.reg(L32.efer, 1 << 12))),
            ("an unknown EFER bit", Self.with(Self.flat32, Self.reg(L32.efer, 1 << 20))),
        ]
        let bad64: [(String, [(ABIField, UInt64)])] = [
            ("non-canonical RIP", Self.with(Self.longMode, Self.reg(L64.rip, 0x0000_8000_0000_0000))),
            ("no paging", Self.with(Self.longMode, Self.reg(L64.cr0, 0x11))),
            ("no PAE", Self.with(Self.longMode, Self.reg(L64.cr4, 0))),
            ("no LME", Self.with(Self.longMode, Self.reg(L64.efer, 0))),
            ("CR4.PKE", Self.with(Self.longMode, Self.reg(L64.cr4, 0x20 | 1 << 22))),
            ("EFER.FFXSE", Self.with(Self.longMode, Self.reg(L64.efer, 0x500 | 1 << 14))),
            ("mode 2", Self.with(Self.longMode, (VcpuHvmContextLayout.mode, 2))),
            ("pad", Self.with(Self.longMode, (VcpuHvmContextLayout.pad, 1))),
        ]
        onBothWorlds { w, side in
            for (what, fields) in bad32 + bad64 {
                #expect(initialise(w, fields) == errEINVAL, "\(side): \(what)")
            }
            #expect(w.recorder.contexts.isEmpty, "\(side): the embedder saw none of them")
            w.recorder.refusesContexts = true
            #expect(initialise(w, Self.longMode) == errEINVAL, "\(side): the embedder refuses")
            w.recorder.refusesContexts = false
            #expect(!w.xenDomain(dom1).isVCPUInitialised(1) && op(w, .up, vcpu: 1) == errEINVAL, "\(side)")
            let edge = WorldLayout.frames << guestPageShift - 64
            #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(VCPUOp.initialise.rawValue), rsi: 1, rdx: edge)) == errEFAULT, "\(side)")
            #expect(initialise(w, vcpu: 2, Self.longMode) == errENOENT, "\(side)")
            #expect(initialise(w, vcpu: 0, Self.longMode) == errEEXIST, "\(side): vCPU 0 starts initialised")
        }
    }

    @Test("the embedder's INIT/SIPI (setVCPUUp) initialises a vCPU: VCPUOP_initialise is then -EEXIST, and up/down work")
    func initSIPI() {
        onBothWorlds { w, side in
            w.setVCPUUp(dom1, vcpu: 1, true)
            #expect(initialise(w, Self.longMode) == errEEXIST, "\(side)")
            #expect(op(w, .down, vcpu: 1) == 0 && op(w, .isUp, vcpu: 1) == 0 && op(w, .up, vcpu: 1) == 0 && op(w, .isUp, vcpu: 1) == 1, "\(side)")
            #expect(w.recorder.powerChanges(domain: dom1) == (1, 1), "\(side)")
        }
    }
}
