/// A Xen hypercall as an x86_64 guest issues it (vmcall/vmmcall, or a hypercall-page stub):
/// the number in RAX and up to five arguments in RDI, RSI, RDX, R10 and R8. Decoded once at
/// the entry; the result goes back in RAX.
@frozen
public struct XenHypercallRegisters: Sendable, Hashable {
    /// RAX: the hypercall number (`__HYPERVISOR_*`); the result replaces it.
    public var rax: UInt64
    /// RDI: the first argument.
    public var rdi: UInt64
    /// RSI: the second argument.
    public var rsi: UInt64
    /// RDX: the third argument.
    public var rdx: UInt64
    /// R10: the fourth argument.
    public var r10: UInt64
    /// R8: the fifth argument.
    public var r8: UInt64

    /// A hypercall with number `rax` and the given arguments; unused ones default to 0.
    @inlinable
    public init(rax: UInt64, rdi: UInt64 = 0, rsi: UInt64 = 0, rdx: UInt64 = 0, r10: UInt64 = 0, r8: UInt64 = 0) {
        self.rax = rax; self.rdi = rdi; self.rsi = rsi; self.rdx = rdx; self.r10 = r10; self.r8 = r8
    }
}
