import GuestABI
import XenABI

/// Ballooning: XENMEM_increase_reservation, decrease_reservation and populate_physmap, as Xen
/// 4.17 answers an HVM domU (xen-project/xen RELEASE-4.17.7 xen/common/memory.c: do_memory_op,
/// construct_memop_from_reservation, propagate_node, increase_reservation, populate_physmap,
/// decrease_reservation, guest_remove_page). Each returns the number of extents done, counted
/// from the start extent the command carries; a reservation it cannot read or will not carry
/// out returns that start, as Xen does. Frames change through the embedder's `XenPhysmap`.
extension XenDomain {
    @inlinable func reservationOp<F: EventFabric>(_ op: MemoryOp, start: UInt64, arg: UInt64, fabric: F) -> UInt64 where F.Memory == Memory {
        guard memory.argumentReadable(at: arg, size: XenMemoryReservationLayout.size),
              let list = memory.argument(UInt64.self, at: arg, XenMemoryReservationLayout.extentStart),
              let count = memory.argument(UInt64.self, at: arg, XenMemoryReservationLayout.nrExtents),
              let order = memory.argument(UInt32.self, at: arg, XenMemoryReservationLayout.extentOrder),
              let flags = memory.argument(UInt32.self, at: arg, XenMemoryReservationLayout.memFlags),
              let domid = memory.argument(UInt16.self, at: arg, XenMemoryReservationLayout.domid) else { return start }
        // More extents than a continuation could encode, or nothing left to do.
        guard count <= MemoryOpLimits.maxExtents, start < count else { return start }
        // Another domain: absent, or refused by XSM_TARGET; either way nothing is done.
        let target = DomainID(domid)
        guard target == .selfDomain || target == id else { return start }
        guard Self.acceptsMemoryFlags(flags, op: op, hostPages: withPhysmapLock { physmapState.hostPages }) else { return start }
        guard UInt64(order) <= MemoryOpLimits.maxOrder else { return start }
        let pagesPerExtent = UInt64(1) << order
        if op == .increaseReservation {
            // Pages an auto-translated guest can never reach (no frame numbers are written
            // back): only the reservation grows, as far as max_pages allows.
            return withPhysmapLock {
                let room = (physmapState.maxPages &- min(physmapState.pages, physmapState.maxPages)) >> UInt64(order)
                let done = min(count - start, room)
                physmapState.pages += done << UInt64(order)
                return start + done
            }
        }
        guard let physmap else { return start }
        return withPhysmapLock {
            var i = start
            while i < count {
                guard let base = memory.argument(UInt64.self, at: list, ABIField(offset: Int(i) * 8, size: 8)) else { return i }
                let ok = op == .populatePhysmap
                    ? populateExtent(base, pages: pagesPerExtent, physmap: physmap, fabric: fabric)
                    : releaseExtent(base, pages: pagesPerExtent, physmap: physmap)
                guard ok else { return i }
                i += 1
            }
            return count
        }
    }

    /// construct_memop_from_reservation and propagate_node for a domU: an address-bits limit of
    /// a page or less, a node with XENMEMF_exact_node_request (without XENMEMF_vnode), and
    /// populate-on-demand on oneself all do nothing. Other address limits and nodes are
    /// accepted and not applied: the memory is the embedder's.
    @inlinable static func acceptsMemoryFlags(_ flags: UInt32, op: MemoryOp, hostPages: UInt64) -> Bool {
        let addressBits = UInt64(flags & 0xFF)
        let hostOrder = hostPages <= 1 ? 0 : UInt64(64 - (hostPages - 1).leadingZeroBitCount)
        if addressBits != 0, addressBits < hostOrder + guestPageShift, addressBits <= guestPageShift { return false }
        if flags & MemoryFlags.vnode == 0 {
            let node = ((flags >> 8) &- 1) & 0xFF
            if node != 0xFF, flags & MemoryFlags.exactNodeRequest != 0 { return false }
        }
        if op == .populatePhysmap, flags & MemoryFlags.populateOnDemand != 0 { return false }
        return true
    }

