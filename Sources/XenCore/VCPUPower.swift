import CGuestAtomics
import GuestABI
import XenABI

/// VCPUOP_initialise, VCPUOP_up and VCPUOP_down for an HVM domU (xen-project/xen
/// RELEASE-4.17.7 xen/common/domain.c do_vcpu_op, xen/arch/x86/domain.c arch_initialise_vcpu).
/// Xen's is_initialised and VPF_down become the vCPU's `initialised` and `online` words; running
/// a vCPU is the embedder's (`XenUpcallSink.initialiseVCPU` and `vcpuPowerChanged`) on both
/// sides. The changes hold the event lock (Xen's domain lock).
extension XenDomain {
    @inline(__always)
    @inlinable func vcpuWord(_ vcpu: Int, _ offset: Int) -> UnsafeMutableRawPointer { vcpuWords + vcpu * VCPUWords.stride + offset }

    /// Whether `vcpu` has a register state to start from (Xen's v->is_initialised): vCPU 0 from
    /// creation, the others after VCPUOP_initialise or the embedder's INIT/SIPI (`setVCPUUp`).
    @inlinable public func isVCPUInitialised(_ vcpu: Int) -> Bool {
        vcpu >= 0 && vcpu < vcpuCount && xv_load_acquire_u32(vcpuWord(vcpu, VCPUWords.initialised)) != 0
    }

    /// VCPUOP_initialise: the whole vcpu_hvm_context in (-EFAULT); a vCPU already initialised
    /// -EEXIST; a context arch_set_info_hvm_guest refuses, or the embedder refuses, -EINVAL.
    /// The vCPU is then initialised and down (Xen sets VPF_down): VCPUOP_up starts it.
    @inlinable func initialiseVCPU<F: EventFabric>(_ v: Int, arg: UInt64, fabric: F) -> Int64 where F.Memory == Memory {
        guard memory.argumentReadable(at: arg, size: VcpuHvmContextLayout.size) else { return XenErrno.efault.hypercallReturnValue }
        let outcome: Int64? = withEventLock {
            guard !isVCPUInitialised(v) else { return XenErrno.eexist.hypercallReturnValue }
            guard let context = VCPUContextDecoder.decode(memory, at: arg), fabric.initialiseVCPU(self, vcpu: v, context) else {
                return XenErrno.einval.hypercallReturnValue
            }
            xv_store_release_u32(vcpuWord(v, VCPUWords.initialised), 1)
            guard isVCPUUp(v) else { return 0 }
            xv_store_release_u32(vcpuWord(v, VCPUWords.online), 0)
            return nil
        }
        // It was up: its runstate changes outside the event lock (the time lock is taken after
        // it nowhere).
        guard let outcome else {
            setRunstate(v, .offline, fabric: fabric)
            return 0
        }
        return outcome
    }

    /// VCPUOP_up: -EINVAL until the vCPU is initialised; a vCPU that was down is marked up
    /// (runnable) and handed to the embedder to run. Up already: nothing, 0.
    @inlinable func vcpuUp<F: EventFabric>(_ v: Int, fabric: F) -> Int64 where F.Memory == Memory {
        let wake: Bool? = withEventLock {
            guard isVCPUInitialised(v) else { return nil }
            guard !isVCPUUp(v) else { return false }
            xv_store_release_u32(vcpuWord(v, VCPUWords.online), 1)
            return true
        }
        guard let wake else { return XenErrno.einval.hypercallReturnValue }
        if wake {
            setRunstate(v, .runnable, fabric: fabric)
            fabric.vcpuPowerChanged(self, vcpu: v, up: true)
        }
        return 0
    }

    /// VCPUOP_down: when no other vCPU is up the domain shuts down (SHUTDOWN_poweroff) and the
    /// vCPU stays as it is; otherwise it is marked down (offline) and the embedder stops running
    /// it. Down already: nothing, 0.
    @inlinable func vcpuDown<F: EventFabric>(_ v: Int, fabric: F) -> Int64 where F.Memory == Memory {
        let action: VCPUDownAction = withEventLock {
            var othersUp = false
            for u in 0..<vcpuCount where u != v && isVCPUUp(u) { othersUp = true; break }
            guard othersUp else { return .shutDown }
            guard isVCPUUp(v) else { return .none }
            xv_store_release_u32(vcpuWord(v, VCPUWords.online), 0)
            return .sleep
        }
        switch action {
        case .shutDown: shutDown(UInt8(ShutdownReason.poweroff.rawValue), fabric: fabric)
        case .sleep:
            setRunstate(v, .offline, fabric: fabric)
            fabric.vcpuPowerChanged(self, vcpu: v, up: false)
        case .none: break
        }
        return 0
    }
}

/// What VCPUOP_down decided under the event lock.
@usableFromInline enum VCPUDownAction { case shutDown, sleep, none }
