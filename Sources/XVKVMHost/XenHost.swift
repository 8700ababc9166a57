import CKVM
import CXenViridian
import Foundation
import Glibc
import XenViridianC

/// A KVM host that boots unmodified PVH guests and answers their Xen hypercalls through the
/// library's C ABI (include/xen_viridian.h), over the native or the translated side: the
/// project's complete embedder.
///
/// Each guest is a domain (ids 1, 2, ...) in a KVM VM of its own, with the in-kernel local
/// APIC (upcalls arrive as MSIs on the guest's callback vector), Xen's CPUID leaves in its
/// CPUID table, Xen's MSRs sent to the host (the hypercall-page MSR), and its hypercalls
/// arriving through the hypercall port (`XenHypercallPort`). Each vCPU runs on a thread of its
/// own, as the threading contract has it: only that thread makes the vCPU's calls. A clock
/// thread publishes the guests' TSC, which fires timers; a xenstore thread serves the guests'
/// store rings (`XenStoreService`). SCHEDOP_shutdown ends a domain; the run ends when every
/// domain has, or at the timeout.
public final class XenHost: @unchecked Sendable {
    /// The KVM device the VMs run on.
    public let device: KVMDevice
    /// What the host runs.
    public let configuration: XenHostConfiguration
    /// The library's system (xv_system), created once the host exists (its callbacks' context).
    private(set) var system: OpaquePointer!
    let domains: [XenHostDomain]
    /// The guests' TSC frequency: KVM's (KVM_GET_TSC_KHZ), given to the library.
    public let tscHz: UInt64
    let clock: XenHostClock
    private(set) var store: XenStoreService!

    /// The run's state: `stopping` is set once, and every thread ends.
    let runLock = NSCondition()
    private(set) var stopping = false

    /// Guest RAM frames the host keeps for itself at the top of each domain (reserved in the
    /// memory map): the initial shared_info, the xenstore ring, the toolstack's argument page
    /// and the start info, counted down from the last frame.
    static let reservedFrames = 8
    enum ReservedFrame: Int {
        case sharedInfo = 1, store = 2, scratch = 3, startInfo = 4
    }

    /// Creates the VMs, the library's system, its domains and the xenstore service, and loads
    /// each guest. Throws with a one-line reason.
    public init(device: KVMDevice, configuration: XenHostConfiguration) throws(KVMError) {
        guard !configuration.guests.isEmpty else { throw KVMError("no guest to run", errno: 0) }
        guard configuration.guests.count < Int(XenStoreService.domainID) else { throw KVMError("too many guests", errno: 0) }
        self.device = device
        self.configuration = configuration
        let translated = configuration.side == .translated
        var made: [XenHostDomain] = []
        for (i, guest) in configuration.guests.enumerated() {
            guard guest.vcpus >= 1, guest.vcpus <= 32 else { throw KVMError("guest \(i + 1): \(guest.vcpus) vCPUs (1 ... 32)", errno: 0) }
            guard guest.memoryMiB >= 2, guest.memoryMiB <= 4096 else { throw KVMError("guest \(i + 1): \(guest.memoryMiB) MiB of RAM (2 ... 4096)", errno: 0) }
            let vm = try KVMVirtualMachine(device: device, memoryBytes: guest.memoryMiB << 20)
            try vm.createInterruptController()
            try vm.interceptMSRs(first: 0x4000_0000, count: 0x300)   // Xen's MSR range (xen/arch/x86/msr.c)
            let layerFrames = translated ? Int(xv_layer_frame_count(UInt32(guest.vcpus))) : 0
            let physmap = try KVMPhysicalMap(vm: vm, layerFrames: layerFrames)
            var vcpus: [KVMVCPU] = []
            for v in 0..<guest.vcpus { vcpus.append(try KVMVCPU(vm: vm, index: Int32(v))) }
            made.append(XenHostDomain(id: UInt16(i + 1), guest: guest, vm: vm, physmap: physmap, vcpus: vcpus))
        }
        domains = made
        tscHz = try made[0].vcpus[0].kvm.tscKHz() * 1000
        clock = XenHostClock(tick: configuration.tick)

        var config = xv_system_config()
        config.side = translated ? UInt32(XV_SIDE_TRANSLATED) : UInt32(XV_SIDE_NATIVE)
        config.tsc_hz = tscHz
        var callbacks = XenHostCallbacks.table
        // Unretained: the system is destroyed in deinit, while the host still exists.
        callbacks.context = Unmanaged.passUnretained(self).toOpaque()
        var out: OpaquePointer?
        let created = xv_system_create(&config, &callbacks, &out)
        guard created == XV_OK, let out else { throw KVMError("xv_system_create: \(created)", errno: 0) }
        system = out
        for d in domains { d.host = self; for v in d.vcpus { v.host = self } }
        clock.host = self

        for d in domains { try createDomain(d) }
        store = try XenStoreService(host: self)
        for d in domains { try store.connect(d) }
        for d in domains { try d.boot() }
    }

    deinit { if let system { xv_system_destroy(system) } }

