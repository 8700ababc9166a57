import ViridianABI

/// The virtual clock every partition's time derives from: a virtual TSC that the embedder
/// advances, and its frequency. Reference time (100 ns units) follows the TLFS reference TSC
/// page formula `((tsc * scale) >> 64) + offset` with `scale = (10^7 << 64) / frequency`
/// (TLFS "Reference TSC Page"), and HV_X64_MSR_TIME_REF_COUNT uses the same formula, so the
/// MSR and the page agree exactly at every TSC value.
@frozen
public struct ReferenceClock: Sendable {
    /// Virtual TSC frequency in Hz; more than 10 MHz so that `scale` fits 64 bits.
    public let tscFrequency: UInt64
    /// The reference TSC page scale for `tscFrequency`.
    public let scale: UInt64
    /// The current virtual TSC.
    public var tsc: UInt64

    /// A clock at TSC 0; nil when `tscFrequency` is 10 MHz or less.
    @inlinable public init?(tscFrequency: UInt64, tsc: UInt64 = 0) {
        let hz = ViridianLimits.referenceClockHz
        guard tscFrequency > hz else { return nil }
        self.tscFrequency = tscFrequency
        self.scale = tscFrequency.dividingFullWidth((high: hz, low: 0)).quotient
        self.tsc = tsc
    }

    /// `(tsc * scale) >> 64`: reference time before the partition's offset.
    @inlinable
    public func scaled(_ tsc: UInt64) -> UInt64 { tsc.multipliedFullWidth(by: scale).high }

    /// The first TSC value at which `scaled` has moved `ticks` (100 ns) past its value now, so
    /// that advancing to it moves every partition's reference time by exactly `ticks`.
    /// Saturates at the largest TSC.
    @inlinable public func tscAfter(referenceTicks ticks: UInt64) -> UInt64 {
        let (target, overflow) = scaled(tsc).addingReportingOverflow(ticks)
        guard !overflow, target < scale else { return .max }
        // Smallest t with (t * scale) >> 64 >= target: t = ceil(target * 2^64 / scale).
        let (q, r) = scale.dividingFullWidth((high: target, low: 0))
        let (t, carry) = q.addingReportingOverflow(r == 0 ? 0 : 1)
        return carry ? .max : max(t, tsc)
    }
}
