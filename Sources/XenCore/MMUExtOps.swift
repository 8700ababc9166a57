import XenABI

/// __HYPERVISOR_mmuext_op for an hvm64 domU, which Xen 4.17 dispatches to the PV handler and
/// refuses before any command is read (xen-project/xen xen/arch/x86/mm.c do_mmuext_op): the
/// page owner it names must be a PV domain, and an HVM guest is none. In Xen's order:
/// 1. a count of exactly MMU_UPDATE_PREEMPTED with a null op list is a continuation's second
///    half, which returns `foreigndom` as an int;
/// 2. the page owner (`foreigndom` as a domid_t, xen/common/page_alloc.c get_pg_owner): the
///    domain's own id given explicitly is -ESRCH, DOMID_IO and DOMID_XEN exist but the default
///    XSM policy refuses them (-EPERM), DOMID_SELF and every other existing domain are HVM
///    (-EINVAL), and an id no domain has is -ESRCH.
/// So the TLB-flush commands never run for such a guest; HVMOP_flush_tlbs is its flush.
extension XenDomain {
    /// RDI = op list, RSI = count, RDX = done pointer, R10 = foreign domain (Xen's unsigned ints).
    @inline(never)
    @inlinable public func mmuextOp<F: EventFabric>(_ registers: XenHypercallRegisters, fabric: F) -> Int64 where F.Memory == Memory {
        let count = UInt32(truncatingIfNeeded: registers.rsi)
        let foreign = UInt32(truncatingIfNeeded: registers.r10)
        let preempted: UInt32 = 1 << 31
        if count == preempted && registers.rdi == 0 { return Int64(Int32(bitPattern: foreign)) }
        // A continuation's done count (count | MMU_UPDATE_PREEMPTED) is read and not used here.
        let owner = DomainID(UInt16(truncatingIfNeeded: foreign))
        if owner == id { return XenErrno.esrch.hypercallReturnValue }
        if owner == .io || owner == .xen { return XenErrno.eperm.hypercallReturnValue }
        if owner == .selfDomain || fabric.domainExists(owner) { return XenErrno.einval.hypercallReturnValue }
        return XenErrno.esrch.hypercallReturnValue
    }
}
