import CXenViridian
import XenCore
import XVEmbedding

// The C ABI (include/xen_viridian.h): each export converts its arguments and calls
// `EmbeddedSystem`, with no logic of its own. `@c @implementation` makes the compiler check
// every signature against the header's declaration.

/// `xv_abi_version`: the ABI version the library was built with (`XV_ABI_VERSION`, 3), for the embedder to compare with its header's.
@c @implementation
public func xv_abi_version() -> UInt32 { XV_ABI_VERSION }

/// `xv_layer_frame_count`: frames the translated side needs past the guest's for `vcpuCount` vCPUs (5 per vCPU and one more; 0 when the count is out of range).
@c @implementation
public func xv_layer_frame_count(_ vcpuCount: UInt32) -> UInt64 { EmbeddedSystem.layerFrameCount(vcpuCount: vcpuCount) }

/// `xv_system_create`: copies `config` and `callbacks` and writes a new system, retained once, to `*out`; XV_EINVAL for a null pointer or a configuration `EmbeddedSystem` refuses. The embedder owns the system until `xv_system_destroy`.
@c @implementation
public func xv_system_create(_ config: UnsafePointer<xv_system_config>?, _ callbacks: UnsafePointer<xv_callbacks>?,
                             _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guard let config, let callbacks, let out else { return XV_EINVAL }
    guard let system = EmbeddedSystem(config: config.pointee, callbacks: callbacks.pointee) else { return XV_EINVAL }
    out.pointee = OpaquePointer(Unmanaged.passRetained(system).toOpaque())
    return XV_OK
}

/// `xv_system_destroy`: releases the system `xv_system_create` made, and with it every domain; nothing may run in it any more. A null pointer is ignored.
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

/// `xv_domain_create`: creates a domain (translated: its partition and layer too) from `config`, borrowed for the call; XV_OK or a negative XV_E* code (XV_EINVAL also for a null pointer).
@c @implementation
public func xv_domain_create(_ system: OpaquePointer?, _ config: UnsafePointer<xv_domain_config>?) -> Int32 {
    guard let config else { return XV_EINVAL }
    return withSystem(system, XV_EINVAL) { $0.createDomain(config.pointee) }
}

/// `xv_classify_hypercall`: whether a guest's VMCALL/VMMCALL at `cpl` with this RAX goes to `xv_hypercall` (XV_CALL_XEN), is Viridian's (XV_CALL_VIRIDIAN) or is refused (XV_CALL_REFUSED, with the guest's RAX in `*refusedRAX`, which may be null); XV_ESRCH for an unknown system or domain.
@c @implementation
public func xv_classify_hypercall(_ system: OpaquePointer?, _ domain: UInt16, _ rax: UInt64, _ cpl: UInt8,
                                  _ refusedRAX: UnsafeMutablePointer<Int64>?) -> Int32 {
    withSystem(system, XV_ESRCH) { s in
        guard let (kind, value) = s.classify(domain: domain, rax: rax, cpl: cpl) else { return XV_ESRCH }
        refusedRAX?.pointee = value
        return kind
    }
}

/// `xv_hypercall`: one Xen hypercall from `vcpu` of `domain`; returns the guest's RAX (0 or a negative Xen errno; -ESRCH for an unknown domain, XV_EINVAL for null registers). `regs` is borrowed; call on the vCPU's own thread.
@c @implementation
public func xv_hypercall(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32, _ regs: UnsafePointer<xv_hypercall_regs>?) -> Int64 {
    guard let regs else { return Int64(XV_EINVAL) }
    let r = regs.pointee
    return withSystem(system, Int64(XV_ESRCH)) {
        $0.hypercall(domain: domain, vcpu: vcpu, XenHypercallRegisters(rax: r.rax, rdi: r.rdi, rsi: r.rsi, rdx: r.rdx, r10: r.r10, r8: r.r8))
    }
}

