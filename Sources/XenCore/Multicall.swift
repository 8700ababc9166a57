import CGuestAtomics
import GuestABI
import XenABI

/// __HYPERVISOR_multicall for an hvm64 guest (xen-project/xen xen/common/multicall.c
/// do_multicall, xen/arch/x86/hvm/hypercall.c hvm_do_multicall_call; XTF's xsa-213 test).
/// Each multicall_entry is read whole, dispatched through the same table as a hypercall with
/// its first five arguments, and its result written back; the list stops at the first entry
/// that cannot be read or whose result cannot be written (-EFAULT for the whole call). An
/// entry that is itself a multicall gets -EINVAL (re-entry is refused, the outer call goes
/// on), and iret, PV only, gets the table's -ENOSYS. Xen splits a long list with hypercall
/// continuations; the layer runs it in one call, which the guest's memory bounds (the list
/// ends where its RAM does).
///
/// Entries that repeat the one before them with no effect of their own are coalesced: an
/// EVTCHNOP_send on the same port as the entry just before it, and an HVMOP_flush_tlbs right
/// after another, take that entry's result without being carried out again. On Xen the repeat
/// finds the port already pending (or the TLBs already flushed) unless another vCPU acted in
/// the instant between the two, so the guest sees what it could see on Xen, and the translated
/// side issues one Viridian call for the run instead of one per entry.
extension XenDomain {
    /// RDI = the entry list, RSI = `uint32_t nr_calls`; `vcpu` is the caller.
    @inline(never)
    @inlinable public func multicall<F: EventFabric>(_ list: UInt64, count: UInt64, vcpu: Int, fabric: F) -> Int64 where F.Memory == Memory {
        let flag = vcpuWords + vcpu * VCPUWords.stride + VCPUWords.inMulticall
        // One vCPU's calls are serial: a flag marks the one in progress.
        guard xv_load_acquire_u32(flag) == 0 else { return XenErrno.einval.hypercallReturnValue }
        xv_store_release_u32(flag, 1)
        defer { xv_store_release_u32(flag, 0) }
        let n = UInt32(truncatingIfNeeded: count)
        let size = UInt64(MulticallEntryLayout.size)
        var entry = list
        // A while loop, not `for _ in 0..<n`: iterating a Range<UInt32> allocates in unoptimised builds.
        var remaining = n
        // The previous entry's coalescing key (0: none) and result.
        var previousKey: UInt64 = 0
        var previousResult: Int64 = 0
        while remaining > 0 {
            remaining -= 1
            guard memory.argumentReadable(at: entry, size: MulticallEntryLayout.size),
                  let op = memory.argument(UInt64.self, at: entry, MulticallEntryLayout.op) else {
                return XenErrno.efault.hypercallReturnValue
            }
            // The entry was found readable whole: its arguments read (no closure: a captured
            // variable would be boxed on the heap).
            let base = entry
            let a = MulticallEntryLayout.args.offset
            let registers = XenHypercallRegisters(
                rax: op,
                rdi: memory.argument(UInt64.self, at: base, ABIField(offset: a, size: 8)) ?? 0,
                rsi: memory.argument(UInt64.self, at: base, ABIField(offset: a + 8, size: 8)) ?? 0,
                rdx: memory.argument(UInt64.self, at: base, ABIField(offset: a + 16, size: 8)) ?? 0,
                r10: memory.argument(UInt64.self, at: base, ABIField(offset: a + 24, size: 8)) ?? 0,
                r8: memory.argument(UInt64.self, at: base, ABIField(offset: a + 32, size: 8)) ?? 0)
            let key = coalescingKey(registers)
            let result = key != 0 && key == previousKey ? previousResult : hypercall(registers, vcpu: vcpu, fabric: fabric)
            previousKey = key
            previousResult = result
            guard memory.store(UInt64(bitPattern: result), at: GuestPhysicalAddress(entry &+ UInt64(MulticallEntryLayout.result.offset))) else {
                return XenErrno.efault.hypercallReturnValue
            }
            entry &+= size
        }
        return 0
    }

    /// What makes an entry a repeat of the one before it: EVTCHNOP_send's port (read as the
    /// send would read it), or HVMOP_flush_tlbs with its null argument; 0 for every other entry.
    @inline(__always)
    @inlinable func coalescingKey(_ r: XenHypercallRegisters) -> UInt64 {
        if r.rax == XenHypercall.eventChannelOp.rawValue, UInt32(truncatingIfNeeded: r.rdi) == EventChannelOp.send.rawValue,
           let port = memory.argument(UInt32.self, at: r.rsi, EvtchnSendLayout.port) {
            return 1 << 40 | UInt64(port)
        }
        if r.rax == XenHypercall.hvmOp.rawValue, r.rdi == UInt64(HVMOp.flushTlbs.rawValue), r.rsi == 0 { return 2 << 40 }
        return 0
    }
}
