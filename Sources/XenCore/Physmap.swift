import GuestABI
import XenABI

/// XENMEM_add_to_physmap, add_to_physmap_batch and remove_from_physmap, as Xen 4.17 answers an
/// HVM domU (xen-project/xen RELEASE-4.17.7: xen/common/memory.c xenmem_add_to_physmap,
/// xenmem_add_to_physmap_batch, xatp_permission_check and the XENMEM_remove_from_physmap case;
/// xen/arch/x86/mm/p2m.c xenmem_add_to_physmap_one and p2m_add_foreign). Every change of the
/// map goes through the embedder's `XenPhysmap` under the physmap lock.
extension XenDomain {
    /// XENMEM_add_to_physmap: the structure in (-EFAULT); gmfn_foreign -ENOSYS (batch only);
    /// the domain (-ESRCH, -EPERM for another); dev_mmio -EACCES (hardware domain only); no
    /// physmap -EOPNOTSUPP; INVALID_GFN -EINVAL. gmfn_range moves `size` pages from `start` on
    /// (size below start -EILSEQ, a range that wraps -EOVERFLOW), stopping at the first error.
    @inlinable func addToPhysmap<F: EventFabric>(_ arg: UInt64, start: UInt16, fabric: F) -> Int64 where F.Memory == Memory {
        guard memory.argumentReadable(at: arg, size: XenAddToPhysmapLayout.size),
              let domid = memory.argument(UInt16.self, at: arg, XenAddToPhysmapLayout.domid),
              let size = memory.argument(UInt16.self, at: arg, XenAddToPhysmapLayout.rangeSize),
              let rawSpace = memory.argument(UInt32.self, at: arg, XenAddToPhysmapLayout.space),
              let idx = memory.argument(UInt64.self, at: arg, XenAddToPhysmapLayout.idx),
              let gpfn = memory.argument(UInt64.self, at: arg, XenAddToPhysmapLayout.gpfn) else {
            return XenErrno.efault.hypercallReturnValue
        }
        let space = MapSpace(rawValue: rawSpace)
        if space == .gmfnForeign { return XenErrno.enosys.hypercallReturnValue }
        let owner = resolveOwnDomain(domid, fabric: fabric)
        guard owner == .ok else { return Self.result(owner) }
        if space == .devMmio { return XenErrno.eacces.hypercallReturnValue }
        guard let physmap else { return XenErrno.eopnotsupp.hypercallReturnValue }
        if gpfn == Self.invalidFrame { return XenErrno.einval.hypercallReturnValue }
        guard space == .gmfnRange else {
            return withPhysmapLock { placePage(space, idx: idx, at: gpfn, physmap: physmap, fabric: fabric) }
        }
        guard size >= start else { return XenErrno.eilseq.hypercallReturnValue }
        guard !gpfn.addingReportingOverflow(UInt64(size)).overflow, !idx.addingReportingOverflow(UInt64(size)).overflow else {
            return XenErrno.eoverflow.hypercallReturnValue
        }
        return withPhysmapLock {
            var i = UInt64(start)
            while i < UInt64(size) {
                let rc = placePage(.gmfn, idx: idx + i, at: gpfn + i, physmap: physmap, fabric: fabric)
                guard rc == 0 else { return rc }
                i += 1
            }
            return 0
        }
    }

