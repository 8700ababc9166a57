import CGuestAtomics
import GuestABI
import XenABI

/// A vCPU's Xen time: the vcpu_time_info in its vcpu_info, and the second copy a guest may
/// register with VCPUOP_register_vcpu_time_memory_area, both written from the side's clock
/// (`EventFabric.timeBase`, `PVClock`) with Xen's version protocol (xen/arch/x86/time.c
/// update_vcpu_system_time and update_secondary_system_time: the version made odd, the
/// fields written, the version made even, each step ordered before the next).
extension XenDomain {
    /// Re-anchors `vcpu`'s vcpu_time_info at the clock's TSC now. The embedder calls this at
    /// least once a second of guest time, and whenever the clock's page changes (restore,
    /// migration), which keeps every guest read within 100 ns of reference time (`PVClock`);
    /// the layer calls it when the guest moves or adds a time area. False when the side has no
    /// valid clock (nothing is written then).
    @discardableResult
    @inlinable public func refreshTime<F: EventFabric>(vcpu: Int, fabric: F) -> Bool where F.Memory == Memory {
        guard vcpu >= 0, vcpu < vcpuCount, let base = clock(fabric) else { return false }
        let info = PVClock.timeInfo(anchorTSC: base.tsc, page: base.page)
        let lock = vcpuWords + vcpu * VCPUWords.stride + VCPUWords.timeLock
        xv_spin_lock(lock)
        defer { xv_spin_unlock(lock) }
        guard let vi = vcpuInfoPointer(vcpu) else { return false }
        let primary = vi + VcpuInfoLayout.time.offset
        let version = UInt32(littleEndian: xv_load_acquire_u32(primary + VcpuTimeInfoLayout.version.offset))
        let odd = (version &+ 1) | 1, even = (version &+ 2) & ~1
        Self.writeTime(info, version: odd, even: even, into: primary)
        if let area = timeArea(vcpu) {
            // The second copy: odd version first, then the fields, then even; a write the
            // guest's memory does not take is dropped, as Xen's copy to the guest is.
            _ = memory.store(odd, at: area)
            withUnsafeTemporaryAllocation(byteCount: VcpuTimeInfoLayout.size, alignment: 8) { buffer in
                let p = buffer.baseAddress!
                p.initializeMemory(as: UInt8.self, repeating: 0, count: VcpuTimeInfoLayout.size)
                Self.fill(p, info, version: odd)
                _ = memory.write(at: area, from: UnsafeRawBufferPointer(buffer))
            }
            _ = memory.store(even, at: area)
        }
        return true
    }

    /// The domain's clock: the side's time base with the domain's offset added to the page's
    /// (0 until a restore moves it, `DomainWords.clockOffset`), so Xen system time, pvclock and
    /// every deadline count on from a saved image whatever the destination's TSC.
    @inline(__always)
    @inlinable public func clock<F: EventFabric>(_ fabric: F) -> XenTimeBase? where F.Memory == Memory {
        guard var base = fabric.timeBase(self) else { return nil }
        base.page.offset &+= Int64(bitPattern: xv_load_acquire_u64(words + DomainWords.clockOffset))
        return base
    }

    /// A deadline in the domain's system time as the side's clock counts it (what the side's
    /// timer is armed with): the domain's offset taken off, never below 1 ns.
    @inline(__always)
    @inlinable func sideDeadline(_ deadline: UInt64) -> UInt64 {
        let offset = Int64(bitPattern: xv_load_acquire_u64(words + DomainWords.clockOffset))
        if offset == 0 { return deadline }
        let shifted = Int64(bitPattern: deadline) &- offset &* 100
        return shifted <= 0 ? 1 : UInt64(shifted)
    }

    /// Xen system time now (NOW(), ns), from the side's clock; nil without one.
    @inlinable public func systemTime<F: EventFabric>(fabric: F) -> UInt64? where F.Memory == Memory {
        clock(fabric).map { $0.page.nanoseconds(atTSC: $0.tsc) }
    }

