import GuestABI
import Testing
import ViridianABI
@testable import ViridianReference

/// Staged privilege gating, in the manner of KVM's selftest hyperv_features.c: each MSR and
/// hypercall is first tried without its CPUID bit (denied), then with it (allowed). The
/// expectations are written here from KVM's hv_check_msr_access / hv_check_hypercall_access,
/// independently of the `gate=` attributes the reference is generated from.
@Suite("Privilege gating (hyperv_features)")
struct PrivilegeGatingTests {
    struct MSRStage: CustomTestStringConvertible, Sendable {
        var name: String
        var msr: HVMSR
        var grant: CPUIDPrivileges
        /// A value the MSR accepts once granted, or nil when a write raises #GP (read-only).
        var write: UInt64?
        var testDescription: String { name }
    }

    static let msrStages: [MSRStage] = {
        var stages: [MSRStage] = [
            MSRStage(name: "HV_X64_MSR_GUEST_OS_ID", msr: .guestOsId, grant: CPUIDPrivileges(eax: .hypercall), write: 0x8100_0000_0000_0000),
            MSRStage(name: "HV_X64_MSR_HYPERCALL", msr: .hypercall, grant: CPUIDPrivileges(eax: .hypercall), write: 0),
            MSRStage(name: "HV_X64_MSR_VP_INDEX", msr: .vpIndex, grant: CPUIDPrivileges(eax: .vpIndex), write: nil),
            MSRStage(name: "HV_X64_MSR_TIME_REF_COUNT", msr: .timeRefCount, grant: CPUIDPrivileges(eax: .timeRefCount), write: nil),
            MSRStage(name: "HV_X64_MSR_REFERENCE_TSC", msr: .referenceTsc, grant: CPUIDPrivileges(eax: .referenceTSC), write: 0),
            MSRStage(name: "HV_X64_MSR_TSC_FREQUENCY", msr: .tscFrequency, grant: CPUIDPrivileges(eax: .frequencyMSRs), write: nil),
            MSRStage(name: "HV_X64_MSR_APIC_FREQUENCY", msr: .apicFrequency, grant: CPUIDPrivileges(eax: .frequencyMSRs), write: nil),
            MSRStage(name: "HV_X64_MSR_VP_ASSIST_PAGE", msr: .vpAssistPage, grant: CPUIDPrivileges(eax: .apicAccess), write: 0),
            MSRStage(name: "HV_X64_MSR_SCONTROL", msr: .scontrol, grant: CPUIDPrivileges(eax: .synic), write: 1),
            MSRStage(name: "HV_X64_MSR_SVERSION", msr: .sversion, grant: CPUIDPrivileges(eax: .synic), write: nil),
            MSRStage(name: "HV_X64_MSR_SIEFP", msr: .siefp, grant: CPUIDPrivileges(eax: .synic), write: 0),
            MSRStage(name: "HV_X64_MSR_SIMP", msr: .simp, grant: CPUIDPrivileges(eax: .synic), write: 0),
            MSRStage(name: "HV_X64_MSR_EOM", msr: .eom, grant: CPUIDPrivileges(eax: .synic), write: 0),
        ]
        for i in 0..<16 {
            stages.append(MSRStage(name: "HV_X64_MSR_SINT\(i)", msr: HVMSR(rawValue: HVMSR.sint0.rawValue + UInt32(i)),
                                   grant: CPUIDPrivileges(eax: .synic), write: 0x10000))
        }
        for i in 0..<4 {
            stages.append(MSRStage(name: "HV_X64_MSR_STIMER\(i)_CONFIG", msr: HVMSR(rawValue: HVMSR.stimer0Config.rawValue + UInt32(2 * i)),
                                   grant: CPUIDPrivileges(eax: .syntheticTimers), write: 0))
            stages.append(MSRStage(name: "HV_X64_MSR_STIMER\(i)_COUNT", msr: HVMSR(rawValue: HVMSR.stimer0Count.rawValue + UInt32(2 * i)),
                                   grant: CPUIDPrivileges(eax: .syntheticTimers), write: 0))
        }
        return stages
    }()

