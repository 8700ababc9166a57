import GuestABI
import ViridianABI

/// Xen's one MSR: the hypercall-page MSR at the layout's base. A write of `gfn << 12 | index`
/// fills page `index` (only 0 exists) at guest frame `gfn`; a read gives 0; every other MSR
/// of Xen's range faults (xen-project/xen xen/arch/x86/msr.c routes the range,
/// xen/arch/x86/traps.c guest_rdmsr_xen and guest_wrmsr_xen answer it).
extension XenDomain {
    /// Who answers an access to `msr`: Xen's range is 0x40000000-0x400002FF in the Xen-only
    /// layout, 0x40000200-0x400002FF when Viridian keeps the MSRs below.
    @inlinable
    public func identityMSRRoute(_ msr: UInt32) -> XenIdentityAnswer<Void> {
        guard msr >= XenIdentityMSR.xenBase, msr <= XenIdentityMSR.xenLast else { return .notHypervisor }
        if identity.layout == .xenWithViridian, msr <= XenIdentityMSR.viridianLast { return .viridian }
        return .xen(())
    }

    /// RDMSR by `vcpu`.
    @inlinable public func readMSR(_ msr: UInt32, vcpu: Int) -> XenIdentityAnswer<MSRRead> {
        identityMSRRoute(msr).map { msr == identity.layout.msrBase ? .value(0) : .generalProtection }
    }

    /// WRMSR by `vcpu`. A page index other than 0, or a frame that is not the guest's memory,
    /// is #GP and writes nothing.
    @inlinable public func writeMSR(_ msr: UInt32, value: UInt64, vcpu: Int) -> XenIdentityAnswer<MSRWrite> {
        identityMSRRoute(msr).map {
            let address = GuestPhysicalAddress(rawValue: value)
            guard msr == identity.layout.msrBase, address.offsetInPage == 0,
                  let page = memory.hostAddress(of: address.frame) else { return .generalProtection }
            XenHypercallPage.fill(page, for: identity.virtualization)
            return .done
        }
    }
}
