import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// The hypercalls an unmodified Linux 6.1 PV-on-HVM guest makes on its way to its first events,
/// in its order and with the arguments it passes (arch/x86/xen/enlighten_hvm.c, enlighten.c,
/// time.c, smp_hvm.c; drivers/xen/events/events_base.c, events_fifo.c), replayed on both sides.
/// Each step must get Xen 4.17's answer, and at the end the guest's timer and IPI must arrive.
/// Guest "virtual" addresses are guest-physical here (the test guest runs unpaged).
@Suite("Linux boot replay")
struct LinuxBootReplayTests {
    /// Where this guest keeps things: shared_info in a page of its own (Linux's brk page),
    /// per-CPU vcpu_info, FIFO control blocks and event array, time and runstate areas.
    static let sharedInfoPFN: UInt64 = 30, vcpuInfoPFN: UInt64 = 31, controlPFN: UInt64 = 32, arrayPFN: UInt64 = 34
    static let timePFN: UInt64 = 35, runstatePFN: UInt64 = 36
    /// HYPERVISOR_CALLBACK_VECTOR.
    static let callbackVector: UInt64 = 0xF3
    let selfDom = UInt64(DomainID.selfDomain.rawValue)

    func call(_ w: any XenWorld, vcpu: Int = 0, _ rax: XenHypercall, _ rdi: UInt64, _ rsi: UInt64 = 0, _ rdx: UInt64 = 0) -> Int64 {
        w.hypercall(domain: dom1, vcpu: vcpu, XenHypercallRegisters(rax: rax.rawValue, rdi: rdi, rsi: rsi, rdx: rdx))
    }

    /// Writes `fields` at the argument page and issues `rax(rdi, page)` or, for vcpu_op,
    /// `vcpu_op(rdi, vcpuid, page)`.
    func withArgs(_ w: any XenWorld, vcpu: Int = 0, _ rax: XenHypercall, _ rdi: UInt64, vcpuid: UInt64? = nil, size: Int = 32, _ fields: [(ABIField, UInt64)]) -> Int64 {
        w.writeArguments(dom1, size: size, fields)
        if let vcpuid { return call(w, vcpu: vcpu, rax, rdi, vcpuid, w.argumentAddress) }
        return call(w, vcpu: vcpu, rax, rdi, w.argumentAddress)
    }

