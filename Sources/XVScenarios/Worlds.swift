import CGuestAtomics
import GuestABI
import XenABI
import ViridianABI
import ViridianReference
import XenCore
import XenNative
import XenViridian

/// The guest-physical layout every world gives each domain, so that native and translated
/// guests have byte-for-byte comparable memory. Both worlds show the guest the same map,
/// frames 0 ..< `frames`; the translated world's layer frames lie past it, in the partition's
/// memory only, where no guest address reaches (Docs/Layer.md).
public enum WorldLayout {
    /// Guest-visible frames, 0 ..< 48.
    public static var frames: UInt64 { 48 }
    /// shared_info.
    public static var sharedInfo: GuestFrameNumber { GuestFrameNumber(0) }
    /// The first of the layer's frames in a translated world whose guest sees `frames` frames
    /// (`LayerConfiguration.layerFrameCount`: 5 per vCPU and one more), right after the guest's
    /// map, in the partition's memory only.
    public static func layerFrames(guestFrames: UInt64 = frames) -> GuestFrameNumber { GuestFrameNumber(guestFrames) }
    /// Where the test guest puts hypercall argument structures.
    public static var argumentPage: GuestFrameNumber { GuestFrameNumber(16) }
    /// Free guest frames for FIFO control blocks and event-array pages: 20 ..< 48.
    public static var firstFreeFrame: UInt64 { 20 }
    /// Frames a guest in these worlds can see change: all of its map.
    public static var comparedFrames: Range<UInt64> { 0..<frames }
    /// What each domain's memory_op reports: `frames` RAM pages, all present, room for 4
    /// more, one RAM entry in the memory map, on a host of 2^20 pages.
    public static func memory(frames: UInt64) -> XenMemoryConfiguration {
        .flat(frames: frames, maxPages: frames + 4, hostPages: 1 << 20)
    }
}

/// A set of Xen domains on one side (native or translated), with the same ids, vCPU counts and
/// memory layout. Domain ids are 1...n.
public protocol XenWorld: AnyObject {
    /// The embedder stand-in every domain of the world reports to: upcalls, NMIs, shutdowns, vCPU state, TLB flushes, yields, the guest TSC and timers.
    var recorder: UpcallRecorder { get }
    /// Every domain's console (attached to each at creation, so console_io writes reach it).
    var console: ConsoleRecorder { get }
    /// Whole-domain guest TLB flushes carried out for `domain` (native: asked of the embedder;
    /// translated: Viridian flushes of every VP and address space the target carried out).
    func tlbFlushes(_ domain: DomainID) -> Int
    /// SCHEDOP_yields carried out for `domain` (native: the embedder's; translated: the
    /// target's HvCallNotifyLongSpinWait).
    func yields(_ domain: DomainID) -> Int
    /// Moves the guests' TSC forward (native: the embedder's TSC; translated: the reference
    /// hypervisor's clock).
    func advanceTime(toTSC tsc: UInt64)
    /// The embedder's tick: re-anchors `vcpu`'s Xen time (`XenDomain.refreshTime`).
    func refreshTime(_ domain: DomainID, vcpu: Int) -> Bool
    /// Xen system time of `domain` now (ns), as its side computes it.
    func systemTime(_ domain: DomainID) -> UInt64?
    /// The embedder starts (INIT/SIPI) or stops a vCPU (`XenDomain.setVCPUUp`).
    func setVCPUUp(_ domain: DomainID, vcpu: Int, _ up: Bool)
    /// The embedder's scheduler moves a vCPU to `state` (`XenDomain.setRunstate`).
    func setRunstate(_ domain: DomainID, vcpu: Int, _ state: VCPURunstate)
    /// Number of domains; their ids are 1 ... `domainCount`.
    var domainCount: Int { get }
    /// vCPUs per domain (the same for every domain).
    var vcpuCount: Int { get }
    /// The domain's memory: in a translated world the whole partition, whose first
    /// `WorldLayout.frames` frames are the guest's view (tests reach the layer's frames here).
    func ram(_ domain: DomainID) -> GuestRAM
    /// Issues one Xen hypercall from `vcpu` of `domain` on this world's side and returns what the guest finds in RAX (a negative Xen errno on failure; -ESRCH for an unknown domain).
    func hypercall(domain: DomainID, vcpu: Int, _ registers: XenHypercallRegisters) -> Int64
    /// The XenCore state of `domain` (traps when there is no such domain).
    func xenDomain(_ domain: DomainID) -> XenDomain<GuestRAMRegion>
    /// The guests' TSC now (native: the embedder's; translated: the reference hypervisor's clock).
    var guestTSC: UInt64 { get }
    /// `domain`'s image, saved as this side saves it (Docs/SaveRestore.md).
    func saveImage(_ domain: DomainID) -> [UInt8]
    /// Restores an image from either side into `domain`, which must be fresh.
    func restoreImage(_ domain: DomainID, _ image: [UInt8]) throws(DomainImageRefusal)
    /// The restore's second step (`XenDomain.finishRestore`), once every moving domain is restored.
    func finishRestore(_ domain: DomainID)
}

