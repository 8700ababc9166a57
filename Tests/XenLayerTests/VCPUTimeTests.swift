import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios
import ViridianABI
import XenViridian

/// The guest's Xen time on both sides: vcpu_time_info in vcpu_info and in a registered time
/// area, HVMOP_get_time (Specs/translation/hvm.tbl, vcpu.tbl), from the native embedder's TSC
/// and from the partition's reference TSC page.
@Suite("Xen time: vcpu_time_info, time areas, HVMOP_get_time")
struct VCPUTimeTests {
    static func timeInfo(_ p: UnsafeRawPointer) -> (version: UInt32, info: PVClockTimeInfo) {
        (p.loadUnaligned(fromByteOffset: VcpuTimeInfoLayout.version.offset, as: UInt32.self),
         PVClockTimeInfo(tscTimestamp: p.loadUnaligned(fromByteOffset: VcpuTimeInfoLayout.tscTimestamp.offset, as: UInt64.self),
                         systemTime: p.loadUnaligned(fromByteOffset: VcpuTimeInfoLayout.systemTime.offset, as: UInt64.self),
                         tscToSystemMul: p.loadUnaligned(fromByteOffset: VcpuTimeInfoLayout.tscToSystemMul.offset, as: UInt32.self),
                         tscShift: p.load(fromByteOffset: VcpuTimeInfoLayout.tscShift.offset, as: Int8.self),
                         flags: PVClockFlags(rawValue: p.load(fromByteOffset: VcpuTimeInfoLayout.flags.offset, as: UInt8.self))))
    }

    /// system_time for an anchor near `tsc`: the start of its 100 ns tick on the 2.5 GHz page.
    static func anchored(_ tsc: UInt64) -> UInt64 {
        let page = ReferenceTSCParameters(tscHz: 2_500_000_000)!
        return page.nanoseconds(atTSC: page.tsc(atReferenceTime: page.referenceTime(atTSC: tsc)))
    }

