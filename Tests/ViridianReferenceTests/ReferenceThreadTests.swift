import CGuestAtomics
import Foundation
import GuestABI
import Testing
import ViridianABI
@testable import ViridianReference
import XVTestSupport

/// The reference under the threading contract (Docs/Threading.md): the fast paths run as
/// readers while writers (the root's port calls, MSR writes) change what they look at. The
/// property the layer builds on: once HvCallDeletePort has returned, no HvCallSignalEvent sets
/// a flag of that port any more, whatever is in flight on other VPs. `.ci/tsan` runs this suite.
@Suite("Reference: fast paths against writers on real threads")
struct ReferenceThreadTests {
    /// Counts interrupts from any thread.
    final class CountingHost: ViridianHost, @unchecked Sendable {
        let lock = NSLock()
        var count = 0
        func raiseInterrupt(partition: PartitionID, vp: VPIndex, vector: UInt8, autoEOI: Bool) { lock.withLock { count += 1 } }
        func flushTLB(_ request: TLBFlushRequest) {}
        func longSpinWait(partition: PartitionID, vp: VPIndex, spinCount: UInt32) {}
    }

    final class Box: @unchecked Sendable {
        let hv: ViridianReference<GuestRAMRegion, CountingHost>
        let rams: [GuestRAM]
        let stop = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        let lock = NSLock()
        var failures: [String] = []
        init(_ hv: ViridianReference<GuestRAMRegion, CountingHost>, _ rams: [GuestRAM]) {
            self.hv = hv
            self.rams = rams
            stop.initialize(to: 0)
        }
        deinit { stop.deallocate() }
        func fail(_ s: String) { lock.withLock { failures.append(s) } }
    }

    static let flagA = 5, flagB = 9
    static let sintA = 2, sintB = 3

    /// The SIEF word holding `flag` of `sint` on VP `vp` of the receiver (partition 2).
    static func flagWord(_ box: Box, vp: Int, sint: Int, flag: Int) -> UnsafeMutableRawPointer {
        box.rams[1].region.hostAddress(of: GuestFrameNumber(Frames.siefp(vp)))! + sint * 256 + (flag / 64) * 8
    }

