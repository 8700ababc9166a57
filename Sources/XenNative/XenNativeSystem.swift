import GuestABI
import XenABI
import XenCore

/// The native baseline: Xen's own handling of the same hypercalls, with no Viridian underneath.
/// Every domain's state is in reach, so an interdomain send sets the peer's pending bit
/// directly and an upcall is an injection into the embedder's APIC (xen-project/xen
/// xen/common/event_channel.c evtchn_send, xen/arch/x86/hvm/irq.c hvm_assert_evtchn_irq).
/// It is the "native" side of every benchmark and the oracle of the differential tests.
///
/// Single-threaded: the embedder serialises calls.
public final class XenNativeSystem<Memory: GuestMemory, Sink: XenUpcallSink>: EventFabric {
    public let sink: Sink
    /// Domains by id: `slots[id]` is an index into `domains`, plus one (0: none).
    private let slots: UnsafeMutablePointer<UInt16>
    /// The domains, each held by one retain taken at creation and given back in deinit, so a
    /// lookup on the send path is a load, not a retain (Xen follows a plain pointer to the
    /// remote domain).
    private var domains: UnsafeMutablePointer<Unmanaged<XenDomain<Memory>>>
    private var domainCount = 0
    private var domainCapacity = 4

    public init(sink: Sink) {
        self.sink = sink
        slots = .allocate(capacity: Int(DomainID.firstReserved.rawValue))
        slots.initialize(repeating: 0, count: Int(DomainID.firstReserved.rawValue))
        domains = .allocate(capacity: domainCapacity)
    }

    deinit {
        for i in 0..<domainCount { domains[i].release() }
        slots.deallocate()
        domains.deallocate()
    }

    /// Creates a domain; its shared_info frame must be backed.
    @discardableResult
    public func createDomain(_ config: DomainConfiguration, memory: Memory) throws(DomainConfigurationError) -> XenDomain<Memory> {
        guard config.id < DomainID.firstReserved, slots[Int(config.id.rawValue)] == 0 else { throw .invalidDomainID }
        let domain = try XenDomain(config, memory: memory)
        if domainCount == domainCapacity {
            let grown = UnsafeMutablePointer<Unmanaged<XenDomain<Memory>>>.allocate(capacity: domainCapacity * 2)
            grown.moveInitialize(from: domains, count: domainCount)
            domains.deallocate()
            domains = grown
            domainCapacity *= 2
        }
        (domains + domainCount).initialize(to: .passRetained(domain))
        domainCount += 1
        slots[Int(config.id.rawValue)] = UInt16(domainCount)
        return domain
    }

    /// Where domain `id` is in `domains`; nil when there is no such domain.
    @inline(__always)
    private func index(of id: DomainID) -> Int? {
        guard id < DomainID.firstReserved else { return nil }
        let s = Int(slots[Int(id.rawValue)])
        return s == 0 ? nil : s - 1
    }

    @inline(__always)
    public func domain(_ id: DomainID) -> XenDomain<Memory>? {
        index(of: id).map { domains[$0].takeUnretainedValue() }
    }

    /// Runs `body` on domain `id` without a retain (the system owns its domains); nil when
    /// there is no such domain.
    @inline(__always)
    public func withDomain<R>(_ id: DomainID, _ body: (XenDomain<Memory>) -> R) -> R? {
        guard let i = index(of: id) else { return nil }
        return domains[i]._withUnsafeGuaranteedRef(body)
    }

    /// The hypercall entry: `registers` from `vcpu` of `domain`; the value for RAX. An unknown
    /// domain is -ESRCH.
    public func hypercall(domain id: DomainID, vcpu: Int, _ registers: XenHypercallRegisters) -> Int64 {
        withDomain(id) { $0.hypercall(registers, vcpu: vcpu, fabric: self) } ?? XenErrno.esrch.hypercallReturnValue
    }

    // MARK: - EventFabric

    public func domainExists(_ id: DomainID) -> Bool { domain(id) != nil }

    public func offer(_ domain: XenDomain<Memory>, port: UInt32, to remote: DomainID) -> LayerOutcome { .ok }

    public func withdraw(_ domain: XenDomain<Memory>, port: UInt32) {}

    public func connect(_ domain: XenDomain<Memory>, localPort: UInt32, to remote: DomainID, remotePort: UInt32) -> LayerOutcome {
        guard let peer = self.domain(remote), peer.peerBound(remotePort, to: domain.id, remotePort: localPort) else {
            return .portInvalid
        }
        return .ok
    }

    public func disconnect(_ domain: XenDomain<Memory>, port: UInt32, channel: EventChannel) {
        self.domain(channel.remoteDomain)?.peerClosed(channel.remotePort, by: domain.id, remotePort: port)
    }

    @inline(__always)
    public func send(_ domain: XenDomain<Memory>, port: UInt32, channel: EventChannel, from vcpu: Int) -> LayerOutcome {
        _ = withDomain(channel.remoteDomain) { raise($0, port: channel.remotePort) }
        return .ok
    }

    @inline(__always)
    public func raiseUpcall(_ domain: XenDomain<Memory>, vcpu: Int, from current: Int) { inject(domain, vcpu: vcpu) }

    @inline(__always)
    func inject(_ domain: XenDomain<Memory>, vcpu: Int) {
        if let vector = domain.upcallVector(vcpu) { sink.upcall(domain: domain.id, vcpu: vcpu, vector: vector) }
    }

    public func notifyVCPUChanged(_ domain: XenDomain<Memory>, port: UInt32) {}

    public func upcallVectorChanged(_ domain: XenDomain<Memory>, vcpu: Int) -> LayerOutcome { .ok }
}

extension XenNativeSystem {
    /// An event raised on `port` of `domain` from outside any hypercall of that domain (what
    /// Xen does when a peer or a VIRQ source signals it): pending bit, then the upcall when due.
    @inline(__always)
    public func raise(_ domain: XenDomain<Memory>, port: UInt32) {
        if let target = domain.setPending(port) { inject(domain, vcpu: target) }
    }
}
