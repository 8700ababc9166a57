import CXenViridian
import XenCore
import XVEmbedding

// The C ABI (include/xen_viridian.h): each export converts its arguments and calls
// `EmbeddedSystem`, with no logic of its own. `@c @implementation` makes the compiler check
// every signature against the header's declaration.

@c @implementation
public func xv_abi_version() -> UInt32 { XV_ABI_VERSION }

@c @implementation
public func xv_layer_frame_count(_ vcpuCount: UInt32) -> UInt64 { EmbeddedSystem.layerFrameCount(vcpuCount: vcpuCount) }

@c @implementation
public func xv_system_create(_ config: UnsafePointer<xv_system_config>?, _ callbacks: UnsafePointer<xv_callbacks>?,
                             _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guard let config, let callbacks, let out else { return XV_EINVAL }
    guard let system = EmbeddedSystem(config: config.pointee, callbacks: callbacks.pointee) else { return XV_EINVAL }
    out.pointee = OpaquePointer(Unmanaged.passRetained(system).toOpaque())
    return XV_OK
}

@c @implementation
public func xv_system_destroy(_ system: OpaquePointer?) {
    guard let system else { return }
    Unmanaged<EmbeddedSystem>.fromOpaque(UnsafeRawPointer(system)).release()
}

/// The system behind an `xv_system *`, without a retain (the embedder owns it until destroy).
@inline(__always)
func withSystem<R>(_ system: OpaquePointer?, _ otherwise: R, _ body: (EmbeddedSystem) -> R) -> R {
    guard let system else { return otherwise }
    return Unmanaged<EmbeddedSystem>.fromOpaque(UnsafeRawPointer(system))._withUnsafeGuaranteedRef(body)
}

@c @implementation
public func xv_domain_create(_ system: OpaquePointer?, _ config: UnsafePointer<xv_domain_config>?) -> Int32 {
    guard let config else { return XV_EINVAL }
    return withSystem(system, XV_EINVAL) { $0.createDomain(config.pointee) }
}

@c @implementation
public func xv_classify_hypercall(_ system: OpaquePointer?, _ domain: UInt16, _ rax: UInt64, _ cpl: UInt8,
                                  _ refusedRAX: UnsafeMutablePointer<Int64>?) -> Int32 {
    withSystem(system, XV_ESRCH) { s in
        guard let (kind, value) = s.classify(domain: domain, rax: rax, cpl: cpl) else { return XV_ESRCH }
        refusedRAX?.pointee = value
        return kind
    }
}

@c @implementation
public func xv_hypercall(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32, _ regs: UnsafePointer<xv_hypercall_regs>?) -> Int64 {
    guard let regs else { return Int64(XV_EINVAL) }
    let r = regs.pointee
    return withSystem(system, Int64(XV_ESRCH)) {
        $0.hypercall(domain: domain, vcpu: vcpu, XenHypercallRegisters(rax: r.rax, rdi: r.rdi, rsi: r.rsi, rdx: r.rdx, r10: r.r10, r8: r.r8))
    }
}

@c @implementation
public func xv_cpuid(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32, _ leaf: UInt32, _ subleaf: UInt32,
                     _ out: UnsafeMutablePointer<xv_cpuid_result>?) -> Int32 {
    withSystem(system, XV_ESRCH) { s in
        guard let (kind, r) = s.cpuid(domain: domain, vcpu: vcpu, leaf: leaf, subleaf: subleaf) else { return XV_ESRCH }
        out?.pointee = r
        return kind
    }
}

@c @implementation
public func xv_rdmsr(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32, _ msr: UInt32, _ out: UnsafeMutablePointer<UInt64>?) -> Int32 {
    withSystem(system, XV_ESRCH) { s in
        guard let (kind, value) = s.readMSR(domain: domain, vcpu: vcpu, msr: msr) else { return XV_ESRCH }
        out?.pointee = value
        return kind
    }
}

@c @implementation
public func xv_wrmsr(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32, _ msr: UInt32, _ value: UInt64) -> Int32 {
    withSystem(system, XV_ESRCH) { $0.writeMSR(domain: domain, vcpu: vcpu, msr: msr, value: value) ?? XV_ESRCH }
}

@c @implementation
public func xv_park_request(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32, _ deadline: UnsafeMutablePointer<UInt64>?) -> Int32 {
    withSystem(system, XV_ESRCH) { s in
        guard let (kind, at) = s.parkRequest(domain: domain, vcpu: vcpu) else { return XV_ESRCH }
        deadline?.pointee = at
        return kind
    }
}

@c @implementation
public func xv_resume(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32) -> Int32 {
    withSystem(system, XV_ESRCH) { $0.resume(domain: domain, vcpu: vcpu) ? XV_OK : XV_ESRCH }
}

@c @implementation
public func xv_set_guest_tsc(_ system: OpaquePointer?, _ tsc: UInt64) {
    withSystem(system, ()) { $0.setGuestTSC(tsc) }
}

@c @implementation
public func xv_system_time(_ system: OpaquePointer?, _ domain: UInt16) -> UInt64 {
    withSystem(system, UInt64.max) { $0.systemTime(domain: domain) ?? UInt64.max }
}

@c @implementation
public func xv_refresh_time(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32) -> Int32 {
    withSystem(system, XV_ESRCH) { $0.refreshTime(domain: domain, vcpu: vcpu) }
}

@c @implementation
public func xv_set_vcpu_up(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32, _ up: UInt32) -> Int32 {
    withSystem(system, XV_ESRCH) { $0.setVCPUUp(domain: domain, vcpu: vcpu, up: up != 0) ? XV_OK : XV_ESRCH }
}

@c @implementation
public func xv_viridian_hypercalls(_ system: OpaquePointer?) -> UInt64 {
    withSystem(system, 0) { $0.viridianHypercalls }
}
