import GuestABI
import Testing
import ViridianABI
@testable import ViridianReference

/// Synthetic IPIs and TLB flushes, in the manner of KVM's selftests hyperv_ipi.c and
/// hyperv_tlb_flush.c: receivers are VPs 2 and 65 of a 70-VP partition (banks 0 and 1).
@Suite("IPIs and TLB flushes (hyperv_ipi, hyperv_tlb_flush)")
struct ProcessorSetTests {
    static func rig() -> (TestRig, PartitionID) {
        let rig = TestRig()
        let p = rig.addPartition(PartitionConfiguration(vpCount: 70))
        return (rig, p)
    }

    static func targets(_ rig: TestRig) -> [UInt32] { rig.host.take().map(\.vp) }

    @Test("HVCALL_SEND_IPI slow and fast: the vector reaches the VPs of the mask; missing VPs are ignored")
    func sendIPI() {
        let (rig, p) = Self.rig()
        #expect(rig.call(p, TestRig.input(.sendIpi), qwords: [0xFE, 1 << 2]).status == .success)
        #expect(rig.host.take() == [.init(partition: p.rawValue, vp: 2, vector: 0xFE, autoEOI: false)])
        #expect(rig.fast(p, TestRig.input(.sendIpi, fast: true), 0xFE, 1 << 2 | 1 << 63).status == .success)
        #expect(Self.targets(rig) == [2, 63])
        let small = rig.addPartition(PartitionConfiguration(vpCount: 3))
        #expect(rig.fast(small, TestRig.input(.sendIpi, fast: true), 0x30, .max).status == .success)
        #expect(Self.targets(rig) == [0, 1, 2])
    }

    @Test("HVCALL_SEND_IPI hostile input: vectors outside 0x10-0xFF and nonzero reserved bits are HV_STATUS_INVALID_HYPERCALL_INPUT")
    func sendIPIErrors() {
        let (rig, p) = Self.rig()
        for vector: UInt64 in [0, 0x0F, 0x100, 0xFFFF_FFFF] {
            #expect(rig.fast(p, TestRig.input(.sendIpi, fast: true), vector, 1).status == .invalidHypercallInput)
        }
        #expect(rig.fast(p, TestRig.input(.sendIpi, fast: true), 0xFE | 1 << 32, 1).status == .invalidHypercallInput)
        #expect(rig.call(p, TestRig.input(.sendIpi), qwords: [0xFE | 1 << 40, 1]).status == .invalidHypercallInput)
        #expect(rig.host.take().isEmpty)
    }

    @Test("HVCALL_SEND_IPI_EX: sparse banks 0, 1 and both, and HV_GENERIC_SET_ALL")
    func sendIPIEx() {
        let (rig, p) = Self.rig()
        // Bank 0 (VP 2).
        #expect(rig.call(p, TestRig.input(.sendIpiEx, varHeader: 1), qwords: [0xFE, 0, 0b01, 1 << 2]).status == .success)
        #expect(Self.targets(rig) == [2])
        // Bank 1 (VP 65 = 64 + 1).
        #expect(rig.call(p, TestRig.input(.sendIpiEx, varHeader: 1), qwords: [0xFE, 0, 0b10, 1 << 1]).status == .success)
        #expect(Self.targets(rig) == [65])
        // Both.
        #expect(rig.call(p, TestRig.input(.sendIpiEx, varHeader: 2), qwords: [0xFE, 0, 0b11, 1 << 2, 1 << 1]).status == .success)
        #expect(Self.targets(rig) == [2, 65])
        // All processors.
        #expect(rig.call(p, TestRig.input(.sendIpiEx), qwords: [0xFE, 1, 0]).status == .success)
        #expect(Self.targets(rig) == (0..<70).map(UInt32.init))
        // Bank 63 names VPs the partition does not have: ignored.
        #expect(rig.call(p, TestRig.input(.sendIpiEx, varHeader: 1), qwords: [0xFE, 0, 1 << 63, .max]).status == .success)
        #expect(Self.targets(rig).isEmpty)
    }

