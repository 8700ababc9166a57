import GuestABI
import XenABI
import XenCore

/// Save and restore of a translated domain (Docs/SaveRestore.md): the domain image is the
/// side-independent Xen state (`XenDomain.saveImage`), so a domain saved here restores onto the
/// native baseline and the other way round. What Viridian holds for the domain (event flags
/// set and messages queued but not yet taken, the SynIC programming, ports, connections,
/// synthetic timers) is not in the image: a save first takes everything the SynIC holds into
/// Xen state, and a restore makes the Viridian objects again from the Xen state.
extension XenViridianDomain {
    /// The domain's image. The embedder has stopped the domain's vCPUs; every VP's SynIC is
    /// drained first (event flags to pending bits, control messages applied, expired timers
    /// fired), as if each VP had taken its interrupt.
    public func saveImage() -> [UInt8] {
        for vp in 0..<domain.vcpuCount { interrupt(vp: vp, vector: layer.bootstrapVector) }
        return domain.saveImage(fabric: self)
    }

    /// Restores an image (from either side) into this domain, which no hypercall has changed
    /// yet; the embedder copied the guest's memory first. Throws, changing nothing, when the
    /// image is refused; `.capacity` when it has more unbound and interdomain ports than the
    /// event-flag slots can carry.
    public func restoreImage(_ bytes: [UInt8]) throws(DomainImageRefusal) {
        try domain.restoreImage(bytes, fabric: self, bindablePortCapacity: Self.bindablePortCapacity)
    }

    /// `XenDomain.finishRestore` through this layer: once every moving domain is restored.
    @discardableResult
    public func finishRestore() -> Int { domain.finishRestore(fabric: self) }
}