    /// One populate_physmap extent under the physmap lock: `pages` frames from `base`, each
    /// backed by a fresh page from the embedder, all or nothing. False (nothing counted, the map
    /// as it was) when the reservation would pass max_pages, the extent wraps or reaches beyond
    /// a 4-level p2m, a frame shows a page the layer holds, or a frame is the side's own or one
    /// the embedder has no page for (the frames this extent populated are released and what
    /// they showed is put back, as Xen's extent is one allocation). A frame that showed RAM
    /// before keeps that page allocated to the domain, unmapped, as Xen's p2m_add_page does; a
    /// layer page there is unhooked.
    @inlinable func populateExtent<F: EventFabric>(_ base: UInt64, pages: UInt64, physmap: any XenPhysmap, fabric: F) -> Bool where F.Memory == Memory {
        guard physmapState.pages <= physmapState.maxPages, pages <= physmapState.maxPages - physmapState.pages else { return false }
        let (end, wraps) = base.addingReportingOverflow(pages)
        guard !wraps, end <= MemoryOpLimits.guestFrameLimit else { return false }
        var frame = base
        while frame < end {
            if let page = memory.hostAddress(of: GuestFrameNumber(frame)), layerPage(at: frame) == nil, holdsPage(page) { return false }
            frame += 1
        }
        // What each frame showed (an extent is at most 2^9 frames), to put back on failure.
        var previous = InlineArray<512, UInt>(repeating: 0)
        /// Releases the first `populated` frames' new pages and puts back what the first
        /// `examined` frames showed.
        func undo(populated: Int, examined: Int) {
            for k in 0..<examined {
                let f = GuestFrameNumber(base + UInt64(k))
                if k < populated { physmap.unmap(f, releasing: true) }
                if previous[k] != 0 { _ = physmap.map(UnsafeMutableRawPointer(bitPattern: previous[k])!, at: f, writable: true) }
            }
        }
        frame = base
        while frame < end {
            let f = GuestFrameNumber(frame), k = Int(frame - base)
            // The side's own frame answers as one the embedder cannot back.
            if fabric.ownsFrame(self, f) { undo(populated: k, examined: k); return false }
            if let page = memory.hostAddress(of: f) {
                previous[k] = UInt(bitPattern: page)
                physmap.unmap(f, releasing: false)
            }
            guard physmap.populate(f) else { undo(populated: k, examined: k + 1); return false }
            frame += 1
        }
        frame = base
        while frame < end {
            if let shown = layerPage(at: frame) { setLocation(shown, PhysmapState.noFrame) }
            frame += 1
        }
        physmapState.pages += pages
        physmapState.maximumGpfn = max(physmapState.maximumGpfn, end - 1)
        return true
    }

    /// One decrease_reservation extent under the physmap lock: `pages` frames from `base`, each
    /// removed in turn (guest_remove_page): RAM is released and the reservation drops by one;
    /// a layer page is only unhooked. False at a hole, a frame that wraps, or a page the layer
    /// holds; the frames before it in the extent stay removed, as on Xen.
    @inlinable func releaseExtent(_ base: UInt64, pages: UInt64, physmap: any XenPhysmap) -> Bool {
        var j: UInt64 = 0
        while j < pages {
            let (frame, wraps) = base.addingReportingOverflow(j)
            guard !wraps, let page = memory.hostAddress(of: GuestFrameNumber(frame)) else { return false }
            if let shown = layerPage(at: frame) {
                physmap.unmap(GuestFrameNumber(frame), releasing: false)
                setLocation(shown, PhysmapState.noFrame)
            } else {
                guard !holdsPage(page) else { return false }
                physmap.unmap(GuestFrameNumber(frame), releasing: true)
                if physmapState.pages > 0 { physmapState.pages -= 1 }
            }
            j += 1
        }
        return true
    }
}
