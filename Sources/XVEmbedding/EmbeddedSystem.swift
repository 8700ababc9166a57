import CGuestAtomics
import CXenViridian
import GuestABI
import ViridianABI
import ViridianReference
import XenABI
import XenCore
import XenNative
import XenViridian

/// One embedder's set of domains on one side, native or translated over the bundled reference
/// hypervisor: what an `xv_system` is (include/xen_viridian.h, Docs/CABI.md). The C exports
/// only convert arguments and call these methods.
///
/// Threads: `createDomain` is serialised with itself and may overlap with other domains'
/// calls; every per-vCPU entry follows the threading contract (Docs/Threading.md); the domain
/// lookups are loads, with no lock and no reference counting.
public final class EmbeddedSystem {
    /// Which side a system runs: the native baseline, or the translation layer over the bundled reference (`XV_SIDE_*`).
    public enum Side { case native, translated, target }
    /// The side chosen at creation.
    public let side: Side
    let callbacks: xv_callbacks
    let sink: EmbedderSink
    let console: EmbedderConsole
    let waker: EmbedderWaker
    let directory = DomainDirectory()
    /// The native side's system (nil when translated).
    let native: NativeSystem?
    /// The translated side's reference hypervisor, its host and the root (nil when native).
    let reference: BundledReference?
    let host: ReferenceHostAdapter?
    let root: XenViridianRoot<BundledReference>?
    /// XV_SIDE_TARGET's root over the embedder's target (nil on the other sides).
    let targetRoot: XenViridianRoot<CallbackTarget>?
    /// Serialises domain creation (the partition and the layer are made together).
    let creationLock: UnsafeMutablePointer<UInt32>

    /// Partitions the bundled reference hypervisor can hold (its partition ids are 1 ... this).
    public static var maxTranslatedDomains: Int { 1024 }

    /// A system, or nil when the configuration is not one this ABI version accepts (an unknown
    /// side, non-zero reserved fields) or the callbacks lack `upcall`.
    public init?(config: xv_system_config, callbacks table: xv_callbacks) {
        guard config.reserved0 == 0, reservedFieldsClear(config.reserved), let checked = EmbedderCallbacks(table), (config.target != nil) == (config.side == XV_SIDE_TARGET) else { return nil }
        var callbackTarget: CallbackTarget?
        if let t = config.target {
            guard let checkedTarget = CallbackTarget(t.pointee) else { return nil }
            callbackTarget = checkedTarget
        }
        callbacks = checked.table
        let hz = config.tsc_hz == 0 ? 2_500_000_000 : config.tsc_hz
        sink = EmbedderSink(callbacks: callbacks, tscHz: hz)
        console = EmbedderConsole(callbacks)
        waker = EmbedderWaker(callbacks)
        creationLock = .allocate(capacity: 1)
        creationLock.initialize(to: 0)
        switch config.side {
        case XV_SIDE_NATIVE:
            side = .native
            native = NativeSystem(sink: sink)
            reference = nil; host = nil; root = nil; targetRoot = nil
        case XV_SIDE_TRANSLATED:
            side = .translated
            native = nil
            let host = ReferenceHostAdapter(callbacks: callbacks, capacity: Self.maxTranslatedDomains)
            guard let reference = BundledReference(host: host, tscFrequency: hz) else { creationLock.deallocate(); return nil }
            self.host = host
            self.reference = reference
            root = XenViridianRoot(target: reference)
            targetRoot = nil
        case XV_SIDE_TARGET:
            side = .target
            native = nil; reference = nil; host = nil; root = nil
            targetRoot = XenViridianRoot(target: callbackTarget!)
        default:
            creationLock.deallocate()
            return nil
        }
        sink.timers = directory
        sink.native = native
        host?.directory = directory
    }

    deinit { creationLock.deallocate() }

    /// The frames the translated side needs past a guest's, for `vcpuCount` vCPUs.
    public static func layerFrameCount(vcpuCount: UInt32) -> UInt64 {
        vcpuCount == 0 || vcpuCount > 32 ? 0 : UInt64(LayerConfiguration.layerFrameCount(vcpuCount: Int(vcpuCount)))
    }