    @Test("Linux 6.1's boot sequence gets Xen's answers at every step on both sides, and its timer and IPI then arrive")
    func replay() {
        onBothWorlds { w, side in
            w.advanceTime(toTSC: 2_500_000_000)
            // xen_hvm_guest_init → xen_setup_features: XENVER_get_features, submap 0.
            #expect(withArgs(w, .xenVersion, UInt64(XenVersionOp.getFeatures.rawValue), [(XenFeatureInfoLayout.submapIdx, 0)]) == 0, "\(side)")
            let features = w.readArgument(dom1, XenFeatureInfoLayout.submap)
            #expect(features == XenVersionAnswers.hvmFeatures, "\(side)")
            #expect(features & (1 << 8) != 0 && features & (1 << 9) != 0 && features & (1 << 2) != 0,
                    "\(side): hvm_callback_vector, hvm_safe_pvclock, auto_translated_physmap")
            // xen_hvm_init_shared_info: XENMEM_add_to_physmap, shared_info at the guest's page.
            #expect(withArgs(w, .memoryOp, UInt64(MemoryOp.addToPhysmap.rawValue),
                             [(XenAddToPhysmapLayout.domid, selfDom), (XenAddToPhysmapLayout.space, UInt64(MapSpace.sharedInfo.rawValue)),
                              (XenAddToPhysmapLayout.idx, 0), (XenAddToPhysmapLayout.gpfn, Self.sharedInfoPFN)]) == 0, "\(side)")
            #expect(w.page(dom1, frame: Self.sharedInfoPFN) == w.sharedInfo(dom1), "\(side)")
            // xen_hvm_exit_mmap's probe (is_pagetable_dying_supported): -EINVAL with hardware paging.
            #expect(withArgs(w, .hvmOp, UInt64(HVMOp.pagetableDying.rawValue), [(XenHvmPagetableDyingLayout.domid, selfDom),
                                                                                (XenHvmPagetableDyingLayout.gpa, 0x100_0000)]) == errEINVAL, "\(side)")
            // xen_vcpu_setup for CPUs 0 and 1: per-CPU vcpu_info, 64 bytes apart.
            for cpu in 0..<2 {
                #expect(withArgs(w, .vcpuOp, UInt64(VCPUOp.registerVcpuInfo.rawValue), vcpuid: UInt64(cpu), size: 16,
                                 [(VcpuRegisterVcpuInfoLayout.mfn, Self.vcpuInfoPFN), (VcpuRegisterVcpuInfoLayout.offset, UInt64(64 * cpu))]) == 0, "\(side) cpu \(cpu)")
            }
            // xen_init_IRQ → evtchn_fifo_init: EVTCHNOP_init_control for each CPU.
            for cpu in 0..<2 {
                #expect(withArgs(w, .eventChannelOp, UInt64(EventChannelOp.initControl.rawValue),
                                 [(EvtchnInitControlLayout.controlGfn, Self.controlPFN + UInt64(cpu)), (EvtchnInitControlLayout.offset, 0),
                                  (EvtchnInitControlLayout.vcpu, UInt64(cpu))]) == 0, "\(side) cpu \(cpu)")
            }
            // xen_setup_callback_vector: HVM_PARAM_CALLBACK_IRQ, vector type.
            #expect(withArgs(w, .hvmOp, UInt64(HVMOp.setParam.rawValue), [(XenHvmParamLayout.domid, selfDom), (XenHvmParamLayout.index, UInt64(HVMParam.callbackIrq.rawValue)),
                                                                          (XenHvmParamLayout.value, UInt64(HVMCallbackType.vector.rawValue) << 56 | Self.callbackVector)]) == 0, "\(side)")
            // xen_cons_init (hvc_xen): HVM_PARAM_CONSOLE_EVTCHN, as the toolstack left it.
            #expect(w.xenDomain(dom1).setHVMParameter(.consoleEvtchn, 2), "\(side)")
            #expect(withArgs(w, .hvmOp, UInt64(HVMOp.getParam.rawValue), [(XenHvmParamLayout.domid, selfDom), (XenHvmParamLayout.index, UInt64(HVMParam.consoleEvtchn.rawValue))]) == 0, "\(side)")
            #expect(w.readArgument(dom1, XenHvmParamLayout.value) == 2, "\(side)")
            // xen_time_init / xen_setup_timer for CPU 0: stop the periodic timer, register the time
            // and runstate areas.
            #expect(call(w, .vcpuOp, UInt64(VCPUOp.stopPeriodicTimer.rawValue), 0, 0) == 0, "\(side)")
            #expect(withArgs(w, .vcpuOp, UInt64(VCPUOp.registerVcpuTimeMemoryArea.rawValue), vcpuid: 0, size: 8,
                             [(VcpuRegisterTimeMemoryAreaLayout.addrH, Self.timePFN << guestPageShift)]) == 0, "\(side)")
            #expect(withArgs(w, .vcpuOp, UInt64(VCPUOp.registerRunstateMemoryArea.rawValue), vcpuid: 0, size: 8,
                             [(VcpuRegisterRunstateMemoryAreaLayout.addrH, Self.runstatePFN << guestPageShift)]) == 0, "\(side)")
            // The time area now holds an even version and a clock that runs.
            let area = w.page(dom1, frame: Self.timePFN)!
            #expect(area.load(as: UInt32.self) & 1 == 0 && area.load(fromByteOffset: VcpuTimeInfoLayout.tscToSystemMul.offset, as: UInt32.self) != 0, "\(side)")
            // bind_virq_to_irq(VIRQ_TIMER, 0) → EVTCHNOP_bind_virq, then the FIFO event array's
            // first page (evtchn_fifo_setup → EVTCHNOP_expand_array) and the timer's priority.
            let timerPort = withArgs(w, .eventChannelOp, UInt64(EventChannelOp.bindVirq.rawValue), [(EvtchnBindVirqLayout.virq, UInt64(VIRQ.timer.rawValue)),
                                                                                                 (EvtchnBindVirqLayout.vcpu, 0)])
            #expect(timerPort == 0, "\(side): EVTCHNOP_bind_virq")
            let port = UInt32(w.readArgument(dom1, EvtchnBindVirqLayout.port))
            #expect(port == 1, "\(side): the lowest free port")
            #expect(withArgs(w, .eventChannelOp, UInt64(EventChannelOp.expandArray.rawValue), [(EvtchnExpandArrayLayout.arrayGfn, Self.arrayPFN)]) == 0, "\(side)")
            #expect(withArgs(w, .eventChannelOp, UInt64(EventChannelOp.setPriority.rawValue), [(EvtchnSetPriorityLayout.port, UInt64(port)),
                                                                                             (EvtchnSetPriorityLayout.priority, 0)]) == 0, "\(side)")
            // xen_vcpuop_set_next_event: a single-shot timer 1 ms ahead, no flags.
            let now = w.systemTime(dom1)!
            #expect(withArgs(w, .vcpuOp, UInt64(VCPUOp.setSingleshotTimer.rawValue), vcpuid: 0, size: 16,
                             [(VcpuSetSingleshotTimerLayout.timeoutAbsNs, now + 1_000_000), (VcpuSetSingleshotTimerLayout.flags, 0)]) == 0, "\(side)")
            // xen_hvm_smp_init → xen_setup_runstate_info's vm_assist: runstate_update_flag.
            #expect(call(w, .vmAssist, UInt64(VMAssistCommand.enable.rawValue), UInt64(VMAssistType.runstateUpdateFlag.rawValue)) == 0, "\(side)")
            // xen_smp_intr_init: EVTCHNOP_bind_ipi for CPU 0 (XEN_RESCHEDULE_VECTOR).
            #expect(withArgs(w, .eventChannelOp, UInt64(EventChannelOp.bindIpi.rawValue), [(EvtchnBindIpiLayout.vcpu, 0)]) == 0, "\(side)")
            let ipi = UInt32(w.readArgument(dom1, EvtchnBindIpiLayout.port))
            #expect(ipi == 2, "\(side)")

            // The guest took the upcall that registering vcpu_info and the callback raised.
            #expect(w.recorder.count(domain: dom1, vcpu: 0) == 1, "\(side)")
            w.acknowledgeEvents(dom1, vcpu: 0)
            // The timer fires 1 ms on: VIRQ_TIMER pending in the FIFO queue, an upcall on 0xF3.
            let before = w.recorder.count(domain: dom1, vcpu: 0)
            w.advanceTime(toTSC: 2_500_000_000 + 2_500_000 * 2)
            #expect(w.recorder.count(domain: dom1, vcpu: 0) == before + 1, "\(side): the timer's upcall")
            #expect(w.recorder.lastVector(domain: dom1, vcpu: 0) == UInt8(Self.callbackVector), "\(side)")
            let word = w.page(dom1, frame: Self.arrayPFN)!.load(fromByteOffset: 4 * Int(port), as: UInt32.self)
            #expect(word & (1 << 31) != 0, "\(side): EVTCHN_FIFO_PENDING on the timer's port")
            // The vcpu_info Linux registered carries the upcall flag.
            #expect(w.page(dom1, frame: Self.vcpuInfoPFN)!.load(fromByteOffset: VcpuInfoLayout.evtchnUpcallPending.offset, as: UInt8.self) == 1, "\(side)")
            // The reschedule IPI arrives too.
            #expect(w.send(dom1, port: ipi) == 0, "\(side)")
            let ipiWord = w.page(dom1, frame: Self.arrayPFN)!.load(fromByteOffset: 4 * Int(ipi), as: UInt32.self)
            #expect(ipiWord & (1 << 31) != 0, "\(side): EVTCHN_FIFO_PENDING on the IPI's port")
        }
    }
}
