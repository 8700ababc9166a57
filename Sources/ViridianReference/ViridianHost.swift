import GuestABI
import ViridianABI

/// The embedder's side of the reference hypervisor: the virtual local APICs that receive
/// interrupts and the services a hypercall asks of the host (TLB flushes, yielding a spinning
/// VP). The reference calls these synchronously from inside the hypercall, MSR write or clock
/// advance that caused them.
public protocol ViridianHost {
    /// Raise a fixed interrupt with `vector` on the VP's virtual local APIC: a SINT (message,
    /// event flag, synthetic timer in message mode), a direct-mode synthetic timer, or a
    /// synthetic IPI. `autoEOI` is the SINT's AutoEOI bit: the APIC must not wait for an EOI
    /// (TLFS "SINTx Registers").
    func raiseInterrupt(partition: PartitionID, vp: VPIndex, vector: UInt8, autoEOI: Bool)

    /// Flush the named VPs' TLBs (HvCallFlushVirtualAddressSpace/List and their Ex forms). The
    /// request is valid only during the call.
    func flushTLB(_ request: TLBFlushRequest)

    /// A VP reported a long spin wait (HvCallNotifyLongSpinWait): a hint to run another VP.
    func longSpinWait(partition: PartitionID, vp: VPIndex, spinCount: UInt32)

    /// `partition`'s frame now shows `page` (HvCallMapGpaPages mapped another partition's page
    /// there), or its own memory again (nil: the mapping went). The embedder's second-level
    /// page tables follow, so the partition's vCPUs see what the reference's own accesses see.
    func guestMappingChanged(partition: PartitionID, frame: GuestFrameNumber, page: UnsafeMutableRawPointer?, writable: Bool)
}

extension ViridianHost {
    /// A host whose partitions never run guest code that reads mapped pages needs nothing.
    @inlinable public func guestMappingChanged(partition: PartitionID, frame: GuestFrameNumber, page: UnsafeMutableRawPointer?, writable: Bool) {}
}

/// A set of VP indexes, 0..<2048 (HV_MAXIMUM_PROCESSORS), as 32 banks of 64 (the shape of the
/// TLFS HV_VP_SET sparse format). Fixed size: building one allocates nothing.
@frozen
public struct ProcessorSet: Sendable, Equatable {
    /// The set as 32 banks of 64 bits: bit b of bank k is VP 64k + b.
    public var banks: InlineArray<32, UInt64>

    /// The empty set.
    @inlinable public init() { banks = InlineArray(repeating: 0) }

    /// Number of VP indexes a set can hold.
    @inlinable public static var capacity: Int { 2048 }

    /// Adds VP `vp`; an index outside 0 ..< 2048 is ignored.
    @inlinable
    public mutating func insert(_ vp: Int) {
        guard vp >= 0 && vp < Self.capacity else { return }
        banks[vp >> 6] |= UInt64(1) << UInt64(vp & 63)
    }

    /// Whether VP `vp` is a member; false outside 0 ..< 2048.
    @inlinable
    public func contains(_ vp: Int) -> Bool {
        guard vp >= 0 && vp < Self.capacity else { return false }
        return banks[vp >> 6] & (UInt64(1) << UInt64(vp & 63)) != 0
    }

    /// Number of members.
    @inlinable public var count: Int {
        var n = 0
        for i in 0..<32 { n += banks[i].nonzeroBitCount }
        return n
    }

    /// Whether the set has no members.
    @inlinable public var isEmpty: Bool {
        for i in 0..<32 where banks[i] != 0 { return false }
        return true
    }

    /// The set {0, ..., n-1}.
    @inlinable public static func first(_ n: Int) -> ProcessorSet {
        var s = ProcessorSet()
        let vpCount = min(max(n, 0), capacity)
        for bank in 0..<banksInUse(vpCount) { s.banks[bank] = bankMask(bank, vpCount: vpCount) }
        return s
    }

    /// Equal when every bank is equal.
    @inlinable public static func == (a: ProcessorSet, b: ProcessorSet) -> Bool {
        for i in 0..<32 where a.banks[i] != b.banks[i] { return false }
        return true
    }
}

extension ProcessorSet {
    /// Banks that hold any of VPs 0..<vpCount.
    @inlinable static func banksInUse(_ vpCount: Int) -> Int { (vpCount + 63) / 64 }

    /// The bits of bank `bank` that name existing VPs.
    @inlinable static func bankMask(_ bank: Int, vpCount: Int) -> UInt64 {
        let first = bank * 64
        guard vpCount > first else { return 0 }
        let n = vpCount - first
        return n >= 64 ? .max : (UInt64(1) << UInt64(n)) - 1
    }
}

/// One TLB flush a partition asked for.
@frozen
public struct TLBFlushRequest {
    /// The partition whose VP asked for the flush.
    public var partition: PartitionID
    /// The calling VP.
    public var vp: VPIndex
    /// The call that asked (one of the four flush codes).
    public var call: HVCallCode
    /// The address space (CR3 value) named by the call.
    public var addressSpace: UInt64
    /// The call's HV_FLUSH_* flags as the guest gave them (all processors, all address spaces, non-global mappings only, extended range format).
    public var flags: HVFlushFlags
    /// The VPs to flush, already restricted to the partition's VPs. A zero processor mask
    /// without HV_FLUSH_ALL_PROCESSORS means all processors (see `ReferenceHypercalls`).
    public var processors: ProcessorSet
    /// For the List forms, the GVA ranges of this invocation; empty for the Space forms (flush
    /// the whole address space).
    public var ranges: GVARangeList
    @inlinable init(partition: PartitionID, vp: VPIndex, call: HVCallCode, addressSpace: UInt64, flags: HVFlushFlags, processors: ProcessorSet, ranges: GVARangeList) { self.partition = partition; self.vp = vp; self.call = call; self.addressSpace = addressSpace; self.flags = flags; self.processors = processors; self.ranges = ranges }
}

/// The GVA ranges of a HvCallFlushVirtualAddressList(Ex) invocation, read from the caller's
/// input page. Valid only during `ViridianHost.flushTLB`.
@frozen
public struct GVARangeList {
    @usableFromInline let base: UnsafeRawPointer?
    /// Number of ranges (0 when there is no input page).
    public let count: Int

    @inlinable init(base: UnsafeRawPointer?, count: Int) {
        self.base = base
        self.count = base == nil ? 0 : count
    }

    /// No ranges (the Space forms).
    @inlinable public static var empty: GVARangeList { GVARangeList(base: nil, count: 0) }

    /// Range `index` (0..<count): a GVA page number and the number of further pages.
    @inlinable
    public subscript(index: Int) -> HVGVARange {
        precondition(index >= 0 && index < count, "GVA range index out of bounds")
        return HVGVARange(rawValue: UInt64(littleEndian: base!.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)))
    }
}
