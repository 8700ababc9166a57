import GuestABI
import Testing
import ViridianABI
@testable import ViridianReference

/// The hypercall input value and the checks before any call runs (TLFS "Hypercall Interface";
/// the order follows KVM kvm_hv_hypercall).
@Suite("Hypercall entry")
struct HypercallEntryTests {
    @Test("HV_STATUS_INVALID_HYPERCALL_CODE: unknown, reserved and unimplemented codes")
    func unknownCodes() {
        let rig = TestRig()
        let p = rig.addPartition()
        for code: UInt16 in [0xBEEF, 0x0000, 0x0005, 0x0055, HVCallCode.createPartition.rawValue, 0x8001, 0xFFFF] {
            let r = rig.call(p, TestRig.input(HVCallCode(rawValue: code)))
            #expect(r.status == .invalidHypercallCode, "code \(code)")
            #expect(!r.raisesInvalidOpcode)
        }
    }

    @Test("HV_STATUS_INVALID_HYPERCALL_INPUT: each RsvdZ bit of the input value")
    func reservedInputBits() {
        let rig = TestRig()
        let p = rig.addPartition()
        let reserved = (0..<64).filter { HVHypercallInput.reservedMask & (UInt64(1) << UInt64($0)) != 0 }
        #expect(reserved == [27, 28, 29, 30, 44, 45, 46, 47, 60, 61, 62, 63])
        for bit in reserved {
            let input = HVHypercallInput(rawValue: TestRig.input(.signalEvent, fast: true).rawValue | UInt64(1) << UInt64(bit))
            #expect(rig.fast(p, input, 0).status == .invalidHypercallInput, "bit \(bit)")
        }
    }

