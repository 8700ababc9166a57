import GuestABI
import XenABI
import XenCore
import XVScenarios

/// Which side a result is about.
public enum ConformanceSide: String, Sendable, CaseIterable {
    /// XenNative, or XenViridian over the reference hypervisor.
    case native, translated
}

/// Where a vector stopped matching on one side.
public struct VectorFailure: Sendable, Equatable, CustomStringConvertible {
    /// `file:line` of the step.
    public let location: String
    /// What the step expected and what the side showed.
    public let message: String
    /// `file:line: message`.
    public var description: String { "\(location): \(message)" }
}

/// Runs vectors on fresh worlds of each side (XenNative, and XenViridian over the reference
/// hypervisor), step by step, and reports the first step whose outcome differs from the
/// vector's expectation.
public enum VectorRunner {
    /// The guests' TSC frequency in these worlds (the recorder's and the reference's).
    static var tscHz: UInt64 { 2_500_000_000 }

    /// Runs `vector` on `side`; nil when every step matched.
    public static func run(_ vector: ConformanceVector, file: String, on side: ConformanceSide) -> VectorFailure? {
        let world: any XenWorld = side == .native
            ? NativeWorld(domains: vector.domains, vcpus: vector.vcpus, maxPort: vector.maxPort)
            : TranslatedWorld(domains: vector.domains, vcpus: vector.vcpus, maxPort: vector.maxPort)
        var state = RunState(world: world)
        for step in vector.steps {
            if let message = state.perform(step.action) {
                return VectorFailure(location: "\(file):\(step.line)", message: message)
            }
        }
        return nil
    }

    struct RunState {
        let world: any XenWorld
        var names: [String: UInt64] = [:]
        var tsc: UInt64 = 0

        func evaluate(_ e: VectorExpression) -> Result<UInt64, EvaluationError> {
            switch e {
            case .literal(let v): return .success(v)
            case .capture(let name):
                guard let v = names[name] else { return .failure(EvaluationError(message: "$\(name) is not set yet")) }
                return .success(v)
            case .gpa(let frame, let offset):
                return evaluate(frame).flatMap { f in evaluate(offset).map { f << guestPageShift &+ $0 } }
            case .negate(let a): return evaluate(a).map { 0 &- $0 }
            case .shift(let a, let b): return evaluate(a).flatMap { x in evaluate(b).map { x << $0 } }
            case .or(let a, let b): return evaluate(a).flatMap { x in evaluate(b).map { x | $0 } }
            case .add(let a, let b): return evaluate(a).flatMap { x in evaluate(b).map { x &+ $0 } }
            }
        }

        /// The host address of `size` bytes at the address plus the field's offset, inside one
        /// page of the domain's guest-visible memory.
        func location(_ d: Int, _ a: VectorAddress, _ f: VectorField) -> Result<UnsafeMutableRawPointer, EvaluationError> {
            evaluate(a.frame).flatMap { frame in
                evaluate(a.offset).flatMap { offset in
                    let at = offset &+ UInt64(f.offset)
                    guard frame < WorldLayout.frames, at &+ UInt64(f.size) <= guestPageSize,
                          let page = world.ram(world.domainID(d - 1)).view(frames: WorldLayout.frames).hostAddress(of: GuestFrameNumber(frame)) else {
                        return .failure(EvaluationError(message: "\(frame):\(offset) + \(f.spelling) is not inside one backed page of the guest"))
                    }
                    return .success(page + Int(at))
                }
            }
        }