    @Test("each synthetic MSR: #GP without its CPUID bit, usable with it", arguments: msrStages)
    func msrGating(stage: MSRStage) {
        let rig = TestRig()
        // Stage 1: nothing offered.
        let denied = rig.addPartition(PartitionConfiguration(vpCount: 1, privileges: .none), guestOSID: 0)
        #expect(rig.rdmsr(denied, stage.msr) == .generalProtection)
        #expect(rig.wrmsr(denied, stage.msr, stage.write ?? 0) == .generalProtection)
        // Stage 2: exactly the gating bit offered.
        let allowed = rig.addPartition(PartitionConfiguration(vpCount: 1, privileges: stage.grant), guestOSID: 0)
        #expect(rig.rdmsr(allowed, stage.msr) != .generalProtection)
        if let value = stage.write {
            #expect(rig.wrmsr(allowed, stage.msr, value) == .done)
        } else {
            #expect(rig.wrmsr(allowed, stage.msr, 0) == .generalProtection, "read-only")
        }
    }

    @Test("MSRs the reference does not implement raise #GP even with every privilege")
    func unimplementedMSRs() {
        let rig = TestRig()
        let p = rig.addPartition()
        for msr: HVMSR in [.reset, .vpRuntime, .eoi, .icr, .tpr, .crashP0, .crashCtl, .guestIdle, .sirbp, HVMSR(rawValue: 0x4000_0200), HVMSR(rawValue: 0x4000_00FF)] {
            #expect(rig.rdmsr(p, msr) == .generalProtection, "\(msr.rawValue)")
            #expect(rig.wrmsr(p, msr, 0) == .generalProtection, "\(msr.rawValue)")
        }
    }

    struct CallStage: CustomTestStringConvertible, Sendable {
        var name: String
        var code: HVCallCode
        var grant: CPUIDPrivileges
        var fast: Bool
        var reps: UInt64
        var testDescription: String { name }
    }

    static let callStages: [CallStage] = [
        CallStage(name: "HVCALL_POST_MESSAGE", code: .postMessage, grant: CPUIDPrivileges(ebx: .postMessages), fast: false, reps: 0),
        CallStage(name: "HVCALL_SIGNAL_EVENT", code: .signalEvent, grant: CPUIDPrivileges(ebx: .signalEvents), fast: true, reps: 0),
        CallStage(name: "HVCALL_SEND_IPI", code: .sendIpi, grant: CPUIDPrivileges(recommendations: .clusterIPI), fast: true, reps: 0),
        CallStage(name: "HVCALL_SEND_IPI_EX", code: .sendIpiEx, grant: CPUIDPrivileges(recommendations: [.clusterIPI, .exProcessorMasks]), fast: false, reps: 0),
        CallStage(name: "HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE", code: .flushVirtualAddressSpace, grant: CPUIDPrivileges(recommendations: .remoteTLBFlush), fast: false, reps: 0),
        CallStage(name: "HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST", code: .flushVirtualAddressList, grant: CPUIDPrivileges(recommendations: .remoteTLBFlush), fast: false, reps: 1),
        CallStage(name: "HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX", code: .flushVirtualAddressSpaceEx, grant: CPUIDPrivileges(recommendations: [.remoteTLBFlush, .exProcessorMasks]), fast: false, reps: 0),
        CallStage(name: "HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX", code: .flushVirtualAddressListEx, grant: CPUIDPrivileges(recommendations: [.remoteTLBFlush, .exProcessorMasks]), fast: false, reps: 1),
        CallStage(name: "HVCALL_GET_PARTITION_ID", code: .getPartitionId, grant: CPUIDPrivileges(ebx: .accessPartitionID), fast: false, reps: 0),
        CallStage(name: "HVCALL_MAP_GPA_PAGES", code: .mapGpaPages, grant: CPUIDPrivileges(ebx: .createPartitions), fast: false, reps: 1),
        CallStage(name: "HVCALL_UNMAP_GPA_PAGES", code: .unmapGpaPages, grant: CPUIDPrivileges(ebx: .createPartitions), fast: false, reps: 1),
    ]

