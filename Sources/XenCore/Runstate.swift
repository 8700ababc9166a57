import CGuestAtomics
import GuestABI
import XenABI

/// A vCPU's runstate (xen-project/xen xen/common/sched/core.c vcpu_runstate_change,
/// vcpu_runstate_get; xen/arch/x86/domain.c update_runstate_area, 4.17). The embedder runs the
/// vCPUs, so it reports the changes (`setVCPUUp`, `setRunstate`); each one adds the time spent
/// in the old state to its total and stamps the new state's entry time, so the four totals sum
/// to state_entry_time (Xen system time, from a domain created at time 0). A registered
/// runstate area gets a copy at each change, with XEN_RUNSTATE_UPDATE set in
/// state_entry_time while it is written when the guest enabled VMASST_TYPE_runstate_update_flag.
extension XenDomain {
    @inlinable func runstateBlock(_ v: Int) -> UnsafeMutableRawPointer { vcpuWords + v * VCPUWords.stride + VCPUWords.runstate }

    /// Sets up the runstates at creation: vCPU 0 running, the others offline, all from time 0.
    @inlinable func initialiseRunstates() {
        for v in 0..<vcpuCount {
            runstateBlock(v).storeBytes(of: (v == 0 ? VCPURunstate.running : VCPURunstate.offline).rawValue, as: Int32.self)
        }
    }

    /// The embedder started (INIT/SIPI) or stopped `vcpu`: VCPUOP_is_up's answer, and a
    /// runstate change to running or offline.
    @inlinable public func setVCPUUp<F: EventFabric>(_ vcpu: Int, _ up: Bool, fabric: F) where F.Memory == Memory {
        guard vcpu >= 0, vcpu < vcpuCount else { return }
        xv_store_release_u32(vcpuWords + vcpu * VCPUWords.stride + VCPUWords.online, up ? 1 : 0)
        // INIT/SIPI gives the vCPU its register state.
        if up { xv_store_release_u32(vcpuWords + vcpu * VCPUWords.stride + VCPUWords.initialised, 1) }
        setRunstate(vcpu, up ? .running : .offline, fabric: fabric)
    }

    /// The embedder's scheduler moved `vcpu` to `state` (running, runnable, blocked, offline).
    @inlinable public func setRunstate<F: EventFabric>(_ vcpu: Int, _ state: VCPURunstate, fabric: F) where F.Memory == Memory {
        guard vcpu >= 0, vcpu < vcpuCount, state.rawValue >= 0, state.rawValue <= VCPURunstate.offline.rawValue else { return }
        let now = systemTime(fabric: fabric) ?? 0
        let lock = timerWord(vcpu, VCPUWords.timeLock)
        xv_spin_lock(lock)
        defer { xv_spin_unlock(lock) }
        let r = runstateBlock(vcpu)
        let old = Int(r.load(as: Int32.self))
        let entry = r.load(fromByteOffset: VcpuRunstateInfoLayout.stateEntryTime.offset, as: UInt64.self)
        if old >= 0, old < 4, now > entry {
            let t = r + VcpuRunstateInfoLayout.time.offset(ofElement: old)
            t.storeBytes(of: t.load(as: UInt64.self) &+ (now - entry), as: UInt64.self)
        }
        r.storeBytes(of: state.rawValue, as: Int32.self)
        r.storeBytes(of: max(now, entry), toByteOffset: VcpuRunstateInfoLayout.stateEntryTime.offset, as: UInt64.self)
        writeRunstateArea(vcpu, UnsafeRawPointer(r))
    }

    /// vcpu_runstate_get: the runstate with the time since the last change added to the
    /// current state's total (the caller holds the time lock).
    @inlinable func runstateSnapshot(_ v: Int, now: UInt64, into out: UnsafeMutableRawPointer) {
        out.copyMemory(from: runstateBlock(v), byteCount: VcpuRunstateInfoLayout.size)
        let state = Int(out.load(as: Int32.self))
        let entry = out.load(fromByteOffset: VcpuRunstateInfoLayout.stateEntryTime.offset, as: UInt64.self)
        guard state >= 0, state < 4, now > entry else { return }
        let t = out + VcpuRunstateInfoLayout.time.offset(ofElement: state)
        t.storeBytes(of: t.load(as: UInt64.self) &+ (now - entry), as: UInt64.self)
    }

