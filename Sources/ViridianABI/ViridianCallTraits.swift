/// Traits of Viridian call codes and MSRs that the spec tables record as row attributes; the
/// generated `HVCallCode.callClass`, `HVCallCode.hasFastForm` and `HVMSR.access` return them.

/// TLFS "Hypercall Classes": a simple call does one unit of work; a rep call repeats it over
/// a list whose length is the input value's rep count.
@frozen
public enum HypercallClass: Sendable, Hashable {
    /// One unit of work per call; the rep count must be 0 (TLFS: HV_STATUS_INVALID_HYPERCALL_INPUT otherwise).
    case simple
    /// Repeats over a list of rep-count elements and reports the reps completed in the result value.
    case rep
}

/// How a synthetic MSR may be accessed (TLFS Appendix C "Synthetic MSRs").
@frozen
public enum MSRAccess: Sendable, Hashable {
    /// A write raises #GP.
    case readOnly
    /// Reads and writes are both allowed (a write may still raise #GP for a value the MSR refuses).
    case readWrite
    /// Reads return 0 (HV_X64_MSR_EOM) or raise #GP, as the MSR's row says.
    case writeOnly
}