extension XenWorld {
    /// Moves every domain of `source` into this world, which was just built with the same
    /// shape (on either side): every image is saved first (the guests are stopped), then each
    /// domain's memory is copied (`GuestRAM.mirror`) and its image restored, in id order. With
    /// `sameClock`, this world's TSC is first moved to the source's (a host sharing its clock);
    /// without, the restore continues Xen time on whatever clock this world has.
    public func migrate(from source: any XenWorld, sameClock: Bool = true) throws(DomainImageRefusal) {
        let images = (0..<source.domainCount).map { source.saveImage(source.domainID($0)) }
        if sameClock { advanceTime(toTSC: source.guestTSC) }
        for i in 0..<domainCount { ram(domainID(i)).mirror(source.ram(domainID(i)), frames: WorldLayout.frames) }
        for i in 0..<domainCount { try restoreImage(domainID(i), images[i]) }
        for i in 0..<domainCount { finishRestore(domainID(i)) }
    }
}

extension XenWorld {
    /// The id of the domain at zero-based `index`: `index + 1`.
    public func domainID(_ index: Int) -> DomainID { DomainID(UInt16(index + 1)) }
}

/// XenNative over in-process RAM.
public final class NativeWorld: XenWorld {
    /// Upcalls, timers and the other embedder hooks of the native side.
    public let recorder: UpcallRecorder
    /// Every domain's console lines.
    public let console: ConsoleRecorder
    /// The native system holding every domain.
    public let system: XenNativeSystem<GuestRAMRegion, UpcallRecorder>
    /// Number of domains (ids 1 ... `domainCount`).
    public let domainCount: Int
    /// vCPUs per domain.
    public let vcpuCount: Int
    @exclusivity(unchecked) private var rams: [GuestRAM] = []

    /// `domains` native domains of `vcpus` vCPUs each, ports 0 ... `maxPort`, each with its own `frames` frames of RAM (at least `WorldLayout.frames`), its console and physmap attached, and its timers routed back to the system. Traps if a domain cannot be created.
    /// `recorder` and `console` may come from another world (a migration's destination that
    /// goes on counting where its source left off).
    public init(domains: Int, vcpus: Int, maxPort: UInt32 = 1023, frames: UInt64 = WorldLayout.frames, identity: XenGuestIdentity = XenGuestIdentity(),
                recorder: UpcallRecorder = UpcallRecorder(), console: ConsoleRecorder = ConsoleRecorder()) {
        self.recorder = recorder
        self.console = console
        domainCount = domains
        vcpuCount = vcpus
        system = XenNativeSystem(sink: recorder)
        let frames = max(frames, WorldLayout.frames)
        for i in 0..<domains {
            let ram = GuestRAM(frameCount: frames)
            rams.append(ram)
            let config = DomainConfiguration(id: DomainID(UInt16(i + 1)), vcpuCount: vcpus, maxPort: maxPort, sharedInfoFrame: WorldLayout.sharedInfo,
                                             identity: identity, memory: WorldLayout.memory(frames: frames))
            try! system.createDomain(config, memory: ram.region)
            system.domain(config.id)!.consoleSink = console
            system.domain(config.id)!.physmap = GuestRAMPhysmap(ram)
        }
        let system = self.system
        recorder.expire = { [unowned system] d, v in system.timerExpired(domain: d, vcpu: v) }
    }

