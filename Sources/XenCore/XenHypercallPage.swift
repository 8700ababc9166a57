import GuestABI
import XenABI

/// The hypercall page a guest asks for by writing Xen's base MSR: stub i, at byte 32 * i, is
/// `mov $i, %eax; vmcall (or vmmcall); ret`, __HYPERVISOR_iret's stub is `ud2` (an HVM guest
/// has no iret hypercall), and every other byte is int3. Same bytes as Xen 4.17
/// (xen-project/xen xen/arch/x86/domain.c init_hypercall_page; xen/arch/x86/hvm/vmx/vmx.c and
/// svm/svm.c *_init_hypercall_page); encodings from the Intel SDM vol. 2 (MOV r32, imm32 is
/// B8+rd; VMCALL 0F 01 C1; VMMCALL, AMD APM vol. 3, 0F 01 D9; RET C3; UD2 0F 0B; INT3 CC).
public enum XenHypercallPage {
    /// Writes the whole 4096-byte page at `page`.
    @inlinable public static func fill(_ page: UnsafeMutableRawPointer, for virtualization: HardwareVirtualization) {
        page.initializeMemory(as: UInt8.self, repeating: UInt8(XenHypercallPageLayout.fill), count: Int(guestPageSize))
        let call: UInt8 = virtualization == .vmx ? 0xC1 : 0xD9
        let stubSize = Int(XenHypercallPageLayout.stubSize)
        for number in 0..<Int(XenHypercallPageLayout.stubs) {
            let stub = page + number * stubSize
            if UInt64(number) == XenHypercall.iret.rawValue {
                stub.storeBytes(of: 0x0F, as: UInt8.self)
                (stub + 1).storeBytes(of: 0x0B, as: UInt8.self)
                continue
            }
            stub.storeBytes(of: 0xB8, as: UInt8.self)
            (stub + 1).storeBytes(of: UInt32(number).littleEndian, toByteOffset: 0, as: UInt32.self)
            (stub + 5).storeBytes(of: 0x0F, as: UInt8.self)
            (stub + 6).storeBytes(of: 0x01, as: UInt8.self)
            (stub + 7).storeBytes(of: call, as: UInt8.self)
            (stub + 8).storeBytes(of: 0xC3, as: UInt8.self)
        }
    }
}
