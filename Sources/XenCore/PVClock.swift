import XenABI

/// A linear clock in the form of the Viridian reference TSC page (TLFS "Reference TSC Page"):
/// reference time, in 100 ns units, is `((tsc * scale) >> 64) + offset`. Both sides describe
/// the guest's time this way: the translated side reads it from the partition's page, the
/// native side derives it from the embedder's TSC frequency.
public struct ReferenceTSCParameters: Sendable, Equatable {
    /// Multiplier: reference time advances by `scale / 2^64` 100 ns units per TSC tick (TLFS `TscScale`).
    public var scale: UInt64
    /// Added to the scaled TSC, in 100 ns units; signed (TLFS `TscOffset`, read as a two's-complement value).
    public var offset: Int64

    /// A page form with the given scale and offset, taken as they are.
    @inlinable public init(scale: UInt64, offset: Int64) {
        self.scale = scale
        self.offset = offset
    }

    /// The page a hypervisor writes for a TSC of `hz` (floor(10^7 * 2^64 / hz)), which the
    /// reference hypervisor uses too; nil at 10 MHz and below, where the scale overflows.
    @inlinable public init?(tscHz hz: UInt64, offset: Int64 = 0) {
        guard hz > 10_000_000 else { return nil }
        self.scale = hz.dividingFullWidth((high: 10_000_000, low: 0)).quotient
        self.offset = offset
    }

    /// Reference time at `tsc`, in 100 ns units, as a guest reads it from the page.
    @inlinable public func referenceTime(atTSC tsc: UInt64) -> UInt64 {
        UInt64(bitPattern: Int64(bitPattern: tsc.multipliedFullWidth(by: scale).high) &+ offset)
    }

    /// The first TSC at which the page shows reference time `time` (the earliest TSC of that
    /// 100 ns tick); 0 for a time before TSC 0, the largest TSC past the last.
    @inlinable public func tsc(atReferenceTime time: UInt64) -> UInt64 {
        guard scale != 0 else { return 0 }
        let target = Int64(bitPattern: time) &- offset
        guard target > 0 else { return 0 }
        // Smallest t with (t * scale) >> 64 >= target: t = ceil(target * 2^64 / scale).
        guard UInt64(target) < scale else { return .max }
        let (q, r) = scale.dividingFullWidth((high: UInt64(target), low: 0))
        return r == 0 ? q : q &+ 1
    }

    /// The same time in nanoseconds, without the page's 100 ns rounding: floor of
    /// 100 * (tsc * scale / 2^64) plus 100 * offset (wrapping, as a u64 system time would).
    @inlinable public func nanoseconds(atTSC tsc: UInt64) -> UInt64 {
        let p = tsc.multipliedFullWidth(by: scale)
        let whole = p.high &* 100
        let fraction = UInt64(100).multipliedFullWidth(by: p.low).high
        return whole &+ fraction &+ UInt64(bitPattern: offset &* 100)
    }
}

/// The fields of a Xen vcpu_time_info (xen/include/public/xen.h) besides its version.
public struct PVClockTimeInfo: Sendable, Equatable {
    /// `tsc_timestamp`: the TSC at which `systemTime` was taken.
    public var tscTimestamp: UInt64
    /// `system_time`: Xen system time at `tscTimestamp`, in ns.
    public var systemTime: UInt64
    /// `tsc_to_system_mul`: ns per (shifted) TSC tick as a 0.32 fixed-point fraction: ns = ((delta shifted by `tscShift`) * mul) >> 32.
    public var tscToSystemMul: UInt32
    /// `tsc_shift`: power of two applied to the TSC delta before the multiply (negative: a right shift).
    public var tscShift: Int8
    /// `flags`: XEN_PVCLOCK_* bits (TSC_STABLE).
    public var flags: PVClockFlags

    /// The fields as given; the version field is written separately by whoever publishes them.
    @inlinable public init(tscTimestamp: UInt64, systemTime: UInt64, tscToSystemMul: UInt32, tscShift: Int8, flags: PVClockFlags) {
        self.tscTimestamp = tscTimestamp
        self.systemTime = systemTime
        self.tscToSystemMul = tscToSystemMul
        self.tscShift = tscShift
        self.flags = flags
    }
}

