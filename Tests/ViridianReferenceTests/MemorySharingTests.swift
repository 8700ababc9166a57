import GuestABI
import Testing
import ViridianABI
@testable import ViridianReference

/// Mapping another partition's pages (HvCallMapGpaPages / HvCallUnmapGpaPages style).
@Suite("Memory sharing")
struct MemorySharingTests {
    static let mapFrame: UInt64 = 300

    @Test("HVCALL_MAP_GPA_PAGES maps the caller's pages into another partition; HVCALL_UNMAP_GPA_PAGES removes them")
    func mapAndUnmap() {
        let rig = TestRig()
        let owner = rig.addPartition()
        let user = rig.addPartition()
        rig.ram(owner).store(UInt64(0x1111), at: GuestPhysicalAddress(40 << 12))
        rig.ram(owner).store(UInt64(0x2222), at: GuestPhysicalAddress(41 << 12))
        let flags = HVMapGPAFlags([.readable, .writable]).rawValue
        let r = rig.call(owner, TestRig.input(.mapGpaPages, reps: 2), qwords: [user.rawValue, Self.mapFrame, UInt64(flags), 40, 41])
        #expect(r.status == .success && r.reps == 2)
        let page = rig.reference.hostAddress(partition: user, frame: GuestFrameNumber(Self.mapFrame + 1), write: false)!
        #expect(page.load(as: UInt64.self) == 0x2222)
        // A write through the mapping is seen by the owner.
        rig.reference.hostAddress(partition: user, frame: GuestFrameNumber(Self.mapFrame), write: true)!.storeBytes(of: UInt64(0xABCD), as: UInt64.self)
        #expect(rig.ram(owner).load(UInt64.self, at: GuestPhysicalAddress(40 << 12)) == 0xABCD)
        let u = rig.call(owner, TestRig.input(.unmapGpaPages, reps: 2), qwords: [user.rawValue, Self.mapFrame, 0])
        #expect(u.status == .success && u.reps == 2)
        // The user's own RAM shows through again.
        #expect(rig.reference.hostAddress(partition: user, frame: GuestFrameNumber(Self.mapFrame), write: false) == rig.ram(user).hostAddress(of: GuestFrameNumber(Self.mapFrame)))
    }

    @Test("access rights: a read-only mapping refuses writes, so SynIC pages placed on it cannot be enabled")
    func accessRights() {
        let rig = TestRig()
        let owner = rig.addPartition()
        let user = rig.addPartition()
        #expect(rig.reference.mapGPAPages(into: user, at: GuestFrameNumber(Self.mapFrame), from: owner, sourceBase: GuestFrameNumber(50), count: 1, flags: .readable) == (.success, 1))
        #expect(rig.reference.hostAddress(partition: user, frame: GuestFrameNumber(Self.mapFrame), write: false) != nil)
        #expect(rig.reference.hostAddress(partition: user, frame: GuestFrameNumber(Self.mapFrame), write: true) == nil)
        #expect(rig.wrmsr(user, .simp, Self.mapFrame << 12 | 1) == .generalProtection)
        #expect(rig.call(user, TestRig.input(.getPartitionId), output: Self.mapFrame << 12).status == .invalidAlignment)
        #expect(rig.reference.mapGPAPages(into: user, at: GuestFrameNumber(Self.mapFrame + 1), from: owner, sourceBase: GuestFrameNumber(51), count: 1, flags: .noAccess) == (.success, 1))
        #expect(rig.reference.hostAddress(partition: user, frame: GuestFrameNumber(Self.mapFrame + 1), write: false) == nil)
        #expect(rig.reference.unmapGPAPages(from: user, at: GuestFrameNumber(Self.mapFrame), count: 2) == (.success, 2))
    }

    @Test("map and unmap hostile input: unknown partition, bad flags, unbacked source, double map, capacity, unmapped frames")
    func hostile() {
        let rig = TestRig()
        let owner = rig.addPartition()
        let user = rig.addPartition(PartitionConfiguration(vpCount: 1, maxMappedPages: 2))
        let rw = UInt64(HVMapGPAFlags([.readable, .writable]).rawValue)
        #expect(rig.call(owner, TestRig.input(.mapGpaPages, reps: 1), qwords: [77, Self.mapFrame, rw, 40]).status == .invalidPartitionId)
        #expect(rig.call(owner, TestRig.input(.mapGpaPages, reps: 1), qwords: [user.rawValue, Self.mapFrame, UInt64(HVMapGPAFlags.largePage.rawValue) | rw, 40]).status == .invalidParameter)
        #expect(rig.call(owner, TestRig.input(.mapGpaPages, reps: 1), qwords: [user.rawValue, Self.mapFrame, 0x2, 40]).status == .invalidParameter, "writable without readable")
        let unbacked = rig.call(owner, TestRig.input(.mapGpaPages, reps: 2), qwords: [user.rawValue, Self.mapFrame, rw, 40, Frames.total])
        #expect(unbacked.status == .invalidParameter && unbacked.reps == 1, "reps completed stops at the bad page")
        #expect(rig.call(owner, TestRig.input(.mapGpaPages, reps: 1), qwords: [user.rawValue, Self.mapFrame, rw, 41]).status == .invalidParameter, "already mapped")
        let full = rig.call(owner, TestRig.input(.mapGpaPages, reps: 2), qwords: [user.rawValue, Self.mapFrame + 1, rw, 41, 42])
        #expect(full.status == .insufficientMemory && full.reps == 1)
        #expect(rig.call(owner, TestRig.input(.mapGpaPages, reps: 1), qwords: [user.rawValue, UInt64.max, rw, 40]).status == .invalidParameter)
        #expect(rig.call(owner, TestRig.input(.unmapGpaPages, reps: 1), qwords: [user.rawValue, Self.mapFrame, 1]).status == .invalidParameter)
        let partial = rig.call(owner, TestRig.input(.unmapGpaPages, reps: 3), qwords: [user.rawValue, Self.mapFrame, 0])
        #expect(partial.status == .invalidParameter && partial.reps == 2)
        #expect(rig.reference.mapGPAPages(into: PartitionID(0), at: GuestFrameNumber(1), from: owner, sourceBase: GuestFrameNumber(1), count: 1, flags: .readable).status == .invalidPartitionId)
    }

    @Test("HV_PARTITION_ID_SELF names the caller")
    func selfPartition() {
        let rig = TestRig()
        let p = rig.addPartition()
        rig.ram(p).store(UInt64(7), at: GuestPhysicalAddress(60 << 12))
        #expect(rig.call(p, TestRig.input(.mapGpaPages, reps: 1), qwords: [PartitionID.selfPartition.rawValue, Self.mapFrame, 1, 60]).status == .success)
        #expect(rig.reference.hostAddress(partition: p, frame: GuestFrameNumber(Self.mapFrame), write: false)?.load(as: UInt64.self) == 7)
    }
}
