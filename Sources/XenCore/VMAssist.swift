import CGuestAtomics
import XenABI

/// __HYPERVISOR_vm_assist for an HVM guest (xen-project/xen xen/common/domain.c vm_assist,
/// do_vm_assist; xen/arch/x86/include/asm/domain.h HVM_VM_ASSIST_MASK). The type is checked
/// first: one of 64 and up, or outside the HVM mask, is -EINVAL whatever the command; then
/// enable and disable set and clear the bit, and any other command is -ENOSYS.
extension XenDomain {
    /// `cmd` and `type` are Xen's `unsigned int` arguments (RDI and RSI, low 32 bits).
    @inline(never)
    @inlinable public func vmAssist(_ cmd: UInt64, type: UInt64) -> Int64 {
        let command = UInt32(truncatingIfNeeded: cmd), kind = UInt32(truncatingIfNeeded: type)
        guard kind < 64, VMAssistAnswers.hvmValid & (1 << UInt64(kind)) != 0 else { return XenErrno.einval.hypercallReturnValue }
        let bit = UInt64(1) << UInt64(kind)
        switch VMAssistCommand(rawValue: command) {
        case .enable: _ = xv_atomic_fetch_or_u64(words + DomainWords.vmAssist, bit)
        case .disable: _ = xv_atomic_fetch_and_u64(words + DomainWords.vmAssist, ~bit)
        default: return XenErrno.enosys.hypercallReturnValue
        }
        return 0
    }

    /// Whether the guest has enabled `type` (Xen's VM_ASSIST(d, type)).
    @inlinable public func vmAssistEnabled(_ type: VMAssistType) -> Bool {
        type.rawValue < 64 && xv_atomic_load_u64(words + DomainWords.vmAssist) & (1 << UInt64(type.rawValue)) != 0
    }
}
