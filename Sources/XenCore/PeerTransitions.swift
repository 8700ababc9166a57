import XenABI

/// Changes to a domain's ports that the other end of an interdomain channel causes. A fabric
/// applies them to the domain they belong to: XenNative directly, under both ports' locks;
/// XenViridian when the control message that announces them arrives in that domain's SynIC,
/// under the port's lock. Neither takes the domain's event lock: a port's binding changes are
/// serialised by its own lock, which the domain's own binding changes also hold.
extension XenDomain {
    /// The peer bound `port` (unbound, waiting for `remote`): it becomes interdomain with
    /// `remotePort`. False, changing nothing, when `port` is not unbound for `remote`.
    @inlinable public func peerBound(_ port: UInt32, to remote: DomainID, remotePort: UInt32) -> Bool {
        guard isValid(port) else { return false }
        lockChannel(port)
        defer { unlockChannel(port) }
        return peerBoundLocked(port, to: remote, remotePort: remotePort)
    }

    /// `peerBound` on a record whose lock the caller holds.
    @inlinable package func peerBoundLocked(_ port: UInt32, to remote: DomainID, remotePort: UInt32) -> Bool {
        let c = channelPointer(port)
        guard c.pointee.state == .unbound && c.pointee.remoteDomain == remote else { return false }
        c.pointee.state = .interdomain
        c.pointee.remotePort = remotePort
        publishBinding(port)
        return true
    }

    /// Whether `port` is unbound and waiting for `remote` (what EVTCHNOP_bind_interdomain
    /// requires of the remote port).
    @inlinable public func isUnbound(_ port: UInt32, for remote: DomainID) -> Bool {
        guard isValid(port) else { return false }
        return withChannel(port) { $0.state == .unbound && $0.remoteDomain == remote }
    }

    /// Whether `port` is interdomain with `remotePort` of `remote`.
    @inlinable public func isInterdomain(_ port: UInt32, with remote: DomainID, remotePort: UInt32) -> Bool {
        guard isValid(port) else { return false }
        return withChannel(port) { $0.isInterdomain(with: remote, remotePort: remotePort) }
    }

    /// The peer closed its end, `remotePort` of `remote`: the interdomain `port` becomes
    /// unbound, waiting for `remote` (Xen evtchn_close on the peer's channel). False, changing
    /// nothing, when `port` is not interdomain with that port of `remote`.
    @discardableResult
    @inlinable public func peerClosed(_ port: UInt32, by remote: DomainID, remotePort: UInt32) -> Bool {
        guard isValid(port) else { return false }
        lockChannel(port)
        defer { unlockChannel(port) }
        return peerClosedLocked(port, by: remote, remotePort: remotePort)
    }

    /// `peerClosed` on a record whose lock the caller holds.
    @discardableResult
    @inlinable package func peerClosedLocked(_ port: UInt32, by remote: DomainID, remotePort: UInt32) -> Bool {
        let c = channelPointer(port)
        guard c.pointee.isInterdomain(with: remote, remotePort: remotePort) else { return false }
        c.pointee.state = .unbound
        publishBinding(port)
        return true
    }

    /// The record of a port whose lock the caller holds.
    @inlinable package func channelLocked(_ port: UInt32) -> EventChannel { channelPointer(port).pointee }
}

extension EventChannel {
    /// Interdomain with `remotePort` of `remote`.
    @inline(__always)
    @inlinable public func isInterdomain(with remote: DomainID, remotePort: UInt32) -> Bool {
        state == .interdomain && remoteDomain == remote && self.remotePort == remotePort
    }
}