    /// `threadsOnVP0` threads signal as VP 0 at once: a host's interrupt path can make a fast
    /// call for a VP from another thread, so two readers share VP 0's slot (one holds it, the
    /// other counts in its overflow word), and the writer must wait for both.
    @Test("SignalEvent from two VPs while the root deletes and re-creates one target port and MSRs are written: after HvCallDeletePort returns, its flag is never set",
          .serialized, arguments: [1, 2])
    func deletePortFencesSignals(threadsOnVP0: Int) {
        let host = CountingHost()
        let hv = ViridianReference<GuestRAMRegion, CountingHost>(host: host)!
        let rams = [GuestRAM(frameCount: Frames.total), GuestRAM(frameCount: Frames.total)]
        let config = PartitionConfiguration(vpCount: 2)
        let sender = try! hv.createPartition(config, memory: rams[0].region)
        let receiver = try! hv.createPartition(config, memory: rams[1].region)
        for p in [sender, receiver] { #expect(hv.writeMSR(partition: p, vp: VPIndex(0), msr: .guestOsId, value: 0x8100_0000_0000_0000) == .done) }
        for vp in 0..<2 {
            let v = VPIndex(UInt32(vp))
            #expect(hv.writeMSR(partition: receiver, vp: v, msr: .simp, value: Frames.simp(vp) << 12 | 1) == .done)
            #expect(hv.writeMSR(partition: receiver, vp: v, msr: .siefp, value: Frames.siefp(vp) << 12 | 1) == .done)
            #expect(hv.writeMSR(partition: receiver, vp: v, msr: .scontrol, value: 1) == .done)
            for s in [Self.sintA, Self.sintB] {
                #expect(hv.writeMSR(partition: receiver, vp: v, msr: HVMSR(rawValue: HVMSR.sint0.rawValue + UInt32(s)), value: 0x50 | 1 << 17) == .done)
            }
        }
        let portA = PortKind.event(vp: VPIndex(0), sint: UInt8(Self.sintA), baseFlag: UInt16(Self.flagA), flagCount: 1)
        let portB = PortKind.event(vp: VPIndex(1), sint: UInt8(Self.sintB), baseFlag: UInt16(Self.flagB), flagCount: 1)
        #expect(hv.createPort(in: receiver, port: PortID(0x10), kind: portA) == .success)
        #expect(hv.createPort(in: receiver, port: PortID(0x11), kind: portB) == .success)
        #expect(hv.connectPort(from: sender, connection: ConnectionID(0x110), to: receiver, port: PortID(0x10)) == .success)
        #expect(hv.connectPort(from: sender, connection: ConnectionID(0x111), to: receiver, port: PortID(0x11)) == .success)
        let box = Box(hv, rams)
        var input = HVHypercallInput(rawValue: 0)
        input.callCode = UInt64(HVCallCode.signalEvent.rawValue)
        input.fast = true
        let signalInput = input

        func signaller(vp: UInt32, connection: UInt64, allowed: [HVStatus]) -> @Sendable () -> Void {
            {
                var n = 0
                while xv_load_acquire_u32(box.stop) == 0 {
                    let status = box.hv.hypercall(partition: sender, vp: VPIndex(vp), input: signalInput, rdx: connection, r8: 0).status
                    if !allowed.contains(status) { box.fail("VP \(vp): \(status)") }
                    n += 1
                    // Take the flag back, as a guest does, so later signals set it again.
                    let (sint, flag, rvp) = vp == 0 ? (Self.sintA, Self.flagA, 0) : (Self.sintB, Self.flagB, 1)
                    if n % 3 == 0 { _ = xv_atomic_fetch_and_u64(Self.flagWord(box, vp: rvp, sint: sint, flag: flag), ~(UInt64(1) << UInt64(flag % 64))) }
                }
            }
        }
        let root: @Sendable () -> Void = {
            for round in 0..<300 {
                // Delete port A; once that has returned, its flag, cleared, stays clear.
                if box.hv.deletePort(in: receiver, port: PortID(0x10)) != .success { box.fail("delete \(round)") }
                let word = Self.flagWord(box, vp: 0, sint: Self.sintA, flag: Self.flagA)
                let bit = UInt64(1) << UInt64(Self.flagA % 64)
                _ = xv_atomic_fetch_and_u64(word, ~bit)
                // A signal still in flight would land within microseconds: watch for 20 yields.
                for _ in 0..<20 {
                    if xv_atomic_load_u64(word) & bit != 0 { box.fail("round \(round): a flag of the deleted port was set after HvCallDeletePort returned") ; break }
                    sched_yield()
                }
                // Writers of other kinds meanwhile: a SINT of VP 1 rewritten, an unrelated port.
                _ = box.hv.writeMSR(partition: receiver, vp: VPIndex(1), msr: HVMSR(rawValue: HVMSR.sint0.rawValue + UInt32(Self.sintB)), value: 0x50 | 1 << 17)
                _ = box.hv.createPort(in: receiver, port: PortID(0x99), kind: portB)
                _ = box.hv.deletePort(in: receiver, port: PortID(0x99))
                if box.hv.createPort(in: receiver, port: PortID(0x10), kind: portA) != .success { box.fail("re-create \(round)") }
            }
            xv_store_release_u32(box.stop, 1)
        }
        let onVP0 = (0..<threadsOnVP0).map { _ in signaller(vp: 0, connection: 0x110, allowed: [.success, .invalidPortId]) }
        runConcurrently(onVP0 + [signaller(vp: 1, connection: 0x111, allowed: [.success]), root])
        #expect(box.failures.isEmpty, "\(box.failures.prefix(8))")
        #expect(host.lock.withLock { host.count } > 0, "signals raised interrupts")
    }
}
