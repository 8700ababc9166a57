import GuestABI
import Testing
import XVTestSupport
import ViridianABI
@testable import ViridianReference

/// Reference time: HV_X64_MSR_TIME_REF_COUNT against the reference TSC page, in the manner of
/// KVM's selftest hyperv_clock.c and kvm-unit-tests x86/hyperv_clock.c, but exact.
@Suite("Reference time (hyperv_clock)")
struct ClockTests {
    /// Reference time as a guest computes it from the TSC page: ((tsc * scale) >> 64) + offset.
    static func pageTime(_ rig: TestRig, _ p: PartitionID, tsc: UInt64) -> (sequence: UInt32, time: UInt64) {
        let page = GuestPhysicalAddress(Frames.tscPage << 12)
        let m = rig.ram(p)
        let sequence = m.load(UInt32.self, at: page)!
        let scale = m.load(UInt64.self, at: GuestPhysicalAddress(page.rawValue + 8))!
        let offset = m.load(UInt64.self, at: GuestPhysicalAddress(page.rawValue + 16))!
        return (sequence, tsc.multipliedFullWidth(by: scale).high &+ offset)
    }

    @Test("HV_X64_MSR_REFERENCE_TSC page and HV_X64_MSR_TIME_REF_COUNT agree exactly at every TSC value", arguments: [10_000_001 as UInt64, 1_000_000_000, 2_500_000_000, 3_333_333_333, 5_000_000_000])
    func pageMatchesMSR(frequency: UInt64) {
        let rig = TestRig(tscFrequency: frequency)
        rig.reference.advance(toTSC: 123_456_789)
        let p = rig.addPartition()
        #expect(rig.rdmsr(p, .timeRefCount) == .value(0), "reference time starts at 0 with the partition")
        #expect(rig.wrmsr(p, .referenceTsc, Frames.tscPage << 12 | 1) == .done)
        var previous: UInt64 = 0
        var generator = SplitMix(seed: frequency)
        for _ in 0..<2_000 {
            rig.reference.advance(byTSCTicks: generator.next() % 50_000_000)
            let msr = rig.value(rig.rdmsr(p, .timeRefCount))!
            let (sequence, time) = Self.pageTime(rig, p, tsc: rig.reference.clock.tsc)
            #expect(sequence != 0 && sequence != .max)
            #expect(time == msr)
            #expect(msr >= previous, "monotonic")
            previous = msr
        }
        // Against the exact rate, elapsed TSC * 10^7 / frequency: the two floors (now and at
        // partition creation) and the floored scale keep it within 2 ticks (200 ns).
        let elapsedTSC = rig.reference.clock.tsc - 123_456_789
        let exact = elapsedTSC.multipliedFullWidth(by: 10_000_000)
        let expected = frequency.dividingFullWidth((exact.high, exact.low)).quotient
        #expect(max(previous, expected) - min(previous, expected) <= 2)
    }

    @Test("HV_X64_MSR_REFERENCE_TSC disabled leaves the page untouched; enabling publishes a nonzero sequence; an unbacked page raises #GP")
    func pageEnable() {
        let rig = TestRig()
        let p = rig.addPartition()
        #expect(rig.wrmsr(p, .referenceTsc, Frames.tscPage << 12) == .done)
        #expect(rig.ram(p).load(UInt64.self, at: GuestPhysicalAddress(Frames.tscPage << 12 + 8)) == 0)
        #expect(rig.rdmsr(p, .referenceTsc) == .value(Frames.tscPage << 12))
        #expect(rig.wrmsr(p, .referenceTsc, Frames.tscPage << 12 | 1) == .done)
        #expect(Self.pageTime(rig, p, tsc: 0).sequence == 1)
        #expect(rig.wrmsr(p, .referenceTsc, Frames.tscPage << 12 | 1) == .done)
        #expect(Self.pageTime(rig, p, tsc: 0).sequence == 2)
        #expect(rig.wrmsr(p, .referenceTsc, Frames.total << 12 | 1) == .generalProtection)
        #expect(rig.wrmsr(p, .timeRefCount, 0) == .generalProtection)
    }

    @Test("partitions created at different times each start their reference time at 0")
    func perPartitionOrigin() {
        let rig = TestRig()
        let a = rig.addPartition()
        rig.reference.advance(byReferenceTicks: 1_000_000)
        let b = rig.addPartition()
        rig.reference.advance(byReferenceTicks: 500)
        #expect(rig.value(rig.rdmsr(a, .timeRefCount))! >= 1_000_500)
        let tb = rig.value(rig.rdmsr(b, .timeRefCount))!
        #expect(tb >= 500 && tb <= 501)
    }
}