    func getTime(_ w: any XenWorld, at address: UInt64? = nil) -> (Int64, UInt64) {
        let a = address ?? w.argumentAddress
        let r = w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.hvmOp.rawValue, rdi: UInt64(HVMOp.getTime.rawValue), rsi: a))
        return (r, w.ram(dom1).region.load(UInt64.self, at: GuestPhysicalAddress(a)) ?? 0)
    }

    @Test("refreshTime writes the same vcpu_time_info on both sides, version even and bumped by 2, and a guest's read stays within 100 ns of reference time for the second after")
    func sameOnBothSides() {
        let hz: UInt64 = 2_500_000_000
        var seen: [(UInt32, PVClockTimeInfo)] = []
        onBothWorlds { w, side in
            #expect(w.refreshTime(dom1, vcpu: 0), "\(side)")
            let first = Self.timeInfo(w.vcpuInfo(dom1, vcpu: 0) + VcpuInfoLayout.time.offset)
            #expect(first.version == 2 && first.info.flags == .tscStableBit, "\(side)")
            w.advanceTime(toTSC: 123_456_789_012)
            #expect(w.refreshTime(dom1, vcpu: 0), "\(side)")
            let second = Self.timeInfo(w.vcpuInfo(dom1, vcpu: 0) + VcpuInfoLayout.time.offset)
            #expect(second.version == 4, "\(side)")
            #expect(second.info.tscTimestamp <= 123_456_789_012 && 123_456_789_012 - second.info.tscTimestamp < hz / 10_000_000, "\(side): the start of the 100 ns tick")
            let page = ReferenceTSCParameters(tscHz: hz)!
            for d in [0, 1, 999, hz / 3, hz] {
                let tsc = 123_456_789_012 + d
                let gap = Int64(bitPattern: PVClock.read(second.info, atTSC: tsc) &- page.referenceTime(atTSC: tsc) &* 100)
                #expect(gap.magnitude < 100, "\(side) +\(d): \(gap) ns")
            }
            // HVMOP_get_time: Xen's NOW() at the clock's tick, in ns.
            let (r, now) = getTime(w)
            #expect(r == 0 && now == second.info.systemTime, "\(side)")
            seen.append((second.version, second.info))
        }
        #expect(seen.count == 2 && seen[0] == seen[1], "native and translated wrote the same fields")
    }

    @Test("VCPUOP_register_vcpu_time_memory_area: a second copy at once and at every refresh, a null address stops it, an unreadable argument -EFAULT; register_vcpu_info brings fresh time")
    func timeArea() {
        onBothWorlds { w, side in
            let area = (WorldLayout.firstFreeFrame + 12) << guestPageShift + 96
            func register(_ address: UInt64) -> Int64 {
                w.writeArguments(dom1, size: 8, [(VcpuRegisterTimeMemoryAreaLayout.addrH, address)])
                return w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue,
                    rdi: UInt64(VCPUOp.registerVcpuTimeMemoryArea.rawValue), rsi: 1, rdx: w.argumentAddress))
            }
            w.advanceTime(toTSC: 5_000_000_000)
            #expect(register(area) == 0, "\(side): for vCPU 1 (down), from vCPU 0")
            let host = w.ram(dom1).region.hostAddress(of: GuestFrameNumber(area >> guestPageShift))! + Int(area & 0xFFF)
            let copy = Self.timeInfo(host)
            let primary = Self.timeInfo(w.vcpuInfo(dom1, vcpu: 1) + VcpuInfoLayout.time.offset)
            #expect(copy.version % 2 == 0 && copy.version == primary.version && copy.info == primary.info, "\(side)")
            #expect(copy.info.systemTime == Self.anchored(5_000_000_000), "\(side): 5e9 ticks at 2.5 GHz")
            #expect(2_000_000_000 - copy.info.systemTime < 200, "\(side): two seconds, less the page's floored scale")
            w.advanceTime(toTSC: 7_500_000_000)
            #expect(w.refreshTime(dom1, vcpu: 1), "\(side)")
            #expect(Self.timeInfo(host).info.systemTime == Self.anchored(7_500_000_000), "\(side)")
            #expect(register(0) == 0, "\(side)")
            w.advanceTime(toTSC: 10_000_000_000)
            #expect(w.refreshTime(dom1, vcpu: 1), "\(side)")
            #expect(Self.timeInfo(host).info.systemTime == Self.anchored(7_500_000_000), "\(side): stopped")
            #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue,
                rdi: UInt64(VCPUOp.registerVcpuTimeMemoryArea.rawValue), rsi: 1, rdx: UInt64.max - 3)) == errEFAULT, "\(side)")
            // An area the guest's memory does not have: accepted, and the copies are dropped.
            #expect(register(WorldLayout.frames << guestPageShift) == 0 && w.refreshTime(dom1, vcpu: 1), "\(side)")
            // register_vcpu_info: the moved vcpu_info has time as of now.
            w.writeArguments(dom1, size: 16, [(VcpuRegisterVcpuInfoLayout.mfn, WorldLayout.firstFreeFrame + 13), (VcpuRegisterVcpuInfoLayout.offset, 0)])
            #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue,
                rdi: UInt64(VCPUOp.registerVcpuInfo.rawValue), rsi: 0, rdx: w.argumentAddress)) == 0, "\(side)")
            #expect(Self.timeInfo(w.vcpuInfo(dom1, vcpu: 0) + VcpuInfoLayout.time.offset).info.systemTime == Self.anchored(10_000_000_000), "\(side)")
        }
    }

    @Test("HVMOP_get_time into memory the guest does not have is -EFAULT; a partition whose reference TSC page is off has no Xen time (-EIO, nothing written)")
    func failures() {
        onBothWorlds { w, side in
            #expect(getTime(w, at: WorldLayout.frames << guestPageShift - 4).0 == errEFAULT, "\(side)")
        }
        // The page turned off, and the page marked invalid (sequence 0) by its hypervisor.
        for invalidate in [0, 1] {
            let t = TranslatedWorld(domains: 1, vcpus: 1)
            if invalidate == 0 {
                #expect(t.reference.writeMSR(partition: t.layer(dom1).partition, vp: VPIndex(0), msr: .referenceTsc, value: 0) == .done)
            } else {
                let frame = WorldLayout.layerFrames().rawValue + UInt64(3 * 1)
                t.ram(dom1).region.hostAddress(of: GuestFrameNumber(frame))!.storeBytes(of: UInt32(0), as: UInt32.self)
            }
            #expect(!t.refreshTime(dom1, vcpu: 0))
            #expect(getTime(t).0 == XenErrno.eio.hypercallReturnValue)
            #expect(Self.timeInfo(t.vcpuInfo(dom1, vcpu: 0) + VcpuInfoLayout.time.offset).version == 0)
        }
    }
}

/// The shared_info wall clock (wc_version, wc_sec, wc_nsec, wc_sec_hi).
@Suite("shared_info wall clock")
struct WallclockTests {
    @Test("written at creation with an even version, rewritten by setWallclock with the version bumped by 2, seconds above 2^32 split into wc_sec_hi; the same on both sides")
    func wallclock() {
        onBothWorlds { w, side in
            let si = w.sharedInfo(dom1)
            func read() -> (UInt32, UInt32, UInt32, UInt32) {
                (si.load(fromByteOffset: SharedInfoLayout.wcVersion.offset, as: UInt32.self), si.load(fromByteOffset: SharedInfoLayout.wcSec.offset, as: UInt32.self),
                 si.load(fromByteOffset: SharedInfoLayout.wcNsec.offset, as: UInt32.self), si.load(fromByteOffset: SharedInfoLayout.wcSecHi.offset, as: UInt32.self))
            }
            #expect(read() == (2, 0, 0, 0), "\(side): at creation, the configured time (0)")
            w.xenDomain(dom1).setWallclock(seconds: 1_764_583_200, nanoseconds: 123_456_789)
            #expect(read() == (4, 1_764_583_200, 123_456_789, 0), "\(side)")
            w.xenDomain(dom1).setWallclock(seconds: 1 << 33 | 7, nanoseconds: 5)
            #expect(read() == (6, 7, 5, 2), "\(side): wc_sec_hi")
        }
    }
}
