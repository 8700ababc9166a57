// The smallest Swift embedder: one domain on each side, a hypercall-page MSR write, CPUID leaf
// 0x40000000 and XENVER_version, through the package's public products only.
import GuestABI
import ViridianABI
import ViridianReference
import XenABI
import XenCore
import XenNative
import XenViridian

/// The VMM's virtual APICs and timers, as far as this example needs them.
final class VMMSink: XenNativeSink {
    var upcalls = 0
    func upcall(domain: DomainID, vcpu: Int, vector: UInt8) { upcalls += 1 }
    func nmi(domain: DomainID, vcpu: Int) {}
    func shutdown(domain: DomainID, reason: UInt8) {}
    func initialiseVCPU(domain: DomainID, vcpu: Int, _ context: XenVCPUContext) -> Bool { false }
    func vcpuPowerChanged(domain: DomainID, vcpu: Int, up: Bool) {}
    func flushTLBs(domain: DomainID) {}
    func yieldVCPU(domain: DomainID, vcpu: Int) {}
    func guestTSC() -> UInt64 { 0 }
    var guestTSCHz: UInt64 { 2_500_000_000 }
    func armTimer(domain: DomainID, vcpu: Int, deadline: UInt64?) {}
}

/// The reference hypervisor's host: its interrupts go to the layer of the partition.
final class VMMHost: ViridianHost {
    var layer: XenViridianDomain<ViridianReference<GuestRAMRegion, VMMHost>, GuestRAMRegion, VMMSink>?
    func raiseInterrupt(partition: PartitionID, vp: VPIndex, vector: UInt8, autoEOI: Bool) {
        layer?.interrupt(vp: Int(vp.rawValue), vector: vector)
    }
    func flushTLB(_ request: TLBFlushRequest) {}
    func longSpinWait(partition: PartitionID, vp: VPIndex, spinCount: UInt32) {}
}

func check(_ what: String, _ ok: Bool) {
    print("\(ok ? "ok" : "FAILED"): \(what)")
    if !ok { fatalError("ExampleVMM failed") }
}

let config = DomainConfiguration(id: DomainID(1), vcpuCount: 1, sharedInfoFrame: GuestFrameNumber(0))
let version = XenHypercallRegisters(rax: 17)   // __HYPERVISOR_xen_version, XENVER_version

let nativeSink = VMMSink()
let native = XenNativeSystem<GuestRAMRegion, VMMSink>(sink: nativeSink)
let nativeRAM = GuestRAM(frameCount: 64)
let nativeDomain = try native.createDomain(config, memory: nativeRAM.region)
check("native XENVER_version is 4.17", native.hypercall(domain: DomainID(1), vcpu: 0, version) == 4 << 16 | 17)
check("native CPUID 0x40000000 is Xen's", {
    if case .xen(let leaf) = nativeDomain.cpuid(leaf: 0x4000_0000, subleaf: 0, vcpu: 0) { return leaf.ebx == 0x566e_6558 }
    return false
}())

let host = VMMHost()
let reference = ViridianReference<GuestRAMRegion, VMMHost>(host: host)!
let root = XenViridianRoot(target: reference)
let layerFrames = UInt64(LayerConfiguration.layerFrameCount(vcpuCount: 1))
let ram = GuestRAM(frameCount: 64 + layerFrames)
let partition = try reference.createPartition(PartitionConfiguration(vpCount: 1), memory: ram.region)
let layer = try XenViridianDomain(config, layer: LayerConfiguration(partition: partition, layerFrames: GuestFrameNumber(64)),
                                  memory: ram.view(frames: 64), partitionMemory: ram.region, root: root, sink: VMMSink())
host.layer = layer
check("translated XENVER_version is 4.17", layer.hypercall(vcpu: 0, version) == 4 << 16 | 17)
check("translated hypercall page written", layer.domain.writeMSR(0x4000_0000, value: 5 << 12, vcpu: 0) == .xen(.done))
print("ExampleVMM: XenViridian used as a versioned dependency")