    @Test("HVCALL_SEND_IPI_EX hostile input: bank count against the variable header, unknown formats, an empty set")
    func sendIPIExErrors() {
        let (rig, p) = Self.rig()
        #expect(rig.call(p, TestRig.input(.sendIpiEx, varHeader: 1), qwords: [0xFE, 0, 0b11, 1, 1]).status == .invalidHypercallInput)
        #expect(rig.call(p, TestRig.input(.sendIpiEx, varHeader: 2), qwords: [0xFE, 0, 0b01, 1, 1]).status == .invalidHypercallInput)
        #expect(rig.call(p, TestRig.input(.sendIpiEx, varHeader: 1), qwords: [0xFE, 1, 0]).status == .invalidHypercallInput, "ALL still counts banks")
        #expect(rig.call(p, TestRig.input(.sendIpiEx), qwords: [0xFE, 2, 0]).status == .invalidParameter)
        #expect(rig.call(p, TestRig.input(.sendIpiEx), qwords: [0x05, 1, 0]).status == .invalidHypercallInput)
        // An all-zero input is an empty sparse set: success, nothing sent (KVM's hyperv_features).
        #expect(rig.call(p, TestRig.input(.sendIpiEx), qwords: [0, 0, 0]).status == .success)
        // 64 banks declared: the header and banks still fit the page (24 + 512 bytes).
        let banks = [UInt64](repeating: 0, count: 64)
        #expect(rig.call(p, TestRig.input(.sendIpiEx, varHeader: 64), qwords: [0xFE, 0, .max] + banks).status == .success)
        // A variable header that runs past the page.
        #expect(rig.call(p, TestRig.input(.sendIpiEx, varHeader: 1023), at: (Frames.input << 12) + 3072).status == .invalidAlignment)
        #expect(rig.host.take().isEmpty)
    }

    @Test("HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE: a zero processor mask means all processors (Windows Server 2012)")
    func flushSpace() {
        let (rig, p) = Self.rig()
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressSpace), qwords: [0x1000, 0, 1 << 2]).status == .success)
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressSpace), qwords: [0x1000, 0, 0]).status == .success)
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressSpace), qwords: [0x1000, HVFlushFlags.allProcessors.rawValue, 1]).status == .success)
        let flushes = rig.host.flushes
        #expect(flushes.count == 3)
        #expect(flushes[0].processors == { var s = ProcessorSet(); s.insert(2); return s }())
        #expect(flushes[1].processors == ProcessorSet.first(70))
        #expect(flushes[2].processors == ProcessorSet.first(70))
        #expect(flushes.allSatisfy { $0.ranges.isEmpty && $0.addressSpace == 0x1000 && $0.call == HVCallCode.flushVirtualAddressSpace.rawValue })
    }

    @Test("HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX and HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX: sparse banks, ALL, and the GVA list after the banks")
    func flushEx() {
        let (rig, p) = Self.rig()
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressSpaceEx, varHeader: 2), qwords: [0, 0, 0, 0b11, 1 << 2, 1 << 1]).status == .success)
        var expected = ProcessorSet()
        expected.insert(2)
        expected.insert(65)
        #expect(rig.host.flushes.last?.processors == expected)
        let r = rig.call(p, TestRig.input(.flushVirtualAddressListEx, reps: 2, varHeader: 1), qwords: [0, 0, 0, 0b10, 1 << 1, 0x5000, 0x6003])
        #expect(r.status == .success && r.reps == 2)
        #expect(rig.host.flushes.last?.ranges == [0x5000, 0x6003])
        #expect(rig.host.flushes.last?.processors == { var s = ProcessorSet(); s.insert(65); return s }())
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressSpaceEx), qwords: [0, 0, 1, 0]).status == .success)
        #expect(rig.host.flushes.last?.processors == ProcessorSet.first(70))
        // An empty sparse set flushes nothing and succeeds.
        let count = rig.host.flushes.count
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressListEx, reps: 1), qwords: [0, 0, 0, 0, 0x1000]).reps == 1)
        #expect(rig.host.flushes.count == count)
    }

    @Test("flush hostile input: reserved flags, the extended range format not offered, bank count mismatch, unknown format")
    func flushErrors() {
        let (rig, p) = Self.rig()
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressSpace), qwords: [0, 1 << 4, 1]).status == .invalidParameter)
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressSpace), qwords: [0, 1 << 63, 1]).status == .invalidParameter)
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressList, reps: 1), qwords: [0, HVFlushFlags.useExtendedRangeFormat.rawValue, 1, 0]).status == .invalidParameter)
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressSpaceEx, varHeader: 1), qwords: [0, 0, 0, 0b11, 1, 1]).status == .invalidHypercallInput)
        #expect(rig.call(p, TestRig.input(.flushVirtualAddressSpaceEx), qwords: [0, 0, 7, 0]).status == .invalidParameter)
        #expect(rig.host.flushes.isEmpty)
    }
}
