import XenABI

/// What a guest's VMCALL/VMMCALL is, decided before any argument is read (xen-project/xen
/// xen/arch/x86/hvm/hypercall.c hvm_hypercall: the privilege check comes first, then EAX bit 31
/// picks Viridian when it is offered).
public enum XenGuestCall: Sendable, Hashable {
    /// A Xen hypercall: pass the registers to the domain's `hypercall` entry.
    case xen
    /// A Viridian hypercall (`.xenWithViridian` only): the embedder hands it to its target.
    case viridian
    /// Refused before dispatch; this is what the guest sees in RAX.
    case refused(Int64)
}

extension XenDomain {
    /// Classifies a hypercall instruction issued with `rax` at privilege level `cpl`. Only
    /// ring 0 may make hypercalls: any other CPL gets -EPERM, Viridian calls included, as in
    /// Xen. Without Viridian, bit 31 is an ordinary (unknown, so -ENOSYS) Xen number.
    @inlinable
    public func classifyHypercall(rax: UInt64, cpl: UInt8) -> XenGuestCall {
        guard cpl == 0 else { return .refused(XenErrno.eperm.hypercallReturnValue) }
        if identity.layout == .xenWithViridian, rax & UInt64(XenHypercallPageLayout.viridianCall) != 0 { return .viridian }
        return .xen
    }
}