    /// xv_domain_create for a guest: its page table, its shared_info frame, and then the
    /// vCPUs' CPUID tables (Xen's leaves from the library) and TSCs.
    private func createDomain(_ d: XenHostDomain) throws(KVMError) {
        var c = xv_domain_config()
        c.domain = d.id
        c.vcpu_count = UInt32(d.vcpus.count)
        c.max_port = 0
        c.page_table = d.physmap.pageTable
        c.frames = UInt64(d.physmap.frames)
        c.shared_info_gfn = d.reservedFrame(.sharedInfo)
        let rc = xv_domain_create(system, &c)
        guard rc == XV_OK else { throw KVMError("xv_domain_create(\(d.id)): \(rc)", errno: 0) }
        var supported = try device.supportedCPUID().filter { $0.function < 0x4000_0000 || $0.function > 0x4FFF_FFFF }
        for f in configuration.hiddenFeatures {
            for i in supported.indices where supported[i].function == f.leaf && supported[i].index == f.subleaf {
                let mask = ~(UInt32(1) << UInt32(f.bit))
                switch f.register {
                case 0: supported[i].eax &= mask
                case 1: supported[i].ebx &= mask
                case 2: supported[i].ecx &= mask
                default: supported[i].edx &= mask
                }
            }
        }
        let tsc = xv_kvm_rdtsc()
        for v in d.vcpus {
            try v.kvm.setCPUID(supported + xenLeaves(domain: d.id, vcpu: v.index))
            // Every guest's TSC is the host's (IA32_TSC written as the host reads it now):
            // the library keeps one guest TSC for all domains, published by the clock thread.
            try v.kvm.setMSR(0x10, tsc)
        }
    }

    /// Xen's CPUID leaves as the library answers them, for KVM_SET_CPUID2: from the base leaf
    /// to the maximum it names, with subleaves 0-2 where they differ (Xen's TSC leaf).
    func xenLeaves(domain: UInt16, vcpu: UInt32) -> [kvm_cpuid_entry2] {
        var base = xv_cpuid_result()
        guard xv_cpuid(system, domain, vcpu, 0x4000_0000, 0, &base) == XV_IDENTITY_XEN else { return [] }
        var entries: [kvm_cpuid_entry2] = []
        let last = max(min(base.eax, 0x4000_00FF), 0x4000_0000)
        for leaf in UInt32(0x4000_0000)...last {
            var answers: [xv_cpuid_result] = []
            for sub in UInt32(0)..<3 {
                var r = xv_cpuid_result()
                _ = xv_cpuid(system, domain, vcpu, leaf, sub, &r)
                answers.append(r)
            }
            let indexed = answers.contains { $0.eax != answers[0].eax || $0.ebx != answers[0].ebx || $0.ecx != answers[0].ecx || $0.edx != answers[0].edx }
            for (sub, r) in answers.enumerated() where indexed || sub == 0 {
                var e = kvm_cpuid_entry2()
                e.function = leaf
                e.index = UInt32(sub)
                e.flags = indexed ? UInt32(KVM_CPUID_FLAG_SIGNIFCANT_INDEX) : 0
                e.eax = r.eax; e.ebx = r.ebx; e.ecx = r.ecx; e.edx = r.edx
                entries.append(e)
            }
        }
        return entries
    }

    /// Runs every guest to its shutdown or the timeout, and reports.
    public func run() -> XenHostResult {
        clock.start()
        store.start()
        // Every vCPU's thread starts now: vCPU 0 at the PVH entry, the others inside KVM_RUN,
        // where the in-kernel APIC holds them until the guest's INIT/SIPI or VCPUOP_up.
        for d in domains { for v in d.vcpus { v.start() } }
        let deadline = Date().addingTimeInterval(Double(configuration.timeout.components.seconds) + Double(configuration.timeout.components.attoseconds) / 1e18)
        var timedOut = false
        runLock.lock()
        while !stopping {
            if domains.allSatisfy({ $0.finished }) { break }
            if !runLock.wait(until: deadline) { timedOut = !domains.allSatisfy({ $0.finished }); break }
        }
        stopping = true
        runLock.unlock()
        for d in domains { for v in d.vcpus { v.stop() } }
        for d in domains { for v in d.vcpus { v.join() } }
        store.stop()
        clock.stop()
        return XenHostResult(side: configuration.side, domains: domains.map { $0.report() }, timedOut: timedOut, tscHz: tscHz)
    }

    /// Wakes the run loop to look at the domains again (a shutdown, a fault).
    func domainChanged() {
        runLock.lock()
        runLock.broadcast()
        runLock.unlock()
    }

    var isStopping: Bool { runLock.withLock { stopping } }

    func domain(_ id: UInt16) -> XenHostDomain? {
        let i = Int(id) - 1
        return i >= 0 && i < domains.count ? domains[i] : nil
    }

    /// A line for standard output (`echo`), prefixed with the domain when there are several.
    func echo(_ domain: XenHostDomain, _ line: String) {
        guard configuration.echo else { return }
        let text = domains.count > 1 ? "[\(domain.id) \(domain.guest.name)] \(line)\n" : line + "\n"
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}
