import CGuestAtomics
import GuestABI
import XenABI

/// The HVMOP sub-ops that concern event delivery: HVMOP_set_param / HVMOP_get_param (with
/// HVM_PARAM_CALLBACK_IRQ, the domain-wide upcall) and HVMOP_set_evtchn_upcall_vector (the
/// per-vCPU upcall). Behaviour follows xen-project/xen xen/arch/x86/hvm/hvm.c (4.17:
/// hvmop_set_param, hvm_allow_set_param, hvm_allow_get_param, hvmop_set_evtchn_upcall_vector)
/// and xen/arch/x86/hvm/irq.c (hvm_set_callback_via, hvm_assert_evtchn_irq).
extension XenDomain {
    /// `op` is do_hvm_op's `unsigned long op`; `arg` the guest's pointer.
    @inlinable public func hvmOp<F: EventFabric>(_ op: UInt64, arg: UInt64, vcpu: Int, fabric: F) -> Int64? where F.Memory == Memory {
        guard op <= UInt64(UInt32.max) else { return XenErrno.enosys.hypercallReturnValue }
        let hvm = HVMOp(rawValue: UInt32(op))
        // Xen's copy_from_guest of the whole structure comes first (hvmop_set_param,
        // hvmop_get_param, hvmop_set_evtchn_upcall_vector).
        let size = hvm == .setEvtchnUpcallVector ? XenHvmEvtchnUpcallVectorLayout.size : XenHvmParamLayout.size
        if hvm == .setParam || hvm == .getParam || hvm == .setEvtchnUpcallVector, !memory.argumentReadable(at: arg, size: size) {
            return XenErrno.efault.hypercallReturnValue
        }
        switch hvm {
        // Parameters and upcall vectors change under the event lock, as bindings do.
        case .setParam: return Self.result(withEventLock { setParam(arg, vcpu: vcpu, fabric: fabric) })
        case .getParam: return Self.result(withEventLock { getParam(arg, fabric: fabric) })
        case .setEvtchnUpcallVector: return Self.result(withEventLock { setUpcallVector(arg, vcpu: vcpu, fabric: fabric) })
        case .flushTlbs:
            // Only a null argument (hvm.c: guest_handle_is_null), then every vCPU's TLB.
            return Self.result(arg != 0 ? .invalidArgument : fabric.flushTLBs(self, from: vcpu))
        case .pagetableDying: return pagetableDying(arg, fabric: fabric)
        case .getMemType: return getMemType(arg, fabric: fabric)
        case .getTime: return getTime(arg, fabric: fabric)
        default:
            if case .rejected(let errno) = hvm.disposition { return errno.hypercallReturnValue }
            // A row the table handles whose handler belongs to a later part of the layer.
            return nil
        }
    }

    /// HVMOP_pagetable_dying: a hint for shadow paging, which the layer never uses (its paging
    /// is the hardware's, Xen's HAP). After the copy-in (-EFAULT) and the domain lookup
    /// (-ESRCH), another domain is -EOPNOTSUPP and the own domain -EINVAL (hvm.c, 4.17).
    @inline(never)
    @inlinable func pagetableDying<F: EventFabric>(_ arg: UInt64, fabric: F) -> Int64 where F.Memory == Memory {
        guard memory.argumentReadable(at: arg, size: XenHvmPagetableDyingLayout.size),
              let domid = memory.argument(UInt16.self, at: arg, XenHvmPagetableDyingLayout.domid) else {
            return XenErrno.efault.hypercallReturnValue
        }
        let d = DomainID(domid)
        if d == .selfDomain || d == id { return XenErrno.einval.hypercallReturnValue }
        return (fabric.domainExists(d) ? XenErrno.eopnotsupp : XenErrno.esrch).hypercallReturnValue
    }

