import XenABI

/// Changes to a domain's ports that the other end of an interdomain channel causes. A fabric
/// applies them to the domain they belong to: XenNative directly, XenViridian when the control
/// message that announces them arrives in that domain's SynIC.
extension XenDomain {
    /// The peer bound `port` (unbound, waiting for `remote`): it becomes interdomain with
    /// `remotePort`. False, changing nothing, when `port` is not unbound for `remote`.
    public func peerBound(_ port: UInt32, to remote: DomainID, remotePort: UInt32) -> Bool {
        guard isUnbound(port, for: remote) else { return false }
        update(port) {
            $0.state = .interdomain
            $0.remotePort = remotePort
        }
        return true
    }

    /// Whether `port` is unbound and waiting for `remote` (what EVTCHNOP_bind_interdomain
    /// requires of the remote port).
    public func isUnbound(_ port: UInt32, for remote: DomainID) -> Bool {
        guard isValid(port) else { return false }
        let c = ports[Int(port)]
        return c.state == .unbound && c.remoteDomain == remote
    }

    /// Whether `port` is interdomain with `remotePort` of `remote`.
    public func isInterdomain(_ port: UInt32, with remote: DomainID, remotePort: UInt32) -> Bool {
        guard isValid(port) else { return false }
        let c = ports[Int(port)]
        return c.state == .interdomain && c.remoteDomain == remote && c.remotePort == remotePort
    }

    /// The peer closed its end, `remotePort` of `remote`: the interdomain `port` becomes
    /// unbound, waiting for `remote` (Xen evtchn_close on the peer's channel). Nothing changes
    /// when `port` is not interdomain with that port of `remote`.
    public func peerClosed(_ port: UInt32, by remote: DomainID, remotePort: UInt32) {
        guard isInterdomain(port, with: remote, remotePort: remotePort) else { return }
        update(port) { $0.state = .unbound }
    }
}
