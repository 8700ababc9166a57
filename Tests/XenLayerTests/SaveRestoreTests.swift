import Foundation
import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// Save and restore of a domain's image (Specs/translation/save-image.tbl, Docs/SaveRestore.md):
/// round trips on each side and across sides, refusals that change nothing, channels to peers
/// that stay behind, and time continuing on a clock of another frequency and origin. The
/// differential test's `migrate` step covers random states.
@Suite("Save and restore")
struct SaveRestoreTests {
    /// Three domains with something in most parts of the image: ports of every kind, a loopback
    /// channel, FIFO on domain 3, a grant mapped from domain 2 into domain 1, a one-shot timer,
    /// an HVM parameter, an upcall vector, a console line in progress.
    static func busy(_ w: any XenWorld) {
        let d3 = DomainID(3)
        let p = w.allocUnbound(dom2, remote: dom1)
        #expect(w.bindInterdomain(dom1, remote: dom2, remotePort: UInt32(p)) > 0)
        #expect(w.allocUnbound(dom1, remote: d3) > 0)
        let loop = w.allocUnbound(d3, remote: d3)
        #expect(w.bindInterdomain(d3, remote: d3, remotePort: UInt32(loop)) > 0)
        #expect(w.evtchn(dom1, .bindVirq, [(EvtchnBindVirqLayout.virq, UInt64(VIRQ.timer.rawValue)), (EvtchnBindVirqLayout.vcpu, 0)]) == 0)
        #expect(w.evtchn(dom1, .bindIpi, [(EvtchnBindIpiLayout.vcpu, 1)]) == 0)
        #expect(w.evtchn(d3, .initControl, [(EvtchnInitControlLayout.controlGfn, 23), (EvtchnInitControlLayout.offset, 0), (EvtchnInitControlLayout.vcpu, 0)]) == 0)
        #expect(w.evtchn(d3, .expandArray, [(EvtchnExpandArrayLayout.arrayGfn, 24)]) == 0)
        #expect(w.hvm(dom1, vcpu: 0, .setEvtchnUpcallVector, [(XenHvmEvtchnUpcallVectorLayout.vcpu, 0), (XenHvmEvtchnUpcallVectorLayout.vector, 0x50)]) == 0)
        w.writeGrantEntry(dom2, ref: 8, flags: GrantEntryFlags.permitAccess.rawValue, domid: 1, frame: 40)
        w.page(dom2, frame: 40)!.storeBytes(of: 0xFEED_FACE, as: UInt64.self)
        w.writeArguments(dom1, size: 32, [(GnttabMapGrantRefLayout.hostAddr, 30 << guestPageShift), (GnttabMapGrantRefLayout.flags, UInt64(GrantMapFlags.hostMap.rawValue)),
                                          (GnttabMapGrantRefLayout.ref, 8), (GnttabMapGrantRefLayout.dom, 2)])
        #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.mapGrantRef.rawValue),
                                                                        rsi: w.argumentAddress, rdx: 1)) == 0)
        #expect(w.readArgument(dom1, GnttabMapGrantRefLayout.status) == 0)
        w.advanceTime(toTSC: 2_500_000_000)
        w.writeArguments(dom1, size: 16, [(VcpuSetSingleshotTimerLayout.timeoutAbsNs, w.systemTime(dom1)! + 1_000_000)])
        #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(VCPUOp.setSingleshotTimer.rawValue),
                                                                        rsi: 0, rdx: w.argumentAddress)) == 0)
        w.writeArguments(dom2, size: 16, [(XenHvmParamLayout.domid, UInt64(DomainID.selfDomain.rawValue)), (XenHvmParamLayout.index, UInt64(HVMParam.storeEvtchn.rawValue)),
                                          (XenHvmParamLayout.value, 7)])
        _ = w.hypercall(domain: dom2, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.hvmOp.rawValue, rdi: UInt64(HVMOp.setParam.rawValue), rsi: w.argumentAddress))
        let text = Array("half a line".utf8)
        for (i, b) in text.enumerated() { w.page(dom2, frame: 17)!.storeBytes(of: b, toByteOffset: i, as: UInt8.self) }
        _ = w.hypercall(domain: dom2, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.consoleIo.rawValue, rdi: 0, rsi: UInt64(text.count), rdx: 17 << guestPageShift))
    }

    static func world(_ native: Bool, tscHz: UInt64 = 2_500_000_000) -> any XenWorld {
        native ? NativeWorld(domains: 3, vcpus: 2) : TranslatedWorld(domains: 3, vcpus: 2, tscHz: tscHz)
    }

    /// `image` with its trailer recomputed (a deliberate edit, not corruption).
    static func resealed(_ image: [UInt8]) -> [UInt8] {
        var out = image
        let body = out.count - 8
        let h = SaveImageChecksum.fnv1a(out, 0..<body)
        for i in 0..<8 { out[body + i] = UInt8(truncatingIfNeeded: h >> (8 * UInt64(i))) }
        return out
    }

    @Test("a domain restored on either side saves the same image again, on the same side and on the other, and behaves as the source did: the grant still shows the granter's page, the timer fires, the channels carry events")
    func roundTrips() throws {
        for (from, to) in [(true, true), (true, false), (false, true), (false, false)] {
            let source = Self.world(from)
            Self.busy(source)
            let dest = Self.world(to)
            try dest.migrate(from: source)
            for d in 1...3 {
                let id = DomainID(UInt16(d))
                let same = dest.saveImage(id) == source.saveImage(id)
                #expect(same, "\(from) -> \(to): domain \(d)'s image differs")
                #expect(dest.status(id, port: 1).0 == source.status(id, port: 1).0)
            }
            #expect(dest.page(dom1, frame: 30)?.load(as: UInt64.self) == 0xFEED_FACE, "the mapped grant")
            #expect(dest.xenDomain(dom2).grantPins(8) == (0, 1))
            // The interdomain channel d1:1 <-> d2:1 still carries an event.
            #expect(dest.evtchn(dom1, .send, [(EvtchnSendLayout.port, 1)]) == 0)
            #expect(dest.isPending(dom2, port: 1))
            // The timer fires 1 ms after it was armed, on VIRQ_TIMER's port 2... of domain 1.
            let virqPort = UInt32(3)
            #expect(!dest.isPending(dom1, port: virqPort))
            dest.advanceTime(toTSC: 2_500_000_000 + 2_600_000)
            #expect(dest.isPending(dom1, port: virqPort), "\(from) -> \(to): VIRQ_TIMER after the restore")
            // Console: the line started before the save finishes after it.
            _ = dest.hypercall(domain: dom2, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.consoleIo.rawValue, rdi: 0, rsi: 1, rdx: 18 << guestPageShift))
            dest.page(dom2, frame: 18)!.storeBytes(of: 0x0A, as: UInt8.self)
            _ = dest.hypercall(domain: dom2, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.consoleIo.rawValue, rdi: 0, rsi: 1, rdx: 18 << guestPageShift))
            #expect(dest.console.lines.last.map { String(decoding: $0.1, as: UTF8.self) }?.hasPrefix("half a line") == true)
        }
    }

    @Test("every truncation, every flipped byte, another magic or version, a wrong shape, a field out of range and a domain that has run are refused with their reason, and the domain stays fresh")
    func refusals() throws {
        let source = Self.world(true)
        Self.busy(source)
        let image = source.saveImage(dom1)
        for side in [true, false] {
            let dest = Self.world(side)
            func refusal(_ bytes: [UInt8], _ d: DomainID = dom1) -> DomainImageRefusal? {
                do { try dest.restoreImage(d, bytes); return nil } catch { return error }
            }
            for n in stride(from: 0, to: image.count, by: side ? 1 : 7) {
                let r = refusal(Array(image[..<n]))
                #expect(r == .truncated || r == .magic || r == .malformed, "prefix of \(n): \(String(describing: r))")
            }
            for i in stride(from: 0, to: image.count, by: side ? 1 : 5) {
                var bad = image
                bad[i] ^= 0x20
                #expect(refusal(bad) != nil, "byte \(i) flipped")
            }
            var wrong = image
            wrong[0] = 0
            #expect(refusal(wrong) == .magic)
            wrong = image
            wrong[4] = 2
            #expect(refusal(Self.resealed(wrong)) == .version)
            #expect(refusal(image, dom2) == .shape, "domain 1's image into domain 2")
            // The first port record's number (after header, DOMAIN, TIME, WORDS, PHYSMAP headers):
            // found by searching the PORTS section for its tag.
            var portsAt = 16
            while portsAt < image.count, image[portsAt] != UInt8(DomainImageSection.ports.rawValue) || image[portsAt + 1] != 0 {
                portsAt += 8 + Int(UInt32(image[portsAt + 4]) | UInt32(image[portsAt + 5]) << 8 | UInt32(image[portsAt + 6]) << 16)
            }
            var outOfRange = image
            // validPorts = 0x10000 (past maxPort + 1).
            outOfRange[portsAt + 8 + 2] = 1
            #expect(refusal(Self.resealed(outOfRange)) == .malformed)
            #expect(dest.xenDomain(dom1).isFresh, "nothing changed")
            try dest.restoreImage(dom1, image)
            #expect(refusal(image) == .notFresh, "a second restore")
            _ = dest.allocUnbound(dom2, remote: dom1)
            #expect(refusal(source.saveImage(dom2), dom2) == .notFresh)
        }
    }

    @Test("a channel whose peer stays behind comes back unbound, waiting for that peer, as Xen leaves the survivor of a closed channel; when the peer is restored too, in either order, the channel is interdomain again")
    func peersThatStayBehind() throws {
        for side in [true, false] {
            let source = Self.world(true)
            Self.busy(source)
            let alone = Self.world(side)
            alone.ram(dom1).mirror(source.ram(dom1), frames: WorldLayout.frames)
            try alone.restoreImage(dom1, source.saveImage(dom1))
            alone.finishRestore(dom1)
            let (status, _, u) = alone.status(dom1, port: 1)
            #expect(status == Int64(EventChannelStatus.unbound.rawValue) && u & 0xFFFF == 2, "\(side): unbound for domain 2")
            #expect(alone.page(dom1, frame: 30) == nil, "\(side): the grant of a granter not restored is dropped")
            #expect(alone.xenDomain(dom1).grantMappingCount == 0)
            // Domain 2 binds again, as a guest reconnecting after migration would.
            #expect(alone.bindInterdomain(dom2, remote: dom1, remotePort: 1) > 0)
            for order in [[1, 2], [2, 1]] {
                let dest = Self.world(side)
                for d in 1...3 { dest.ram(DomainID(UInt16(d))).mirror(source.ram(DomainID(UInt16(d))), frames: WorldLayout.frames) }
                for d in order { try dest.restoreImage(DomainID(UInt16(d)), source.saveImage(DomainID(UInt16(d)))) }
                for d in order { dest.finishRestore(DomainID(UInt16(d))) }
                #expect(dest.page(dom1, frame: 30)?.load(as: UInt64.self) == 0xFEED_FACE, "\(side) \(order): the grant, granter restored after or before")
                #expect(dest.status(dom1, port: 1).0 == Int64(EventChannelStatus.interdomain.rawValue), "\(side) \(order)")
                #expect(dest.status(dom2, port: 1).0 == Int64(EventChannelStatus.interdomain.rawValue), "\(side) \(order)")
                #expect(dest.evtchn(dom2, .send, [(EvtchnSendLayout.port, 1)]) == 0)
                #expect(dest.isPending(dom1, port: 1), "\(side) \(order)")
            }
        }
    }

    @Test("restored on a clock of another frequency and origin, Xen time goes on from the saved value (within 100 ns), pvclock reads it, and the timer fires when the guest's time reaches its deadline")
    func otherClock() throws {
        for native in [true, false] {
            let source = Self.world(native)
            Self.busy(source)
            let saved = source.systemTime(dom1)!
            let dest = TranslatedWorld(domains: 3, vcpus: 2, tscHz: 3_100_000_000)
            dest.advanceTime(toTSC: 7_777_777_777)
            try dest.migrate(from: source, sameClock: false)
            let now = dest.systemTime(dom1)!
            #expect(now >= saved && now - saved < 100, "\(native): \(saved) -> \(now)")
            // The guest's pvclock (vcpu 0's vcpu_info time) at the destination's TSC.
            let t = dest.sharedInfo(dom1) + SharedInfoLayout.vcpuInfo.offset(ofElement: 0) + VcpuInfoLayout.time.offset
            let info = PVClockTimeInfo(tscTimestamp: t.load(fromByteOffset: VcpuTimeInfoLayout.tscTimestamp.offset, as: UInt64.self),
                                       systemTime: t.load(fromByteOffset: VcpuTimeInfoLayout.systemTime.offset, as: UInt64.self),
                                       tscToSystemMul: t.load(fromByteOffset: VcpuTimeInfoLayout.tscToSystemMul.offset, as: UInt32.self),
                                       tscShift: t.load(fromByteOffset: VcpuTimeInfoLayout.tscShift.offset, as: Int8.self), flags: [])
            let read = PVClock.read(info, atTSC: dest.guestTSC)
            // System time is taken at the start of the current 100 ns tick; pvclock at the TSC now.
            #expect(abs(Int64(bitPattern: read &- now)) < 103, "\(native): pvclock \(read), system time \(now)")
            // The one-shot timer was armed for 1 ms after TSC 2.5e9 at the source: 0.9 ms of
            // the destination's time is not enough, 1.1 ms is.
            dest.advanceTime(toTSC: 7_777_777_777 + 3_100_000 * 9 / 10)
            #expect(!dest.isPending(dom1, port: 3), "\(native): early")
            dest.advanceTime(toTSC: 7_777_777_777 + 3_100_000 * 11 / 10)
            #expect(dest.isPending(dom1, port: 3), "\(native): on time")
        }
    }
}