    /// HVMOP_get_mem_type (hvm.c hvmop_get_mem_type): the whole structure in (-EFAULT), the
    /// domain looked up (-ESRCH) and checked (another domain: -EPERM, XSM_TARGET), then the
    /// frame's type written back in the whole structure. A frame the guest's memory backs is
    /// RAM (HVMMEM_ram_rw); every other frame, past the end of the p2m included, is
    /// HVMMEM_mmio_dm, as Xen reports p2m_invalid.
    @inline(never)
    @inlinable func getMemType<F: EventFabric>(_ arg: UInt64, fabric: F) -> Int64 where F.Memory == Memory {
        guard memory.argumentReadable(at: arg, size: XenHvmGetMemTypeLayout.size),
              let domid = memory.argument(UInt16.self, at: arg, XenHvmGetMemTypeLayout.domid),
              let pfn = memory.argument(UInt64.self, at: arg, XenHvmGetMemTypeLayout.pfn) else {
            return XenErrno.efault.hypercallReturnValue
        }
        let owner = resolveOwnDomain(domid, fabric: fabric)
        guard owner == .ok else { return Self.result(owner) }
        let backed = memory.hostAddress(of: GuestFrameNumber(pfn)) != nil
        let type = backed ? HVMMemType.ramRw : HVMMemType.mmioDm
        let at = GuestPhysicalAddress(arg &+ UInt64(XenHvmGetMemTypeLayout.memType.offset))
        return memory.store(type.rawValue, at: at) ? 0 : XenErrno.efault.hypercallReturnValue
    }

    /// Sets an HVM parameter as the embedder (the toolstack) would: no guest checks.
    @inlinable public func setHVMParameter(_ param: HVMParam, _ value: UInt64) -> Bool {
        guard param.rawValue < HVMParamLimits.count else { return false }
        withEventLock { storeParameter(Int(param.rawValue), value) }
        return true
    }

    /// The value of HVM parameter `param` (HVMOP_get_param without the guest's checks), read under the event lock; nil for an index at or past `HVMParamLimits.count`.
    @inlinable public func hvmParameter(_ param: HVMParam) -> UInt64? {
        param.rawValue < HVMParamLimits.count ? withEventLock { hvmParams[Int(param.rawValue)] } : nil
    }

    /// Stores a parameter (the event lock is held); CALLBACK_IRQ is also published for the
    /// paths that read it without that lock (`upcallVector`).
    @inlinable func storeParameter(_ index: Int, _ value: UInt64) {
        hvmParams[index] = value
        if index == Int(HVMParam.callbackIrq.rawValue) { xv_store_release_u64(words + DomainWords.callbackIrq, value) }
    }

    /// Reads domid and index of a xen_hvm_param and checks them as Xen does: index below
    /// HVM_NR_PARAMS (-EINVAL), the domain itself (another: -ESRCH or -EPERM).
    @inlinable func paramTarget<F: EventFabric>(_ arg: UInt64, fabric: F) -> (LayerOutcome, UInt32) where F.Memory == Memory {
        guard let domid = memory.argument(UInt16.self, at: arg, XenHvmParamLayout.domid),
              let index = memory.argument(UInt32.self, at: arg, XenHvmParamLayout.index) else { return (.badAddress, 0) }
        guard index < HVMParamLimits.count else { return (.invalidArgument, index) }
        return (resolveOwnDomain(domid, fabric: fabric), index)
    }

    @inlinable func setParam<F: EventFabric>(_ arg: UInt64, vcpu: Int, fabric: F) -> LayerOutcome where F.Memory == Memory {
        guard let value = memory.argument(UInt64.self, at: arg, XenHvmParamLayout.value) else { return .badAddress }
        let (checked, index) = paramTarget(arg, fabric: fabric)
        guard checked == .ok else { return checked }
        switch HVMParam(rawValue: index) {
        case .callbackIrq:
            return setCallback(value, vcpu: vcpu, fabric: fabric)
        case .storeEvtchn, .consoleEvtchn, .x87FipWidth:
            // hvm_allow_set_param: the guest may set these.
            storeParameter(Int(index), value)
            return .ok
        default:
            // "The remaining parameters should not be set by the guest."
            return .permissionDenied
        }
    }

