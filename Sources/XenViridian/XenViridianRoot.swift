import GuestABI
import XenABI
import ViridianABI

/// The root side of the translation: what a parent partition provides its children on a
/// Viridian hypervisor, as VMBus's root offers channels. It knows which partition hosts each
/// Xen domain (so a bind to an unknown domain is -ESRCH), keeps the directory of unbound
/// ports offered to other domains (EVTCHNOP_alloc_unbound), and creates and removes ports and
/// connections through the target's root services. It never reads or writes a domain's memory
/// or port table: the domains' layers keep those, and tell each other about bindings with
/// Viridian messages.
public final class XenViridianRoot<Target: ViridianTarget & ViridianRootServices> {
    public let target: Target
    /// `partitionOf[domid]`: the partition hosting the domain, 0 when none.
    private let partitionOf: UnsafeMutablePointer<UInt64>
    /// Per domain, per port: the domain an unbound port is offered to (`noOffer` when none).
    /// Allocated when the domain registers.
    private var offers: UnsafeMutablePointer<UnsafeMutablePointer<UInt16>?>
    private let maxPorts: UnsafeMutablePointer<UInt32>
    static var noOffer: UInt16 { 0xFFFF }
    static var domainSlots: Int { Int(DomainID.firstReserved.rawValue) }

    public init(target: Target) {
        self.target = target
        partitionOf = .allocate(capacity: Self.domainSlots)
        partitionOf.initialize(repeating: 0, count: Self.domainSlots)
        offers = .allocate(capacity: Self.domainSlots)
        offers.initialize(repeating: nil, count: Self.domainSlots)
        maxPorts = .allocate(capacity: Self.domainSlots)
        maxPorts.initialize(repeating: 0, count: Self.domainSlots)
    }

    deinit {
        for d in 0..<Self.domainSlots { offers[d]?.deallocate() }
        offers.deallocate()
        partitionOf.deallocate()
        maxPorts.deallocate()
    }

    /// Records that `domain` runs in `partition`, with ports up to `maxPort`; false when the id
    /// is reserved or taken.
    func register(_ domain: DomainID, partition: PartitionID, maxPort: UInt32) -> Bool {
        guard domain < DomainID.firstReserved, partitionOf[Int(domain.rawValue)] == 0, partition.rawValue != 0 else { return false }
        partitionOf[Int(domain.rawValue)] = partition.rawValue
        let table = UnsafeMutablePointer<UInt16>.allocate(capacity: Int(maxPort) + 1)
        table.initialize(repeating: Self.noOffer, count: Int(maxPort) + 1)
        offers[Int(domain.rawValue)] = table
        maxPorts[Int(domain.rawValue)] = maxPort
        return true
    }

    /// The partition hosting `domain`, if any.
    @inline(__always)
    public func partition(of domain: DomainID) -> PartitionID? {
        guard domain < DomainID.firstReserved else { return nil }
        let p = partitionOf[Int(domain.rawValue)]
        return p == 0 ? nil : PartitionID(p)
    }

    // MARK: - The offer directory

    func offer(_ owner: DomainID, port: UInt32, to remote: DomainID) {
        guard let table = offers[Int(owner.rawValue)], port <= maxPorts[Int(owner.rawValue)] else { return }
        table[Int(port)] = remote.rawValue
    }

    func withdraw(_ owner: DomainID, port: UInt32) {
        guard let table = offers[Int(owner.rawValue)], port <= maxPorts[Int(owner.rawValue)] else { return }
        table[Int(port)] = Self.noOffer
    }

    /// Whether `port` of `owner` is offered to `claimant`.
    func isOffered(_ owner: DomainID, port: UInt32, to claimant: DomainID) -> Bool {
        guard owner < DomainID.firstReserved, let table = offers[Int(owner.rawValue)],
              port <= maxPorts[Int(owner.rawValue)] else { return false }
        return table[Int(port)] == claimant.rawValue
    }

    // MARK: - Viridian ids

    /// Each partition's event port for Xen port N has PortID N; its connection for sending on
    /// Xen port N has ConnectionID N (both below 2^17). The control port is one id above the
    /// Xen range; the connection into domain D's control port is 0x800000 + D (24-bit ids,
    /// TLFS HV_PORT_ID / HV_CONNECTION_ID).
    static var controlPort: PortID { PortID(0xFF_FFF0) }
    @inline(__always)
    static func controlConnection(to domain: DomainID) -> ConnectionID { ConnectionID(0x80_0000 | UInt32(domain.rawValue)) }
}

extension XenViridianRoot {
    /// Connects the new domain's partition to every registered domain's control port
    /// (including its own, for loopback binds) and every other partition to its control port.
    func linkControl(_ domain: DomainID) -> Bool {
        guard let p = partition(of: domain) else { return false }
        for d in 0..<Self.domainSlots where partitionOf[d] != 0 {
            let other = DomainID(UInt16(d))
            let q = PartitionID(partitionOf[d])
            guard target.connectPort(from: p, connection: Self.controlConnection(to: other), to: q, port: Self.controlPort) == .success
            else { return false }
            if other != domain {
                guard target.connectPort(from: q, connection: Self.controlConnection(to: domain), to: p, port: Self.controlPort) == .success
                else { return false }
            }
        }
        return true
    }
}