    @Test("each gated hypercall: HV_STATUS_ACCESS_DENIED without its bit, past the gate with it", arguments: callStages)
    func callGating(stage: CallStage) {
        let rig = TestRig()
        let hypercallOnly = CPUIDPrivileges(eax: .hypercall)
        let denied = rig.addPartition(PartitionConfiguration(vpCount: 1, privileges: hypercallOnly))
        let input = TestRig.input(stage.code, fast: stage.fast, reps: stage.reps)
        #expect(rig.call(denied, input).status == .accessDenied)
        // Access denied comes before every other check (TLFS), even reserved input bits.
        #expect(rig.call(denied, HVHypercallInput(rawValue: input.rawValue | 1 << 63)).status == .accessDenied)
        var grant = stage.grant
        grant.eax.insert(.hypercall)
        let allowed = rig.addPartition(PartitionConfiguration(vpCount: 1, privileges: grant))
        let r = rig.call(allowed, input)
        #expect(r.status != .accessDenied && !r.raisesInvalidOpcode)
        // One bit short of the gate is still denied.
        if stage.grant.recommendations.rawValue.nonzeroBitCount == 2 {
            var partial = grant
            partial.recommendations.remove(.exProcessorMasks)
            let short = rig.addPartition(PartitionConfiguration(vpCount: 1, privileges: partial))
            #expect(rig.call(short, input).status == .accessDenied)
        }
    }

    @Test("HVCALL_NOTIFY_LONG_SPIN_WAIT is not gated (TLFS: no error status; KVM's extra gate is a documented deviation)")
    func spinWaitUngated() {
        let rig = TestRig()
        let p = rig.addPartition(PartitionConfiguration(vpCount: 1, privileges: CPUIDPrivileges(eax: .hypercall)))
        #expect(rig.fast(p, TestRig.input(.notifyLongSpinWait, fast: true), 1).status == .success)
    }

    @Test("HV_STIMER_DIRECT_MODE_AVAILABLE gates direct-mode synthetic timers")
    func directModeGate() {
        let rig = TestRig()
        var config = HVSTimerConfigMSR(rawValue: 0)
        config.directMode = true
        config.apicVector = 0xF3
        let without = rig.addPartition(PartitionConfiguration(vpCount: 1, privileges: CPUIDPrivileges(eax: .syntheticTimers)))
        #expect(rig.wrmsr(without, .stimer0Config, config.rawValue) == .generalProtection)
        let with = rig.addPartition(PartitionConfiguration(vpCount: 1, privileges: CPUIDPrivileges(eax: .syntheticTimers, edx: .stimerDirectMode)))
        #expect(rig.wrmsr(with, .stimer0Config, config.rawValue) == .done)
    }

    @Test("CPUID 0x40000000-0x40000005 report the vendor, interface and the configured bits (HV_FEATURE_FREQUENCY_MSRS_AVAILABLE, HV_X64_SINT_POLLING_AVAILABLE)")
    func cpuidLeaves() {
        let rig = TestRig()
        let p = rig.addPartition(PartitionConfiguration(vpCount: 3, spinRetryCount: 0x40))
        let vendor = rig.reference.cpuid(partition: p, leaf: 0x4000_0000)
        #expect(vendor.eax == 0x4000_0005)
        let bytes = [vendor.ebx, vendor.ecx, vendor.edx].flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        #expect(String(decoding: bytes, as: UTF8.self) == "Microsoft Hv")
        #expect(rig.reference.cpuid(partition: p, leaf: 0x4000_0001).eax == 0x3123_7648)  // "Hv#1"
        let features = rig.reference.cpuid(partition: p, leaf: 0x4000_0003)
        #expect(features.eax == CPUIDPrivileges.all.eax.rawValue && features.ebx == CPUIDPrivileges.all.ebx.rawValue)
        #expect(HVFeatures(rawValue: features.edx).contains([.frequencyMSRs, .sintPolling, .stimerDirectMode]))
        let recommendations = rig.reference.cpuid(partition: p, leaf: 0x4000_0004)
        #expect(recommendations.eax == CPUIDPrivileges.all.recommendations.rawValue && recommendations.ebx == 0x40)
        #expect(rig.reference.cpuid(partition: p, leaf: 0x4000_0005).eax == 3)
        #expect(rig.reference.cpuid(partition: p, leaf: 0x4000_0006) == CPUIDResult())
    }
}
