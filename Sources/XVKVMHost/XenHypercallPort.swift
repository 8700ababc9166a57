/// How a guest's hypercalls reach the host on a KVM without Xen support.
///
/// A Xen guest enters the hypervisor with VMCALL (Intel) or VMMCALL (AMD). KVM delivers those
/// to userspace only with KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL (KVM_CAP_XEN_HVM, a kernel built
/// with CONFIG_KVM_XEN); otherwise KVM answers them itself. Every KVM delivers port I/O, so
/// the host turns each 3-byte VMCALL/VMMCALL into the 3-byte `out %eax, $0xE4; nop`: the
/// guest's registers are as the hypercall left them (RAX the number, then RDI, RSI, RDX, R10,
/// R8), and the host writes the result to RAX before the guest resumes after the `out`.
/// This covers the hypercall page Xen writes (the host rewrites it after the library fills
/// it) and the inline VMCALLs of a kernel image, at the offsets the host is told.
public enum XenHypercallPort {
    /// The I/O port of the rewritten instruction (unused on a PC: 0xE0-0xEF hold no devices
    /// but Bochs' and QEMU's 0xE9 debug console).
    public static let port: UInt16 = 0xE4
    /// `out %eax, $0xE4; nop` (Intel SDM vol. 2: OUT imm8, EAX is E7 ib; NOP is 90).
    public static let replacement: [UInt8] = [0xE7, 0xE4, 0x90]
    static let vmcall: [UInt8] = [0x0F, 0x01, 0xC1]
    static let vmmcall: [UInt8] = [0x0F, 0x01, 0xD9]

    /// Rewrites the VMCALL or VMMCALL of every stub of a hypercall page (32 bytes each, the
    /// instruction at offset 5 after `mov $n, %eax`); returns how many it rewrote.
    @discardableResult
    public static func patchHypercallPage(_ page: UnsafeMutableRawPointer) -> Int {
        var patched = 0
        for stub in 0..<128 {
            if patchInstruction(at: page + stub * 32 + 5) { patched += 1 }
        }
        return patched
    }

    /// Rewrites one VMCALL or VMMCALL at `p`; false (nothing written) if the bytes there are neither.
    @discardableResult
    public static func patchInstruction(at p: UnsafeMutableRawPointer) -> Bool {
        let bytes = (0..<3).map { p.load(fromByteOffset: $0, as: UInt8.self) }
        guard bytes == vmcall || bytes == vmmcall else { return false }
        for (i, b) in replacement.enumerated() { p.storeBytes(of: b, toByteOffset: i, as: UInt8.self) }
        return true
    }
}
