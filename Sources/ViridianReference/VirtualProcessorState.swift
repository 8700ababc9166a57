import ViridianABI

/// The Viridian state of one VP: its SynIC registers and synthetic timers. Fixed size.
@usableFromInline struct VirtualProcessorState {
    /// A VP at reset: every register at its TLFS reset value.
    @inlinable init() {}
    /// HV_X64_MSR_VP_ASSIST_PAGE.
    @usableFromInline var vpAssistPage = HVVPAssistPageMSR(rawValue: 0)
    /// HV_X64_MSR_SCONTROL (TLFS: 0 at VP creation).
    @usableFromInline var scontrol = HVSControlMSR(rawValue: 0)
    /// HV_X64_MSR_SIMP.
    @usableFromInline var simp = HVSIMPMSR(rawValue: 0)
    /// HV_X64_MSR_SIEFP.
    @usableFromInline var siefp = HVSIEFPMSR(rawValue: 0)
    /// HV_X64_MSR_SINT0...15 (reset value: masked).
    @usableFromInline var sints = InlineArray<16, UInt64>(repeating: UInt64(SynICLimits.sintResetValue))
    @usableFromInline var timers = InlineArray<4, SyntheticTimerState>(repeating: SyntheticTimerState())

    /// Whether the SynIC delivers messages: SCONTROL enabled and the SIM page enabled.
    @inlinable var canDeliverMessages: Bool { scontrol.enable && simp.enable }
    /// Whether the SynIC delivers event flags: SCONTROL enabled and the SIEF page enabled.
    @inlinable var canDeliverEvents: Bool { scontrol.enable && siefp.enable }

    @inlinable func sint(_ index: Int) -> HVSINTMSR { HVSINTMSR(rawValue: sints[index]) }
}