    /// Where VCPUOP_register_vcpu_time_memory_area asked for the second copy, if it did.
    @inlinable public func timeArea(_ vcpu: Int) -> GuestPhysicalAddress? {
        guard vcpu >= 0, vcpu < vcpuCount else { return nil }
        let word = xv_load_acquire_u64(vcpuWords + vcpu * VCPUWords.stride + VCPUWords.timeArea)
        return word & 1 == 0 ? nil : GuestPhysicalAddress(word & ~1)
    }

    /// VCPUOP_register_vcpu_time_memory_area (xen/arch/x86/domain.c do_vcpu_op): the argument
    /// in (-EFAULT); the address is taken as given (Xen checks HVM handles only when it
    /// writes them), a null one stops the copies; then the copy is written at once.
    @inlinable func registerTimeArea<F: EventFabric>(_ v: Int, arg: UInt64, current: Int, fabric: F) -> Int64 where F.Memory == Memory {
        guard let address = memory.argument(UInt64.self, at: arg, VcpuRegisterTimeMemoryAreaLayout.addrH) else {
            return XenErrno.efault.hypercallReturnValue
        }
        xv_store_release_u64(vcpuWords + v * VCPUWords.stride + VCPUWords.timeArea, address == 0 ? 0 : address | 1)
        refreshTime(vcpu: v, fabric: fabric)
        return 0
    }

    /// HVMOP_get_time: NOW() into the xen_hvm_get_time (-EFAULT when it cannot be written).
    @inline(never)
    @inlinable func getTime<F: EventFabric>(_ arg: UInt64, fabric: F) -> Int64 where F.Memory == Memory {
        guard let now = systemTime(fabric: fabric) else { return XenErrno.eio.hypercallReturnValue }
        var value = now.littleEndian
        let written = withUnsafeBytes(of: &value) { memory.write(at: GuestPhysicalAddress(arg), from: $0) }
        return written ? 0 : XenErrno.efault.hypercallReturnValue
    }

    @inlinable static func fill(_ p: UnsafeMutableRawPointer, _ info: PVClockTimeInfo, version: UInt32) {
        p.storeBytes(of: version.littleEndian, toByteOffset: VcpuTimeInfoLayout.version.offset, as: UInt32.self)
        p.storeBytes(of: info.tscTimestamp.littleEndian, toByteOffset: VcpuTimeInfoLayout.tscTimestamp.offset, as: UInt64.self)
        p.storeBytes(of: info.systemTime.littleEndian, toByteOffset: VcpuTimeInfoLayout.systemTime.offset, as: UInt64.self)
        p.storeBytes(of: info.tscToSystemMul.littleEndian, toByteOffset: VcpuTimeInfoLayout.tscToSystemMul.offset, as: UInt32.self)
        p.storeBytes(of: info.tscShift, toByteOffset: VcpuTimeInfoLayout.tscShift.offset, as: Int8.self)
        p.storeBytes(of: info.flags.rawValue, toByteOffset: VcpuTimeInfoLayout.flags.offset, as: UInt8.self)
    }

    /// The version protocol on guest memory the guest reads concurrently: odd version (a
    /// release store), the fields, then even (release), so a reader that sees the same even
    /// version before and after its read saw one whole update.
    @inlinable static func writeTime(_ info: PVClockTimeInfo, version odd: UInt32, even: UInt32, into p: UnsafeMutableRawPointer) {
        xv_store_release_u32(p + VcpuTimeInfoLayout.version.offset, odd.littleEndian)
        xv_store_release_u64(p + VcpuTimeInfoLayout.tscTimestamp.offset, info.tscTimestamp.littleEndian)
        xv_store_release_u64(p + VcpuTimeInfoLayout.systemTime.offset, info.systemTime.littleEndian)
        xv_store_release_u32(p + VcpuTimeInfoLayout.tscToSystemMul.offset, info.tscToSystemMul.littleEndian)
        xv_store_release_u8(p + VcpuTimeInfoLayout.tscShift.offset, UInt8(bitPattern: info.tscShift))
        xv_store_release_u8(p + VcpuTimeInfoLayout.flags.offset, info.flags.rawValue)
        xv_store_release_u32(p + VcpuTimeInfoLayout.version.offset, even.littleEndian)
    }
}
