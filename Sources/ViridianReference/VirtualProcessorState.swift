import ViridianABI

/// The Viridian state of one VP: its SynIC registers and synthetic timers. Fixed size.
struct VirtualProcessorState {
    /// HV_X64_MSR_VP_ASSIST_PAGE.
    var vpAssistPage = HVVPAssistPageMSR(rawValue: 0)
    /// HV_X64_MSR_SCONTROL (TLFS: 0 at VP creation).
    var scontrol = HVSControlMSR(rawValue: 0)
    /// HV_X64_MSR_SIMP.
    var simp = HVSIMPMSR(rawValue: 0)
    /// HV_X64_MSR_SIEFP.
    var siefp = HVSIEFPMSR(rawValue: 0)
    /// HV_X64_MSR_SINT0...15 (reset value: masked).
    var sints = InlineArray<16, UInt64>(repeating: UInt64(SynICLimits.sintResetValue))
    var timers = InlineArray<4, SyntheticTimerState>(repeating: SyntheticTimerState())

    /// Whether the SynIC delivers messages: SCONTROL enabled and the SIM page enabled.
    var canDeliverMessages: Bool { scontrol.enable && simp.enable }
    /// Whether the SynIC delivers event flags: SCONTROL enabled and the SIEF page enabled.
    var canDeliverEvents: Bool { scontrol.enable && siefp.enable }

    func sint(_ index: Int) -> HVSINTMSR { HVSINTMSR(rawValue: sints[index]) }
}