    /// The RAM of `domain` (traps for an unknown id).
    public func ram(_ domain: DomainID) -> GuestRAM { rams[Int(domain.rawValue) - 1] }
    /// `XenNativeSystem.hypercall` for `vcpu` of `domain`.
    @inline(__always)
    public func hypercall(domain: DomainID, vcpu: Int, _ registers: XenHypercallRegisters) -> Int64 {
        system.hypercall(domain: domain, vcpu: vcpu, registers)
    }
    /// The XenCore state of `domain` (traps for an unknown id).
    public func xenDomain(_ domain: DomainID) -> XenDomain<GuestRAMRegion> { system.domain(domain)! }
    /// Whole-domain TLB flushes the recorder was asked for on behalf of `domain`.
    public func tlbFlushes(_ domain: DomainID) -> Int { recorder.flushCount(domain: domain) }
    /// SCHEDOP_yields the recorder saw from `domain`.
    public func yields(_ domain: DomainID) -> Int { recorder.yieldCount(domain: domain) }
    /// Moves the recorder's guest TSC forward to `tsc` (never back) and fires the timers then due.
    public func advanceTime(toTSC tsc: UInt64) {
        if tsc > recorder.guestTSC() { recorder.setGuestTSC(tsc) }
        recorder.fireDueTimers()
    }
    /// `XenDomain.refreshTime` of `vcpu` on the native fabric; false when the domain has no valid clock.
    public func refreshTime(_ domain: DomainID, vcpu: Int) -> Bool { xenDomain(domain).refreshTime(vcpu: vcpu, fabric: system) }
    /// `XenDomain.systemTime` on the native fabric, in ns; nil without a valid clock.
    public func systemTime(_ domain: DomainID) -> UInt64? { xenDomain(domain).systemTime(fabric: system) }
    /// `XenDomain.setVCPUUp` on the native fabric.
    public func setVCPUUp(_ domain: DomainID, vcpu: Int, _ up: Bool) { xenDomain(domain).setVCPUUp(vcpu, up, fabric: system) }
    /// `XenDomain.setRunstate` on the native fabric.
    public func setRunstate(_ domain: DomainID, vcpu: Int, _ state: VCPURunstate) { xenDomain(domain).setRunstate(vcpu, state, fabric: system) }
    /// The recorder's guest TSC.
    public var guestTSC: UInt64 { recorder.guestTSC() }
    /// `XenNativeSystem.saveImage(of:)` (traps for an unknown id).
    public func saveImage(_ domain: DomainID) -> [UInt8] { system.saveImage(of: domain)! }
    /// `XenNativeSystem.restoreImage(of:from:)`.
    public func restoreImage(_ domain: DomainID, _ image: [UInt8]) throws(DomainImageRefusal) { _ = try system.restoreImage(of: domain, from: image) }
    /// `XenNativeSystem.finishRestore(of:)`.
    public func finishRestore(_ domain: DomainID) { system.finishRestore(of: domain) }
}

/// Routes the reference hypervisor's interrupts to the layer of the partition they target,
/// as an embedder's virtual APICs would.
public final class LayerInterruptRouter: ViridianHost {
    /// The reference hypervisor the translated world runs on, with this router as its host.
    public typealias Reference = ViridianReference<GuestRAMRegion, LayerInterruptRouter>
    /// The layer type of the translated world: XenViridian over that reference, reporting to an
    /// `UpcallRecorder`. It reaches the reference through `ReferenceBoundary` (the call boundary
    /// that `xv bench --instructions` splits the translated side at).
    public typealias Layer = XenViridianDomain<ReferenceBoundary, GuestRAMRegion, UpcallRecorder>
    /// Layers by partition id - 1; unowned: the world owns them.
    @exclusivity(unchecked) var layers: [Unmanaged<Layer>] = []
    /// Per partition: interrupts are held back (a vCPU that does not run), and the VPs that
    /// have one waiting.
    @exclusivity(unchecked) var held: [Bool] = []
    @exclusivity(unchecked) var waiting: [Set<UInt32>] = []
    private let interruptCount = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    private let flushCounts = UnsafeMutablePointer<UInt64>.allocate(capacity: 2 * UpcallRecorder.maxDomains * 8)
    private let spinWaits = UnsafeMutablePointer<UInt64>.allocate(capacity: UpcallRecorder.maxDomains * 8)
    /// Interrupts raised so far (a relaxed counter: interrupts arrive on any thread).
    public var interrupts: Int { Int(xv_load_relaxed_u64(interruptCount)) }