/// The conversion between a reference TSC page and Xen's pvclock, and back.
///
/// Xen's own set_time_scale (xen/arch/x86/time.c) halves the frequency until it fits 32 bits
/// and divides, which loses up to a few parts in 10^9 at odd frequencies. The layer computes
/// the multiplier from the page's 64-bit scale instead: `mul = floor(100 * scale / 2^(32 +
/// shift))`, with the shift that puts `mul` in [2^31, 2^32), so the rate is low by less than
/// 2^-31 (0.47 ns per second), and the anchor is the page's time floored to the nanosecond.
/// A guest's pvclock read (Linux pvclock_scale_delta) is therefore never ahead of the page's
/// exact time, and falls behind it by under 3 ns (the floored anchor, and the ticks a negative
/// shift drops) plus 0.47 ns per second since the anchor.
///
/// Re-anchoring policy: a vCPU's time info is rewritten at least once a second of guest
/// time (`XenDomain.refreshTime`, called from the embedder's tick) and whenever the page's
/// scale or offset changes (a restore or migration moves them). Within a second of its anchor a
/// pvclock read lies in (exact - 3.5 ns, exact], so it is within 100 ns of the reference time a
/// guest reads from the page (which floors to 100 ns) at every read.
public enum PVClock {
    /// The vcpu_time_info anchored at `anchorTSC` for a clock described by `page`.
    @inlinable public static func timeInfo(anchorTSC: UInt64, page: ReferenceTSCParameters, flags: PVClockFlags = .tscStableBit) -> PVClockTimeInfo {
        let (mul, shift) = multiplier(scale: page.scale)
        return PVClockTimeInfo(tscTimestamp: anchorTSC, systemTime: page.nanoseconds(atTSC: anchorTSC),
                               tscToSystemMul: mul, tscShift: shift, flags: flags)
    }

    /// `tsc_to_system_mul` and `tsc_shift` for nanoseconds per tick of 100 * scale / 2^64.
    /// A zero scale (a stopped clock) gives a zero multiplier.
    @inlinable public static func multiplier(scale: UInt64) -> (mul: UInt32, shift: Int8) {
        guard scale != 0 else { return (0, 0) }
        // x = 100 * scale, a 71-bit number; its bit length b puts mul = x >> (b - 32) in
        // [2^31, 2^32), and mul * 2^shift / 2^32 = x / 2^64 gives shift = b - 64.
        let x = UInt64(100).multipliedFullWidth(by: scale)
        let bits = x.high != 0 ? 128 - x.high.leadingZeroBitCount : 64 - x.low.leadingZeroBitCount
        let right = bits - 32
        let mul: UInt64
        if right >= 64 {
            mul = x.high >> UInt64(right - 64)
        } else if right > 0 {
            mul = x.low >> UInt64(right) | (x.high << UInt64(64 - right))
        } else {
            mul = x.low << UInt64(-right)
        }
        return (UInt32(truncatingIfNeeded: mul), Int8(bits - 64))
    }

    /// What a guest reads at `tsc` (Linux arch/x86/include/asm/pvclock.h: the delta shifted,
    /// then multiplied as a 0.32 fixed-point fraction, added to system_time).
    @inlinable public static func read(_ info: PVClockTimeInfo, atTSC tsc: UInt64) -> UInt64 {
        var delta = tsc &- info.tscTimestamp
        if info.tscShift < 0 { delta >>= UInt64(-Int(info.tscShift)) } else { delta <<= UInt64(info.tscShift) }
        let p = delta.multipliedFullWidth(by: UInt64(info.tscToSystemMul))
        return info.systemTime &+ ((p.high << 32) | (p.low >> 32))
    }

    /// The reference TSC page that describes the same clock as `info`: the scale from its
    /// rate (100 ns units per tick, 0.64 fixed point), the offset from its anchor.
    @inlinable public static func referenceTSC(from info: PVClockTimeInfo) -> ReferenceTSCParameters {
        // ns per tick = mul * 2^shift / 2^32; reference ticks per TSC tick = that / 100, and
        // scale = that * 2^64 = mul * 2^(32 + shift) / 100.
        let up = 32 + Int(info.tscShift)
        let numerator: (high: UInt64, low: UInt64)
        let mul = UInt64(info.tscToSystemMul)
        if up >= 64 {
            numerator = (mul << UInt64(up - 64), 0)
        } else if up > 0 {
            numerator = (mul >> UInt64(64 - up), mul << UInt64(up))
        } else {
            numerator = (0, mul >> UInt64(-up))
        }
        let scale = numerator.high >= 100 ? UInt64.max : UInt64(100).dividingFullWidth(numerator).quotient
        let page = ReferenceTSCParameters(scale: scale, offset: 0)
        // offset (100 ns units) so that the page's time at the anchor is system_time.
        let atAnchor = Int64(bitPattern: page.referenceTime(atTSC: info.tscTimestamp))
        return ReferenceTSCParameters(scale: scale, offset: Int64(bitPattern: info.systemTime / 100) &- atAnchor)
    }
}
