/// A conformance vector (the format is in Specs/README.md, "Conformance vectors"): a set of
/// domains, a sequence of steps a guest takes (guest-memory setup and Xen hypercalls) and the
/// guest-visible outcome each side must show (return values, bytes of shared pages, upcalls per
/// vCPU, console lines, time bounds).
public struct ConformanceVector: Sendable {
    /// The vector's name, unique across a run (the known-deviations list refers to it).
    public let name: String
    /// What the vector checks, from its `vector NAME: SUMMARY` line.
    public let summary: String
    /// Where the vector starts: `file:line`.
    public let location: String
    /// Domains 1 ... `domains` on each side (`domains N`, default 2).
    public var domains = 2
    /// vCPUs per domain (`vcpus M`, default 1).
    public var vcpus = 1
    /// Each domain's highest event channel port (`max-port P`, default 1023).
    public var maxPort: UInt32 = 1023
    /// The steps, in order.
    public var steps: [VectorStep] = []
}

/// A guest-physical address in a vector: frame and offset, each an expression.
public struct VectorAddress: Sendable {
    /// The guest frame number.
    public let frame: VectorExpression
    /// The byte offset in the frame.
    public let offset: VectorExpression
}

/// The width and extra offset of a memory access: `u8` … `u64`, or a Specs struct field
/// (`evtchn_send.port`, `shared_info.evtchn_pending[2]`).
public struct VectorField: Sendable {
    /// Bytes added to the address (a struct field's offset; 0 for `uN`).
    public let offset: Int
    /// The access's width in bytes: 1, 2, 4 or 8.
    public let size: Int
    /// How the vector wrote it, for messages.
    public let spelling: String
}

/// What a step expects: a value, or anything (the step only captures).
public enum VectorExpectation: Sendable {
    /// The outcome must equal this value (compared at the access's width).
    case value(VectorExpression)
    /// Any outcome matches (the step only captures it).
    case any
}

/// One step of a vector, with the line it came from.
public struct VectorStep: Sendable {
    /// What the step does.
    public enum Action: Sendable {
        /// Guest memory setup: store `value` at the address.
        case write(domain: Int, address: VectorAddress, field: VectorField, value: VectorExpression)
        /// A Xen hypercall from `vcpu` of `domain`: number, then RDI, RSI, RDX, R10, R8.
        case call(domain: Int, vcpu: Int, hypercall: VectorExpression, arguments: [VectorExpression], expect: VectorExpectation, capture: String?)
        /// A guest-visible load.
        case read(domain: Int, address: VectorAddress, field: VectorField, expect: VectorExpectation, capture: String?)
        /// The upcalls raised on the vCPU since the vector began.
        case upcalls(domain: Int, vcpu: Int, count: VectorExpression)
        /// The guest's upcall handler (2-level ABI): vcpu_info's pending flag and selector of
        /// every vCPU, and the shared_info pending words, cleared.
        case acknowledge(domain: Int)
        /// Guest time moves forward `nanoseconds` (the embedder's TSC, or the reference's clock).
        case advance(nanoseconds: VectorExpression)
        /// Xen system time of the domain now lies in [minimum, maximum] ns.
        case time(domain: Int, minimum: VectorExpression, maximum: VectorExpression)
        /// The domain's console lines so far, joined by newlines.
        case console(domain: Int, text: String)
        /// Names a value for the steps after it.
        case bind(name: String, value: VectorExpression)
    }
    /// What the step does.
    public let action: Action
    /// The step's line in its file.
    public let line: Int
}

/// An integer expression: literals, Specs constant names, `$captures`, `gpa(frame:offset)`,
/// unary minus, `<<`, `|` and `+`. Values are 64-bit two's complement.
public indirect enum VectorExpression: Sendable {
    /// A number or a Specs constant, resolved when parsed.
    case literal(UInt64)
    /// A value an earlier step captured (`as NAME`) or bound (`let`).
    case capture(String)
    /// The guest-physical address of frame:offset.
    case gpa(VectorExpression, VectorExpression)
    /// Two's complement negation (`-XEN_EINVAL`).
    case negate(VectorExpression)
    /// A left shift (`1<<$port`).
    case shift(VectorExpression, VectorExpression)
    /// Bitwise or (`GTF_permit_access|GTF_readonly`).
    case or(VectorExpression, VectorExpression)
    /// Wrapping addition (`$now+2000000`).
    case add(VectorExpression, VectorExpression)
}

/// A vector file that does not parse: `file:line: message`.
public struct VectorSyntaxError: Error, Sendable, CustomStringConvertible {
    /// `file:line` of the offending line.
    public let location: String
    /// What is wrong with it.
    public let message: String
    /// `file:line: message`.
    public var description: String { "\(location): \(message)" }
}
