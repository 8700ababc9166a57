import CGuestAtomics
import CXenViridian
import GuestABI
import ViridianABI
import ViridianReference
import XenABI
import XenCore
import XenViridian

/// The bundled reference hypervisor's host, on the translated side: its interrupts go to the
/// layer of the partition they target (which turns them into the guest's upcalls), and what a
/// real hypervisor would do to the machine goes to the embedder's callbacks: TLB flushes
/// (`flush_tlbs`), long spin waits (`yield`) and second-level mapping changes (the physmap
/// callbacks, or the page table).
public final class ReferenceHostAdapter: ViridianHost {
    /// Partition id → domain id (the system sets entries as it creates domains; partition ids
    /// are the reference's, 1, 2, ...), and the records to reach the layers. Unowned: the
    /// system owns the directory, whose records own the layers, which own the root, the
    /// reference and through it this adapter; a strong reference here closed that cycle, and
    /// xv_system_destroy leaked every translated domain (found by the hypercall fuzzer's
    /// LeakSanitizer: 1.2 MB for a system of two domains).
    @exclusivity(unchecked) unowned(unsafe) var directory: DomainDirectory?
    /// Per partition id - 1: its domain id, published with a release store (0: none).
    let domains: UnsafeMutablePointer<UInt64>
    let capacity: Int
    let callbacks: xv_callbacks

    init(callbacks: xv_callbacks, capacity: Int) {
        self.callbacks = callbacks
        self.capacity = capacity
        domains = .allocate(capacity: capacity)
        domains.initialize(repeating: 0, count: capacity)
    }

    deinit { domains.deallocate() }

    func setDomain(_ domain: DomainID, of partition: PartitionID) {
        let i = Int(partition.rawValue) - 1
        guard i >= 0, i < capacity else { return }
        xv_store_release_u64(domains + i, UInt64(domain.rawValue))
    }

    @inline(__always)
    func domain(of partition: PartitionID) -> DomainID? {
        let i = Int(partition.rawValue) - 1
        guard i >= 0, i < capacity else { return nil }
        let d = xv_load_acquire_u64(domains + i)
        return d == 0 ? nil : DomainID(UInt16(truncatingIfNeeded: d))
    }

    /// Routes a reference interrupt to the layer of the partition's domain (`XenViridianDomain.interrupt`); ignored for a partition no domain has.
    public func raiseInterrupt(partition: PartitionID, vp: VPIndex, vector: UInt8, autoEOI: Bool) {
        guard let d = domain(of: partition) else { return }
        _ = directory?.withRecord(d) { $0.layer?.interrupt(vp: Int(vp.rawValue), vector: vector) }
    }

    /// Any flush the partition asked for becomes the embedder's `flush_tlbs` callback for its domain (a whole-domain flush, whatever the request's processors or ranges).
    public func flushTLB(_ request: TLBFlushRequest) {
        guard let d = domain(of: request.partition) else { return }
        callbacks.flush_tlbs?(callbacks.context, d.rawValue)
    }

    /// HvCallNotifyLongSpinWait becomes the embedder's `yield` callback for that VP.
    public func longSpinWait(partition: PartitionID, vp: VPIndex, spinCount: UInt32) {
        guard let d = domain(of: partition) else { return }
        callbacks.yield?(callbacks.context, d.rawValue, vp.rawValue)
    }

    /// Mirrors a HvCallMapGpaPages mapping (or its removal) into the partition's second-level map (`EmbedderPhysmap`: the physmap callbacks, or the page-table writes that stand in for them); `writable` is not passed on, as the C callbacks carry no rights.
    public func guestMappingChanged(partition: PartitionID, frame: GuestFrameNumber, page: UnsafeMutableRawPointer?, writable: Bool) {
        guard let d = domain(of: partition) else { return }
        _ = directory?.withRecord(d) { r in
            // The partition's second-level map: the guest's frames and the layer's (copy windows).
            if let page { _ = r.secondLevel.map(page, at: frame, writable: writable) } else { r.secondLevel.unmap(frame, releasing: false) }
        }
    }
}