    /// A router with no layers yet (the world appends them) and every counter at zero.
    public init() {
        interruptCount.initialize(to: 0)
        flushCounts.initialize(repeating: 0, count: 2 * UpcallRecorder.maxDomains * 8)
        spinWaits.initialize(repeating: 0, count: UpcallRecorder.maxDomains * 8)
    }
    deinit {
        interruptCount.deallocate()
        flushCounts.deallocate()
        spinWaits.deallocate()
    }

    /// Holds back the partition's interrupts until `release`, as when its vCPUs are not
    /// scheduled: messages and flags stay in its SynIC pages.
    public func hold(_ partition: PartitionID) {
        let i = Int(partition.rawValue) - 1
        guard i >= 0, i < held.count else { return }
        held[i] = true
    }

    /// Delivers one interrupt to each VP of the partition that was raised while held.
    public func release(_ partition: PartitionID) {
        let i = Int(partition.rawValue) - 1
        guard i >= 0, i < held.count else { return }
        held[i] = false
        let vps = waiting[i].sorted()
        waiting[i] = []
        for vp in vps { layerFromReference(layers[i], Int(vp), 0) }
    }

    /// Counts the interrupt, then hands it to the target partition's layer (`XenViridianDomain.interrupt`), or records it as waiting while the partition is held. Ignores unknown partitions.
    public func raiseInterrupt(partition: PartitionID, vp: VPIndex, vector: UInt8, autoEOI: Bool) {
        xv_store_relaxed_u64(interruptCount, xv_load_relaxed_u64(interruptCount) &+ 1)
        let i = Int(partition.rawValue) - 1
        guard i >= 0, i < layers.count else { return }
        if held[i] {
            waiting[i].insert(vp.rawValue)
            return
        }
        // Guaranteed for the call: the world owns its layers (a retain here would be a
        // reference-count operation on every delivery).
        layerFromReference(layers[i], Int(vp.rawValue), vector)
    }
    /// Counts, per partition, the flushes that cover every VP and every address space (what
    /// HVMOP_flush_tlbs asks for), and the others apart.
    public func flushTLB(_ request: TLBFlushRequest) {
        let i = Int(request.partition.rawValue) - 1
        guard i >= 0, i < UpcallRecorder.maxDomains, i < layers.count else { return }
        let complete = request.flags.contains(.allVirtualAddressSpaces) && request.processors == ProcessorSet.first(layers[i]._withUnsafeGuaranteedRef { $0.domain.vcpuCount })
        _ = xv_atomic_fetch_add_u64(flushCounts + (complete ? 2 * i : 2 * i + 1) * 8, 1)
    }

    /// Flushes of every VP and address space the partition asked for; `partial`: the others.
    public func flushes(_ partition: PartitionID, partial: Bool = false) -> Int {
        let i = Int(partition.rawValue) - 1
        guard i >= 0, i < UpcallRecorder.maxDomains else { return 0 }
        return Int(xv_atomic_load_u64(flushCounts + (partial ? 2 * i + 1 : 2 * i) * 8))
    }
    /// Counts HvCallNotifyLongSpinWait per partition.
    public func longSpinWait(partition: PartitionID, vp: VPIndex, spinCount: UInt32) {
        let i = Int(partition.rawValue) - 1
        guard i >= 0, i < UpcallRecorder.maxDomains else { return }
        _ = xv_atomic_fetch_add_u64(spinWaits + i * 8, 1)
    }

