import CXenProbe
import Foundation

/// What the C compiler saw of Debian's libxen-dev when the probe target was built.
enum XenHeaders {
    static let available = xv_probe_have_xen_headers() != 0

    static let missingMessage =
        "libxen-dev is not installed: run `bash .ci/test`, which installs it and recompiles the probe (or `apt-get install -y libxen-dev` and `rm -rf .build`: __has_include is evaluated at build time)"

    static var runningInCI: Bool { ProcessInfo.processInfo.environment["CI"].map { !$0.isEmpty } ?? false }

    /// C value of every macro or enum the Xen spec rows name, by name.
    static let constants: [String: (bits: UInt64, isNegative: Bool)] = {
        var out: [String: (UInt64, Bool)] = [:]
        for i in 0..<xv_probe_constant_count_get() {
            guard let c = xv_probe_constant_at(i) else { continue }
            out[String(cString: c.pointee.name)] = (c.pointee.bits, c.pointee.is_negative != 0)
        }
        return out
    }()

    static let structSizes: [String: Int] = {
        var out: [String: Int] = [:]
        for i in 0..<xv_probe_struct_count_get() {
            guard let s = xv_probe_struct_at(i) else { continue }
            out[String(cString: s.pointee.tag)] = Int(s.pointee.size)
        }
        return out
    }()

    /// (tag, dotted member) -> (offset, size, count).
    static let fields: [String: (offset: Int, size: Int, count: Int)] = {
        var out: [String: (Int, Int, Int)] = [:]
        for i in 0..<xv_probe_field_count_get() {
            guard let f = xv_probe_field_at(i) else { continue }
            out[String(cString: f.pointee.tag) + "." + String(cString: f.pointee.member)] =
                (Int(f.pointee.offset), Int(f.pointee.size), Int(f.pointee.count))
        }
        return out
    }()
}
