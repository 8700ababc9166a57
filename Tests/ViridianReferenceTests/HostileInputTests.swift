import GuestABI
import Testing
import XVTestSupport
import ViridianABI
@testable import ViridianReference
import XVSpecCatalog

/// Seeded random hostile input: hypercall input values, GPAs, input page contents, MSR indexes
/// and values, clock jumps. Every answer must be a status the reference claims (a `ref` row
/// of Specs/viridian/status.tbl), #UD, or #GP; nothing traps; the partition stays usable.
@Suite("Hostile input")
struct HostileInputTests {
    static let claimedStatuses: Set<UInt16> = Set(SpecCatalog.constants
        .filter { $0.family == "HV_STATUS" && $0.attributes.contains("ref") }
        .map { UInt16($0.magnitude) })

    @Test("random hypercalls, MSR accesses and clock jumps from two partitions", arguments: [1 as UInt64, 2, 3, 4])
    func fuzz(seed: UInt64) {
        let (rig, sender, receiver) = ConnectionsTests.pair(PartitionConfiguration(vpCount: 2, messageQueueDepth: 2, maxMappedPages: 8, repsPerInvocation: 3))
        rig.enableSynIC(sender, vp: 0, sints: [(2, 0x50)])
        var g = SplitMix(seed: seed)
        let codes = ReferenceHypercall.allCases.map(\.rawValue) + [0, 5, 0x44, 0x8001, 0xFFFF]
        let partitions = [sender, receiver]
        for _ in 0..<5_000 {
            let p = partitions[Int(g.next() % 2)]
            let vp = UInt32(g.next() % 3)  // VP 2 does not exist
            switch g.next() % 4 {
            case 0, 1:
                var input = HVHypercallInput(rawValue: g.next() % 4 == 0 ? g.next() : 0)
                input.callCode = UInt64(codes[Int(g.next() % UInt64(codes.count))])
                if g.next() % 2 == 0 { input.fast = g.next() % 2 == 0; input.repCount = g.next() % 8; input.variableHeaderSize = g.next() % 3 }
                // The input page gets random qwords, often small ones that look like ids.
                for i in 0..<16 {
                    let q = g.next() % 3 == 0 ? g.next() : g.next() % 0x200
                    rig.ram(p).store(q, at: GuestPhysicalAddress(Frames.input << 12 + UInt64(i * 8)))
                }
                let gpa: UInt64 = [Frames.input << 12, g.next(), (Frames.input << 12) + g.next() % 4096, Frames.total << 12][Int(g.next() % 4)]
                let r = rig.reference.hypercall(partition: p, vp: VPIndex(vp), input: input, rdx: input.fast ? g.next() % 0x1_0000_0000 : gpa, r8: g.next() % 3 == 0 ? g.next() : Frames.output << 12)
                if !r.raisesInvalidOpcode {
                    #expect(Self.claimedStatuses.contains(r.status.rawValue), "status \(r.status.rawValue) for \(input.rawValue)")
                    #expect(r.result.repsCompleted <= input.repCount)
                }
            case 2:
                let msr = HVMSR(rawValue: 0x4000_0000 + UInt32(g.next() % 0x120))
                let value = g.next() % 2 == 0 ? g.next() : g.next() % 0x2_0000
                if g.next() % 2 == 0 {
                    _ = rig.reference.writeMSR(partition: p, vp: VPIndex(vp), msr: msr, value: value)
                } else {
                    _ = rig.reference.readMSR(partition: p, vp: VPIndex(vp), msr: msr)
                }
            default:
                rig.reference.advance(byReferenceTicks: g.next() % 100_000)
            }
            if rig.host.interrupts.count > 1_000 { rig.host.interrupts.removeAll(keepingCapacity: true) }
        }
        // Still a working hypervisor: the VP index MSR answers and a save/restore round-trips.
        #expect(rig.rdmsr(receiver, 1, .vpIndex) == .value(1))
        if let saved = rig.reference.saveState(of: receiver) {
            #expect(rig.reference.restoreState(of: receiver, from: saved) == .success)
        }
    }
}