    /// Each partition's memory (the world sets it), whose page table plays the second-level
    /// page tables: a page another partition's is mapped into shows at its frame.
    @exclusivity(unchecked) var memories: [Unmanaged<GuestRAM>] = []
    /// Mirrors a HvCallMapGpaPages mapping (or its removal) into the partition's `GuestRAM` page table, which plays the second-level page tables; the writable bit is not modelled.
    public func guestMappingChanged(partition: PartitionID, frame: GuestFrameNumber, page: UnsafeMutableRawPointer?, writable: Bool) {
        let i = Int(partition.rawValue) - 1
        guard i >= 0, i < memories.count else { return }
        memories[i]._withUnsafeGuaranteedRef { ram in
            if let page { _ = ram.map(page, at: frame) } else { _ = ram.unmap(frame, releasing: false) }
        }
    }

    /// HvCallNotifyLongSpinWait calls the partition made so far.
    public func longSpinWaits(_ partition: PartitionID) -> Int {
        let i = Int(partition.rawValue) - 1
        guard i >= 0, i < UpcallRecorder.maxDomains else { return 0 }
        return Int(xv_atomic_load_u64(spinWaits + i * 8))
    }
}

/// XenViridian over ViridianReference: one partition per domain.
public final class TranslatedWorld: XenWorld {
    /// Upcalls and the other embedder hooks of the translated side.
    public let recorder: UpcallRecorder
    /// Every domain's console lines.
    public let console: ConsoleRecorder
    /// The reference hypervisor's host: routes its interrupts to the layers and counts flushes and spin waits.
    public let router = LayerInterruptRouter()
    /// The reference Viridian hypervisor, one partition per domain.
    public let reference: LayerInterruptRouter.Reference
    /// The root (parent-partition control plane) every layer registered with, over the
    /// reference behind `ReferenceBoundary`.
    public let root: XenViridianRoot<ReferenceBoundary>
    /// The layers, by domain id - 1; the world owns them.
    @exclusivity(unchecked) public private(set) var layers: [LayerInterruptRouter.Layer] = []
    /// Number of domains (ids 1 ... `domainCount`; partition ids alike).
    public let domainCount: Int
    /// vCPUs per domain (VPs per partition).
    public let vcpuCount: Int
    @exclusivity(unchecked) private var rams: [GuestRAM] = []

    /// `domains` translated domains of `vcpus` vCPUs each: one reference partition per domain, whose memory is `frames` guest frames (at least `WorldLayout.frames`) followed by the layer frames, and a layer placed on it with the guest's view limited to the guest frames. Traps if a partition or layer cannot be created.
    /// The reference's TSC runs at `tscHz`; `recorder` and `console` may come from another world.
    public init(domains: Int, vcpus: Int, maxPort: UInt32 = 1023, frames: UInt64 = WorldLayout.frames,
                identity: XenGuestIdentity = XenGuestIdentity(), tscHz: UInt64 = 2_500_000_000,
                recorder: UpcallRecorder = UpcallRecorder(), console: ConsoleRecorder = ConsoleRecorder()) {
        self.recorder = recorder
        self.console = console
        domainCount = domains
        vcpuCount = vcpus
        reference = LayerInterruptRouter.Reference(host: router, tscFrequency: tscHz)!
        root = XenViridianRoot(target: ReferenceBoundary(reference))
        // Ports: one per bindable Xen port plus a control port from every domain; connections:
        // one per interdomain port plus a control connection to every domain.
        let capacity = Int(maxPort) + 2 + domains
        let guestFrames = max(frames, WorldLayout.frames)
        let layerFrames = WorldLayout.layerFrames(guestFrames: guestFrames)
        for i in 0..<domains {
            let ram = GuestRAM(frameCount: guestFrames + UInt64(LayerConfiguration.layerFrameCount(vcpuCount: vcpus)))
            rams.append(ram)
            router.memories.append(.passUnretained(ram))
            let partition = try! reference.createPartition(
                PartitionConfiguration(vpCount: vcpus, maxPorts: capacity, maxConnections: capacity), memory: ram.region)
            let config = DomainConfiguration(id: DomainID(UInt16(i + 1)), vcpuCount: vcpus, maxPort: maxPort, sharedInfoFrame: WorldLayout.sharedInfo,
                                             identity: identity, memory: WorldLayout.memory(frames: guestFrames))
            let guestView = ram.view(frames: guestFrames)
            let layer = try! LayerInterruptRouter.Layer(config, layer: LayerConfiguration(partition: partition, layerFrames: layerFrames),
                                                      memory: guestView, partitionMemory: ram.region, root: root, sink: recorder)
            layer.domain.consoleSink = console
            layer.domain.physmap = GuestRAMPhysmap(ram, frames: guestFrames)
            layers.append(layer)
            router.layers.append(Unmanaged.passUnretained(layer))
            router.held.append(false)
            router.waiting.append([])
        }
    }

