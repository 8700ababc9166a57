import CKVM
import Glibc

/// The VM-wide KVM facilities the Xen host uses (Documentation/virt/kvm/api.rst in Linux).
extension KVMVirtualMachine {
    /// KVM_CREATE_IRQCHIP: the in-kernel local APICs (and PIC, IOAPIC). Upcalls are then
    /// delivered as MSIs to a vCPU's APIC from any thread, and HLT waits in the kernel.
    public func createInterruptController() throws(KVMError) {
        guard ioctl(fd, xv_kvm_create_irqchip, 0) == 0 else { throw KVMError("KVM_CREATE_IRQCHIP") }
    }

    /// KVM_SIGNAL_MSI: a fixed, edge-triggered interrupt at `vector` for the local APIC
    /// `apicID` (physical destination; the MSI address format of the Intel SDM vol. 3, 11.11).
    /// Any thread. False when KVM refuses it.
    @discardableResult
    public func signalMSI(apicID: UInt32, vector: UInt8) -> Bool {
        var msi = kvm_msi()
        msi.address_lo = 0xFEE0_0000 | (apicID & 0xFF) << 12
        msi.address_hi = 0
        msi.data = UInt32(vector)
        return ioctl(fd, xv_kvm_signal_msi, &msi) >= 0
    }

    /// Sends RDMSR and WRMSR of `first ... first + count - 1` to userspace (KVM_X86_SET_MSR_FILTER
    /// denying that range, with KVM_CAP_X86_USER_SPACE_MSR's filter reason): every other MSR
    /// stays KVM's.
    public func interceptMSRs(first: UInt32, count: UInt32) throws(KVMError) {
        var cap = kvm_enable_cap()
        cap.cap = UInt32(xv_kvm_cap_user_space_msr)
        cap.args.0 = UInt64(KVM_MSR_EXIT_REASON_FILTER)
        guard ioctl(fd, xv_kvm_enable_cap, &cap) == 0 else { throw KVMError("KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR)") }
        // A bitmap of all zero bits denies every MSR of the range.
        let bitmap = UnsafeMutablePointer<UInt8>.allocate(capacity: Int(count + 7) / 8)
        defer { bitmap.deallocate() }
        bitmap.initialize(repeating: 0, count: Int(count + 7) / 8)
        var filter = kvm_msr_filter()
        filter.flags = UInt32(KVM_MSR_FILTER_DEFAULT_ALLOW)
        filter.ranges.0 = kvm_msr_filter_range(flags: UInt32(KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE), nmsrs: count, base: first, bitmap: bitmap)
        guard ioctl(fd, xv_kvm_set_msr_filter, &filter) == 0 else { throw KVMError("KVM_X86_SET_MSR_FILTER") }
    }
}

extension KVMDevice {
    /// KVM_GET_SUPPORTED_CPUID: the leaves this KVM can give a guest.
    public func supportedCPUID() throws(KVMError) -> [kvm_cpuid_entry2] {
        let table = UnsafeMutablePointer<xv_kvm_cpuid>.allocate(capacity: 1)
        defer { table.deallocate() }
        table.initialize(to: xv_kvm_cpuid())
        table.pointee.header.nent = UInt32(XV_KVM_CPUID_ENTRIES)
        guard ioctl(fd, xv_kvm_get_supported_cpuid, table) == 0 else { throw KVMError("KVM_GET_SUPPORTED_CPUID") }
        return withUnsafeBytes(of: &table.pointee.entries) { Array($0.bindMemory(to: kvm_cpuid_entry2.self).prefix(Int(table.pointee.header.nent))) }
    }
}

extension KVMVCPU {
    /// KVM_SET_CPUID2: the vCPU's whole CPUID table.
    public func setCPUID(_ entries: [kvm_cpuid_entry2]) throws(KVMError) {
        guard entries.count <= Int(XV_KVM_CPUID_ENTRIES) else { throw KVMError("\(entries.count) CPUID entries: more than \(XV_KVM_CPUID_ENTRIES)", errno: 0) }
        let table = UnsafeMutablePointer<xv_kvm_cpuid>.allocate(capacity: 1)
        defer { table.deallocate() }
        table.initialize(to: xv_kvm_cpuid())
        table.pointee.header.nent = UInt32(entries.count)
        withUnsafeMutableBytes(of: &table.pointee.entries) { raw in
            let out = raw.bindMemory(to: kvm_cpuid_entry2.self)
            for (i, e) in entries.enumerated() { out[i] = e }
        }
        guard ioctl(fd, xv_kvm_set_cpuid2, table) == 0 else { throw KVMError("KVM_SET_CPUID2") }
    }

    /// KVM_GET_TSC_KHZ: the guest's TSC frequency.
    public func tscKHz() throws(KVMError) -> UInt64 {
        let khz = ioctl(fd, xv_kvm_get_tsc_khz, 0)
        guard khz > 0 else { throw KVMError("KVM_GET_TSC_KHZ") }
        return UInt64(khz)
    }

    /// Writes one MSR as the host (KVM_SET_MSRS), e.g. IA32_TSC.
    public func setMSR(_ index: UInt32, _ value: UInt64) throws(KVMError) {
        var one = xv_kvm_one_msr()
        one.header.nmsrs = 1
        one.entry.index = index
        one.entry.data = value
        guard ioctl(fd, xv_kvm_set_msrs, &one) == 1 else { throw KVMError("KVM_SET_MSRS(0x\(String(index, radix: 16)))") }
    }

    /// Reads one MSR as the host (KVM_GET_MSRS).
    public func msr(_ index: UInt32) throws(KVMError) -> UInt64 {
        var one = xv_kvm_one_msr()
        one.header.nmsrs = 1
        one.entry.index = index
        guard ioctl(fd, xv_kvm_get_msrs, &one) == 1 else { throw KVMError("KVM_GET_MSRS(0x\(String(index, radix: 16)))") }
        return one.entry.data
    }

    /// The kvm_run mapping, for the exits the Xen host decodes itself.
    public var runState: UnsafeMutablePointer<kvm_run> { run }

    /// Sets the general registers (KVM_SET_REGS).
    public func setRegisters(_ regs: kvm_regs) throws(KVMError) {
        var r = regs
        guard ioctl(fd, xv_kvm_set_regs, &r) == 0 else { throw KVMError("KVM_SET_REGS") }
    }

    /// The special registers (KVM_GET_SREGS).
    public func specialRegisters() throws(KVMError) -> kvm_sregs {
        var s = kvm_sregs()
        guard ioctl(fd, xv_kvm_get_sregs, &s) == 0 else { throw KVMError("KVM_GET_SREGS") }
        return s
    }

    /// Sets the special registers (KVM_SET_SREGS).
    public func setSpecialRegisters(_ sregs: kvm_sregs) throws(KVMError) {
        var s = sregs
        guard ioctl(fd, xv_kvm_set_sregs, &s) == 0 else { throw KVMError("KVM_SET_SREGS") }
    }
}
