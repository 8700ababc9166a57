import CGuestAtomics
import GuestABI
import ViridianABI

/// A deterministic, in-process Viridian hypervisor: partitions, VPs, synthetic MSRs, the
/// hypercall interface, the SynIC (message and event-flag pages, SINTs), ports and
/// connections, synthetic timers, reference time, IPIs, TLB flushes and inter-partition page
/// mapping, as the Hyper-V TLFS specifies them. Where the TLFS is silent or ambiguous it follows
/// KVM (Linux arch/x86/kvm/hyperv.c) and QEMU (hw/hyperv/hyperv.c), and the doc comments say so.
///
/// It is driven only through the Viridian ABI (`ViridianTarget`: hypercall registers, MSRs,
/// CPUID, and the SynIC pages in guest memory) plus a root API for what a parent partition or
/// the hypervisor's owner does (create partitions, ports and connections, map pages, advance
/// the virtual clock). What it implements is declared by the `ref` rows of `Specs/viridian/`
/// (`ReferenceHypercall`, `ReferenceMSR`).
///
/// Threads (Docs/Threading.md): calls may come from any thread. The fast paths (the fast forms
/// of HvCallSignalEvent and HvCallSendSyntheticClusterIpi) run as readers, with no shared lock;
/// every other entry point is a writer, which takes one entry lock (its holder's thread may take
/// it again: a host callback may call back in) and waits for the readers to leave
/// (`FastPathReaders.swift`). Single-threaded use is unchanged and deterministic: time moves only
/// when the embedder advances the clock, so runs are exactly repeatable. Nothing on the
/// hypercall, MSR or delivery paths allocates after `createPartition`.
public final class ViridianReference<Memory: GuestMemory, Host: ViridianHost> {
    /// The embedder's APIC and host services; called synchronously from inside the call that causes each interrupt or service.
    public let host: Host
    /// The hypervisor's virtual clock (TSC and reference time); it moves only when the embedder advances it.
    @exclusivity(unchecked) public var clock: ReferenceClock
    /// Virtual local APIC timer frequency reported by HV_X64_MSR_APIC_FREQUENCY, in Hz.
    public let apicFrequency: UInt64
    /// Partition state, non-generic so that reaching a field never copies a whole partition.
    @usableFromInline @exclusivity(unchecked) var partitions: [PartitionState] = []
    /// Each partition's guest memory, by partition index.
    @usableFromInline @exclusivity(unchecked) var memories: [Memory] = []
    /// The entry lock (owner and depth, `xv_rlock`), which every writer takes.
    @usableFromInline let entryLock: UnsafeMutablePointer<UInt64>
    /// The fast paths' reader slots (`FastPathReaders.swift`).
    @usableFromInline let readers = ReaderSlots()

    /// A hypervisor with no partitions, its virtual TSC at 0 running at `tscFrequency` Hz (more
    /// than 10 MHz); nil when the frequency is out of range.
    public init?(host: Host, tscFrequency: UInt64 = 2_500_000_000, apicFrequency: UInt64 = 1_000_000_000) {
        guard let clock = ReferenceClock(tscFrequency: tscFrequency) else { return nil }
        self.host = host
        self.clock = clock
        self.apicFrequency = apicFrequency
        entryLock = .allocate(capacity: 2)
        entryLock.initialize(repeating: 0, count: 2)
    }

    deinit {
        entryLock.deallocate()
        readers.deallocate()
    }

    /// A writer's entry: the entry lock (its holder's thread may take it again), and on the
    /// outermost entry the wait for every reader to leave.
    @inline(__always)
    @inlinable func lockEntry() {
        xv_rlock_lock(entryLock)
        if entryLock[1] == 1 { readers.beginWriter(partitions: partitions.count) }
    }

    @inline(__always)
    @inlinable func unlockEntry() {
        if entryLock[1] == 1 { readers.endWriter() }
        xv_rlock_unlock(entryLock)
    }

    // MARK: - Partitions

    /// Creates a partition whose guest-physical memory is `memory`. Its reference time starts
    /// at 0. Partition ids are 1, 2, 3, ... in creation order.
    @inlinable public func createPartition(_ config: PartitionConfiguration, memory: Memory) throws(PartitionConfigurationError) -> PartitionID {
        lockEntry()
        defer { unlockEntry() }
        guard config.vpCount >= 1, config.vpCount <= Int(ViridianLimits.maximumProcessors) else { throw .vpCountOutOfRange }
        guard config.messageQueueDepth >= 0, config.maxPorts >= 0, config.maxConnections >= 0,
              config.maxMappedPages >= 0, config.repsPerInvocation >= 0 else { throw .negativeCapacity }
        guard partitions.count < ReaderSlots.capacity else { throw .tooManyPartitions }
        let id = PartitionID(UInt64(partitions.count + 1))
        partitions.append(PartitionState(id: id, config: config, referenceOffset: 0 &- clock.scaled(clock.tsc)))
        memories.append(memory)
        readers.add(partitions.count - 1, vpCount: config.vpCount)
        return id
    }

