import GuestABI
import Testing
import XVTestSupport
import ViridianABI
@testable import ViridianReference

/// Save and restore of a partition's Viridian state.
@Suite("Save and restore")
struct SaveRestoreTests {
    /// A partition with something in every part of its state.
    static func busyPartition() -> (TestRig, PartitionID, PartitionID) {
        let (rig, sender, receiver) = ConnectionsTests.pair()
        #expect(rig.wrmsr(receiver, .hypercall, Frames.hypercallPage << 12 | 1) == .done)
        #expect(rig.wrmsr(receiver, .referenceTsc, Frames.tscPage << 12 | 1) == .done)
        #expect(rig.wrmsr(receiver, 1, .vpAssistPage, 8 << 12 | 1) == .done)
        #expect(rig.wrmsr(receiver, 1, .stimer0Count, 50_000) == .done)
        #expect(rig.wrmsr(receiver, 1, .stimer0Config, TimerTests.config(sint: UInt64(ConnectionsTests.messageSINT))) == .done)
        #expect(rig.wrmsr(receiver, 1, .stimer1Count, 7_000) == .done)
        #expect(rig.wrmsr(receiver, 1, .stimer1Config, TimerTests.config(periodic: true, sint: 3)) == .done)
        #expect(ConnectionsTests.post(rig, sender, payload: 1) == .success)
        #expect(ConnectionsTests.post(rig, sender, payload: 2) == .success)  // queued
        #expect(rig.reference.connectPort(from: receiver, connection: ConnectionID(0x77), to: sender, port: PortID(0x10)) == .invalidPortId)
        #expect(rig.reference.createPort(in: sender, port: PortID(0x30), kind: .message(vp: VPIndex(0), sint: 1)) == .success)
        #expect(rig.reference.connectPort(from: receiver, connection: ConnectionID(0x77), to: sender, port: PortID(0x30)) == .success)
        #expect(rig.reference.mapGPAPages(into: receiver, at: GuestFrameNumber(300), from: sender, sourceBase: GuestFrameNumber(40), count: 2, flags: .readable).status == .success)
        rig.reference.advance(byReferenceTicks: 10_000)
        return (rig, sender, receiver)
    }

    @Test("a saved partition restored into a fresh partition behaves the same from then on")
    func roundTrip() {
        let (rig, _, receiver) = Self.busyPartition()
        let saved = rig.reference.saveState(of: receiver)!
        // A second partition of the same shape in the same hypervisor, restored from it.
        let twin = rig.addPartition(PartitionConfiguration(vpCount: 2), guestOSID: 0)
        #expect(rig.reference.restoreState(of: twin, from: saved) == .success)
        // save(restore(s)) == s, but for the TSC page sequence (bytes 36..<40), which restore
        // advances when it republishes the page.
        let again = rig.reference.saveState(of: twin)!
        #expect(Array(again[..<36]) == Array(saved[..<36]) && Array(again[40...]) == Array(saved[40...]))
        #expect(again[36] == saved[36] &+ 1)
        for msr: HVMSR in [.guestOsId, .hypercall, .referenceTsc, .timeRefCount] {
            #expect(rig.rdmsr(twin, msr) == rig.rdmsr(receiver, msr), "\(msr.rawValue)")
        }
        for msr: HVMSR in [.vpAssistPage, .scontrol, .simp, .siefp, .sint8, .sint9, .stimer0Config, .stimer0Count, .stimer1Config, .stimer1Count] {
            #expect(rig.rdmsr(twin, 1, msr) == rig.rdmsr(receiver, 1, msr), "\(msr.rawValue)")
        }
        // The restored TSC page is republished (new sequence) in the twin's memory.
        #expect(rig.ram(twin).load(UInt32.self, at: GuestPhysicalAddress(Frames.tscPage << 12)) != 0)
        // Pending work continues identically: the queued message after EOM, the timers.
        rig.host.interrupts.removeAll()
        for p in [receiver, twin] {
            rig.clearSlot(p, vp: 1, sint: ConnectionsTests.messageSINT)
            #expect(rig.wrmsr(p, 1, .eom, 0) == .done)
        }
        #expect(rig.payload(twin, vp: 1, sint: ConnectionsTests.messageSINT, qword: 0) == 2)
        #expect(rig.payload(receiver, vp: 1, sint: ConnectionsTests.messageSINT, qword: 0) == 2)
        rig.reference.advance(byReferenceTicks: 60_000)
        let byPartition = Dictionary(grouping: rig.host.take(), by: \.partition).mapValues { $0.map(\.vector) }
        #expect(byPartition[receiver.rawValue] != nil && byPartition[receiver.rawValue] == byPartition[twin.rawValue])
        #expect(rig.reference.hostAddress(partition: twin, frame: GuestFrameNumber(301), write: false) != nil)
        #expect(rig.reference.hostAddress(partition: twin, frame: GuestFrameNumber(301), write: true) == nil)
    }

    @Test("reference time continues from the saved value when restored later")
    func timeContinues() {
        let (rig, _, receiver) = Self.busyPartition()
        let before = rig.value(rig.rdmsr(receiver, .timeRefCount))!
        let saved = rig.reference.saveState(of: receiver)!
        rig.reference.advance(byReferenceTicks: 5_000_000)
        #expect(rig.reference.restoreState(of: receiver, from: saved) == .success)
        #expect(rig.value(rig.rdmsr(receiver, .timeRefCount))! == before)
    }

    @Test("HV_STATUS_INVALID_SAVE_RESTORE_STATE: truncated, extended, wrong version, wrong VP count, corrupted fields; nothing changes")
    func corrupt() {
        let (rig, _, receiver) = Self.busyPartition()
        let saved = rig.reference.saveState(of: receiver)!
        let target = rig.addPartition(PartitionConfiguration(vpCount: 2))
        let untouched = rig.reference.saveState(of: target)!
        var cases: [[UInt8]] = [[], Array(saved.dropLast()), saved + [0], Array(saved.prefix(7))]
        var version = saved; version[4] = 2; cases.append(version)
        var magic = saved; magic[0] ^= 1; cases.append(magic)
        var vps = saved; vps[8] = 3; cases.append(vps)
        // Every single-byte truncation point must fail cleanly.
        for n in stride(from: 0, to: saved.count, by: 97) { cases.append(Array(saved.prefix(n))) }
        for bytes in cases {
            #expect(rig.reference.restoreState(of: target, from: bytes) == .invalidSaveRestoreState)
            #expect(rig.reference.saveState(of: target)! == untouched)
        }
        // Flipping bytes anywhere either restores something self-consistent or is refused; it never traps.
        var generator = SplitMix(seed: 42)
        for _ in 0..<500 {
            var bytes = saved
            bytes[Int(generator.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
            let status = rig.reference.restoreState(of: target, from: bytes)
            #expect(status == .success || status == .invalidSaveRestoreState)
        }
        #expect(rig.reference.restoreState(of: PartitionID(99), from: saved) == .invalidPartitionId)
        let other = rig.addPartition(PartitionConfiguration(vpCount: 3))
        #expect(rig.reference.restoreState(of: other, from: saved) == .invalidSaveRestoreState)
    }
}