    /// Creates a domain from the embedder's configuration: 0 or an XV_E* code.
    public func createDomain(_ c: xv_domain_config) -> Int32 {
        guard c.reserved0 == 0, reservedFieldsClear(c.reserved), c.flags & ~UInt32(XV_DOMAIN_VIRIDIAN_DUAL) == 0, let table = c.page_table,
              c.vcpu_count >= 1, c.vcpu_count <= 32, c.frames > 0, c.frames <= UInt64(Int.max) >> guestPageShift,
              c.domain >= 1, DomainID(c.domain) < DomainID.firstReserved, c.max_port <= 131_071,
              (c.partition != 0) == (side == .target) else { return XV_EINVAL }
        let id = DomainID(c.domain)
        let vcpus = Int(c.vcpu_count)
        let maxPages = c.max_pages == 0 ? c.frames : c.max_pages
        guard maxPages >= c.frames else { return XV_EINVAL }
        let identity = XenGuestIdentity(layout: c.flags & UInt32(XV_DOMAIN_VIRIDIAN_DUAL) != 0 ? .xenWithViridian : .xenOnly)
        let config = DomainConfiguration(id: id, vcpuCount: vcpus, maxPort: c.max_port == 0 ? 1023 : c.max_port,
                                         sharedInfoFrame: GuestFrameNumber(c.shared_info_gfn), identity: identity,
                                         memory: .flat(frames: c.frames, maxPages: maxPages))
        // Argument addresses past the guest's frames are linear ones, walked by the embedder.
        let linear = callbacks.translate_linear.map { GuestLinearTranslator(translate: $0, context: callbacks.context, domain: c.domain) }
        let guestView = GuestRAMRegion(table: table, frameCount: c.frames, linear: linear)
        let physmap = EmbedderPhysmap(callbacks, domain: c.domain, table: table, frames: c.frames)
        xv_spin_lock(creationLock)
        defer { xv_spin_unlock(creationLock) }
        guard !directory.contains(id) else { return XV_EEXIST }
        if let native {
            guard native.domain(id) == nil else { return XV_EEXIST }
            guard let domain = try? native.createDomain(config, memory: guestView) else { return XV_EINVAL }
            attach(domain, physmap)
            guard directory.insert(DomainRecord(id: id, vcpuCount: vcpus, layer: nil, secondLevel: physmap)) else { return XV_EEXIST }
            return XV_OK
        }
        // Both layered sides: the partition's memory is the guest's frames and the layer's.
        let partitionFrames = c.frames + UInt64(LayerConfiguration.layerFrameCount(vcpuCount: vcpus))
        let partitionMemory = GuestRAMRegion(table: table, frameCount: partitionFrames)
        let secondLevel = EmbedderPhysmap(callbacks, domain: c.domain, table: table, frames: partitionFrames)
        if let targetRoot {
            let layer: TargetLayer
            do {
                layer = try TargetLayer(config, layer: LayerConfiguration(partition: PartitionID(c.partition), layerFrames: GuestFrameNumber(c.frames)),
                                        memory: guestView, partitionMemory: partitionMemory, root: targetRoot, sink: sink)
            } catch { return Self.code(error) }
            attach(layer.domain, physmap)
            guard directory.insert(DomainRecord(id: id, vcpuCount: vcpus, layer: nil, targetLayer: layer, secondLevel: secondLevel)) else { return XV_EEXIST }
            return XV_OK
        }
        guard let reference, let root, let host else { return XV_EINVAL }
        let capacity = Int(config.maxPort) + 2 + Self.maxTranslatedDomains
        guard let partition = try? reference.createPartition(PartitionConfiguration(vpCount: vcpus, maxPorts: capacity, maxConnections: capacity),
                                                             memory: partitionMemory) else { return XV_ENODEV }
        host.setDomain(id, of: partition)
        let layer: TranslatedLayer
        do {
            layer = try TranslatedLayer(config, layer: LayerConfiguration(partition: partition, layerFrames: GuestFrameNumber(c.frames)),
                                        memory: guestView, partitionMemory: partitionMemory, root: root, sink: sink)
        } catch { return Self.code(error) }
        attach(layer.domain, physmap)
        guard directory.insert(DomainRecord(id: id, vcpuCount: vcpus, layer: layer, secondLevel: secondLevel)) else { return XV_EEXIST }
        return XV_OK
    }

