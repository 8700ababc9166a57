import CGuestAtomics
import GuestABI
import XenABI
import ViridianABI

/// The root side of the translation: what a parent partition provides its children on a
/// Viridian hypervisor, as VMBus's root offers channels. It knows which partition hosts each
/// Xen domain (so a bind to an unknown domain is -ESRCH), keeps the directory of unbound
/// ports offered to other domains (EVTCHNOP_alloc_unbound) and the record of every
/// interdomain link it made, and creates and removes ports and connections through the
/// target's root services. It never reads or writes a domain's memory or port table: the
/// domains' layers keep those, and tell each other about bindings with Viridian messages.
///
/// Its records are the authority. A bind links two ports only when the root itself saw the
/// offer; a close removes only the link the root holds for the closing port, never what the
/// closing domain's own record says; and a receiving layer applies a control message only when
/// it agrees with these records (`link(of:port:)`).
///
/// Threads: the records change under one root lock (a parent partition's control plane is one
/// service; only binding changes reach it), which may be held across the target's root calls;
/// they are read with acquire loads and no lock, so the interrupt path (which runs inside the
/// target's calls) never waits for it.
public final class XenViridianRoot<Target: ViridianTarget & ViridianRootServices> {
    /// The Viridian hypervisor whose root services (ports, connections, GPA mappings) the root calls; retained for the root's life.
    public let target: Target
    /// The records, by domain id, in chunks allocated as ids are first registered
    /// (`DomainChunks`), so the root's size follows the domains it has, not the 32,752 ids
    /// there could be. Each domain has `RootSlot.words` words (`slot`).
    @usableFromInline let records: DomainChunks<RootSlot>
    /// The registered domains, in order of registration (under the root lock).
    @usableFromInline @exclusivity(unchecked) var registered: [DomainID] = []
    /// The pairs of domains whose control channel exists, lower id in the high half, sorted
    /// (under the root lock). A sorted array, not a Set: the core links with libc alone, and
    /// hashing would bring libm's ceil into an Embedded build.
    @usableFromInline @exclusivity(unchecked) var controlPairs: [UInt32] = []
    @usableFromInline let rootLock: UnsafeMutablePointer<UInt32>
    @inlinable static var noOffer: UInt32 { 0xFFFF }

    /// An empty root (no domains registered) over `target`.
    public init(target: Target) {
        self.target = target
        records = DomainChunks()
        rootLock = .allocate(capacity: 1)
        rootLock.initialize(to: 0)
    }

