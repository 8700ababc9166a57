import GuestABI
import XenABI

/// A segment register as VCPUOP_initialise hands it to the embedder: base, limit and the
/// attributes in Xen's segment_register.attr form (type 0-3, S 4, DPL 5-6, P 7, AVL 8, L 9,
/// D/B 10, G 11).
public struct XenVCPUSegment: Sendable, Equatable {
    /// Segment base (a linear address).
    public var base: UInt64
    /// Segment limit in bytes, as Xen's segment_register.limit (already scaled when G is set).
    public var limit: UInt32
    /// Attributes in segment_register.attr form (type, S, DPL, P, AVL, L, D/B, G; see the type's doc).
    public var attributes: UInt16

    /// A segment with the given base, limit and attributes, unchecked.
    @inlinable public init(base: UInt64, limit: UInt32, attributes: UInt16) {
        self.base = base
        self.limit = limit
        self.attributes = attributes
    }

    @inlinable var type: UInt16 { attributes & 0xF }
    @inlinable var system: Bool { attributes & 0x10 == 0 }
    @inlinable var dpl: UInt16 { attributes >> 5 & 3 }
    @inlinable var present: Bool { attributes & 0x80 != 0 }
    @inlinable var granular: Bool { attributes & 0x800 != 0 }
}

/// The register state a vCPU starts from after VCPUOP_initialise (Xen's
/// arch_set_info_hvm_guest): what the embedder loads into its vCPU before it runs it. A 32-bit
/// context's registers are zero-extended; a 64-bit one gets Xen's flat long-mode segments.
/// EFER.LMA is set whenever EFER.LME is.
public struct XenVCPUContext: Sendable, Equatable {
    /// General-purpose registers RAX, RCX, RDX, RBX (0 unless the context set them).
    public var rax: UInt64 = 0, rcx: UInt64 = 0, rdx: UInt64 = 0, rbx: UInt64 = 0
    /// General-purpose registers RSP, RBP, RSI, RDI.
    public var rsp: UInt64 = 0, rbp: UInt64 = 0, rsi: UInt64 = 0, rdi: UInt64 = 0
    /// Instruction pointer and RFLAGS.
    public var rip: UInt64 = 0, rflags: UInt64 = 0
    /// Control registers CR0, CR3 and CR4, and the EFER MSR (LMA set whenever LME is).
    public var cr0: UInt64 = 0, cr3: UInt64 = 0, cr4: UInt64 = 0, efer: UInt64 = 0
    /// Code segment.
    public var cs = XenVCPUSegment(base: 0, limit: 0, attributes: 0)
    /// Data segment.
    public var ds = XenVCPUSegment(base: 0, limit: 0, attributes: 0)
    /// Stack segment.
    public var ss = XenVCPUSegment(base: 0, limit: 0, attributes: 0)
    /// Extra segment (ES).
    public var es = XenVCPUSegment(base: 0, limit: 0, attributes: 0)
    /// Task register.
    public var tr = XenVCPUSegment(base: 0, limit: 0, attributes: 0)

    /// An all-zero context.
    @inlinable public init() {}
}

/// Decoding and checking a guest's vcpu_hvm_context (xen-project/xen RELEASE-4.17.7
/// xen/arch/x86/hvm/domain.c arch_set_info_hvm_guest and check_segment; xen/arch/x86/hvm/hvm.c
/// hvm_efer_valid and hvm_cr4_guest_valid_bits, against the CPU policy of
/// Specs/translation/vcpu-context.tbl).
@usableFromInline enum VCPUContextDecoder {
    @usableFromInline enum Segment { case cs, ds, ss, es, tr }

    /// The context at `arg`, or nil when Xen would answer -EINVAL. The caller has checked that
    /// all of it is readable.
    @inlinable static func decode<M: GuestMemory>(_ memory: M, at arg: UInt64) -> XenVCPUContext? {
        func u32(_ f: ABIField) -> UInt32? { memory.argument(UInt32.self, at: arg, f) }
        guard let mode = u32(VcpuHvmContextLayout.mode), let pad = u32(VcpuHvmContextLayout.pad), pad == 0 else { return nil }
        let regs = arg &+ UInt64(VcpuHvmContextLayout.cpuRegs.offset)
        var c: XenVCPUContext
        switch mode {
        case VCPUHVMMode.mode32: guard let decoded = decode32(memory, at: regs) else { return nil }; c = decoded
        case VCPUHVMMode.mode64: guard let decoded = decode64(memory, at: regs) else { return nil }; c = decoded
        default: return nil
        }
        if c.efer & VCPUContextRules.eferLME != 0 { c.efer |= VCPUContextRules.eferLMA }
        guard c.cr4 & ~VCPUContextRules.cr4Allowed == 0 else { return nil }
        // hvm_efer_valid with cr0_pg unknown (-1): unknown bits, features not offered, LMA
        // without LME.
        guard c.efer & ~VCPUContextRules.eferKnown == 0, c.efer & ~VCPUContextRules.eferAllowed == 0 else { return nil }
        if c.efer & VCPUContextRules.eferLMA != 0, c.efer & VCPUContextRules.eferLME == 0 { return nil }
        return c
    }