/// `xv_cpuid`: Xen's answer for CPUID `leaf`/`subleaf` into `*out` (which may be null) and XV_IDENTITY_XEN, or XV_IDENTITY_NOT_XEN / XV_IDENTITY_VIRIDIAN for the embedder's own model; XV_ESRCH for an unknown domain or vCPU.
@c @implementation
public func xv_cpuid(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32, _ leaf: UInt32, _ subleaf: UInt32,
                     _ out: UnsafeMutablePointer<xv_cpuid_result>?) -> Int32 {
    withSystem(system, XV_ESRCH) { s in
        guard let (kind, r) = s.cpuid(domain: domain, vcpu: vcpu, leaf: leaf, subleaf: subleaf) else { return XV_ESRCH }
        out?.pointee = r
        return kind
    }
}

/// `xv_rdmsr`: reads a Xen MSR (the hypercall-page MSR) into `*out`: XV_IDENTITY_XEN, XV_IDENTITY_GP for #GP(0), or NOT_XEN / VIRIDIAN for the embedder's model; XV_ESRCH for an unknown domain or vCPU.
@c @implementation
public func xv_rdmsr(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32, _ msr: UInt32, _ out: UnsafeMutablePointer<UInt64>?) -> Int32 {
    withSystem(system, XV_ESRCH) { s in
        guard let (kind, value) = s.readMSR(domain: domain, vcpu: vcpu, msr: msr) else { return XV_ESRCH }
        out?.pointee = value
        return kind
    }
}

/// `xv_wrmsr`: writes a Xen MSR (the hypercall-page MSR writes the hypercall page): XV_IDENTITY_XEN when done, XV_IDENTITY_GP for #GP(0), NOT_XEN / VIRIDIAN otherwise; XV_ESRCH for an unknown domain or vCPU.
@c @implementation
public func xv_wrmsr(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32, _ msr: UInt32, _ value: UInt64) -> Int32 {
    withSystem(system, XV_ESRCH) { $0.writeMSR(domain: domain, vcpu: vcpu, msr: msr, value: value) ?? XV_ESRCH }
}

/// `xv_park_request`: after a hypercall, whether the vCPU must sleep (XV_PARK_NONE, XV_PARK_BLOCK, XV_PARK_POLL) and a poll's deadline in Xen system time ns (UInt64.max: none) into `*deadline`, which may be null.
@c @implementation
public func xv_park_request(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32, _ deadline: UnsafeMutablePointer<UInt64>?) -> Int32 {
    withSystem(system, XV_ESRCH) { s in
        guard let (kind, at) = s.parkRequest(domain: domain, vcpu: vcpu) else { return XV_ESRCH }
        deadline?.pointee = at
        return kind
    }
}

/// `xv_resume`: resumes a parked vCPU without a wake (its poll deadline passed); XV_OK, or XV_ESRCH for an unknown domain or vCPU.
@c @implementation
public func xv_resume(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32) -> Int32 {
    withSystem(system, XV_ESRCH) { $0.resume(domain: domain, vcpu: vcpu) ? XV_OK : XV_ESRCH }
}

/// `xv_set_guest_tsc`: the guests' TSC moved forward to `tsc` (an earlier value is ignored); due Xen timers fire on this thread. One thread at a time.
@c @implementation
public func xv_set_guest_tsc(_ system: OpaquePointer?, _ tsc: UInt64) {
    withSystem(system, ()) { $0.setGuestTSC(tsc) }
}

/// `xv_system_time`: the domain's Xen system time now, in ns; UInt64.max for an unknown system or domain or when it has no time source yet.
@c @implementation
public func xv_system_time(_ system: OpaquePointer?, _ domain: UInt16) -> UInt64 {
    withSystem(system, UInt64.max) { $0.systemTime(domain: domain) ?? UInt64.max }
}

/// `xv_refresh_time`: the embedder's tick, re-anchoring the vCPU's vcpu_time_info: XV_OK, XV_ESRCH (no such domain or vCPU) or XV_EINVAL (nothing to update yet).
@c @implementation
public func xv_refresh_time(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32) -> Int32 {
    withSystem(system, XV_ESRCH) { $0.refreshTime(domain: domain, vcpu: vcpu) }
}

