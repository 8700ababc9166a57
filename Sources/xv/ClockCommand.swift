import ArgumentParser
import XenABI
import XenCore

/// `xv clock`: the pvclock conversion the layer uses, as a tool for checking a host's clock
/// and for conformance vectors (Docs/Layer.md, "Time").
struct ClockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clock",
        abstract: "Print, as JSON, the vcpu_time_info the layer writes for a reference TSC page, and what a guest reads through it.",
        discussion: """
            Forward (the default): from the reference TSC page (--scale, --offset, or --tsc-hz for the scale a hypervisor \
            writes for that TSC frequency), the vcpu_time_info the layer writes when it anchors at --anchor-tsc (default: \
            --tsc), the time a guest reads through it at --tsc (Linux's pvclock formula), and the Viridian reference time at \
            --tsc. Reverse (--from-pvclock): from vcpu_time_info fields to the reference TSC page that describes the same clock.
            """
    )

    @Option(help: "TSC frequency in Hz (gives the page's scale: floor(10^7 * 2^64 / Hz)).")
    var tscHz: UInt64?

    @Option(help: "The reference TSC page's TscScale (overrides --tsc-hz).")
    var scale: UInt64?

    @Option(parsing: .unconditional, help: "The reference TSC page's TscOffset, in 100 ns units; may be negative.")
    var offset: Int64 = 0

    @Option(help: "The TSC at which the guest reads.")
    var tsc: UInt64

    @Option(help: "The TSC at which the layer anchors vcpu_time_info (default: --tsc).")
    var anchorTsc: UInt64?

    @Flag(help: "Go the other way: from --mul, --shift, --tsc-timestamp and --system-time to a reference TSC page.")
    var fromPvclock = false

    @Option(help: "tsc_to_system_mul (with --from-pvclock).")
    var mul: UInt32?

    @Option(parsing: .unconditional, help: "tsc_shift (with --from-pvclock); may be negative.")
    var shift: Int8?

    @Option(help: "tsc_timestamp (with --from-pvclock).")
    var tscTimestamp: UInt64?

    @Option(help: "system_time in ns (with --from-pvclock).")
    var systemTime: UInt64?

    func run() throws {
        var out = ""
        try (fromPvclock ? reverse() : forward()).write(into: &out)
        print(out)
    }

    static func u(_ v: UInt64) -> JSONValue { .integer(magnitude: v, negative: false) }
    static func i(_ v: Int64) -> JSONValue { .integer(magnitude: v.magnitude, negative: v < 0) }

    func page() throws -> ReferenceTSCParameters {
        if let scale { return ReferenceTSCParameters(scale: scale, offset: offset) }
        guard let hz = tscHz else { throw ValidationError("give --tsc-hz or --scale") }
        guard let p = ReferenceTSCParameters(tscHz: hz, offset: offset) else { throw ValidationError("--tsc-hz must be above 10 MHz") }
        return p
    }

    static func timeInfo(_ info: PVClockTimeInfo) -> JSONValue {
        .object([("tsc_timestamp", u(info.tscTimestamp)), ("system_time", u(info.systemTime)),
                 ("tsc_to_system_mul", u(UInt64(info.tscToSystemMul))), ("tsc_shift", i(Int64(info.tscShift))),
                 ("flags", u(UInt64(info.flags.rawValue)))])
    }

    static func reading(_ page: ReferenceTSCParameters, _ info: PVClockTimeInfo, tsc: UInt64) -> [(String, JSONValue)] {
        let guest = PVClock.read(info, atTSC: tsc)
        let reference = page.referenceTime(atTSC: tsc)
        let difference = Int64(bitPattern: guest &- reference &* 100)
        return [("guest_time_ns", u(guest)), ("reference_time_100ns", u(reference)), ("reference_time_ns", u(reference &* 100)),
                ("exact_ns", u(page.nanoseconds(atTSC: tsc))), ("difference_ns", i(difference)), ("within_100ns", .bool(difference.magnitude < 100))]
    }

    func forward() throws -> JSONValue {
        let p = try page()
        let anchor = anchorTsc ?? tsc
        let info = PVClock.timeInfo(anchorTSC: anchor, page: p)
        var input: [(String, JSONValue)] = [("scale", Self.u(p.scale)), ("offset", Self.i(p.offset)), ("anchor_tsc", Self.u(anchor)), ("tsc", Self.u(tsc))]
        if let tscHz { input.insert(("tsc_hz", Self.u(tscHz)), at: 0) }
        return .object([("input", .object(input)), ("vcpu_time_info", Self.timeInfo(info))] + Self.reading(p, info, tsc: tsc))
    }

    func reverse() throws -> JSONValue {
        guard let mul, let shift, let tscTimestamp, let systemTime else {
            throw ValidationError("--from-pvclock needs --mul, --shift, --tsc-timestamp and --system-time")
        }
        let info = PVClockTimeInfo(tscTimestamp: tscTimestamp, systemTime: systemTime, tscToSystemMul: mul, tscShift: shift, flags: .tscStableBit)
        let p = PVClock.referenceTSC(from: info)
        return .object([("vcpu_time_info", Self.timeInfo(info)),
                        ("reference_tsc_page", .object([("scale", Self.u(p.scale)), ("offset", Self.i(p.offset))]))] + Self.reading(p, info, tsc: tsc))
    }
}
