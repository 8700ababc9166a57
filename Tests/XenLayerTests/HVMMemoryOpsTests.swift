import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// HVMOP_flush_tlbs, HVMOP_pagetable_dying and HVMOP_get_mem_type (Specs/translation/hvm.tbl
/// `translation.hvmop`) and __HYPERVISOR_mmuext_op (`translation.hypercall`,
/// `translation.mmuext`), on both sides.
@Suite("HVMOP flush_tlbs, pagetable_dying, get_mem_type; mmuext_op")
struct HVMMemoryOpsTests {
    @Test("HVMOP_flush_tlbs: a null argument flushes every vCPU and address space (one HvCallFlushVirtualAddressSpace when translated); any other is -EINVAL")
    func flushTLBs() {
        onBothWorlds { w, side in
            let regs = XenHypercallRegisters(rax: XenHypercall.hvmOp.rawValue, rdi: UInt64(HVMOp.flushTlbs.rawValue), rsi: 0)
            #expect(w.hypercall(domain: dom1, vcpu: 1, regs) == 0, "\(side)")
            #expect(w.tlbFlushes(dom1) == 1 && w.tlbFlushes(dom2) == 0, "\(side)")
            var bad = regs
            bad.rsi = w.argumentAddress
            #expect(w.hypercall(domain: dom1, vcpu: 0, bad) == errEINVAL, "\(side)")
            #expect(w.tlbFlushes(dom1) == 1, "\(side): nothing flushed on -EINVAL")
            #expect(w.hypercall(domain: dom2, vcpu: 0, regs) == 0 && w.tlbFlushes(dom2) == 1, "\(side)")
        }
        let t = TranslatedWorld(domains: 1, vcpus: 2)
        let before = t.layer(dom1).viridianHypercalls
        #expect(t.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.hvmOp.rawValue, rdi: UInt64(HVMOp.flushTlbs.rawValue))) == 0)
        #expect(t.layer(dom1).viridianHypercalls - before == 1, "one Viridian call per Xen call")
        #expect(t.router.flushes(t.layer(dom1).partition, partial: true) == 0, "never a partial flush")
    }

    func pagetableDying(_ w: any XenWorld, dom: UInt64, gpa: UInt64 = 0) -> Int64 {
        w.hvm(dom1, .pagetableDying, [(XenHvmPagetableDyingLayout.domid, dom), (XenHvmPagetableDyingLayout.gpa, gpa)])
    }

    @Test("HVMOP_pagetable_dying with hardware paging: -EINVAL for the own domain, -EOPNOTSUPP for another, -ESRCH for none, -EFAULT first")
    func pagetableDyingAnswers() {
        onBothWorlds { w, side in
            #expect(pagetableDying(w, dom: 0x7FF0) == errEINVAL, "\(side): what Linux's is_pagetable_dying_supported sees")
            #expect(pagetableDying(w, dom: 1, gpa: 0xFFFF_FFFF_FFFF_FFFF) == errEINVAL, "\(side)")
            #expect(pagetableDying(w, dom: 2) == errEOPNOTSUPP, "\(side)")
            for dom: UInt64 in [9, 0x7FF1, 0x7FF2, 0x7FF4, 0xFFFF] {
                #expect(pagetableDying(w, dom: dom) == errESRCH, "\(side) dom \(dom)")
            }
            let edge = WorldLayout.frames << guestPageShift - 8
            #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.hvmOp.rawValue, rdi: UInt64(HVMOp.pagetableDying.rawValue), rsi: edge)) == errEFAULT, "\(side)")
        }
    }

    func memType(_ w: any XenWorld, dom: UInt64 = 0x7FF0, pfn: UInt64) -> (Int64, UInt64) {
        let r = w.hvm(dom1, .getMemType, [(XenHvmGetMemTypeLayout.domid, dom), (XenHvmGetMemTypeLayout.memType, 0xEEEE), (XenHvmGetMemTypeLayout.pfn, pfn)])
        return (r, w.readArgument(dom1, XenHvmGetMemTypeLayout.memType))
    }