    /// The C ABI's code for a layer that could not be made.
    static func code(_ error: DomainConfigurationError) -> Int32 {
        switch error {
        case .invalidDomainID: return XV_EEXIST
        case .targetRefused, .layerFramesNotBacked, .layerFramesVisibleToGuest: return XV_ENODEV
        default: return XV_EINVAL
        }
    }

    private func attach(_ domain: XenDomain<GuestRAMRegion>, _ physmap: EmbedderPhysmap) {
        if callbacks.console != nil { domain.consoleSink = console }
        domain.waker = waker
        domain.physmap = physmap
    }

    /// Runs `body` with the domain's core state and a fabric-bound call, without a retain.
    @inline(__always)
    func withDomain<R>(_ id: UInt16, _ body: (XenDomain<GuestRAMRegion>) -> R) -> R? {
        directory.withRecord(DomainID(id)) { r in
            if let layer = r.layer { return body(layer.domain) }
            if let layer = r.targetLayer { return body(layer.domain) }
            return native!.withDomain(r.id, body)
        } ?? nil
    }

    /// A guest's Xen hypercall: the value for its RAX. An unknown domain is -ESRCH and a vCPU
    /// outside the domain -EINVAL.
    @inline(__always)
    public func hypercall(domain id: UInt16, vcpu: UInt32, _ registers: XenHypercallRegisters) -> Int64 {
        directory.withRecord(DomainID(id)) { r in
            guard Int(vcpu) < r.vcpuCount else { return XenErrno.einval.hypercallReturnValue }
            if let layer = r.layer { return layer.hypercall(vcpu: Int(vcpu), registers) }
            if let layer = r.targetLayer { return layer.hypercall(vcpu: Int(vcpu), registers) }
            return native!.hypercall(domain: r.id, vcpu: Int(vcpu), registers)
        } ?? XenErrno.esrch.hypercallReturnValue
    }

    /// What a hypercall instruction is: XV_CALL_* and, when refused, the guest's RAX.
    public func classify(domain id: UInt16, rax: UInt64, cpl: UInt8) -> (Int32, Int64)? {
        withDomain(id) { d in
            switch d.classifyHypercall(rax: rax, cpl: cpl) {
            case .xen: return (XV_CALL_XEN, 0)
            case .viridian: return (XV_CALL_VIRIDIAN, 0)
            case .refused(let value): return (XV_CALL_REFUSED, value)
            }
        }
    }

    /// Xen's CPUID leaves: XV_IDENTITY_* and the answer.
    public func cpuid(domain id: UInt16, vcpu: UInt32, leaf: UInt32, subleaf: UInt32) -> (Int32, xv_cpuid_result)? {
        withDomain(id) { d in
            guard Int(vcpu) < d.vcpuCount else { return nil }
            switch d.cpuid(leaf: leaf, subleaf: subleaf, vcpu: Int(vcpu)) {
            case .xen(let r): return (XV_IDENTITY_XEN, xv_cpuid_result(eax: r.eax, ebx: r.ebx, ecx: r.ecx, edx: r.edx))
            case .viridian: return (XV_IDENTITY_VIRIDIAN, xv_cpuid_result())
            case .notHypervisor: return (XV_IDENTITY_NOT_XEN, xv_cpuid_result())
            }
        } ?? nil
    }

    /// Xen's MSRs (the hypercall page): XV_IDENTITY_* and the value read.
    public func readMSR(domain id: UInt16, vcpu: UInt32, msr: UInt32) -> (Int32, UInt64)? {
        withDomain(id) { d in
            guard Int(vcpu) < d.vcpuCount else { return nil }
            switch d.readMSR(msr, vcpu: Int(vcpu)) {
            case .xen(.value(let v)): return (XV_IDENTITY_XEN, v)
            case .xen(.generalProtection): return (XV_IDENTITY_GP, 0)
            case .viridian: return (XV_IDENTITY_VIRIDIAN, 0)
            case .notHypervisor: return (XV_IDENTITY_NOT_XEN, 0)
            }
        } ?? nil
    }