    @inlinable func getParam<F: EventFabric>(_ arg: UInt64, fabric: F) -> LayerOutcome where F.Memory == Memory {
        let (checked, index) = paramTarget(arg, fabric: fabric)
        guard checked == .ok else { return checked }
        switch HVMParam(rawValue: index) {
        case .callbackIrq, .storePfn, .storeEvtchn, .consolePfn, .consoleEvtchn, .altp2m, .x87FipWidth:
            return memory.setArgument(hvmParams[Int(index)], at: arg, XenHvmParamLayout.value) ? .ok : .badAddress
        default:
            // hvm_allow_get_param: "should only be read by the toolstack".
            return .permissionDenied
        }
    }

    /// HVM_PARAM_CALLBACK_IRQ. Only the vector type can be delivered here (no emulated IOAPIC
    /// or PCI INTx): GSI and PCI INTx values other than 0 (which disables the callback) are
    /// -EOPNOTSUPP, and vectors below 0x10 are -EINVAL, as Xen refuses them for the per-vCPU
    /// vector. Xen accepts both (documented deviations, Docs/Layer.md). After a change Xen
    /// re-asserts each vCPU's upcall (hvm_set_callback_via), so a vCPU whose
    /// evtchn_upcall_pending is already set takes the new vector now.
    @inlinable func setCallback<F: EventFabric>(_ value: UInt64, vcpu current: Int, fabric: F) -> LayerOutcome where F.Memory == Memory {
        let type = value >> 56
        if type == UInt64(HVMCallbackType.vector.rawValue) {
            guard value & 0xFF >= 0x10 else { return .invalidArgument }
        } else if value != 0 {
            return .notSupported
        }
        let previous = hvmParams[Int(HVMParam.callbackIrq.rawValue)]
        storeParameter(Int(HVMParam.callbackIrq.rawValue), value)
        for v in 0..<vcpuCount where perVCPUUpcallVector(v) == 0 {
            let changed = fabric.upcallVectorChanged(self, vcpu: v)
            guard changed == .ok else {
                storeParameter(Int(HVMParam.callbackIrq.rawValue), previous)
                for u in 0..<v where perVCPUUpcallVector(u) == 0 { _ = fabric.upcallVectorChanged(self, vcpu: u) }
                return changed
            }
        }
        guard type == UInt64(HVMCallbackType.vector.rawValue) else { return .ok }
        for v in 0..<vcpuCount where perVCPUUpcallVector(v) == 0
            && (vcpuInfoPointer(v).map { $0.load(fromByteOffset: VcpuInfoLayout.evtchnUpcallPending.offset, as: UInt8.self) & 1 != 0 } ?? false) {
            fabric.raiseUpcall(self, vcpu: v, from: current)
        }
        return .ok
    }

    /// HVMOP_set_evtchn_upcall_vector: vector below 0x10 -EINVAL, unknown vCPU -ENOENT; then
    /// Xen asserts the vCPU's upcall unconditionally (hvm_assert_evtchn_irq).
    @inlinable func setUpcallVector<F: EventFabric>(_ arg: UInt64, vcpu current: Int, fabric: F) -> LayerOutcome where F.Memory == Memory {
        guard let target = memory.argument(UInt32.self, at: arg, XenHvmEvtchnUpcallVectorLayout.vcpu),
              let vector = memory.argument(UInt8.self, at: arg, XenHvmEvtchnUpcallVectorLayout.vector) else { return .badAddress }
        guard vector >= 0x10 else { return .invalidArgument }
        guard target < UInt32(vcpuCount) else { return .noSuchVcpu }
        let previous = perVCPUUpcallVector(Int(target))
        setPerVCPUUpcallVector(Int(target), vector)
        let changed = fabric.upcallVectorChanged(self, vcpu: Int(target))
        guard changed == .ok else {
            setPerVCPUUpcallVector(Int(target), previous)
            _ = fabric.upcallVectorChanged(self, vcpu: Int(target))
            return changed
        }
        fabric.raiseUpcall(self, vcpu: Int(target), from: current)
        return .ok
    }
}
