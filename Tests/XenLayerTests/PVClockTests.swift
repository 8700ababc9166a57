import Foundation
import Testing
import XenABI
import XenCore
import XVTestSupport

/// The reference TSC page to pvclock conversion (`PVClock`) and its bound: within a second of
/// its anchor, a guest's pvclock read is within 100 ns of the Viridian reference time it
/// would read from the page, for TSCs of 1 to 5 GHz and TSC values up to 2^63.
@Suite("pvclock from the reference TSC page")
struct PVClockTests {
    static let named: [UInt64] = [1_000_000_000, 1_000_000_007, 2_300_000_000, 2_999_999_999, 3_141_592_653,
                                  4_000_000_000, 4_294_967_297, 4_999_999_999, 5_000_000_000]

    static var frequencies: [UInt64] {
        var r = SplitMix(seed: 0x50_5643_4C4F_434B)
        return named + (0..<120).map { _ in 1_000_000_000 + UInt64(r.below(4_000_000_001)) | 1 }
    }

    /// Checks every read in the second after `anchor` at a spread of deltas.
    static func check(hz: UInt64, anchor: UInt64, offset: Int64) -> String? {
        guard let page = ReferenceTSCParameters(tscHz: hz, offset: offset) else { return "no page for \(hz)" }
        let info = PVClock.timeInfo(anchorTSC: anchor, page: page)
        guard info.tscToSystemMul >= 1 << 31 else { return "multiplier \(info.tscToSystemMul) not normalised" }
        for delta in [0, 1, 2, 3, 7, 1000, hz / 1000 + 3, hz / 7, hz / 2 + 1, hz - 1, hz] {
            let tsc = anchor + delta
            let pv = PVClock.read(info, atTSC: tsc)
            let exact = page.nanoseconds(atTSC: tsc)
            let reference = page.referenceTime(atTSC: tsc) &* 100
            guard pv <= exact, exact - pv < 3 else { return "hz \(hz) anchor \(anchor) +\(delta): pvclock \(pv), exact \(exact)" }
            let gap = pv > reference ? pv - reference : reference - pv
            guard gap < 100 else { return "hz \(hz) anchor \(anchor) +\(delta): pvclock \(pv), reference \(reference) ns" }
        }
        return nil
    }

    @Test("1 to 5 GHz, odd frequencies included, anchors up to 2^63: every read within a second of the anchor is within 100 ns of reference time, never ahead of the page")
    func bound() {
        let anchors: [UInt64] = [0, 1, 0xFFFF_FFFF, 1 << 40 | 12345, 1 << 62, (1 << 63) - 6_000_000_000, 1 << 63]
        var failures: [String] = []
        for hz in Self.frequencies {
            for anchor in anchors {
                for offset: Int64 in [0, 987_654_321, 1 << 40] {
                    if let f = Self.check(hz: hz, anchor: anchor, offset: offset) { failures.append(f) }
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
    }

    @Test("the multiplier and shift: exact where the rate is a power of two, Linux's formula reads them as documented")
    func multiplier() {
        // The page's scale is floored, so 1 GHz is just under 1 ns per tick: shift 0 and a
        // multiplier just under 2^32; 2 GHz is just under 0.5 ns (shift -1); 5 GHz 0.2 ns (-2: 0.8 * 2^-2).
        let one = PVClock.multiplier(scale: ReferenceTSCParameters(tscHz: 1_000_000_000)!.scale)
        #expect(one.shift == 0 && one.mul > 0xFFFF_FF00)
        #expect(PVClock.multiplier(scale: ReferenceTSCParameters(tscHz: 2_000_000_000)!.scale).shift == -1)
        #expect(PVClock.multiplier(scale: ReferenceTSCParameters(tscHz: 5_000_000_000)!.scale).shift == -2)
        for hz in Self.frequencies {
            let m = PVClock.multiplier(scale: ReferenceTSCParameters(tscHz: hz)!.scale)
            #expect(m.mul >= 1 << 31, "hz \(hz): normalised")
            // mul * 2^shift / 2^32 against 10^9 / hz, to a few parts in 10^9.
            let rate = Double(m.mul) * pow(2.0, Double(m.shift)) / 4_294_967_296.0
            #expect(abs(rate * Double(hz) / 1e9 - 1) < 1e-8, "hz \(hz)")
        }
        #expect(PVClock.multiplier(scale: 0) == (0, 0))
        #expect(ReferenceTSCParameters(tscHz: 10_000_000) == nil)
        // A pvclock read 1 s after the anchor at 2.3 GHz is 10^9 ns later, to the nanosecond.
        let page = ReferenceTSCParameters(tscHz: 2_300_000_000)!
        let info = PVClock.timeInfo(anchorTSC: 5_000, page: page)
        let later = PVClock.read(info, atTSC: 5_000 + 2_300_000_000)
        #expect(later - info.systemTime >= 999_999_998 && later - info.systemTime <= 1_000_000_000)
        #expect(info.flags == .tscStableBit)
    }

    @Test("the drift the re-anchoring policy bounds: under 0.5 ns per second since the anchor, so 100 s is still within 50 ns of the exact time")
    func drift() {
        for hz in Self.named {
            let page = ReferenceTSCParameters(tscHz: hz)!
            let info = PVClock.timeInfo(anchorTSC: 1 << 50, page: page)
            let tsc = (1 << 50) + hz * 100
            let lag = page.nanoseconds(atTSC: tsc) - PVClock.read(info, atTSC: tsc)
            #expect(lag < 50, "hz \(hz): \(lag) ns behind after 100 s")
        }
    }

    @Test("back from pvclock to a reference TSC page: the page describes the same clock to within one 100 ns tick over a second")
    func inverse() {
        for hz in Self.named {
            let page = ReferenceTSCParameters(tscHz: hz, offset: 42)!
            let info = PVClock.timeInfo(anchorTSC: 1 << 44, page: page)
            let back = PVClock.referenceTSC(from: info)
            for delta in [0, hz / 3, hz] {
                let a = Int64(bitPattern: page.referenceTime(atTSC: (1 << 44) + delta))
                let b = Int64(bitPattern: back.referenceTime(atTSC: (1 << 44) + delta))
                #expect(abs(a - b) <= 1, "hz \(hz) +\(delta): \(a) against \(b)")
            }
        }
    }
}
