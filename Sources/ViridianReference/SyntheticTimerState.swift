import ViridianABI

/// One synthetic timer of a VP (TLFS "Synthetic Timers"): its two MSRs and where it stands.
@usableFromInline struct SyntheticTimerState: Equatable {
    /// HV_X64_MSR_STIMERx_CONFIG.
    @usableFromInline var config = HVSTimerConfigMSR(rawValue: 0)
    /// HV_X64_MSR_STIMERx_COUNT: an absolute reference time (one-shot) or a period (periodic),
    /// in 100 ns units.
    @usableFromInline var count: UInt64 = 0
    /// Reference time of the next expiration; nil when the timer is not armed.
    @usableFromInline var deadline: UInt64?
    /// An expiration whose message (or direct interrupt) is still to be delivered: its
    /// expiration time. Retried when the SINT's slot frees (EOM) or the SynIC becomes usable.
    @usableFromInline var undelivered: UInt64?

    @inlinable var isEnabled: Bool { config.enable }
    @inlinable init(config: HVSTimerConfigMSR = HVSTimerConfigMSR(rawValue: 0), count: UInt64 = 0, deadline: UInt64? = nil, undelivered: UInt64? = nil) { self.config = config; self.count = count; self.deadline = deadline; self.undelivered = undelivered }
}