    /// XENMEM_add_to_physmap_batch: the structure in (-EFAULT); gmfn_range -EOPNOTSUPP; the
    /// domain; dev_mmio -EACCES; no physmap -EOPNOTSUPP; size below start -EILSEQ (equal: 0,
    /// or -EILSEQ past 0). Then per entry from `start`: idx and gpfn in (-EFAULT), INVALID_GFN
    /// ends the call with -EINVAL, the entry's status is written to errs (-EFAULT if it cannot
    /// be). gmfn_foreign is -EPERM per entry: Xen lets only the hardware domain map foreign
    /// pages into an HVM physmap (arch_acquire_resource_check).
    @inlinable func addToPhysmapBatch<F: EventFabric>(_ arg: UInt64, start: UInt16, fabric: F) -> Int64 where F.Memory == Memory {
        guard memory.argumentReadable(at: arg, size: XenAddToPhysmapBatchLayout.size),
              let domid = memory.argument(UInt16.self, at: arg, XenAddToPhysmapBatchLayout.domid),
              let rawSpace = memory.argument(UInt16.self, at: arg, XenAddToPhysmapBatchLayout.space),
              let size = memory.argument(UInt16.self, at: arg, XenAddToPhysmapBatchLayout.batchSize),
              let idxs = memory.argument(UInt64.self, at: arg, XenAddToPhysmapBatchLayout.idxs),
              let gpfns = memory.argument(UInt64.self, at: arg, XenAddToPhysmapBatchLayout.gpfns),
              let errs = memory.argument(UInt64.self, at: arg, XenAddToPhysmapBatchLayout.errs) else {
            return XenErrno.efault.hypercallReturnValue
        }
        let space = MapSpace(rawValue: UInt32(rawSpace))
        if space == .gmfnRange { return XenErrno.eopnotsupp.hypercallReturnValue }
        let owner = resolveOwnDomain(domid, fabric: fabric)
        guard owner == .ok else { return Self.result(owner) }
        if space == .devMmio { return XenErrno.eacces.hypercallReturnValue }
        guard let physmap else { return XenErrno.eopnotsupp.hypercallReturnValue }
        guard size >= start else { return XenErrno.eilseq.hypercallReturnValue }
        if size == start { return start == 0 ? 0 : XenErrno.eilseq.hypercallReturnValue }
        for extent in Int(start)..<Int(size) {
            guard let idx = memory.argument(UInt64.self, at: idxs, ABIField(offset: extent * 8, size: 8)),
                  let gpfn = memory.argument(UInt64.self, at: gpfns, ABIField(offset: extent * 8, size: 8)) else {
                return XenErrno.efault.hypercallReturnValue
            }
            if gpfn == Self.invalidFrame { return XenErrno.einval.hypercallReturnValue }
            let rc = space == .gmfnForeign
                ? XenErrno.eperm.hypercallReturnValue
                : withPhysmapLock { placePage(space, idx: idx, at: gpfn, physmap: physmap, fabric: fabric) }
            guard memory.setArgument(Int32(truncatingIfNeeded: rc), at: errs, ABIField(offset: extent * 4, size: 4)) else {
                return XenErrno.efault.hypercallReturnValue
            }
        }
        return 0
    }

    /// XENMEM_remove_from_physmap: the structure in (-EFAULT), the domain, no physmap
    /// -EOPNOTSUPP, a hole -ENOENT; else the frame is unmapped and its page stays the domain's
    /// (Xen's guest_physmap_remove_page: the reservation does not change). A page the layer
    /// holds (`holdsPage`) is -EBUSY.
    @inlinable func removeFromPhysmap<F: EventFabric>(_ arg: UInt64, fabric: F) -> Int64 where F.Memory == Memory {
        guard memory.argumentReadable(at: arg, size: XenRemoveFromPhysmapLayout.size),
              let domid = memory.argument(UInt16.self, at: arg, XenRemoveFromPhysmapLayout.domid),
              let gpfn = memory.argument(UInt64.self, at: arg, XenRemoveFromPhysmapLayout.gpfn) else {
            return XenErrno.efault.hypercallReturnValue
        }
        let owner = resolveOwnDomain(domid, fabric: fabric)
        guard owner == .ok else { return Self.result(owner) }
        guard let physmap else { return XenErrno.eopnotsupp.hypercallReturnValue }
        return withPhysmapLock {
            guard let page = memory.hostAddress(of: GuestFrameNumber(gpfn)) else { return XenErrno.enoent.hypercallReturnValue }
            let shown = layerPage(at: gpfn)
            if shown == nil, holdsPage(page) { return XenErrno.ebusy.hypercallReturnValue }
            physmap.unmap(GuestFrameNumber(gpfn), releasing: false)
            if let shown { setLocation(shown, PhysmapState.noFrame) }
            return 0
        }
    }

    /// Xen's INVALID_GFN (~0UL).
    @inlinable static var invalidFrame: UInt64 { UInt64.max }

