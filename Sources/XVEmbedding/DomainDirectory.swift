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

/// Domain records by id, one word each in a `DomainChunks` table (chunks of 256 ids allocated
/// when a domain first needs one, so a system costs what its domains use, not the 32,752
/// possible ids). Readers find a record with two acquire loads and no retain; records are
/// published once and live as long as the directory (domains are never destroyed before their
/// system).
public final class DomainDirectory {
    /// One word per id: the record's opaque pointer (retained once), 0 for none.
    enum RecordWord: DomainChunkLayout { static var wordsPerDomain: Int { 1 } }
    let table = DomainChunks<RecordWord>()
    /// Serialises insertion.
    let lock: UnsafeMutablePointer<UInt32>

    init() {
        lock = .allocate(capacity: 1)
        lock.initialize(to: 0)
    }

    deinit {
        table.forEachAllocated { _, word in
            if word.pointee != 0 { Unmanaged<DomainRecord>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(word.pointee))!).release() }
        }
        table.deallocate()
        lock.deallocate()
    }

    /// Adds a record; false when its id is reserved or taken.
    func insert(_ record: DomainRecord) -> Bool {
        xv_spin_lock(lock)
        defer { xv_spin_unlock(lock) }
        guard let slot = table.wordsCreating(record.id), slot.pointee == 0 else { return false }
        xv_store_release_u64(slot, UInt64(UInt(bitPattern: Unmanaged.passRetained(record).toOpaque())))
        return true
    }

    /// Whether a record has this id.
    func contains(_ id: DomainID) -> Bool { entry(id) != nil }

    @inline(__always)
    func entry(_ id: DomainID) -> Unmanaged<DomainRecord>? {
        guard let slot = table.words(id), let opaque = UnsafeRawPointer(bitPattern: UInt(xv_load_acquire_u64(slot))) else { return nil }
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
        table.forEachAllocated { _, word in
            guard let opaque = UnsafeRawPointer(bitPattern: UInt(xv_load_acquire_u64(word))) else { return }
            Unmanaged<DomainRecord>.fromOpaque(opaque)._withUnsafeGuaranteedRef(body)
        }
    }
}