    /// Copies `runstate` to the registered area, if any (update_runstate_area): with the
    /// update flag in the top byte of state_entry_time first and last when the guest asked for
    /// it. Writes the guest's memory does not take are dropped, as Xen's are.
    @inlinable func writeRunstateArea(_ v: Int, _ runstate: UnsafeRawPointer) {
        let word = xv_load_acquire_u64(vcpuWords + v * VCPUWords.stride + VCPUWords.runstateArea)
        guard word & 1 != 0 else { return }
        let area = word & ~1
        let flagged = vmAssistEnabled(.runstateUpdateFlag)
        let topByte = GuestPhysicalAddress(area &+ UInt64(VcpuRunstateInfoLayout.stateEntryTime.offset + 7))
        let entry = runstate.load(fromByteOffset: VcpuRunstateInfoLayout.stateEntryTime.offset, as: UInt64.self)
        withUnsafeTemporaryAllocation(byteCount: VcpuRunstateInfoLayout.size, alignment: 8) { buffer in
            let p = buffer.baseAddress!
            p.copyMemory(from: runstate, byteCount: VcpuRunstateInfoLayout.size)
            if flagged {
                p.storeBytes(of: entry | RunstateUpdate.flag, toByteOffset: VcpuRunstateInfoLayout.stateEntryTime.offset, as: UInt64.self)
                _ = memory.store(UInt8(truncatingIfNeeded: (entry | RunstateUpdate.flag) >> 56), at: topByte)
            }
            _ = memory.write(at: GuestPhysicalAddress(area), from: UnsafeRawBufferPointer(buffer))
            if flagged { _ = memory.store(UInt8(truncatingIfNeeded: entry >> 56), at: topByte) }
        }
    }

    /// VCPUOP_get_runstate_info: the snapshot into the argument (-EFAULT when it cannot be
    /// written).
    @inlinable func getRunstateInfo<F: EventFabric>(_ v: Int, arg: UInt64, fabric: F) -> Int64 where F.Memory == Memory {
        let now = systemTime(fabric: fabric) ?? 0
        return withUnsafeTemporaryAllocation(byteCount: VcpuRunstateInfoLayout.size, alignment: 8) { buffer in
            let lock = timerWord(v, VCPUWords.timeLock)
            xv_spin_lock(lock)
            runstateSnapshot(v, now: now, into: buffer.baseAddress!)
            xv_spin_unlock(lock)
            return memory.write(at: GuestPhysicalAddress(arg), from: UnsafeRawBufferPointer(buffer)) ? 0 : XenErrno.efault.hypercallReturnValue
        }
    }

    /// VCPUOP_register_runstate_memory_area: the address in (-EFAULT), taken as given (0 stops
    /// the copies), and a copy written at once: the runstate as it stands for the calling vCPU,
    /// the snapshot for another (common_vcpu_op).
    @inlinable func registerRunstateArea<F: EventFabric>(_ v: Int, arg: UInt64, current: Int, fabric: F) -> Int64 where F.Memory == Memory {
        guard let address = memory.argument(UInt64.self, at: arg, VcpuRegisterRunstateMemoryAreaLayout.addrH) else {
            return XenErrno.efault.hypercallReturnValue
        }
        let now = systemTime(fabric: fabric) ?? 0
        let lock = timerWord(v, VCPUWords.timeLock)
        xv_spin_lock(lock)
        defer { xv_spin_unlock(lock) }
        xv_store_release_u64(vcpuWords + v * VCPUWords.stride + VCPUWords.runstateArea, address == 0 ? 0 : address | 1)
        guard address != 0 else { return 0 }
        withUnsafeTemporaryAllocation(byteCount: VcpuRunstateInfoLayout.size, alignment: 8) { buffer in
            if v == current {
                buffer.baseAddress!.copyMemory(from: runstateBlock(v), byteCount: VcpuRunstateInfoLayout.size)
            } else {
                runstateSnapshot(v, now: now, into: buffer.baseAddress!)
            }
            _ = memory.write(at: GuestPhysicalAddress(address), from: UnsafeRawBufferPointer(buffer))
        }
        return 0
    }
}
