import CGuestAtomics
import ViridianABI

/// The reference's threading (Docs/Threading.md): its fast paths, HvCallSignalEvent and
/// HvCallSendSyntheticClusterIpi in their fast (register) forms, change nothing but the
/// guest's event flags (a locked OR), so they run as *readers*: the calling VP takes its own
/// reader slot, on a cache line of its own, and runs without the entry lock, unless a writer is
/// active. Every other entry point is a *writer*: it takes the entry lock, announces itself and
/// waits until no VP is inside a reader. So readers share no lock and no written line with each
/// other, and a writer never changes what a reader is looking at.
///
/// A reader raises no interrupt while it is one: the interrupts it would raise are collected
/// (`DeferredInterrupts`) and raised after it has left, because the host's interrupt path
/// re-enters the reference (an EOM, a message) and may need to be a writer.
@usableFromInline struct ReaderSlots {
    /// Per partition index: the address of its VPs' reader slots (`stride` words apart: the
    /// holder word, then the overflow count), 0 before the partition exists.
    @usableFromInline let tables: UnsafeMutablePointer<UInt64>
    /// Per partition index: its VP count.
    @usableFromInline let vpCounts: UnsafeMutablePointer<UInt32>
    /// Nonzero while a writer holds the entry lock.
    @usableFromInline let writerActive: UnsafeMutablePointer<UInt32>
    @inlinable static var capacity: Int { 1024 }
    @inlinable static var stride: Int { 8 }

    @inlinable init() {
        tables = .allocate(capacity: Self.capacity)
        tables.initialize(repeating: 0, count: Self.capacity)
        vpCounts = .allocate(capacity: Self.capacity)
        vpCounts.initialize(repeating: 0, count: Self.capacity)
        writerActive = .allocate(capacity: 16)
        writerActive.initialize(repeating: 0, count: 16)
    }

    @inlinable func deallocate() {
        for p in 0..<Self.capacity {
            UnsafeMutablePointer<UInt64>(bitPattern: UInt(tables[p]))?.deallocate()
        }
        tables.deallocate()
        vpCounts.deallocate()
        writerActive.deallocate()
    }

    /// Makes the slots of partition index `p` (a writer, creating it).
    @inlinable func add(_ p: Int, vpCount: Int) {
        let table = UnsafeMutablePointer<UInt64>.allocate(capacity: vpCount * Self.stride)
        table.initialize(repeating: 0, count: vpCount * Self.stride)
        vpCounts[p] = UInt32(vpCount)
        xv_store_release_u64(tables + p, UInt64(UInt(bitPattern: table)))
    }

    /// Enters VP `vp` of `partition` as a reader; nil when there is no such VP or a writer is
    /// active (the caller takes the entry lock instead).
    ///
    /// A VP's own calls are serial, but the host's interrupt path may issue a fast call for a
    /// VP from another thread (the layer's cross-vCPU IPI), so two readers can share a VP. The
    /// first takes the VP's slot with one exchange and leaves it with a release store; a reader
    /// that finds the slot taken counts itself in the slot's overflow word instead.
    @inline(__always)
    @inlinable func enter(_ partition: PartitionID, _ vp: VPIndex) -> ReaderTicket? {
        let i = partition.rawValue &- 1
        guard i < UInt64(Self.capacity),
              let table = UnsafeMutablePointer<UInt64>(bitPattern: UInt(xv_load_acquire_u64(tables + Int(i)))),
              vp.rawValue < vpCounts[Int(i)] else { return nil }
        let slot = table + Int(vp.rawValue) * Self.stride
        // Sequentially consistent, against the writer's announcement: either it sees this
        // reader, or this sees its flag.
        let owner = xv_atomic_exchange_u64(slot, 1) == 0
        if !owner { _ = xv_atomic_fetch_add_u64(slot + 1, 1) }
        let ticket = ReaderTicket(slot: slot, owner: owner)
        if xv_atomic_load_u32(writerActive) != 0 {
            leave(ticket)
            return nil
        }
        return ticket
    }