    deinit {
        records.forEachAllocated { _, w in
            Self.table(w[RootSlot.offers], UInt32.self)?.deallocate()
            Self.table(w[RootSlot.links], UInt64.self)?.deallocate()
            if w[RootSlot.granterBox] != 0 {
                Unmanaged<GrantGranterBox>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(w[RootSlot.granterBox]))!).release()
            }
        }
        records.deallocate()
        rootLock.deallocate()
    }

    @inline(__always)
    @inlinable static func table<T>(_ bits: UInt64, _: T.Type) -> UnsafeMutablePointer<T>? {
        UnsafeMutablePointer<T>(bitPattern: UInt(bits))
    }

    /// `domain`'s words, when its chunk exists (a domain never registered reads as zeros).
    @inline(__always)
    @inlinable func slot(_ domain: DomainID) -> UnsafeMutablePointer<UInt64>? { records.words(domain) }

    /// `domain`'s words, allocating its chunk. Under the root lock.
    @inlinable func slotCreating(_ domain: DomainID) -> UnsafeMutablePointer<UInt64>? { records.wordsCreating(domain) }

    /// Runs a change of the records under the root lock.
    @inline(__always)
    @inlinable func withRootLock<R>(_ body: () -> R) -> R {
        xv_spin_lock(rootLock)
        defer { xv_spin_unlock(rootLock) }
        return body()
    }

    /// Records that `domain` runs in `partition`, with ports up to `maxPort`; false when the id
    /// is reserved or taken, or the partition already hosts a domain.
    @inlinable func register(_ domain: DomainID, partition: PartitionID, maxPort: UInt32) -> Bool {
        withRootLock {
            guard domain < DomainID.firstReserved, self.partition(of: domain) == nil, partition.rawValue != 0,
                  domainLocked(in: partition) == nil, let w = slotCreating(domain) else { return false }
            let offerTable = UnsafeMutablePointer<UInt32>.allocate(capacity: Int(maxPort) + 1)
            offerTable.initialize(repeating: Self.noOffer, count: Int(maxPort) + 1)
            let linkTable = UnsafeMutablePointer<UInt64>.allocate(capacity: Int(maxPort) + 1)
            linkTable.initialize(repeating: 0, count: Int(maxPort) + 1)
            w[RootSlot.maxPort] = UInt64(maxPort)
            xv_store_release_u64(w + RootSlot.offers, UInt64(UInt(bitPattern: offerTable)))
            xv_store_release_u64(w + RootSlot.links, UInt64(UInt(bitPattern: linkTable)))
            xv_store_release_u64(w + RootSlot.partition, partition.rawValue)
            registered.append(domain)
            return true
        }
    }

    /// The partition hosting `domain`, if any.
    @inline(__always)
    @inlinable public func partition(of domain: DomainID) -> PartitionID? {
        guard let w = slot(domain) else { return nil }
        let p = xv_load_acquire_u64(w + RootSlot.partition)
        return p == 0 ? nil : PartitionID(p)
    }

    /// The domain `partition` hosts, if any.
    @inlinable public func domain(in partition: PartitionID) -> DomainID? {
        withRootLock { domainLocked(in: partition) }
    }

    @inlinable func domainLocked(in partition: PartitionID) -> DomainID? {
        guard partition.rawValue != 0 else { return nil }
        for d in registered where self.partition(of: d) == partition { return d }
        return nil
    }

    /// The domains registered so far.
    @inlinable public var domainCount: Int { withRootLock { registered.count } }

    /// Chunks of records allocated: one per 256 domain ids in use, not per id possible.
    @inlinable public var allocatedChunks: Int {
        withRootLock { records.allocatedChunks }
    }

    /// The offer word of `port` of `domain`, when both exist.
    @inline(__always)
    @inlinable func offerWord(_ domain: DomainID, _ port: UInt32) -> UnsafeMutablePointer<UInt32>? {
        guard let w = slot(domain), let t = Self.table(xv_load_acquire_u64(w + RootSlot.offers), UInt32.self),
              UInt64(port) <= w[RootSlot.maxPort] else { return nil }
        return t + Int(port)
    }

    @inline(__always)
    @inlinable func linkWord(_ domain: DomainID, _ port: UInt32) -> UnsafeMutablePointer<UInt64>? {
        guard let w = slot(domain), let t = Self.table(xv_load_acquire_u64(w + RootSlot.links), UInt64.self),
              UInt64(port) <= w[RootSlot.maxPort] else { return nil }
        return t + Int(port)
    }

    // MARK: - The offer directory

    @inlinable func offer(_ owner: DomainID, port: UInt32, to remote: DomainID) {
        withRootLock { if let w = offerWord(owner, port) { xv_store_release_u32(w, UInt32(remote.rawValue)) } }
    }

    /// Whether `port` of `owner` is offered to `claimant`.
    @inlinable public func isOffered(_ owner: DomainID, port: UInt32, to claimant: DomainID) -> Bool {
        offerWord(owner, port).map { xv_load_acquire_u32($0) == UInt32(claimant.rawValue) } ?? false
    }

    // MARK: - Links

    /// The other end of the interdomain link the root made for `port` of `domain`, or nil.
    @inlinable public func link(of domain: DomainID, port: UInt32) -> (domain: DomainID, port: UInt32)? {
        linkWord(domain, port).flatMap { RootLink.decode(xv_load_acquire_u64($0)) }
    }

    /// EVTCHNOP_bind_interdomain's Viridian side: links `port` of `binder` (whose event port
    /// exists) with `remotePort` of `remote`, which must be offered to `binder` in the root's
    /// own directory: a connection each way (connection N of a partition is its Xen port N),
    /// the offer withdrawn, the link recorded at both ends. `.portInvalid` when not offered,
    /// `.portsExhausted` when the target refuses a connection (nothing is left behind).
    @inlinable func bind(_ binder: DomainID, port: UInt32, to remote: DomainID, remotePort: UInt32) -> LayerOutcome {
        withRootLock {
            guard let theirs = offerWord(remote, remotePort), xv_load_acquire_u32(theirs) == UInt32(binder.rawValue),
                  let myLink = linkWord(binder, port), let theirLink = linkWord(remote, remotePort),
                  let here = partition(of: binder), let peer = partition(of: remote) else { return .portInvalid }
            guard xv_load_acquire_u64(myLink) == 0, xv_load_acquire_u64(theirLink) == 0 else { return .portInvalid }
            // The pair's control channel, made at its first bind (the control messages that
            // follow, `bound` and `closed`, travel only between linked domains).
            guard linkControlPairLocked(binder, remote) else { return .portsExhausted }
            let out = target.connectPort(from: here, connection: ConnectionID(port), to: peer, port: PortID(remotePort))
            let back = out == .success
                ? target.connectPort(from: peer, connection: ConnectionID(remotePort), to: here, port: PortID(port)) : out
            guard back == .success else {
                if out == .success { _ = target.disconnectPort(from: here, connection: ConnectionID(port)) }
                return .portsExhausted
            }
            xv_store_release_u32(theirs, Self.noOffer)
            xv_store_release_u64(myLink, RootLink.encode(remote, remotePort))
            xv_store_release_u64(theirLink, RootLink.encode(binder, port))
            return .ok
        }
    }

    /// The Viridian side of closing `port` of `domain`: removes the link the root holds for it
    /// (both connections and both records) and offers the other end back to `domain`, as Xen
    /// leaves the peer's port unbound for the closer. Returns the other end, whose layer must
    /// be told; nil, removing nothing, when the root holds no link for the port, whatever the
    /// closing domain believes.
    @inlinable func unbind(_ domain: DomainID, port: UInt32) -> (domain: DomainID, port: UInt32)? {
        withRootLock { unbindLocked(domain, port: port) }
    }

    /// Closing `port` of `domain`, whatever its layer believes it is: the link the root holds
    /// for it removed (`unbind`), and any offer of it withdrawn, in one hold of the root lock,
    /// so a peer's bind cannot slip in between and leave a link to a freed port.
    @inlinable func close(_ domain: DomainID, port: UInt32) -> (domain: DomainID, port: UInt32)? {
        withRootLock {
            let other = unbindLocked(domain, port: port)
            if let w = offerWord(domain, port) { xv_store_release_u32(w, Self.noOffer) }
            return other
        }
    }

    @inlinable func unbindLocked(_ domain: DomainID, port: UInt32) -> (domain: DomainID, port: UInt32)? {
        guard let myLink = linkWord(domain, port), let other = RootLink.decode(xv_load_acquire_u64(myLink)),
              let here = partition(of: domain) else { return nil }
        _ = target.disconnectPort(from: here, connection: ConnectionID(port))
        if let peer = partition(of: other.domain) {
            _ = target.disconnectPort(from: peer, connection: ConnectionID(other.port))
        }
        xv_store_release_u64(myLink, 0)
        if let theirLink = linkWord(other.domain, other.port), xv_load_acquire_u64(theirLink) == RootLink.encode(domain, port) {
            xv_store_release_u64(theirLink, 0)
        }
        if let w = offerWord(other.domain, other.port) { xv_store_release_u32(w, UInt32(domain.rawValue)) }
        return other
    }

    // MARK: - Control ports

    /// In domain D's partition, port BASE | S is D's control port for messages from S, and
    /// connection BASE | E leads to E's control port for messages from D
    /// (Specs/translation/control.tbl). Both ids are above every Xen port (below 2^17) and fit
    /// the 24 bits of HV_PORT_ID and HV_CONNECTION_ID.
    @inline(__always)
    @inlinable static func controlPort(from sender: DomainID) -> PortID { PortID(ControlIDs.idBase | UInt32(sender.rawValue)) }
    @inline(__always)
    @inlinable static func controlConnection(to domain: DomainID) -> ConnectionID { ConnectionID(ControlIDs.idBase | UInt32(domain.rawValue)) }

    /// The sending domain a control port id stands for, when it is one of a registered domain.
    @inline(__always)
    @inlinable func sender(ofControlPort port: UInt32) -> DomainID? {
        guard port & ~ControlIDs.idDomainMask == ControlIDs.idBase else { return nil }
        let d = DomainID(UInt16(port & ControlIDs.idDomainMask))
        return partition(of: d) == nil ? nil : d
    }

    /// The control channel between `a` and `b` (one domain twice for loopback binds), made when
    /// they are first linked: each gets a control port for the other, and a connection that
    /// leads there. Made once per pair, so creating a domain costs the same whatever the number
    /// of domains, and the ports and connections follow the pairs that bind. Under the root lock.
    @inlinable func linkControlPairLocked(_ a: DomainID, _ b: DomainID) -> Bool {
        let key = Self.pairKey(a, b)
        let at = controlPairIndex(key)
        if at < controlPairs.count && controlPairs[at] == key { return true }
        guard let p = partition(of: a), let q = partition(of: b) else { return false }
        let message = PortKind.message(vp: VPIndex(0), sint: UInt8(ControlIDs.sint))
        guard target.createPort(in: p, port: Self.controlPort(from: b), kind: message) == .success else { return false }
        guard target.connectPort(from: q, connection: Self.controlConnection(to: a), to: p, port: Self.controlPort(from: b)) == .success else {
            _ = target.deletePort(in: p, port: Self.controlPort(from: b))
            return false
        }
        if a != b {
            guard target.createPort(in: q, port: Self.controlPort(from: a), kind: message) == .success else {
                _ = target.disconnectPort(from: q, connection: Self.controlConnection(to: a))
                _ = target.deletePort(in: p, port: Self.controlPort(from: b))
                return false
            }
            guard target.connectPort(from: p, connection: Self.controlConnection(to: b), to: q, port: Self.controlPort(from: a)) == .success else {
                _ = target.deletePort(in: q, port: Self.controlPort(from: a))
                _ = target.disconnectPort(from: q, connection: Self.controlConnection(to: a))
                _ = target.deletePort(in: p, port: Self.controlPort(from: b))
                return false
            }
        }
        controlPairs.insert(key, at: at)
        return true
    }

    /// A pair's key: the lower id in the high half.
    @inlinable static func pairKey(_ a: DomainID, _ b: DomainID) -> UInt32 {
        UInt32(min(a.rawValue, b.rawValue)) << 16 | UInt32(max(a.rawValue, b.rawValue))
    }

    /// Where `key` is or would go in `controlPairs` (binary search). Under the root lock.
    @inlinable func controlPairIndex(_ key: UInt32) -> Int {
        var lo = 0, hi = controlPairs.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if controlPairs[mid] < key { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Makes the control channel between `a` and `b` now rather than at their first bind (an
    /// embedder that wants every pair ready, or a test that forges messages between domains
    /// that never bound). False when either is not registered or the target refuses.
    @inlinable public func linkControlChannel(_ a: DomainID, _ b: DomainID) -> Bool {
        withRootLock { linkControlPairLocked(a, b) }
    }

    /// Whether `a` and `b` have their control channel (made at their first bind).
    @inlinable public func hasControlChannel(_ a: DomainID, _ b: DomainID) -> Bool {
        withRootLock {
            let key = Self.pairKey(a, b), at = controlPairIndex(key)
            return at < controlPairs.count && controlPairs[at] == key
        }
    }
}

/// A link as the root stores it: bit 63 set, the other domain in bits 47:32, its port in 31:0.
@usableFromInline enum RootLink {
    @inline(__always)
    @inlinable static func encode(_ domain: DomainID, _ port: UInt32) -> UInt64 { 1 << 63 | UInt64(domain.rawValue) << 32 | UInt64(port) }
    @inline(__always)
    @inlinable static func decode(_ value: UInt64) -> (domain: DomainID, port: UInt32)? {
        value >> 63 == 0 ? nil : (DomainID(UInt16(truncatingIfNeeded: value >> 32)), UInt32(truncatingIfNeeded: value))
    }
}

/// The words the root keeps per domain (`XenViridianRoot.slot`).
@usableFromInline enum RootSlot: DomainChunkLayout {
    /// `DomainChunks`' words per domain: `words`.
    @inlinable static var wordsPerDomain: Int { words }
    /// The partition hosting the domain, 0 when none.
    @inlinable static var partition: Int { 0 }
    /// The address of its offer table (per port, the domain an unbound port is offered to,
    /// `noOffer` when none).
    @inlinable static var offers: Int { 1 }
    /// The address of its link table (per port, the interdomain link the root made, `RootLink`
    /// encoding, 0 when none).
    @inlinable static var links: Int { 2 }
    @inlinable static var maxPort: Int { 3 }
    /// Its layer's `GrantGranterBox` (retained), its layer (unretained) and the layer's type.
    @inlinable static var granterBox: Int { 4 }
    @inlinable static var granterObject: Int { 5 }
    @inlinable static var granterType: Int { 6 }
    /// The sequence of the domain's port re-aims (EVTCHNOP_bind_vcpu): odd while one is in
    /// progress. Re-aims are serialised by the domain's event lock.
    @inlinable static var retargets: Int { 7 }
    @inlinable static var words: Int { 8 }
}

extension XenViridianRoot {
    /// `domain`'s layer is about to delete and re-create one of its event ports (TLFS has no
    /// call that re-aims a port at another VP): the sequence goes odd, so a peer whose signal
    /// finds no port retries instead of dropping the event. Under the domain's event lock.
    @inlinable public func beginRetarget(_ domain: DomainID) {
        guard let w = slot(domain) else { return }
        _ = xv_atomic_fetch_add_u64(w + RootSlot.retargets, 1)
    }

    /// The re-aim is done: the port exists again, and the sequence goes even.
    @inlinable public func endRetarget(_ domain: DomainID) {
        guard let w = slot(domain) else { return }
        _ = xv_atomic_fetch_add_u64(w + RootSlot.retargets, 1)
    }

    /// `domain`'s re-aim sequence (0 for a domain never registered).
    @inline(__always)
    @inlinable public func retargetSequence(of domain: DomainID) -> UInt64 {
        guard let w = slot(domain) else { return 0 }
        return xv_atomic_load_u64(w + RootSlot.retargets)
    }
}