/// `xv_set_vcpu_up`: the embedder started (INIT/SIPI, `up` non-zero) or stopped a vCPU itself; XV_OK, or XV_ESRCH for an unknown domain or vCPU.
@c @implementation
public func xv_set_vcpu_up(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32, _ up: UInt32) -> Int32 {
    withSystem(system, XV_ESRCH) { $0.setVCPUUp(domain: domain, vcpu: vcpu, up: up != 0) ? XV_OK : XV_ESRCH }
}

/// `xv_set_hvm_param`: the toolstack sets HVM parameter `index`; XV_OK, XV_ESRCH (unknown domain) or XV_EINVAL (index out of range).
@c @implementation
public func xv_set_hvm_param(_ system: OpaquePointer?, _ domain: UInt16, _ index: UInt32, _ value: UInt64) -> Int32 {
    withSystem(system, XV_ESRCH) { $0.setHVMParameter(domain: domain, index: index, value: value) }
}

/// `xv_get_hvm_param`: HVM parameter `index` into `*value`; XV_OK, XV_ESRCH or XV_EINVAL (index out of range, null `value`).
@c @implementation
public func xv_get_hvm_param(_ system: OpaquePointer?, _ domain: UInt16, _ index: UInt32, _ value: UnsafeMutablePointer<UInt64>?) -> Int32 {
    guard let value else { return XV_EINVAL }
    return withSystem(system, XV_ESRCH) {
        let (code, v) = $0.hvmParameter(domain: domain, index: index)
        if code == XV_OK { value.pointee = v }
        return code
    }
}

/// `xv_viridian_hypercalls`: Viridian hypercalls the translated side's layers have issued so far (0 on the native side or for a null system).
@c @implementation
public func xv_viridian_hypercalls(_ system: OpaquePointer?) -> UInt64 {
    withSystem(system, 0) { $0.viridianHypercalls }
}

/// `xv_deliver_interrupt`: `EmbeddedSystem.deliverInterrupt`.
@c @implementation
public func xv_deliver_interrupt(_ system: OpaquePointer?, _ domain: UInt16, _ vcpu: UInt32, _ vector: UInt8) -> Int32 {
    withSystem(system, XV_ESRCH) { $0.deliverInterrupt(domain: domain, vcpu: vcpu, vector: vector) }
}

/// `xv_domain_save`: the domain's image into `buffer` and its size into `*size`; XV_OK, XV_ENOSPC (null or short buffer: `*size` is the size needed), XV_ESRCH or XV_EINVAL (null `size`).
@c @implementation
public func xv_domain_save(_ system: OpaquePointer?, _ domain: UInt16, _ buffer: UnsafeMutablePointer<UInt8>?, _ capacity: UInt64,
                           _ size: UnsafeMutablePointer<UInt64>?) -> Int32 {
    guard let size else { return XV_EINVAL }
    return withSystem(system, XV_ESRCH) {
        guard let image = $0.saveImage(domain: domain) else { return XV_ESRCH }
        size.pointee = UInt64(image.count)
        guard let buffer, capacity >= UInt64(image.count) else { return XV_ENOSPC }
        image.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: image.count) }
        return XV_OK
    }
}

/// `xv_domain_restore`: `EmbeddedSystem.restoreImage`; XV_OK, XV_ESRCH, XV_EINVAL (null image with a size) or XV_EIMAGE with `*refusal`.
@c @implementation
public func xv_domain_restore(_ system: OpaquePointer?, _ domain: UInt16, _ image: UnsafePointer<UInt8>?, _ size: UInt64,
                              _ refusal: UnsafeMutablePointer<UInt32>?) -> Int32 {
    guard image != nil || size == 0, size <= UInt64(Int.max) else { return XV_EINVAL }
    let bytes = image.map { Array(UnsafeBufferPointer(start: $0, count: Int(size))) } ?? []
    return withSystem(system, XV_ESRCH) {
        let (code, why) = $0.restoreImage(domain: domain, bytes)
        if let why { refusal?.pointee = why }
        return code
    }
}

/// `xv_domain_finish_restore`: `EmbeddedSystem.finishRestore`; XV_OK or XV_ESRCH.
@c @implementation
public func xv_domain_finish_restore(_ system: OpaquePointer?, _ domain: UInt16) -> Int32 {
    withSystem(system, XV_ESRCH) { $0.finishRestore(domain: domain) }
}
