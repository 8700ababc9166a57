import CGuestAtomics
import GuestABI
import XenABI
import XenCore
import XenNative
import XenViridian
import ViridianReference

/// The native side's concrete types: XenCore over the direct fabric, on the embedder's page
/// tables, calling the embedder back.
public typealias NativeSystem = XenNativeSystem<GuestRAMRegion, EmbedderSink>
/// The translated side's concrete types: the bundled reference hypervisor and the layer.
public typealias BundledReference = ViridianReference<GuestRAMRegion, ReferenceHostAdapter>
/// The translated side's layer type: XenViridian over the bundled reference, on the embedder's page tables, calling the embedder back.
public typealias TranslatedLayer = XenViridianDomain<BundledReference, GuestRAMRegion, EmbedderSink>
/// The layer over the embedder's own Viridian target (XV_SIDE_TARGET).
public typealias TargetLayer = XenViridianDomain<CallbackTarget, GuestRAMRegion, EmbedderSink>

/// What the system keeps per domain beyond the core's own state: its vCPU count, the native
/// side's timer words, the translated side's layer, and the objects the domain's hooks point at.
public final class DomainRecord {
    /// The domain's id.
    public let id: DomainID
    /// The domain's vCPU count (1 ... 32).
    public let vcpuCount: Int
    /// Per vCPU: the native timer's deadline + 1, 0 while disarmed.
    let timers: UnsafeMutablePointer<UInt64>
    /// The translated side's layer (nil on the native side), owned by the record.
    let layer: TranslatedLayer?
    /// The layer over the embedder's target (nil on the other sides), owned by the record.
    let targetLayer: TargetLayer?
    /// The translated partition's second-level map (guest and layer frames), which the
    /// reference changes for grant maps and copy windows.
    let secondLevel: EmbedderPhysmap

    init(id: DomainID, vcpuCount: Int, layer: TranslatedLayer?, targetLayer: TargetLayer? = nil, secondLevel: EmbedderPhysmap) {
        self.id = id
        self.vcpuCount = vcpuCount
        self.layer = layer
        self.targetLayer = targetLayer
        self.secondLevel = secondLevel
        timers = .allocate(capacity: vcpuCount)
        timers.initialize(repeating: 0, count: vcpuCount)
    }

    deinit { timers.deallocate() }
}

/// Domain records by id, in chunks of 256 ids allocated when a domain first needs one, so a
/// system costs what its domains use, not the 32,752 possible ids. Readers find a record with
/// two acquire loads and no retain; records are published once and live as long as the
/// directory (domains are never destroyed before their system).
public final class DomainDirectory {
    static var chunkShift: Int { 8 }
    static var chunkSize: Int { 1 << chunkShift }
    static var chunkCount: Int { (Int(DomainID.firstReserved.rawValue) + chunkSize - 1) >> chunkShift }

    /// Per chunk: the address of its 256 record words, 0 until allocated.
    let chunks: UnsafeMutablePointer<UInt64>
    /// Serialises insertion.
    let lock: UnsafeMutablePointer<UInt32>

    init() {
        chunks = .allocate(capacity: Self.chunkCount)
        chunks.initialize(repeating: 0, count: Self.chunkCount)
        lock = .allocate(capacity: 1)
        lock.initialize(to: 0)
    }

    deinit {
        for c in 0..<Self.chunkCount where chunks[c] != 0 {
            let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(chunks[c]))!
            for i in 0..<Self.chunkSize where words[i] != 0 {
                Unmanaged<DomainRecord>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(words[i]))!).release()
            }
            words.deallocate()
        }
        chunks.deallocate()
        lock.deallocate()
    }

    /// Adds a record; false when its id is reserved or taken.
    func insert(_ record: DomainRecord) -> Bool {
        let id = Int(record.id.rawValue)
        guard record.id < DomainID.firstReserved else { return false }
        xv_spin_lock(lock)
        defer { xv_spin_unlock(lock) }
        var words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(chunks[id >> Self.chunkShift]))
        if words == nil {
            let fresh = UnsafeMutablePointer<UInt64>.allocate(capacity: Self.chunkSize)
            fresh.initialize(repeating: 0, count: Self.chunkSize)
            xv_store_release_u64(chunks + (id >> Self.chunkShift), UInt64(UInt(bitPattern: fresh)))
            words = fresh
        }
        let slot = words! + (id & (Self.chunkSize - 1))
        guard slot.pointee == 0 else { return false }
        xv_store_release_u64(slot, UInt64(UInt(bitPattern: Unmanaged.passRetained(record).toOpaque())))
        return true
    }

    /// Whether a record has this id.
    func contains(_ id: DomainID) -> Bool { entry(id) != nil }

    @inline(__always)
    func entry(_ id: DomainID) -> Unmanaged<DomainRecord>? {
        guard id < DomainID.firstReserved else { return nil }
        let i = Int(id.rawValue)
        guard let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(xv_load_acquire_u64(chunks + (i >> Self.chunkShift)))),
              let opaque = UnsafeRawPointer(bitPattern: UInt(xv_load_acquire_u64(words + (i & (Self.chunkSize - 1))))) else { return nil }
        return Unmanaged<DomainRecord>.fromOpaque(opaque)
    }

    /// Runs `body` on the record without a retain; nil when there is none.
    @inline(__always)
    func withRecord<R>(_ id: DomainID, _ body: (DomainRecord) -> R) -> R? {
        entry(id)?._withUnsafeGuaranteedRef(body)
    }

    /// The native timer word of (domain, vCPU), when both exist.
    func timerWord(_ id: DomainID, vcpu: Int) -> UnsafeMutablePointer<UInt64>? {
        withRecord(id) { r in vcpu >= 0 && vcpu < r.vcpuCount ? r.timers + vcpu : nil } ?? nil
    }

    /// Calls `body` with every record, in id order.
    func forEach(_ body: (DomainRecord) -> Void) {
        for c in 0..<Self.chunkCount {
            guard let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(xv_load_acquire_u64(chunks + c))) else { continue }
            for i in 0..<Self.chunkSize {
                guard let opaque = UnsafeRawPointer(bitPattern: UInt(xv_load_acquire_u64(words + i))) else { continue }
                Unmanaged<DomainRecord>.fromOpaque(opaque)._withUnsafeGuaranteedRef(body)
            }
        }
    }
}
