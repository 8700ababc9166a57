import GuestABI
import XenABI
import ViridianABI
import ViridianReference
import XenCore
import XenNative
import XenViridian

/// The guest-physical layout every world gives each domain, so that native and translated
/// guests have byte-for-byte comparable memory.
public enum WorldLayout {
    public static var frames: UInt64 { 48 }
    /// shared_info.
    public static var sharedInfo: GuestFrameNumber { GuestFrameNumber(0) }
    /// The layer's frames (3 per vCPU; unused in the native world). Not guest-visible.
    public static var layerFrames: GuestFrameNumber { GuestFrameNumber(1) }
    /// Where the test guest puts hypercall argument structures.
    public static var argumentPage: GuestFrameNumber { GuestFrameNumber(16) }
    /// Free guest frames for FIFO control blocks and event-array pages: 20 ..< 48.
    public static var firstFreeFrame: UInt64 { 20 }
    /// Frames a guest in these worlds can see change (shared_info, its argument page, its free
    /// frames); the layer's frames (1 ... 3 x vCPUs) are not guest-visible.
    public static var comparedFrames: [UInt64] { [0] + Array(16..<frames) }
}

/// A set of Xen domains on one side (native or translated), with the same ids, vCPU counts and
/// memory layout. Domain ids are 1...n.
public protocol XenWorld: AnyObject {
    var recorder: UpcallRecorder { get }
    var domainCount: Int { get }
    var vcpuCount: Int { get }
    func ram(_ domain: DomainID) -> GuestRAM
    func hypercall(domain: DomainID, vcpu: Int, _ registers: XenHypercallRegisters) -> Int64
    func xenDomain(_ domain: DomainID) -> XenDomain<GuestRAMRegion>
}

extension XenWorld {
    public func domainID(_ index: Int) -> DomainID { DomainID(UInt16(index + 1)) }
}

/// XenNative over in-process RAM.
public final class NativeWorld: XenWorld {
    public let recorder = UpcallRecorder()
    public let system: XenNativeSystem<GuestRAMRegion, UpcallRecorder>
    public let domainCount: Int
    public let vcpuCount: Int
    private var rams: [GuestRAM] = []

    public init(domains: Int, vcpus: Int, maxPort: UInt32 = 1023, identity: XenGuestIdentity = XenGuestIdentity()) {
        domainCount = domains
        vcpuCount = vcpus
        system = XenNativeSystem(sink: recorder)
        for i in 0..<domains {
            let ram = GuestRAM(frameCount: WorldLayout.frames)
            rams.append(ram)
            let config = DomainConfiguration(id: DomainID(UInt16(i + 1)), vcpuCount: vcpus, maxPort: maxPort, sharedInfoFrame: WorldLayout.sharedInfo,
                                             identity: identity)
            try! system.createDomain(config, memory: ram.region)
        }
    }

    public func ram(_ domain: DomainID) -> GuestRAM { rams[Int(domain.rawValue) - 1] }
    @inline(__always)
    public func hypercall(domain: DomainID, vcpu: Int, _ registers: XenHypercallRegisters) -> Int64 {
        system.hypercall(domain: domain, vcpu: vcpu, registers)
    }
    public func xenDomain(_ domain: DomainID) -> XenDomain<GuestRAMRegion> { system.domain(domain)! }
}

/// Routes the reference hypervisor's interrupts to the layer of the partition they target,
/// as an embedder's virtual APICs would.
public final class LayerInterruptRouter: ViridianHost {
    public typealias Reference = ViridianReference<GuestRAMRegion, LayerInterruptRouter>
    public typealias Layer = XenViridianDomain<Reference, GuestRAMRegion, UpcallRecorder>
    /// Layers by partition id - 1; unowned: the world owns them.
    var layers: [Unmanaged<Layer>] = []
    public private(set) var interrupts = 0

    public init() {}

    public func raiseInterrupt(partition: PartitionID, vp: VPIndex, vector: UInt8, autoEOI: Bool) {
        interrupts &+= 1
        let i = Int(partition.rawValue) - 1
        guard i >= 0, i < layers.count else { return }
        // Guaranteed for the call: the world owns its layers (a retain here would be a
        // reference-count operation on every delivery).
        layers[i]._withUnsafeGuaranteedRef { $0.interrupt(vp: Int(vp.rawValue), vector: vector) }
    }
    public func flushTLB(_ request: TLBFlushRequest) {}
    public func longSpinWait(partition: PartitionID, vp: VPIndex, spinCount: UInt32) {}
}

/// XenViridian over ViridianReference: one partition per domain.
public final class TranslatedWorld: XenWorld {
    public let recorder = UpcallRecorder()
    public let router = LayerInterruptRouter()
    public let reference: LayerInterruptRouter.Reference
    public let root: XenViridianRoot<LayerInterruptRouter.Reference>
    public private(set) var layers: [LayerInterruptRouter.Layer] = []
    public let domainCount: Int
    public let vcpuCount: Int
    private var rams: [GuestRAM] = []

    public init(domains: Int, vcpus: Int, maxPort: UInt32 = 1023, frames: UInt64 = WorldLayout.frames,
                identity: XenGuestIdentity = XenGuestIdentity()) {
        domainCount = domains
        vcpuCount = vcpus
        reference = LayerInterruptRouter.Reference(host: router)!
        root = XenViridianRoot(target: reference)
        // Ports: one per bindable Xen port plus the control port; connections: one per
        // interdomain port plus a control connection to every domain.
        let capacity = Int(maxPort) + 2 + domains
        for i in 0..<domains {
            let ram = GuestRAM(frameCount: max(frames, WorldLayout.frames))
            rams.append(ram)
            let partition = try! reference.createPartition(
                PartitionConfiguration(vpCount: vcpus, maxPorts: capacity, maxConnections: capacity), memory: ram.region)
            let config = DomainConfiguration(id: DomainID(UInt16(i + 1)), vcpuCount: vcpus, maxPort: maxPort, sharedInfoFrame: WorldLayout.sharedInfo,
                                             identity: identity)
            let layer = try! LayerInterruptRouter.Layer(config, layer: LayerConfiguration(partition: partition, layerFrames: WorldLayout.layerFrames),
                                                      memory: ram.region, root: root, sink: recorder)
            layers.append(layer)
            router.layers.append(Unmanaged.passUnretained(layer))
        }
    }

    public func ram(_ domain: DomainID) -> GuestRAM { rams[Int(domain.rawValue) - 1] }
    public func layer(_ domain: DomainID) -> LayerInterruptRouter.Layer { layers[Int(domain.rawValue) - 1] }
    @inline(__always)
    public func hypercall(domain: DomainID, vcpu: Int, _ registers: XenHypercallRegisters) -> Int64 {
        let i = Int(domain.rawValue) - 1
        guard i >= 0, i < layers.count else { return XenErrno.esrch.hypercallReturnValue }
        return layers[i].hypercall(vcpu: vcpu, registers)
    }
    public func xenDomain(_ domain: DomainID) -> XenDomain<GuestRAMRegion> { layer(domain).domain }
    /// Viridian hypercalls issued by every layer so far.
    public var viridianHypercalls: Int { layers.reduce(0) { $0 + $1.viridianHypercalls } }
}
