import Foundation

/// Text forms of a run's results: the exits by kind, and the hypercall sequence.
public enum XenHostReport {
    /// The exits of one domain, one kind per line.
    public static func exits(_ e: XenHostExits) -> String {
        var out = "  exits: \(e.total) (hypercalls \(e.hypercalls.values.reduce(0, +)), MSR \(e.msr), debug console \(e.console), MMIO \(e.mmio), interrupted \(e.interrupted))\n"
        for (number, count) in e.hypercalls.sorted(by: { $0.key < $1.key }) { out += "    hypercall \(number): \(count)\n" }
        for (port, count) in e.unservedPorts.sorted(by: { $0.key < $1.key }) { out += "    port 0x\(String(port, radix: 16)) (no device): \(count)\n" }
        return out
    }

    /// The run's hypercalls, one line each (domain, vCPU, number, the five argument
    /// registers, result), for comparing two runs.
    public static func hypercallLines(_ result: XenHostResult) -> [String] {
        result.domains.flatMap { d in
            d.hypercalls.map { c in
                "d\(d.id) v\(c.vcpu) \(c.number) " + c.arguments.map { "0x" + String($0, radix: 16) }.joined(separator: " ") + " => \(c.result)"
            }
        }
    }

    /// The hypercall sequence as a conformance vector for the record (Specs/README.md): each
    /// call with its argument registers and the result the guest got. The guest memory the
    /// arguments point at is not part of it, so the runner cannot replay it.
    public static func conformanceVector(_ result: XenHostResult, name: String) -> String {
        var out = "# Recorded by xv run (\(result.side.rawValue) side) from \(name): each hypercall's registers and result.\n"
        out += "# Guest memory is not recorded: a record, not a vector the runner replays.\n"
        for line in hypercallLines(result) { out += "# \(line)\n" }
        return out
    }
}
