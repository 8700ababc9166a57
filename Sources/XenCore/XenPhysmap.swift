import GuestABI

/// The guest-physical map is the embedder's: it decides which host page each guest frame
/// shows (KVM memory slots, a Hyper-V root VMM's HvCallMapGpaPages). memory_op changes that
/// map only through this protocol, on both sides, and the `GuestMemory` the domain was created
/// with must show each change as soon as the call returns.
///
/// The layer calls these methods under its physmap lock, one at a time per domain, never
/// with another lock held, and never for a frame it owns itself (a translated domain's layer
/// frames). Implementations must not call back into the layer.
///
/// Pages the layer hands to `map` (shared_info, grant-table frames) are the layer's: the
/// embedder shows them and never frees them. RAM pages are the embedder's.
public protocol XenPhysmap: AnyObject {
    /// Makes `frame` show `page`: a page of the layer's, or a RAM page the guest's map showed
    /// at another frame (XENMAPSPACE_gmfn). The layer has already unmapped whatever `frame`
    /// showed. False when the embedder cannot show a page at `frame` (the guest gets
    /// -ENOMEM, as Xen does when its p2m cannot grow). `writable` false: the guest may only
    /// read it (a read-only grant map, GNTMAP_readonly); the embedder's second-level entry
    /// must refuse the guest's writes.
    func map(_ page: UnsafeMutableRawPointer, at frame: GuestFrameNumber, writable: Bool) -> Bool
    /// Makes `frame` a hole. With `releasing`, the RAM page it showed goes back to the
    /// embedder (Xen frees it: decrease_reservation, or a page add_to_physmap replaces);
    /// without, the page is only unhooked and stays allocated to the domain
    /// (remove_from_physmap, a page moved elsewhere, one of the layer's pages).
    func unmap(_ frame: GuestFrameNumber, releasing: Bool)
    /// Makes `frame` show a fresh zeroed RAM page (populate_physmap). The layer has already
    /// unmapped whatever `frame` showed. False when the embedder has no page for it.
    func populate(_ frame: GuestFrameNumber) -> Bool
}

/// `XenPhysmap` over a `GuestRAM`, for frames 0 ..< `frames` (a guest view of the RAM's
/// first frames; later frames, such as a translated domain's layer frames, are refused).
public final class GuestRAMPhysmap: XenPhysmap {
    /// The RAM whose table this physmap changes; not owned beyond this reference.
    public let ram: GuestRAM
    /// Frames 0 ..< `frames` are the guest's; later ones are refused.
    public let frames: UInt64

    /// A physmap over the first `frames` frames of `ram` (all of them by default; never more than it has).
    public init(_ ram: GuestRAM, frames: UInt64? = nil) {
        self.ram = ram
        self.frames = min(frames ?? ram.frameCount, ram.frameCount)
    }

    /// `GuestRAM.map(_:at:)` for a frame inside the guest's range; false past it.
    /// `writable` is not enforced: in-process RAM has no second-level rights, so the test
    /// worlds check read-only grants where the layer uses them (copies, the granter's pins).
    @inlinable public func map(_ page: UnsafeMutableRawPointer, at frame: GuestFrameNumber, writable: Bool) -> Bool {
        frame.rawValue < frames && ram.map(page, at: frame)
    }

    /// `GuestRAM.unmap(_:releasing:)` for a frame inside the guest's range; nothing past it.
    @inlinable public func unmap(_ frame: GuestFrameNumber, releasing: Bool) {
        guard frame.rawValue < frames else { return }
        ram.unmap(frame, releasing: releasing)
    }

    /// `GuestRAM.populate(_:)` for a frame inside the guest's range; false past it or when no page is free.
    @inlinable public func populate(_ frame: GuestFrameNumber) -> Bool {
        frame.rawValue < frames && ram.populate(frame)
    }
}