    @inlinable static func decode32<M: GuestMemory>(_ memory: M, at base: UInt64) -> XenVCPUContext? {
        typealias L = VcpuHvmX8632Layout
        func u32(_ f: ABIField) -> UInt64? { memory.argument(UInt32.self, at: base, f).map(UInt64.init) }
        func u16(_ f: ABIField) -> UInt16? { memory.argument(UInt16.self, at: base, f) }
        guard let pad1 = u32(L.pad1), pad1 == 0 else { return nil }
        for i in 0..<3 {
            guard let p = memory.argument(UInt16.self, at: base, ABIField(offset: L.pad2.offset + 2 * i, size: 2)), p == 0 else { return nil }
        }
        guard let eax = u32(L.eax), let ecx = u32(L.ecx), let edx = u32(L.edx), let ebx = u32(L.ebx),
              let esp = u32(L.esp), let ebp = u32(L.ebp), let esi = u32(L.esi), let edi = u32(L.edi),
              let eip = u32(L.eip), let eflags = u32(L.eflags), let cr0 = u32(L.cr0), let cr3 = u32(L.cr3), let cr4 = u32(L.cr4),
              let efer = memory.argument(UInt64.self, at: base, L.efer) else { return nil }
        func segment(_ which: Segment, _ b: ABIField, _ l: ABIField, _ a: ABIField) -> XenVCPUSegment? {
            guard let sb = u32(b), let sl = u32(l), var attr = u16(a) else { return nil }
            // Xen sets the accessed bit (busy for TR) of a present segment before checking it.
            if attr & 0x80 != 0 { attr |= which == .tr ? 2 : 1 }
            let s = XenVCPUSegment(base: sb, limit: UInt32(sl), attributes: attr)
            return valid(s, which) ? s : nil
        }
        guard let cs = segment(.cs, L.csBase, L.csLimit, L.csAr), let ds = segment(.ds, L.dsBase, L.dsLimit, L.dsAr),
              let ss = segment(.ss, L.ssBase, L.ssLimit, L.ssAr), let es = segment(.es, L.esBase, L.esLimit, L.esAr),
              let tr = segment(.tr, L.trBase, L.trLimit, L.trAr) else { return nil }
        let limit = cs.granular ? cs.limit << 12 | 0xFFF : cs.limit
        guard eip <= UInt64(limit), ss.dpl == cs.dpl else { return nil }
        if ds.present, ds.dpl > cs.dpl { return nil }
        if es.present, es.dpl > cs.dpl { return nil }
        if efer & VCPUContextRules.eferLMA != 0, efer & VCPUContextRules.eferLME == 0 { return nil }
        var c = XenVCPUContext()
        (c.rax, c.rcx, c.rdx, c.rbx, c.rsp, c.rbp, c.rsi, c.rdi) = (eax, ecx, edx, ebx, esp, ebp, esi, edi)
        (c.rip, c.rflags, c.cr0, c.cr3, c.cr4, c.efer) = (eip, eflags, cr0, cr3, cr4, efer)
        (c.cs, c.ds, c.ss, c.es, c.tr) = (cs, ds, ss, es, tr)
        return c
    }

    @inlinable static func decode64<M: GuestMemory>(_ memory: M, at base: UInt64) -> XenVCPUContext? {
        typealias L = VcpuHvmX8664Layout
        func u64(_ f: ABIField) -> UInt64? { memory.argument(UInt64.self, at: base, f) }
        guard let rax = u64(L.rax), let rcx = u64(L.rcx), let rdx = u64(L.rdx), let rbx = u64(L.rbx),
              let rsp = u64(L.rsp), let rbp = u64(L.rbp), let rsi = u64(L.rsi), let rdi = u64(L.rdi),
              let rip = u64(L.rip), let rflags = u64(L.rflags), let cr0 = u64(L.cr0), let cr3 = u64(L.cr3),
              let cr4 = u64(L.cr4), let efer = u64(L.efer) else { return nil }
        // is_canonical_address: bits 63..47 all equal.
        guard Int64(bitPattern: rip) >> 47 == Int64(bitPattern: rip) >> 63,
              cr0 & VCPUContextRules.cr0Paging != 0, cr4 & VCPUContextRules.cr4PAE != 0,
              efer & VCPUContextRules.eferLME != 0 else { return nil }
        var c = XenVCPUContext()
        (c.rax, c.rcx, c.rdx, c.rbx, c.rsp, c.rbp, c.rsi, c.rdi) = (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi)
        (c.rip, c.rflags, c.cr0, c.cr3, c.cr4, c.efer) = (rip, rflags, cr0, cr3, cr4, efer)
        c.cs = XenVCPUSegment(base: 0, limit: UInt32.max, attributes: UInt16(VCPUContextRules.codeSegment64))
        c.ds = XenVCPUSegment(base: 0, limit: UInt32.max, attributes: UInt16(VCPUContextRules.dataSegment64))
        c.ss = c.ds
        c.es = c.ds
        c.tr = XenVCPUSegment(base: 0, limit: UInt32(VCPUContextRules.taskSegment64Limit), attributes: UInt16(VCPUContextRules.taskSegment64))
        return c
    }

    /// check_segment.
    @inlinable static func valid(_ s: XenVCPUSegment, _ which: Segment) -> Bool {
        guard s.attributes & 0xF000 == 0 else { return false }
        if s.attributes == 0 { return which == .ds || which == .es }
        if which == .tr {
            guard s.system, UInt64(s.type) == VCPUContextRules.tssBusy else { return false }
        } else if s.system {
            return false
        }
        guard s.present else { return false }
        switch which {
        case .cs: return s.type & 0x8 != 0
        case .ss: return s.type & 0x8 == 0 && s.type & 0x2 != 0
        case .ds, .es: return !(s.type & 0x8 != 0 && s.type & 0x2 == 0)
        case .tr: return true
        }
    }
}
