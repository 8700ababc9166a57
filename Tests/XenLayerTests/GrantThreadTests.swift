import CGuestAtomics
import Foundation
import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios
import XVTestSupport

/// Grants under the threading contract (Docs/Threading.md): two grantees map, unmap and copy
/// from several vCPUs at once while the granter's guest revokes and re-grants entries with
/// Xen's compare-and-swap protocol (a guest may end access only while neither GTF_reading nor
/// GTF_writing is set). Afterwards no mapping, pin or flag is left. Runs under ThreadSanitizer
/// in `.ci/tsan`.
@Suite("Threads: grant maps and copies beside a granter that revokes")
struct GrantThreadTests {
    static let granter = DomainID(2)
    static let rounds = 1500

    /// The granter's v1 entry `ref`'s {flags, domid} word.
    static func word(_ w: any XenWorld, _ ref: Int) -> UnsafeMutableRawPointer { w.xenDomain(granter).grantFramePage(0)! + 8 * ref }

    @Test("dom1 maps on one vCPU and copies on another, dom3 maps, dom2's guest revokes and re-grants: every answer is okay or general_error, and nothing is left behind", arguments: ["native", "translated"])
    func grantsBesideRevocation(_ side: String) {
        let w: any XenWorld = side == "native" ? NativeWorld(domains: 3, vcpus: 2) : TranslatedWorld(domains: 3, vcpus: 2)
        // refs 8-11 to dom1 (maps), 12-13 to dom1 (copies), 16-17 to dom3; frames 40 + ref % 8.
        for ref in [8, 9, 10, 11, 12, 13, 16, 17] {
            let e = Self.word(w, ref)
            e.storeBytes(of: UInt32(GrantEntryFlags.permitAccess.rawValue) | UInt32(ref >= 16 ? 3 : 1) << 16, as: UInt32.self)
            e.storeBytes(of: UInt32(40 + ref % 8), toByteOffset: 4, as: UInt32.self)
        }
        w.page(Self.granter, frame: 44)!.storeBytes(of: 0x4444, as: UInt64.self)
        w.page(Self.granter, frame: 45)!.storeBytes(of: 0x4545, as: UInt64.self)
        let box = WorldReference(w)
        let failures = FailureLog()
        let stop = Counter(), revoked = Counter()
        func mapper(_ d: DomainID, vcpu: Int, refs: [Int], frameBase: UInt64) -> @Sendable () -> Void {
            {
                let w = box.world
                for i in 0..<Self.rounds {
                    let ref = refs[i % refs.count], frame = frameBase + UInt64(i % refs.count)
                    w.writeArguments(d, size: 32, [(GnttabMapGrantRefLayout.hostAddr, frame << 12), (GnttabMapGrantRefLayout.flags, UInt64(GrantMapFlags.hostMap.rawValue)),
                                                   (GnttabMapGrantRefLayout.ref, UInt64(ref)), (GnttabMapGrantRefLayout.dom, 2)], slot: vcpu)
                    let rc = w.hypercall(domain: d, vcpu: vcpu, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.mapGrantRef.rawValue),
                                                                                       rsi: w.argumentAddress(slot: vcpu), rdx: 1))
                    let status = Int16(truncatingIfNeeded: w.readArgument(d, GnttabMapGrantRefLayout.status, slot: vcpu))
                    guard rc == 0, status == 0 || status == GrantStatus.generalError.rawValue else { failures.add("\(d.rawValue) map \(i): \(rc) \(status)"); continue }
                    guard status == 0 else { continue }
                    let handle = w.readArgument(d, GnttabMapGrantRefLayout.handle, slot: vcpu)
                    w.writeArguments(d, size: 24, [(GnttabUnmapGrantRefLayout.hostAddr, frame << 12), (GnttabUnmapGrantRefLayout.handle, handle)], slot: vcpu)
                    let u = w.hypercall(domain: d, vcpu: vcpu, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.unmapGrantRef.rawValue),
                                                                                      rsi: w.argumentAddress(slot: vcpu), rdx: 1))
                    let us = Int16(truncatingIfNeeded: w.readArgument(d, GnttabUnmapGrantRefLayout.status, slot: vcpu))
                    if u != 0 || us != 0 { failures.add("\(d.rawValue) unmap \(i): \(u) \(us)") }
                }
            }
        }
        runConcurrently([
            mapper(dom1, vcpu: 0, refs: [8, 9, 10, 11], frameBase: 20),
            mapper(DomainID(3), vcpu: 0, refs: [16, 17], frameBase: 20),
            {
                // dom1's vCPU 1 copies 64 bytes from refs 12 and 13 into its frame 30.
                let w = box.world
                for i in 0..<Self.rounds {
                    w.writeArguments(dom1, size: 40, [(GnttabCopyLayout.sourceUGmfn, UInt64(12 + i % 2)), (GnttabCopyLayout.sourceDomid, 2),
                                                      (GnttabCopyLayout.destUGmfn, 30), (GnttabCopyLayout.destDomid, UInt64(DomainID.selfDomain.rawValue)),
                                                      (GnttabCopyLayout.len, 64), (GnttabCopyLayout.flags, UInt64(GrantCopyFlags.sourceGref.rawValue))], slot: 1)
                    let rc = w.hypercall(domain: dom1, vcpu: 1, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.copy.rawValue),
                                                                                       rsi: w.argumentAddress(slot: 1), rdx: 1))
                    let status = Int16(truncatingIfNeeded: w.readArgument(dom1, GnttabCopyLayout.status, slot: 1))
                    if rc != 0 || (status != 0 && status != GrantStatus.generalError.rawValue) { failures.add("copy \(i): \(rc) \(status)") }
                }
                stop.store(1)
            },
            {
                // dom2's guest: end access to refs 8, 12 and 16 when nobody uses them, then grant again.
                let w = box.world
                var n = 0
                while stop.load() == 0 {
                    for ref in [8, 12, 16] {
                        let e = Self.word(w, ref)
                        let old = xv_atomic_load_u32(e)
                        let inUse = UInt32(GrantEntryFlags.reading.rawValue | GrantEntryFlags.writing.rawValue)
                        guard old & inUse == 0, old & 3 == 1 else { continue }
                        // gnttab_end_foreign_access_ref: clear the type only if still unused.
                        if xv_atomic_cas_u32(e, old, old & ~3) == old {
                            n += 1
                            _ = xv_atomic_cas_u32(e, old & ~3, old)
                        }
                    }
                    sched_yield()
                }
                revoked.store(n)
            },
        ])
        #expect(failures.entries.isEmpty, "\(side): \(failures.entries.prefix(8))")
        #expect(revoked.load() > 0, "\(side): the granter revoked some grants meanwhile")
        #expect(w.xenDomain(dom1).grantMappingCount == 0 && w.xenDomain(DomainID(3)).grantMappingCount == 0, "\(side): no mapping left")
        for ref in [8, 9, 10, 11, 12, 13, 16, 17] {
            #expect(w.xenDomain(Self.granter).grantPins(UInt32(ref)) == (0, 0), "\(side): no pin left on \(ref)")
            let flags = UInt16(truncatingIfNeeded: xv_atomic_load_u32(Self.word(w, ref)))
            #expect(flags & (GrantEntryFlags.reading.rawValue | GrantEntryFlags.writing.rawValue) == 0, "\(side): no GTF_reading/writing left on \(ref)")
        }
        #expect([0x4444, 0x4545].contains(w.page(dom1, frame: 30)!.load(as: UInt64.self)), "\(side): a copy landed")
    }
}