    /// The index of `id` in `partitions`, or nil for an id no partition has.
    @inline(__always)
    @inlinable func index(of id: PartitionID) -> Int? {
        let i = id.rawValue &- 1
        return i < UInt64(partitions.count) ? Int(i) : nil
    }

    /// The index of VP `vp` of partition index `p`, or nil when out of range.
    @inline(__always)
    @inlinable func vpIndex(_ p: Int, _ vp: VPIndex) -> Int? {
        let v = Int(vp.rawValue)
        return v < partitions[p].vps.count ? v : nil
    }

    /// Number of VPs of `partition` (0 for an unknown partition).
    @inlinable public func vpCount(of partition: PartitionID) -> Int {
        lockEntry()
        defer { unlockEntry() }
        return index(of: partition).map { partitions[$0].vps.count } ?? 0
    }

    /// The partition's reference time now, in 100 ns units (what HV_X64_MSR_TIME_REF_COUNT
    /// reads); 0 for an unknown partition.
    @inlinable public func referenceTime(of partition: PartitionID) -> UInt64 {
        lockEntry()
        defer { unlockEntry() }
        guard let p = index(of: partition) else { return 0 }
        return referenceTime(p)
    }

    @inline(__always)
    @inlinable func referenceTime(_ p: Int) -> UInt64 { clock.scaled(clock.tsc) &+ partitions[p].referenceOffset }

    // MARK: - Guest memory

    /// The host address of `frame` as `partition` sees it: a page of another partition mapped
    /// there (checked against the mapping's access rights), or the partition's own memory.
    /// Nil when unbacked, or when the mapping does not allow the access.
    @inlinable public func hostAddress(partition: PartitionID, frame: GuestFrameNumber, write: Bool) -> UnsafeMutableRawPointer? {
        lockEntry()
        defer { unlockEntry() }
        guard let p = index(of: partition) else { return nil }
        return hostAddress(p, frame: frame.rawValue, write: write)
    }

    @inline(__always)
    @inlinable func hostAddress(_ p: Int, frame: UInt64, write: Bool) -> UnsafeMutableRawPointer? {
        if !partitions[p].mappings.isEmpty {
            let (i, found) = partitions[p].mappingIndex(frame)
            if found {
                let m = partitions[p].mappings[i]
                guard m.flags.contains(write ? .writable : .readable) else { return nil }
                return memories[m.sourcePartition].hostAddress(of: GuestFrameNumber(m.sourceFrame))
            }
        }
        return memories[p].hostAddress(of: GuestFrameNumber(frame))
    }

    /// The host address of `length` bytes at `gpa` of partition `p`, when they are accessible
    /// and inside one page.
    @inline(__always)
    @inlinable func hostAddress(_ p: Int, gpa: UInt64, length: UInt64, write: Bool) -> UnsafeMutableRawPointer? {
        let address = GuestPhysicalAddress(gpa)
        guard address.rangeStaysInOnePage(length: length),
              let page = hostAddress(p, frame: address.frame.rawValue, write: write) else { return nil }
        return page + Int(address.offsetInPage)
    }

    // MARK: - Clock

    /// Moves the virtual TSC forward to `tsc` (a value not ahead of it is ignored) and fires
    /// every synthetic timer that expires on the way, each on time: a timer message's delivery
    /// time is its expiration time.
    @inlinable public func advance(toTSC tsc: UInt64) {
        lockEntry()
        defer { unlockEntry() }
        guard tsc > clock.tsc else { return }
        clock.tsc = tsc
        for p in partitions.indices { fireDueTimers(p) }
    }

    /// Moves the virtual TSC forward by `ticks` (saturating).
    @inlinable public func advance(byTSCTicks ticks: UInt64) {
        let (sum, overflow) = clock.tsc.addingReportingOverflow(ticks)
        advance(toTSC: overflow ? .max : sum)
    }

    /// Moves the virtual TSC forward by at least `ticks` of reference time (100 ns units).
    @inlinable public func advance(byReferenceTicks ticks: UInt64) {
        advance(toTSC: clock.tscAfter(referenceTicks: ticks))
    }

    // MARK: - Interrupt acknowledgement

    /// The VP's local APIC received an EOI for `vector`. Like an EOM write, this retries the
    /// messages waiting for the slots of every SINT using that vector (KVM
    /// kvm_hv_synic_send_eoi does the same, for guests that EOI without writing EOM).
    @inlinable public func notifyEndOfInterrupt(partition: PartitionID, vp: VPIndex, vector: UInt8) {
        lockEntry()
        defer { unlockEntry() }
        guard let p = index(of: partition), let v = vpIndex(p, vp) else { return }
        for s in 0..<Int(SynICLimits.sintCount) where partitions[p].vps[v].sint(s).vector == UInt64(vector) {
            retryDelivery(p, v, sint: s)
        }
    }
}
