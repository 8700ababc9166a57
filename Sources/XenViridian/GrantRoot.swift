import CGuestAtomics
import GuestABI
import ViridianABI
import XenABI
import XenCore

/// What the root asks of a granter's layer: the answer of its own grant table. Only the
/// granter's layer reads or changes that table; the root carries the question there.
public protocol XenGrantGranter: AnyObject {
    /// Pins `ref` of this layer's own table for `grantee` (`XenDomain.acquireGrant`): the status and, on GNTST_okay, the frame and window. Called by the root on the grantee's thread, with no lock of the grantee's held.
    func acquireGrant(ref: UInt32, grantee: DomainID, writable: Bool, use: GrantUse) -> GrantAcquisition
    /// Drops one pin of `ref` that `acquireGrant` took (read-only or writable, as it was taken).
    func releaseGrant(ref: UInt32, writable: Bool)
    /// Whether the layer's own table holds `grantee`'s pin of `ref` on `frame` (`XenDomain.holdsPin`).
    func holdsPin(ref: UInt32, grantee: DomainID, frame: UInt64, writable: Bool) -> Bool
}

/// Holds a layer for the root, unretained (the embedder owns its layers, which outlive their
/// registration), so that the root's calls count no references.
@usableFromInline final class GrantGranterBox {
    @usableFromInline unowned(unsafe) let granter: any XenGrantGranter
    @usableFromInline init(_ granter: any XenGrantGranter) { self.granter = granter }
}

/// Grants through the root (the parent partition's control plane): a grantee's layer asks
/// the granter's layer to pin a grant, and the root maps the granted frame into the grantee's
/// partition with HvCallMapGpaPages, with the rights the grant gives. Neither layer reads
/// the other's state or memory: each sees the other's page only where the target mapped it.
extension XenViridianRoot {
    /// Makes `domain`'s layer the one the root asks about `domain`'s grants. The root keeps it
    /// unretained, with its type, so that a layer of the same type reaches it through a
    /// guaranteed reference (`withLayer`), counting no references.
    @inlinable func registerGranter<Layer: XenGrantGranter>(_ domain: DomainID, _ granter: Layer) {
        withRootLock {
            guard let w = slotCreating(domain) else { return }
            let box = Unmanaged.passRetained(GrantGranterBox(granter))
            w[RootSlot.granterType] = UInt64(UInt(bitPattern: ObjectIdentifier(Layer.self)))
            xv_store_release_u64(w + RootSlot.granterObject, UInt64(UInt(bitPattern: Unmanaged.passUnretained(granter).toOpaque())))
            let old = xv_exchange_u64(w + RootSlot.granterBox, UInt64(UInt(bitPattern: box.toOpaque())))
            if old != 0 { Unmanaged<GrantGranterBox>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(old))!).release() }
        }
    }

    /// Runs `body` on `domain`'s layer when it has type `Layer`, through a guaranteed reference;
    /// nil when it has another type or none registered.
    @inline(__always)
    @inlinable func withLayer<Layer: XenGrantGranter, R>(_ domain: DomainID, as _: Layer.Type, _ body: (Layer) -> R) -> R? {
        guard let w = slot(domain) else { return nil }
        let bits = xv_load_acquire_u64(w + RootSlot.granterObject)
        guard bits != 0, w[RootSlot.granterType] == UInt64(UInt(bitPattern: ObjectIdentifier(Layer.self))) else { return nil }
        return Unmanaged<Layer>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(bits))!)._withUnsafeGuaranteedRef(body)
    }

    @inline(__always)
    @inlinable func withGranter<R>(_ domain: DomainID, _ body: (any XenGrantGranter) -> R) -> R? {
        guard let w = slot(domain) else { return nil }
        let bits = xv_load_acquire_u64(w + RootSlot.granterBox)
        guard bits != 0 else { return nil }
        return Unmanaged<GrantGranterBox>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(bits))!)._withUnsafeGuaranteedRef { body($0.granter) }
    }

    /// `granter`'s table's answer to `grantee` (bad_domain when no layer answers for it). A
    /// layer of the caller's type `Layer` is reached without counting references; another
    /// through its protocol.
    @inlinable public func acquireGrant<Layer: XenGrantGranter>(granter: DomainID, ref: UInt32, grantee: DomainID, writable: Bool, use: GrantUse, as type: Layer.Type) -> GrantAcquisition {
        if let typed = withLayer(granter, as: type, { $0.acquireGrant(ref: ref, grantee: grantee, writable: writable, use: use) }) { return typed }
        return withGranter(granter) { $0.acquireGrant(ref: ref, grantee: grantee, writable: writable, use: use) } ?? GrantAcquisition(status: .badDomain)
    }

    /// Drops a pin in `granter`'s table that `acquireGrant(granter:ref:grantee:writable:use:as:)` took; nothing when no layer answers for `granter`.
    @inlinable public func releaseGrant<Layer: XenGrantGranter>(granter: DomainID, ref: UInt32, writable: Bool, as type: Layer.Type) {
        if withLayer(granter, as: type, { $0.releaseGrant(ref: ref, writable: writable) }) != nil { return }
        _ = withGranter(granter) { $0.releaseGrant(ref: ref, writable: writable) }
    }

    /// Asks `granter`'s layer whether its table holds `grantee`'s pin of `ref` on `frame`; false when no layer answers.
    @inlinable public func grantHeld<Layer: XenGrantGranter>(granter: DomainID, ref: UInt32, grantee: DomainID, frame: UInt64, writable: Bool, as type: Layer.Type) -> Bool {
        if let typed = withLayer(granter, as: type, { $0.holdsPin(ref: ref, grantee: grantee, frame: frame, writable: writable) }) { return typed }
        return withGranter(granter) { $0.holdsPin(ref: ref, grantee: grantee, frame: frame, writable: writable) } ?? false
    }

    /// HvCallMapGpaPages: `granter`'s frame at `grantee`'s, readable and, for a writable grant,
    /// writable. False when a partition is unknown or the target refuses.
    @inlinable public func mapGrantedFrame(into grantee: DomainID, at frame: GuestFrameNumber, from granter: DomainID, granterFrame: UInt64, writable: Bool) -> Bool {
        guard let target = partition(of: grantee), let source = partition(of: granter) else { return false }
        let flags: HVMapGPAFlags = writable ? HVMapGPAFlags(rawValue: HVMapGPAFlags.readable.rawValue | HVMapGPAFlags.writable.rawValue) : .readable
        return self.target.mapGPAPages(into: target, at: frame, from: source, sourceBase: GuestFrameNumber(granterFrame), count: 1, flags: flags).status == .success
    }

    /// HvCallUnmapGpaPages of one frame of `grantee`.
    @inlinable public func unmapGrantedFrame(from grantee: DomainID, at frame: GuestFrameNumber) -> Bool {
        guard let target = partition(of: grantee) else { return false }
        return self.target.unmapGPAPages(from: target, at: frame, count: 1).status == .success
    }
}