    /// The whole partition memory of `domain`, layer frames included (traps for an unknown id).
    public func ram(_ domain: DomainID) -> GuestRAM { rams[Int(domain.rawValue) - 1] }
    /// The layer of `domain` (traps for an unknown id).
    public func layer(_ domain: DomainID) -> LayerInterruptRouter.Layer { layers[Int(domain.rawValue) - 1] }
    /// `XenViridianDomain.hypercall` for `vcpu` of `domain`; -ESRCH for an unknown domain.
    @inline(__always)
    public func hypercall(domain: DomainID, vcpu: Int, _ registers: XenHypercallRegisters) -> Int64 {
        let i = Int(domain.rawValue) - 1
        guard i >= 0, i < layers.count else { return XenErrno.esrch.hypercallReturnValue }
        return layers[i].hypercall(vcpu: vcpu, registers)
    }
    /// The XenCore state behind `domain`'s layer.
    public func xenDomain(_ domain: DomainID) -> XenDomain<GuestRAMRegion> { layer(domain).domain }
    /// Flushes of every VP and address space that `domain`'s partition asked the reference for.
    public func tlbFlushes(_ domain: DomainID) -> Int { router.flushes(layer(domain).partition) }
    /// HvCallNotifyLongSpinWait calls `domain`'s partition made.
    public func yields(_ domain: DomainID) -> Int { router.longSpinWaits(layer(domain).partition) }
    /// Advances the reference hypervisor's clock to `tsc` (its timers fire as they come due).
    public func advanceTime(toTSC tsc: UInt64) { reference.advance(toTSC: tsc) }
    /// `XenDomain.refreshTime` of `vcpu` on the layer's fabric; false when the reference TSC page is not valid.
    public func refreshTime(_ domain: DomainID, vcpu: Int) -> Bool { layer(domain).domain.refreshTime(vcpu: vcpu, fabric: layer(domain)) }
    /// `XenDomain.systemTime` on the layer's fabric, in ns; nil without a valid reference TSC page.
    public func systemTime(_ domain: DomainID) -> UInt64? { layer(domain).domain.systemTime(fabric: layer(domain)) }
    /// `XenDomain.setVCPUUp` on the layer's fabric.
    public func setVCPUUp(_ domain: DomainID, vcpu: Int, _ up: Bool) { layer(domain).domain.setVCPUUp(vcpu, up, fabric: layer(domain)) }
    /// `XenDomain.setRunstate` on the layer's fabric.
    public func setRunstate(_ domain: DomainID, vcpu: Int, _ state: VCPURunstate) { layer(domain).domain.setRunstate(vcpu, state, fabric: layer(domain)) }
    /// The reference hypervisor's TSC.
    public var guestTSC: UInt64 { reference.clock.tsc }
    /// `XenViridianDomain.saveImage` of the domain's layer (its SynIC drained first).
    public func saveImage(_ domain: DomainID) -> [UInt8] { layer(domain).saveImage() }
    /// `XenViridianDomain.restoreImage` of the domain's layer.
    public func restoreImage(_ domain: DomainID, _ image: [UInt8]) throws(DomainImageRefusal) { try layer(domain).restoreImage(image) }
    /// `XenViridianDomain.finishRestore` of the domain's layer.
    public func finishRestore(_ domain: DomainID) { layer(domain).finishRestore() }
    /// Viridian hypercalls issued by every layer so far.
    public var viridianHypercalls: Int { layers.reduce(0) { $0 + $1.viridianHypercalls } }
}
