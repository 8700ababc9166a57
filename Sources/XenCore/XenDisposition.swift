import XenABI

/// What the layer does with a Xen hypercall or sub-op, as declared in `Specs/translation/`.
/// The generator turns each disposition row into a case of a `disposition` switch on the
/// code type (`XenHypercall.disposition`, `EventChannelOp.disposition`, ...).
@frozen
public enum XenDisposition: Hashable, Sendable {
    /// Carried out through Viridian calls, MSRs or pages (named in the spec row).
    case translated
    /// Handled inside the layer, with no Viridian call.
    case layer
    /// Refused: the guest sees `-errno`.
    case rejected(XenErrno)
    /// Demultiplexed into a sub-op family whose rows carry their own dispositions.
    case subops
}