    @inline(__always)
    @inlinable func leave(_ ticket: ReaderTicket) {
        if ticket.owner {
            xv_store_release_u64(ticket.slot, 0)
        } else {
            _ = xv_atomic_fetch_sub_u64(ticket.slot + 1, 1)
        }
    }

    /// A writer announces itself and waits until no VP is inside a reader.
    @inlinable func beginWriter(partitions: Int) {
        xv_atomic_store_u32(writerActive, 1)
        for p in 0..<min(partitions, Self.capacity) {
            guard let table = UnsafeMutablePointer<UInt64>(bitPattern: UInt(xv_load_acquire_u64(tables + p))) else { continue }
            for v in 0..<Int(vpCounts[p]) {
                let slot = table + v * Self.stride
                // A reader preempted inside is waited for without burning the time slice it needs.
                var spins: UInt32 = 0
                while xv_atomic_load_u64(slot) != 0 || xv_atomic_load_u64(slot + 1) != 0 {
                    xv_cpu_relax()
                    spins &+= 1
                    if spins & 0xFF == 0 { xv_yield() }
                }
            }
        }
    }

    @inlinable func endWriter() { xv_store_release_u32(writerActive, 0) }
}

/// A reader's place: its VP's slot, and whether it holds the slot or counts in its overflow.
@usableFromInline struct ReaderTicket {
    @usableFromInline let slot: UnsafeMutablePointer<UInt64>
    @usableFromInline let owner: Bool
    @inlinable init(slot: UnsafeMutablePointer<UInt64>, owner: Bool) { self.slot = slot; self.owner = owner }
}

/// Interrupts a reader found due, raised once it has left: the one SINT a HvCallSignalEvent
/// can raise, and the VPs of bank 0 a fast HvCallSendSyntheticClusterIpi names. A few words,
/// so a reader sets up nothing larger.
@usableFromInline struct DeferredInterrupts {
    @usableFromInline var partition = PartitionID(0)
    @usableFromInline var hasSINT = false
    @usableFromInline var sintVP: UInt32 = 0
    @usableFromInline var sintVector: UInt8 = 0
    @usableFromInline var sintAutoEOI = false
    @usableFromInline var ipiMask: UInt64 = 0
    @usableFromInline var ipiVector: UInt8 = 0

    /// False when it cannot hold the interrupt (the caller then raises it at once).
    @inlinable mutating func addSINT(_ partition: PartitionID, _ vp: VPIndex, _ vector: UInt8, _ eoi: Bool) -> Bool {
        guard !hasSINT else { return false }
        self.partition = partition
        hasSINT = true
        sintVP = vp.rawValue
        sintVector = vector
        sintAutoEOI = eoi
        return true
    }

    @inlinable mutating func addIPI(_ partition: PartitionID, _ vp: Int, _ vector: UInt8) -> Bool {
        guard vp < 64, ipiMask == 0 || ipiVector == vector, !hasSINT || self.partition == partition else { return false }
        self.partition = partition
        ipiMask |= 1 << UInt64(vp)
        ipiVector = vector
        return true
    }

    @inlinable func raise<H: ViridianHost>(on host: H) {
        if hasSINT { host.raiseInterrupt(partition: partition, vp: VPIndex(sintVP), vector: sintVector, autoEOI: sintAutoEOI) }
        var m = ipiMask
        while m != 0 {
            let vp = m.trailingZeroBitCount
            m &= m - 1
            host.raiseInterrupt(partition: partition, vp: VPIndex(UInt32(vp)), vector: ipiVector, autoEOI: false)
        }
    }
    @inlinable init(sintVP: UInt32 = 0, sintVector: UInt8 = 0, ipiMask: UInt64 = 0, ipiVector: UInt8 = 0) { self.sintVP = sintVP; self.sintVector = sintVector; self.ipiMask = ipiMask; self.ipiVector = ipiVector }
}