    /// WRMSR of a Xen MSR: XV_IDENTITY_XEN when done, XV_IDENTITY_GP for #GP(0), XV_IDENTITY_VIRIDIAN or XV_IDENTITY_NOT_XEN for the embedder's model; nil for an unknown domain or vCPU.
    public func writeMSR(domain id: UInt16, vcpu: UInt32, msr: UInt32, value: UInt64) -> Int32? {
        withDomain(id) { d in
            guard Int(vcpu) < d.vcpuCount else { return nil }
            switch d.writeMSR(msr, value: value, vcpu: Int(vcpu)) {
            case .xen(.done): return XV_IDENTITY_XEN
            case .xen(.generalProtection): return XV_IDENTITY_GP
            case .viridian: return XV_IDENTITY_VIRIDIAN
            case .notHypervisor: return XV_IDENTITY_NOT_XEN
            }
        } ?? nil
    }

    /// The vCPU's park request: XV_PARK_* and a poll's deadline (UInt64.max: none).
    public func parkRequest(domain id: UInt16, vcpu: UInt32) -> (Int32, UInt64)? {
        withDomain(id) { d in
            guard Int(vcpu) < d.vcpuCount else { return nil }
            switch d.parkRequest(Int(vcpu)) {
            case nil: return (XV_PARK_NONE, UInt64.max)
            case .block: return (XV_PARK_BLOCK, UInt64.max)
            case .poll(let deadline): return (XV_PARK_POLL, deadline ?? UInt64.max)
            }
        } ?? nil
    }

    /// Resumes a parked vCPU without a wake (`XenDomain.resume`); false for an unknown domain or vCPU.
    public func resume(domain id: UInt16, vcpu: UInt32) -> Bool {
        withDomain(id) { d in
            guard Int(vcpu) < d.vcpuCount else { return false }
            d.resume(Int(vcpu))
            return true
        } ?? false
    }

    /// The guests' TSC moves to `tsc`: the native side fires its due timers (each once, by
    /// compare-and-swap against a re-arm), the translated side advances the reference's clock,
    /// which fires the synthetic timers.
    public func setGuestTSC(_ tsc: UInt64) {
        if let reference { reference.advance(toTSC: tsc); return }
        guard native != nil else { return }
        if tsc > sink.guestTSC() { xv_store_release_u64(sink.tsc, tsc) }
        let now = sink.systemTimeNow()
        directory.forEach { r in
            for v in 0..<r.vcpuCount {
                let w = xv_load_acquire_u64(r.timers + v)
                guard w != 0, w - 1 <= now, xv_cas_u64(r.timers + v, w, 0) else { continue }
                native!.timerExpired(domain: r.id, vcpu: v)
            }
        }
    }

    /// Xen system time of the domain (ns), nil without a time source.
    public func systemTime(domain id: UInt16) -> UInt64? {
        directory.withRecord(DomainID(id)) { r in
            if let layer = r.layer { return layer.domain.systemTime(fabric: layer) }
            if let layer = r.targetLayer { return layer.domain.systemTime(fabric: layer) }
            return native!.withDomain(r.id) { $0.systemTime(fabric: native!) } ?? nil
        } ?? nil
    }

    /// Re-anchors the vCPU's vcpu_time_info: XV_OK, XV_ESRCH (no such domain or vCPU) or
    /// XV_EINVAL (no time source yet, or the guest registered nothing to update).
    public func refreshTime(domain id: UInt16, vcpu: UInt32) -> Int32 {
        directory.withRecord(DomainID(id)) { r in
            guard Int(vcpu) < r.vcpuCount else { return XV_ESRCH }
            let done: Bool
            if let layer = r.layer { done = layer.domain.refreshTime(vcpu: Int(vcpu), fabric: layer) }
            else if let layer = r.targetLayer { done = layer.domain.refreshTime(vcpu: Int(vcpu), fabric: layer) }
            else { done = native!.withDomain(r.id) { $0.refreshTime(vcpu: Int(vcpu), fabric: native!) } ?? false }
            return done ? XV_OK : XV_EINVAL
        } ?? XV_ESRCH
    }