    @Test("HVMOP_get_mem_type: guest RAM is HVMMEM_ram_rw, every other frame HVMMEM_mmio_dm (the layer's frames included); another domain -EPERM, none -ESRCH")
    func getMemType() {
        onBothWorlds { w, side in
            let ramRw = UInt64(HVMMemType.ramRw.rawValue), mmio = UInt64(HVMMemType.mmioDm.rawValue)
            #expect(memType(w, pfn: 0) == (0, ramRw), "\(side): shared_info")
            #expect(memType(w, pfn: WorldLayout.frames - 1) == (0, ramRw), "\(side)")
            // Frame 48 is the first layer frame in a translated world: not the guest's.
            for pfn in [WorldLayout.frames, WorldLayout.frames + 5, 1 << 40, UInt64.max] {
                #expect(memType(w, pfn: pfn) == (0, mmio), "\(side) pfn \(pfn)")
            }
            #expect(memType(w, dom: 1, pfn: 3) == (0, ramRw), "\(side): the own id")
            #expect(memType(w, dom: 2, pfn: 3).0 == errEPERM, "\(side)")
            #expect(memType(w, dom: 7, pfn: 3).0 == errESRCH, "\(side)")
            #expect(w.readArgument(dom1, XenHvmGetMemTypeLayout.memType) == 0xEEEE, "\(side): nothing written on an error")
            let edge = WorldLayout.frames << guestPageShift - 8
            #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.hvmOp.rawValue, rdi: UInt64(HVMOp.getMemType.rawValue), rsi: edge)) == errEFAULT, "\(side)")
        }
    }

    func mmuext(_ w: any XenWorld, ops: UInt64 = 0, count: UInt64 = 1, done: UInt64 = 0, foreign: UInt64 = 0x7FF0) -> Int64 {
        w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.mmuextOp.rawValue, rdi: ops, rsi: count, rdx: done, r10: foreign))
    }

    @Test("mmuext_op from an hvm64 guest: -EINVAL for itself or another HVM domain, -ESRCH for its own id or none, -EPERM for DOMID_IO and DOMID_XEN; nothing is flushed")
    func mmuextRefused() {
        onBothWorlds { w, side in
            // A TLB_FLUSH_ALL command in the list: never read.
            w.writeArguments(dom1, size: 16, [(MmuextOpLayout.cmd, UInt64(MMUExtOp.tlbFlushAll.rawValue))])
            let ops = w.argumentAddress
            #expect(mmuext(w, ops: ops) == errEINVAL, "\(side): DOMID_SELF")
            #expect(mmuext(w, ops: ops, foreign: 2) == errEINVAL, "\(side)")
            #expect(mmuext(w, ops: ops, foreign: 1) == errESRCH, "\(side): naming itself")
            #expect(mmuext(w, ops: ops, foreign: 9) == errESRCH, "\(side)")
            #expect(mmuext(w, ops: ops, foreign: 0x7FF1) == errEPERM, "\(side)")
            #expect(mmuext(w, ops: ops, foreign: 0x7FF2) == errEPERM, "\(side)")
            #expect(mmuext(w, ops: ops, foreign: 0x7FF3) == errESRCH, "\(side)")
            #expect(mmuext(w, ops: ops, foreign: 0x1_7FF0) == errEINVAL, "\(side): domid_t is the low 16 bits")
            #expect(mmuext(w, ops: UInt64.max, count: 0xFFFF_FFFF, done: UInt64.max) == errEINVAL, "\(side): hostile pointers are never read")
            // The second half of a preempted call: count MMU_UPDATE_PREEMPTED, null list.
            #expect(mmuext(w, count: 1 << 31, foreign: 0x7FF0) == 0x7FF0, "\(side)")
            #expect(mmuext(w, count: 1 << 31, foreign: 0xFFFF_FFFF) == -1, "\(side): returned as an int")
            #expect(mmuext(w, ops: ops, count: 1 << 31 | 4, foreign: 0x7FF0) == errEINVAL, "\(side)")
            #expect(w.tlbFlushes(dom1) == 0, "\(side)")
        }
    }
}
