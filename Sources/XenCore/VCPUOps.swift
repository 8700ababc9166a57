import CGuestAtomics
import GuestABI
import XenABI

/// __HYPERVISOR_vcpu_op for an hvm64 guest (xen-project/xen xen/arch/x86/domain.c do_vcpu_op,
/// xen/common/domain.c common_vcpu_op and map_vcpu_info). The named vCPU is looked up before
/// the command: one the domain lacks is -ENOENT whatever the command.
extension XenDomain {
    /// RDI = Xen's `int cmd`, RSI = `unsigned int vcpuid`, RDX = the argument; `current` is the
    /// calling vCPU.
    @inline(never)
    @inlinable public func vcpuOp<F: EventFabric>(_ cmd: UInt64, vcpuid: UInt64, arg: UInt64, current: Int, fabric: F) -> Int64 where F.Memory == Memory {
        let target = UInt32(truncatingIfNeeded: vcpuid)
        guard target < UInt32(vcpuCount) else { return XenErrno.enoent.hypercallReturnValue }
        let v = Int(target)
        let op = VCPUOp(rawValue: UInt32(truncatingIfNeeded: cmd))
        if case .rejected(let errno) = op.disposition { return errno.hypercallReturnValue }
        switch op {
        case .isUp:
            return isVCPUUp(v) ? 1 : 0
        case .initialise:
            return initialiseVCPU(v, arg: arg, fabric: fabric)
        case .up:
            return vcpuUp(v, fabric: fabric)
        case .down:
            return vcpuDown(v, fabric: fabric)
        case .registerVcpuInfo:
            return registerVCPUInfo(v, arg: arg, current: current, fabric: fabric)
        case .setSingleshotTimer, .stopSingleshotTimer, .setPeriodicTimer, .stopPeriodicTimer:
            return vcpuTimerOp(op, v, arg: arg, current: current, fabric: fabric)
        case .getRunstateInfo:
            return getRunstateInfo(v, arg: arg, fabric: fabric)
        case .registerRunstateMemoryArea:
            return registerRunstateArea(v, arg: arg, current: current, fabric: fabric)
        case .registerVcpuTimeMemoryArea:
            return registerTimeArea(v, arg: arg, current: current, fabric: fabric)
        case .sendNmi:
            // do_vcpu_op: "arg" must be null.
            guard arg == 0 else { return XenErrno.einval.hypercallReturnValue }
            fabric.raiseNMI(self, vcpu: v)
            return 0
        default:
            return XenErrno.enosys.hypercallReturnValue
        }
    }

    /// Whether `vcpu` is up (Xen's !VPF_down): vCPU 0 from the start, the others once the
    /// embedder has started them (INIT/SIPI through its virtual APIC).
    @inlinable public func isVCPUUp(_ vcpu: Int) -> Bool {
        vcpu >= 0 && vcpu < vcpuCount && xv_load_acquire_u32(vcpuWords + vcpu * VCPUWords.stride + VCPUWords.online) != 0
    }

    /// Where VCPUOP_register_vcpu_info put `vcpu`'s vcpu_info, nil while it is in shared_info.
    @inlinable public func registeredVCPUInfo(_ vcpu: Int) -> GuestPhysicalAddress? {
        guard vcpu >= 0, vcpu < vcpuCount else { return nil }
        let word = xv_load_acquire_u64(vcpuWords + vcpu * VCPUWords.stride + VCPUWords.vcpuInfoAddress)
        return word & 1 == 0 ? nil : GuestPhysicalAddress(word & ~1)
    }

    /// VCPUOP_register_vcpu_info (map_vcpu_info): the whole structure in (-EFAULT); then, under
    /// the domain's lock, -EINVAL for an area that would cross its page (offset above
    /// 4096 - sizeof(vcpu_info)) or is not 8-byte aligned, a vCPU that has one already, a vCPU
    /// other than the caller that is up, or a frame that is not guest RAM. The current contents
    /// move to the new place, which is published before everything is marked pending (every
    /// selector bit and the upcall flag, and an upcall when that flag was clear), so an event
    /// set in the old place meanwhile is not lost: the guest gets a spurious scan, as on Xen.
    @inlinable func registerVCPUInfo<F: EventFabric>(_ v: Int, arg: UInt64, current: Int, fabric: F) -> Int64 where F.Memory == Memory {
        guard memory.argumentReadable(at: arg, size: VcpuRegisterVcpuInfoLayout.size),
              let mfn = memory.argument(UInt64.self, at: arg, VcpuRegisterVcpuInfoLayout.mfn),
              let offset = memory.argument(UInt32.self, at: arg, VcpuRegisterVcpuInfoLayout.offset) else {
            return XenErrno.efault.hypercallReturnValue
        }
        // Under the physmap lock as well, so memory_op cannot release the page between the
        // lookup and the publication (`holdsPage`).
        let placed: UnsafeMutableRawPointer? = withPhysmapLock { withEventLock {
            let size = VcpuInfoLayout.size
            guard offset <= UInt32(Int(guestPageSize) - size), offset & 7 == 0,
                  registeredVCPUInfo(v) == nil,
                  v == current || !isVCPUUp(v),
                  let page = memory.hostAddress(of: GuestFrameNumber(mfn)) else { return nil }
            let info = page + Int(offset)
            if let old = vcpuInfoPointer(v) {
                info.copyMemory(from: old, byteCount: size)
            } else {
                info.initializeMemory(as: UInt8.self, repeating: 0, count: size)
                info.storeBytes(of: 1, toByteOffset: VcpuInfoLayout.evtchnUpcallMask.offset, as: UInt8.self)
            }
            let words = vcpuWords + v * VCPUWords.stride
            xv_store_release_u64(words + VCPUWords.vcpuInfoAddress, (mfn << guestPageShift | UInt64(offset)) | 1)
            xv_store_release_u64(words + VCPUWords.vcpuInfoHost, UInt64(UInt(bitPattern: info)))
            return info
        } }
        guard let info = placed else { return XenErrno.einval.hypercallReturnValue }
        // force_update_vcpu_system_time: the new place gets fresh time at once.
        refreshTime(vcpu: v, fabric: fabric)
        _ = xv_atomic_exchange_u64(info + VcpuInfoLayout.evtchnPendingSel.offset, UInt64.max)
        if markEventsPending(v) { fabric.raiseUpcall(self, vcpu: v, from: current) }
        return 0
    }
}