    /// The embedder started or stopped `vcpu` itself (`XenDomain.setVCPUUp`); false for an unknown domain or vCPU.
    public func setVCPUUp(domain id: UInt16, vcpu: UInt32, up: Bool) -> Bool {
        directory.withRecord(DomainID(id)) { r in
            guard Int(vcpu) < r.vcpuCount else { return false }
            if let layer = r.layer { layer.domain.setVCPUUp(Int(vcpu), up, fabric: layer); return true }
            if let layer = r.targetLayer { layer.domain.setVCPUUp(Int(vcpu), up, fabric: layer); return true }
            native!.withDomain(r.id) { $0.setVCPUUp(Int(vcpu), up, fabric: native!) }
            return true
        } ?? false
    }

    /// The toolstack sets HVM parameter `index` (`XenDomain.setHVMParameter`): XV_OK, XV_ESRCH
    /// (no such domain) or XV_EINVAL (an index at or past HVM_NR_PARAMS).
    public func setHVMParameter(domain id: UInt16, index: UInt32, value: UInt64) -> Int32 {
        (withDomain(id) { $0.setHVMParameter(HVMParam(rawValue: index), value) ? XV_OK : XV_EINVAL }) ?? XV_ESRCH
    }

    /// The domain's image (`XenDomain.saveImage`, the translated side's SynIC drained first); nil for an unknown domain.
    public func saveImage(domain id: UInt16) -> [UInt8]? {
        directory.withRecord(DomainID(id)) { r -> [UInt8]? in
            if let layer = r.layer { return layer.saveImage() }
            if let layer = r.targetLayer { return layer.saveImage() }
            return native!.saveImage(of: r.id)
        } ?? nil
    }

    /// Restores an image into a fresh domain: XV_OK; XV_ESRCH for an unknown domain; XV_EIMAGE
    /// and the refusal's XV_IMAGE_REFUSED_* number when refused.
    public func restoreImage(domain id: UInt16, _ bytes: [UInt8]) -> (code: Int32, refusal: UInt32?) {
        directory.withRecord(DomainID(id)) { r -> (code: Int32, refusal: UInt32?) in
            do throws(DomainImageRefusal) {
                if let layer = r.layer { try layer.restoreImage(bytes) }
                else if let layer = r.targetLayer { try layer.restoreImage(bytes) }
                else { _ = try native!.restoreImage(of: r.id, from: bytes) }
                return (XV_OK, nil)
            } catch {
                return (XV_EIMAGE, error.rawValue)
            }
        } ?? (XV_ESRCH, nil)
    }

    /// The restore's second step (`XenDomain.finishRestore`): XV_OK or XV_ESRCH.
    public func finishRestore(domain id: UInt16) -> Int32 {
        directory.withRecord(DomainID(id)) { r -> Int32 in
            if let layer = r.layer { layer.finishRestore() }
            else if let layer = r.targetLayer { layer.finishRestore() }
            else { native!.finishRestore(of: r.id) }
            return XV_OK
        } ?? XV_ESRCH
    }

    /// HVM parameter `index` as the toolstack reads it: XV_OK and the value, or XV_ESRCH /
    /// XV_EINVAL (and 0) as for `setHVMParameter`.
    public func hvmParameter(domain id: UInt16, index: UInt32) -> (code: Int32, value: UInt64) {
        guard let value = withDomain(id, { $0.hvmParameter(HVMParam(rawValue: index)) }) else { return (XV_ESRCH, 0) }
        guard let value else { return (XV_EINVAL, 0) }
        return (XV_OK, value)
    }

    /// Viridian hypercalls every layer issued (0 native).
    public var viridianHypercalls: UInt64 {
        var total: UInt64 = 0
        directory.forEach { r in total &+= UInt64(r.layer?.viridianHypercalls ?? r.targetLayer?.viridianHypercalls ?? 0) }
        return total
    }

    /// XV_SIDE_TARGET: the embedder's target raised `vector` on the domain's VP `vcpu`: XV_OK,
    /// XV_ESRCH (no such domain or vCPU) or XV_EINVAL (another side: the bundled reference
    /// delivers its own interrupts).
    public func deliverInterrupt(domain id: UInt16, vcpu: UInt32, vector: UInt8) -> Int32 {
        guard side == .target else { return XV_EINVAL }
        return directory.withRecord(DomainID(id)) { r in
            guard Int(vcpu) < r.vcpuCount, let layer = r.targetLayer else { return XV_ESRCH }
            layer.interrupt(vp: Int(vcpu), vector: vector)
            return XV_OK
        } ?? XV_ESRCH
    }
}