        static func load(_ p: UnsafeMutableRawPointer, _ size: Int) -> UInt64 {
            switch size {
            case 1: return UInt64(p.load(as: UInt8.self))
            case 2: return UInt64(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
            case 4: return UInt64(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
            default: return UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
            }
        }

        static func store(_ p: UnsafeMutableRawPointer, _ size: Int, _ v: UInt64) {
            switch size {
            case 1: p.storeBytes(of: UInt8(truncatingIfNeeded: v), as: UInt8.self)
            case 2: p.storeBytes(of: UInt16(truncatingIfNeeded: v).littleEndian, as: UInt16.self)
            case 4: p.storeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian, as: UInt32.self)
            default: p.storeBytes(of: v.littleEndian, as: UInt64.self)
            }
        }

        /// Compares an outcome with its expectation (`size` bytes wide: a value wider than the
        /// field, such as a negative constant, is cut to it) and captures it.
        mutating func judge(_ got: UInt64, size: Int, _ expect: VectorExpectation, _ capture: String?, _ what: String) -> String? {
            if let capture { names[capture] = got }
            guard case .value(let e) = expect else { return nil }
            switch evaluate(e) {
            case .failure(let error): return error.message
            case .success(let want):
                let mask: UInt64 = size >= 8 ? .max : (1 << UInt64(size * 8)) - 1
                guard got & mask != want & mask else { return nil }
                return "\(what): expected \(Self.show(want & mask, size)), got \(Self.show(got & mask, size))"
            }
        }

        static func show(_ v: UInt64, _ size: Int) -> String {
            let signed = size >= 8 ? Int64(bitPattern: v) : Int64(bitPattern: v << UInt64(64 - size * 8)) >> Int64(64 - size * 8)
            if signed < 0, signed > -4096 {
                let name = size == 8 ? SpecNames.errnoName(-signed).map { " (-\($0))" } ?? "" : ""
                return "\(signed)\(name)"
            }
            return v < 4096 ? "\(v)" : "0x" + String(v, radix: 16)
        }

        mutating func perform(_ action: VectorStep.Action) -> String? {
            do {
                switch action {
                case .write(let d, let a, let f, let value):
                    let p = try location(d, a, f).get()
                    Self.store(p, f.size, try evaluate(value).get())
                case .read(let d, let a, let f, let expect, let capture):
                    let p = try location(d, a, f).get()
                    return judge(Self.load(p, f.size), size: f.size, expect, capture, "d\(d) \(f.spelling)")
                case .call(let d, let vcpu, let hypercall, let arguments, let expect, let capture):
                    var a = [UInt64](repeating: 0, count: 5)
                    for (i, e) in arguments.enumerated() { a[i] = try evaluate(e).get() }
                    let number = try evaluate(hypercall).get()
                    let r = world.hypercall(domain: world.domainID(d - 1), vcpu: vcpu,
                                            XenHypercallRegisters(rax: number, rdi: a[0], rsi: a[1], rdx: a[2], r10: a[3], r8: a[4]))
                    return judge(UInt64(bitPattern: r), size: 8, expect, capture, "d\(d).\(vcpu) hypercall \(number)")
                case .upcalls(let d, let vcpu, let count):
                    let want = try evaluate(count).get()
                    let got = UInt64(world.recorder.count(domain: world.domainID(d - 1), vcpu: vcpu))
                    return got == want ? nil : "d\(d).\(vcpu) upcalls: expected \(want), got \(got)"
                case .acknowledge(let d):
                    for v in 0..<world.vcpuCount { world.acknowledgeEvents(world.domainID(d - 1), vcpu: v) }
                case .advance(let ns):
                    let n = try evaluate(ns).get()
                    let ticks = n.multipliedFullWidth(by: VectorRunner.tscHz)
                    tsc &+= (ticks.high == 0 ? ticks.low / 1_000_000_000 : .max / 2)
                    world.advanceTime(toTSC: tsc)
                case .time(let d, let minimum, let maximum):
                    let lo = try evaluate(minimum).get(), hi = try evaluate(maximum).get()
                    guard let now = world.systemTime(world.domainID(d - 1)) else { return "d\(d) has no Xen system time" }
                    return now >= lo && now <= hi ? nil : "d\(d) system time \(now) ns is outside [\(lo), \(hi)]"
                case .console(let d, let text):
                    let got = world.console.text(of: world.domainID(d - 1)).joined(separator: "\n")
                    return got == text ? nil : "d\(d) console: expected \"\(text)\", got \"\(got)\""
                case .bind(let name, let value):
                    names[name] = try evaluate(value).get()
                }
            } catch {
                return error.message
            }
            return nil
        }
    }

    struct EvaluationError: Error { let message: String }
}