    @Test("HV_STATUS_INVALID_HYPERCALL_INPUT: rep fields against the call class, variable headers")
    func classChecks() {
        let rig = TestRig()
        let p = rig.addPartition()
        // Simple call with a rep count or start index.
        #expect(rig.fast(p, TestRig.input(.signalEvent, fast: true, reps: 1), 0).status == .invalidHypercallInput)
        #expect(rig.fast(p, TestRig.input(.signalEvent, fast: true, start: 1), 0).status == .invalidHypercallInput)
        // Rep call with no reps, or a start index not below the count.
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressList, reps: 0)).status == .invalidHypercallInput)
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressList, reps: 2, start: 2)).status == .invalidHypercallInput)
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressList, reps: 2, start: 3)).status == .invalidHypercallInput)
        // A variable header on calls that take none.
        #expect(rig.fast(p, TestRig.input(.signalEvent, fast: true, varHeader: 1), 0).status == .invalidHypercallInput)
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressSpace, varHeader: 1)).status == .invalidHypercallInput)
    }

    @Test("fast bit on HVCALL_POST_MESSAGE (no register form): #UD without XMM input, else INVALID_HYPERCALL_INPUT")
    func fastWithoutFastForm() {
        let rig = TestRig()
        let p = rig.addPartition()
        #expect(rig.fast(p, TestRig.input(.postMessage, fast: true), 0).raisesInvalidOpcode)
        #expect(rig.fast(p, TestRig.input(.flushVirtualAddressSpace, fast: true), 0).raisesInvalidOpcode)
        var privileges = CPUIDPrivileges.all
        privileges.edx.insert(.hypercallXMMInput)
        let q = rig.addPartition(PartitionConfiguration(vpCount: 1, privileges: privileges))
        let r = rig.fast(q, TestRig.input(.postMessage, fast: true), 0)
        #expect(!r.raisesInvalidOpcode && r.status == .invalidHypercallInput)
    }

    @Test("HV_STATUS_INVALID_ALIGNMENT: misaligned, page-crossing, unbacked, rep list past the page")
    func alignment() {
        let rig = TestRig()
        let p = rig.addPartition()
        let page = Frames.input << 12
        #expect(rig.call(p, TestRig.input(.signalEvent), at: page + 4).status == .invalidAlignment)
        #expect(rig.call(p, TestRig.input(.postMessage), at: page + 4096 - 128).status == .invalidAlignment)
        #expect(rig.call(p, TestRig.input(.signalEvent), at: Frames.total << 12).status == .invalidAlignment)
        #expect(rig.call(p, TestRig.input(.signalEvent), at: UInt64.max & ~7).status == .invalidAlignment)
        // 24-byte header + 510 ranges = 4104 bytes: past the page.
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressList, reps: 510)).status == .invalidAlignment)
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressList, reps: 4095)).status == .invalidAlignment)
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressList, reps: 509)).status == .success)
        // HVCALL_GET_PARTITION_ID writes its output: the output GPA is checked too.
        #expect(rig.call(p, TestRig.input(.getPartitionId), output: (Frames.output << 12) + 3).status == .invalidAlignment)
        #expect(rig.call(p, TestRig.input(.getPartitionId), output: Frames.total << 12).status == .invalidAlignment)
    }

    @Test("HV_X64_MSR_GUEST_OS_ID 0: a hypercall raises #UD; setting it enables the interface")
    func guestOSIDGatesHypercalls() {
        let rig = TestRig()
        let p = rig.addPartition(guestOSID: 0)
        #expect(rig.fast(p, TestRig.input(.signalEvent, fast: true), 0).raisesInvalidOpcode)
        #expect(rig.wrmsr(p, .guestOsId, 0x8100_0000_0000_0001) == .done)
        #expect(!rig.fast(p, TestRig.input(.signalEvent, fast: true), 0).raisesInvalidOpcode)
        #expect(rig.wrmsr(p, .guestOsId, 0) == .done)
        #expect(rig.fast(p, TestRig.input(.signalEvent, fast: true), 0).raisesInvalidOpcode)
    }

    @Test("HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST: rep continuation from the rep start index")
    func repContinuation() {
        let rig = TestRig()
        let p = rig.addPartition(PartitionConfiguration(vpCount: 2, repsPerInvocation: 2))
        let ranges: [UInt64] = [0x1000, 0x2001, 0x3002, 0x4003, 0x5004]
        var input = TestRig.input(.flushVirtualAddressList, reps: 5)
        var invocations = 0
        var last: HypercallCompletion
        repeat {
            last = rig.call(p, input, qwords: [0xCAFE000, 0, 0b11] + ranges)
            invocations += 1
            #expect(last.status == .success)
            if let next = last.continuation {
                #expect(next.repStartIndex == last.reps, "the guest resumes where the reps completed stop")
                input = next
            }
        } while last.continuation != nil && invocations < 10
        #expect(invocations == 3)
        #expect(last.reps == 5, "reps completed is absolute")
        #expect(rig.host.flushes.flatMap(\.ranges) == ranges)
        #expect(rig.host.flushes.allSatisfy { $0.processors == ProcessorSet.first(2) })
    }

    @Test("unknown caller: HV_STATUS_INVALID_PARTITION_ID and HV_STATUS_INVALID_VP_INDEX")
    func unknownCaller() {
        let rig = TestRig()
        let p = rig.addPartition()
        #expect(rig.reference.hypercall(partition: PartitionID(99), vp: VPIndex(0), input: TestRig.input(.signalEvent, fast: true), rdx: 0, r8: 0).status == .invalidPartitionId)
        #expect(rig.reference.hypercall(partition: p, vp: VPIndex(2), input: TestRig.input(.signalEvent, fast: true), rdx: 0, r8: 0).status == .invalidVpIndex)
        #expect(rig.reference.hypercall(partition: p, vp: .selfVP, input: TestRig.input(.signalEvent, fast: true), rdx: 0, r8: 0).status == .invalidVpIndex)
    }

    @Test("HVCALL_GET_PARTITION_ID writes the caller's id at the output GPA")
    func getPartitionID() {
        let rig = TestRig()
        rig.addPartition()
        let q = rig.addPartition()
        #expect(rig.call(q, TestRig.input(.getPartitionId)).status == .success)
        #expect(rig.ram(q).load(UInt64.self, at: GuestPhysicalAddress(Frames.output << 12)) == q.rawValue)
        #expect(rig.call(q, TestRig.input(.getPartitionId, fast: true)).raisesInvalidOpcode)
    }

    @Test("HVCALL_NOTIFY_LONG_SPIN_WAIT reaches the yield hook, fast and memory forms")
    func spinWait() {
        let rig = TestRig()
        let p = rig.addPartition()
        #expect(rig.fast(p, vp: 1, TestRig.input(.notifyLongSpinWait, fast: true), 0x1234).status == .success)
        #expect(rig.call(p, TestRig.input(.notifyLongSpinWait), qwords: [77]).status == .success)
        #expect(rig.host.spins.map(\.count) == [0x1234, 77])
        #expect(rig.host.spins.map(\.vp) == [1, 0])
    }
}
