import GuestABI
import XenABI

/// __HYPERVISOR_memory_op for an HVM domU, as Xen 4.17 answers it (xen-project/xen
/// RELEASE-4.17.7: xen/arch/x86/hvm/hypercall.c hvm_memory_op, xen/common/memory.c
/// do_memory_op, xen/arch/x86/mm.c arch_memory_op). Changes to the guest's map go through the
/// embedder's `XenPhysmap` (`Physmap.swift` for add/remove, `Reservations.swift` for
/// ballooning) under the physmap lock.
///
/// The layer never preempts a hypercall, so it never creates a continuation: a batch runs to
/// its end in one call. A guest that passes a start extent in the command's upper bits (as a
/// continued call would) gets it honoured.
extension XenDomain {
    @inline(never)
    @inlinable func memoryOp<F: EventFabric>(_ cmd: UInt64, arg: UInt64, vcpu: Int, fabric: F) -> Int64 where F.Memory == Memory {
        let op = MemoryOp(rawValue: UInt32(cmd & MemoryOpLimits.commandMask))
        let start = cmd >> MemoryOpLimits.extentShift
        switch op {
        case .increaseReservation, .decreaseReservation, .populatePhysmap:
            return Int64(reservationOp(op, start: start, arg: arg, fabric: fabric))
        case .maximumRamPage:
            guard start == 0 else { return XenErrno.einval.hypercallReturnValue }
            return Int64(clamping: withPhysmapLock { physmapState.hostPages })
        case .currentReservation, .maximumReservation, .maximumGpfn:
            guard start == 0 else { return XenErrno.einval.hypercallReturnValue }
            guard let domid = memory.argument(UInt16.self, at: arg, XenMemoryDomainLayout.domid) else { return XenErrno.efault.hypercallReturnValue }
            let owner = resolveOwnDomain(domid, fabric: fabric)
            guard owner == .ok else { return Self.result(owner) }
            let state = withPhysmapLock { physmapState }
            let value = op == .currentReservation ? state.pages : op == .maximumReservation ? state.maxPages : state.maximumGpfn
            return Int64(clamping: value)
        case .addToPhysmap:
            // The size field is 16 bits: a larger start cannot come from a continuation.
            guard start <= UInt64(UInt16.max) else { return XenErrno.edom.hypercallReturnValue }
            return addToPhysmap(arg, start: UInt16(start), fabric: fabric)
        case .addToPhysmapBatch:
            guard start <= UInt64(UInt16.max) else { return XenErrno.edom.hypercallReturnValue }
            return addToPhysmapBatch(arg, start: UInt16(start), fabric: fabric)
        case .removeFromPhysmap:
            guard start == 0 else { return XenErrno.einval.hypercallReturnValue }
            return removeFromPhysmap(arg, fabric: fabric)
        case .memoryMap:
            // arch_memory_op switches on the whole command: start bits make it unknown.
            guard start == 0 else { return XenErrno.enosys.hypercallReturnValue }
            return memoryMapOp(arg)
        case .setMemoryMap, .setPodTarget, .getPodTarget, .machphysMfnList, .machphysCompatMfnList:
            guard start == 0 else { return XenErrno.enosys.hypercallReturnValue }
            fallthrough
        default:
            if case .rejected(let errno) = op.disposition { return errno.hypercallReturnValue }
            return Self.notYetImplemented
        }
    }

    /// XENMEM_memory_map (the domain's own map, no domain id): the structure in (-EFAULT), no
    /// map set -ENOSYS, then min(nr_entries, the map's length) entries copied to the buffer and
    /// the count written back (-EFAULT if either write fails).
    @inlinable func memoryMapOp(_ arg: UInt64) -> Int64 {
        guard memory.argumentReadable(at: arg, size: XenMemoryMapLayout.size),
              let asked = memory.argument(UInt32.self, at: arg, XenMemoryMapLayout.nrEntries),
              let buffer = memory.argument(UInt64.self, at: arg, XenMemoryMapLayout.buffer) else {
            return XenErrno.efault.hypercallReturnValue
        }
        guard !memoryMap.isEmpty else { return XenErrno.enosys.hypercallReturnValue }
        let count = min(Int(asked), memoryMap.count)
        let entrySize = Int(MemoryOpLimits.e820EntrySize)
        for i in 0..<count {
            let (at, overflow) = buffer.addingReportingOverflow(UInt64(i * entrySize))
            guard !overflow else { return XenErrno.efault.hypercallReturnValue }
            let e = memoryMap[i]
            guard memory.setArgument(e.address, at: at, ABIField(offset: 0, size: 8)),
                  memory.setArgument(e.size, at: at, ABIField(offset: 8, size: 8)),
                  memory.setArgument(e.type, at: at, ABIField(offset: 16, size: 4)) else {
                return XenErrno.efault.hypercallReturnValue
            }
        }
        return memory.setArgument(UInt32(count), at: arg, XenMemoryMapLayout.nrEntries) ? 0 : XenErrno.efault.hypercallReturnValue
    }
}