    /// xenmem_add_to_physmap_one under the physmap lock: finds the page `space` and `idx` name
    /// (shared_info: idx 0; grant_table: frame idx, growing the table up to maxGrantFrames;
    /// gmfn: the page the guest sees at frame idx; anything else, or a page that does not
    /// exist, -EINVAL), then shows it at `gpfn`: the page there before is unhooked (a layer
    /// page) or released (RAM: Xen's guest_remove_page, so the reservation drops by one), the
    /// page's old frame becomes a hole, and the new frame may raise maximum_gpfn. A frame
    /// beyond a 4-level p2m is -EINVAL; one the side owns, or one the embedder cannot show,
    /// -ENOMEM; replacing a page the layer holds, -EBUSY.
    @inlinable func placePage<F: EventFabric>(_ space: MapSpace, idx: UInt64, at gpfn: UInt64, physmap: any XenPhysmap, fabric: F) -> Int64 where F.Memory == Memory {
        let moving: LayerPage?
        let ramPage: UnsafeMutableRawPointer?
        switch space {
        case .sharedInfo:
            guard idx == 0 else { return XenErrno.einval.hypercallReturnValue }
            moving = .sharedInfo
            ramPage = nil
        case .grantTable:
            // gnttab_map_frame: XENMAPIDX_grant_table_status names a status frame only under v2;
            // with v1 the index, that bit included, names a shared frame. Either index is an
            // unsigned int there, so only its low 32 bits count.
            if grantState.version == 2, idx & MapIndex.grantTableStatus != 0 {
                let s = UInt64(UInt32(truncatingIfNeeded: idx & ~MapIndex.grantTableStatus))
                if s >= UInt64(grantState.statusFrames) {
                    // gnttab_get_status_frame_mfn: grow the grant frames so that status frame s exists.
                    let grantFrames = (s + 1) * GrantTableLimits.statusPerFrame / GrantTableLimits.v2EntriesPerFrame
                    if grantFrames <= UInt64(maxGrantFrames) { growGrantTable(to: UInt32(grantFrames)) }
                    guard s < UInt64(grantState.statusFrames) else { return XenErrno.einval.hypercallReturnValue }
                }
                moving = .statusFrame(Int(s))
            } else {
                let f = UInt64(UInt32(truncatingIfNeeded: idx))
                guard f < UInt64(maxGrantFrames) else { return XenErrno.einval.hypercallReturnValue }
                growGrantTable(to: UInt32(f) + 1)
                moving = .grantFrame(Int(f))
            }
            ramPage = nil
        case .gmfn:
            guard let page = memory.hostAddress(of: GuestFrameNumber(idx)) else { return XenErrno.einval.hypercallReturnValue }
            moving = layerPage(at: idx)
            ramPage = moving == nil ? page : nil
        default:
            return XenErrno.einval.hypercallReturnValue
        }
        guard gpfn < MemoryOpLimits.guestFrameLimit else { return XenErrno.einval.hypercallReturnValue }
        guard !fabric.ownsFrame(self, GuestFrameNumber(gpfn)) else { return XenErrno.enomem.hypercallReturnValue }
        let page = moving.map { hostPage($0) } ?? ramPage!
        let from = moving.map { location($0) } ?? idx
        if from == gpfn { return 0 }
        let target = GuestFrameNumber(gpfn)
        if let previous = memory.hostAddress(of: target) {
            let shown = layerPage(at: gpfn)
            if shown == nil, holdsPage(previous) { return XenErrno.ebusy.hypercallReturnValue }
            physmap.unmap(target, releasing: shown == nil)
            if let shown { setLocation(shown, PhysmapState.noFrame) } else if physmapState.pages > 0 { physmapState.pages -= 1 }
        }
        guard physmap.map(page, at: target, writable: true) else { return XenErrno.enomem.hypercallReturnValue }
        if from != PhysmapState.noFrame { physmap.unmap(GuestFrameNumber(from), releasing: false) }
        if let moving { setLocation(moving, gpfn) }
        physmapState.maximumGpfn = max(physmapState.maximumGpfn, gpfn)
        return 0
    }
}
