import CGuestAtomics
import Foundation
import GuestABI
import Testing
import XenABI
import XenCore
import XVScenarios
import XVTestSupport

/// EVTCHNOP_bind_vcpu while the other end sends, on real threads: Xen moves the port and keeps
/// every event (xen/common/event_channel.c evtchn_bind_vcpu changes only notify_vcpu_id). The
/// translated side re-creates the port's Viridian event port aimed at the new VP (TLFS has no
/// call that re-aims one), so a signal can arrive while no port exists; the sender must retry
/// it rather than drop it.
@Suite("Threads: bind_vcpu while the peer sends")
struct RebindThreadTests {
    static let sends = 20_000

    @Test("every send on an interdomain channel reaches the receiver while it moves the port between its vCPUs", arguments: ["native", "translated"])
    func rebindWhileSending(side: String) {
        let w: any XenWorld = side == "native" ? NativeWorld(domains: 2, vcpus: 2) : TranslatedWorld(domains: 2, vcpus: 2)
        let d1 = DomainID(1), d2 = DomainID(2)
        #expect(w.setCallbackVector(d1, 0x41) == 0 && w.setCallbackVector(d2, 0x42) == 0)
        let remote = UInt32(w.allocUnbound(d2, remote: d1))
        let local = UInt32(w.bindInterdomain(d1, remote: d2, remotePort: remote))
        let wordOffset = SharedInfoLayout.evtchnPending.offset(ofElement: Int(remote / 64))
        let bit = UInt64(1) << UInt64(remote % 64)
        _ = xv_atomic_fetch_and_u64(w.sharedInfo(d2) + wordOffset, ~bit)
        let done = Counter(), lost = Counter(), moves = Counter()
        let world = WorldReference(w)
        runConcurrently([
            {
                // Domain 2's vCPU 0 moves the port back and forth until the sender is done.
                var i = 0
                while done.load() == 0 {
                    i += 1
                    let r = world.world.evtchn(d2, vcpu: 0, .bindVcpu, [(EvtchnBindVcpuLayout.port, UInt64(remote)), (EvtchnBindVcpuLayout.vcpu, UInt64(i % 2))], slot: 0)
                    if r != 0 { lost.store(1_000_000) }
                    moves.store(i)
                }
            },
            {
                // Domain 1's vCPU 0 sends, waits for the pending bit (its event arrived) and
                // clears it, as domain 2's guest would.
                var missing = 0
                let pendingWord = world.world.sharedInfo(d2) + wordOffset
                for _ in 0..<Self.sends {
                    _ = world.world.evtchn(d1, vcpu: 0, .send, [(EvtchnSendLayout.port, UInt64(local))], slot: 1)
                    var seen = false
                    for spin in 0..<200_000 {
                        if xv_atomic_load_u64(pendingWord) & bit != 0 { seen = true; break }
                        if spin > 1000 { sched_yield() }
                    }
                    if !seen { missing += 1 }
                    _ = xv_atomic_fetch_and_u64(pendingWord, ~bit)
                }
                lost.store(lost.load() + missing)
                done.store(1)
            },
        ])
        #expect(lost.load() == 0, "\(side): \(lost.load()) of \(Self.sends) events lost while the port moved \(moves.load()) times")
        #expect(moves.load() > 0)
    }
}
