import CGuestAtomics
import GuestABI
import XenABI

/// One grant mapping a domain holds (Xen's struct grant_mapping): whose grant, which ref, how,
/// and where. Free records link to the next free handle through `next`.
@usableFromInline struct GrantMapping {
    @inlinable static var none: UInt32 { UInt32.max }
    @usableFromInline var granter: UInt16 = 0
    /// The domain whose frame is shown (the granter: a map is never transitive).
    @usableFromInline var owner: UInt16 = 0
    /// Bit 0: in use; bit 1: read-only.
    @usableFromInline var flags: UInt8 = 0
    @usableFromInline var ref: UInt32 = 0
    @usableFromInline var next: UInt32 = GrantMapping.none
    /// The grantee's frame that shows the page, and the granter's frame it is.
    @usableFromInline var hostFrame: UInt64 = 0
    @usableFromInline var granterFrame: UInt64 = 0

    @inlinable var inUse: Bool { flags & 1 != 0 }
    @inlinable var readOnly: Bool { flags & 2 != 0 }
    @inlinable init(granter: UInt16 = 0, owner: UInt16 = 0, flags: UInt8 = 0, ref: UInt32 = 0, next: UInt32 = GrantMapping.none, hostFrame: UInt64 = 0, granterFrame: UInt64 = 0) { self.granter = granter; self.owner = owner; self.flags = flags; self.ref = ref; self.next = next; self.hostFrame = hostFrame; self.granterFrame = granterFrame }
}

/// GNTTABOP_map_grant_ref, unmap_grant_ref and copy, the grantee's side (xen-project/xen
/// RELEASE-4.17.7 xen/common/grant_table.c: map_grant_ref, unmap_common, gnttab_copy_one and
/// their batch loops; xen/arch/x86/hvm/grant_table.c create_grant_p2m_mapping and
/// replace_grant_p2m_mapping). The granter's checks run in the granter's own layer
/// (`GrantAccess.swift`), reached through the fabric; so do the granter's pages: the native
/// fabric maps them directly, the translated one through the Viridian target's GPA mapping.
/// No two domains' locks are ever held together.
extension XenDomain {
    // MARK: - Maptrack

    @inlinable func mapping(_ handle: UInt32) -> UnsafeMutablePointer<GrantMapping>? {
        let perPage = Int(GrantTableLimits.maptrackPerFrame)
        let page = Int(handle) / perPage
        guard page < maptrackPageCount, let base = maptrackPages[page] else { return nil }
        return base + Int(handle) % perPage
    }

    /// Adds a maptrack page of unused mappings, linked to each other in handle order (the last
    /// to `GrantMapping.none`), and grows the mapped-frame set for it; returns its first
    /// handle. The caller checked `maptrackPageCount < maxMaptrackFrames`. Under the grant lock.
    @inlinable func appendMaptrackPage() -> UInt32 {
        let perPage = Int(GrantTableLimits.maptrackPerFrame)
        let page = UnsafeMutablePointer<GrantMapping>.allocate(capacity: perPage)
        page.initialize(repeating: GrantMapping(), count: perPage)
        let first = UInt32(maptrackPageCount * perPage)
        for k in 0..<perPage { page[k].next = k + 1 < perPage ? first + UInt32(k + 1) : GrantMapping.none }
        maptrackPages[maptrackPageCount] = page
        maptrackPageCount += 1
        growMappedFrames(pages: maptrackPageCount)
        return first
    }

    /// A free handle (get_maptrack_handle), growing the maptrack by a page when none is free;
    /// nil when it has reached `maxMaptrackFrames`. Under the grant lock.
    @inlinable func allocateHandle() -> UInt32? {
        if maptrackFree == GrantMapping.none {
            guard maptrackPageCount < maxMaptrackFrames else { return nil }
            maptrackFree = appendMaptrackPage()
        }
        let h = maptrackFree
        let m = mapping(h)!
        maptrackFree = m.pointee.next
        m.pointee.flags = 1
        return h
    }

    @inlinable func freeHandle(_ h: UInt32) {
        guard let m = mapping(h) else { return }
        m.pointee = GrantMapping()
        m.pointee.next = maptrackFree
        maptrackFree = h
    }

    /// Whether this domain shows a grant mapping at `frame`. Under the grant lock. One probe of
    /// `mappedFrames` (an open-addressed set of the frames its mappings occupy), not a walk of
    /// the maptrack.
    @inlinable func mapsGrant(at frame: UInt64) -> Bool {
        guard mappedFrameCapacity > 0 else { return false }
        var i = Self.frameHash(frame, mappedFrameCapacity)
        while mappedFrames[i] != 0 {
            if mappedFrames[i] == frame &+ 1 { return true }
            i = (i + 1) & (mappedFrameCapacity - 1)
        }
        return false
    }

    @inline(__always)
    @inlinable static func frameHash(_ frame: UInt64, _ capacity: Int) -> Int {
        Int(truncatingIfNeeded: (frame &* 0x9E37_79B9_7F4A_7C15) >> UInt64(64 - capacity.trailingZeroBitCount))
    }

    /// Records that a mapping now occupies `frame`. Under the grant lock; the set holds twice
    /// the handles the maptrack has, so it never fills.
    @inlinable func insertMappedFrame(_ frame: UInt64) {
        var i = Self.frameHash(frame, mappedFrameCapacity)
        while mappedFrames[i] != 0 { i = (i + 1) & (mappedFrameCapacity - 1) }
        mappedFrames[i] = frame &+ 1
    }

    /// Forgets `frame` (linear probing with backward-shift deletion: no tombstones).
    @inlinable func removeMappedFrame(_ frame: UInt64) {
        guard mappedFrameCapacity > 0 else { return }
        let mask = mappedFrameCapacity - 1
        var i = Self.frameHash(frame, mappedFrameCapacity)
        while mappedFrames[i] != frame &+ 1 {
            guard mappedFrames[i] != 0 else { return }
            i = (i + 1) & mask
        }
        var hole = i
        var j = (i + 1) & mask
        while mappedFrames[j] != 0 {
            let home = Self.frameHash(mappedFrames[j] &- 1, mappedFrameCapacity)
            // Move j back into the hole unless its home lies cyclically in (hole, j].
            let inRange = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j)
            if !inRange {
                mappedFrames[hole] = mappedFrames[j]
                hole = j
            }
            j = (j + 1) & mask
        }
        mappedFrames[hole] = 0
    }

    /// Sizes the set to at least twice the handles of `pages` maptrack pages (a power of two),
    /// keeping its frames.
    @inlinable func growMappedFrames(pages: Int) {
        var capacity = 2 * Int(GrantTableLimits.maptrackPerFrame)
        while capacity < 2 * pages * Int(GrantTableLimits.maptrackPerFrame) { capacity <<= 1 }
        guard capacity > mappedFrameCapacity else { return }
        let old = mappedFrames, oldCapacity = mappedFrameCapacity
        mappedFrames = .allocate(capacity: capacity)
        mappedFrames.initialize(repeating: 0, count: capacity)
        mappedFrameCapacity = capacity
        for k in 0..<oldCapacity where old[k] != 0 { insertMappedFrame(old[k] &- 1) }
        if oldCapacity > 0 { old.deallocate() }
    }

    /// Grant mappings the domain holds now.
    @inlinable public var grantMappingCount: Int {
        withGrantLock {
            var n = 0
            let perPage = Int(GrantTableLimits.maptrackPerFrame)
            for p in 0..<maptrackPageCount { for k in 0..<perPage where maptrackPages[p]![k].inUse { n += 1 } }
            return n
        }
    }

    // MARK: - Batches

    /// The entry `i` of a batch of `size`-byte entries at `list`, or nil when its address wraps.
    @inline(__always)
    @inlinable static func entry(_ list: UInt64, _ i: UInt32, size: Int) -> UInt64? {
        let (at, overflow) = list.addingReportingOverflow(UInt64(i) * UInt64(size))
        return overflow ? nil : at
    }

    /// GNTTABOP_map_grant_ref: each entry read whole (-EFAULT), mapped (`mapGrant`) and written
    /// back whole, with status, handle and dev_bus_addr (-EFAULT if it cannot be). On failure
    /// the handle and dev_bus_addr the guest passed come back unchanged.
    @inlinable func mapGrantRefs<F: EventFabric>(_ list: UInt64, count: UInt32, vcpu: Int, fabric: F) -> Int64 where F.Memory == Memory {
        var i: UInt32 = 0
        while i < count {
            typealias L = GnttabMapGrantRefLayout
            guard let at = Self.entry(list, i, size: L.size), memory.argumentReadable(at: at, size: L.size),
                  let hostAddr = memory.argument(UInt64.self, at: at, L.hostAddr), let flags = memory.argument(UInt32.self, at: at, L.flags),
                  let ref = memory.argument(UInt32.self, at: at, L.ref), let dom = memory.argument(UInt16.self, at: at, L.dom),
                  var handle = memory.argument(UInt32.self, at: at, L.handle), var busAddr = memory.argument(UInt64.self, at: at, L.devBusAddr) else {
                return XenErrno.efault.hypercallReturnValue
            }
            let (status, mapped) = mapGrant(hostAddr: hostAddr, flags: flags, ref: ref, dom: dom, fabric: fabric)
            if let mapped {
                handle = mapped
                // Xen reports the machine address; the layer has none an HVM guest could use
                // and does not expose the host's (Docs/Layer.md).
                busAddr = 0
            }
            guard memory.setArgument(UInt16(bitPattern: status.rawValue), at: at, L.status),
                  memory.setArgument(handle, at: at, L.handle), memory.setArgument(busAddr, at: at, L.devBusAddr) else {
                return XenErrno.efault.hypercallReturnValue
            }
            i += 1
        }
        return 0
    }

    /// GNTTABOP_unmap_grant_ref: each entry read whole (-EFAULT), unmapped (`unmapGrant`), its
    /// status written back (-EFAULT if it cannot be).
    @inlinable func unmapGrantRefs<F: EventFabric>(_ list: UInt64, count: UInt32, fabric: F) -> Int64 where F.Memory == Memory {
        var i: UInt32 = 0
        while i < count {
            typealias L = GnttabUnmapGrantRefLayout
            guard let at = Self.entry(list, i, size: L.size), memory.argumentReadable(at: at, size: L.size),
                  let hostAddr = memory.argument(UInt64.self, at: at, L.hostAddr),
                  let handle = memory.argument(UInt32.self, at: at, L.handle) else {
                return XenErrno.efault.hypercallReturnValue
            }
            let status = unmapGrant(hostAddr: hostAddr, handle: handle, fabric: fabric)
            guard memory.setArgument(UInt16(bitPattern: status.rawValue), at: at, L.status) else { return XenErrno.efault.hypercallReturnValue }
            i += 1
        }
        return 0
    }

    /// GNTTABOP_copy: each entry read whole (-EFAULT), copied (`copyGrant`), its status written
    /// back (-EFAULT if it cannot be; the copy has happened).
    @inlinable func copyGrants<F: EventFabric>(_ list: UInt64, count: UInt32, vcpu: Int, fabric: F) -> Int64 where F.Memory == Memory {
        var i: UInt32 = 0
        while i < count {
            typealias L = GnttabCopyLayout
            guard let at = Self.entry(list, i, size: L.size), memory.argumentReadable(at: at, size: L.size),
                  let src = memory.argument(UInt64.self, at: at, L.sourceUGmfn), let srcDom = memory.argument(UInt16.self, at: at, L.sourceDomid),
                  let srcOff = memory.argument(UInt16.self, at: at, L.sourceOffset),
                  let dst = memory.argument(UInt64.self, at: at, L.destUGmfn), let dstDom = memory.argument(UInt16.self, at: at, L.destDomid),
                  let dstOff = memory.argument(UInt16.self, at: at, L.destOffset),
                  let len = memory.argument(UInt16.self, at: at, L.len), let flags = memory.argument(UInt16.self, at: at, L.flags) else {
                return XenErrno.efault.hypercallReturnValue
            }
            let status = copyGrant(source: (src, srcDom, srcOff, flags & GrantCopyFlags.sourceGref.rawValue != 0),
                                   dest: (dst, dstDom, dstOff, flags & GrantCopyFlags.destGref.rawValue != 0), length: len, vcpu: vcpu, fabric: fabric)
            guard memory.setArgument(UInt16(bitPattern: status.rawValue), at: at, L.status) else { return XenErrno.efault.hypercallReturnValue }
            i += 1
        }
        return 0
    }

    // MARK: - One entry

    /// map_grant_ref for one entry: host_map (with readonly) is all an HVM guest may ask
    /// (neither host_map nor device_map: bad_gntref; device_map, application_map or contains_pte:
    /// general_error); the granter by its numeric id (DOMID_SELF, a system id or a missing
    /// domain: bad_domain); a handle (none left: no_space); the granter's checks
    /// (`acquireGrant`); any other flag bit: general_error; then the page at `hostAddr`'s frame.
    /// That frame must be the guest's to change: beyond a 4-level p2m, one of the side's own, or
    /// a page the layer holds is general_error; a grant mapping already there crashes the
    /// domain, as Xen's p2m_add_page does (SHUTDOWN_crash, general_error); RAM there is unhooked
    /// and stays the domain's; a layer page is unhooked. Every failure after the granter's
    /// checks undoes them (the XSA-316 path): no pin, no flag and no handle is left behind.
    @inlinable func mapGrant<F: EventFabric>(hostAddr: UInt64, flags raw: UInt32, ref: UInt32, dom: UInt16, fabric: F) -> (GrantStatus, UInt32?) where F.Memory == Memory {
        let flags = GrantMapFlags(rawValue: raw)
        guard flags.contains(.hostMap) || flags.contains(.deviceMap) else { return (.badGntref, nil) }
        guard !flags.contains(.deviceMap), !flags.contains(.applicationMap), !flags.contains(.containsPte) else { return (.generalError, nil) }
        let granter = DomainID(dom)
        guard granter != .selfDomain, granter == id || fabric.domainExists(granter) else { return (.badDomain, nil) }
        guard let handle = withGrantLock({ allocateHandle() }) else { return (.noSpace, nil) }
        let writable = !flags.contains(.readonly)
        let acquired = fabric.acquireGrant(self, granter: granter, ref: ref, writable: writable, use: .map)
        guard acquired.status == .okay else {
            withGrantLock { freeHandle(handle) }
            return (acquired.status, nil)
        }
        let frame = hostAddr >> guestPageShift
        // 0 placed, 1 refused, 2 a grant mapping already there (no captured variable: it would
        // be boxed in an unoptimised build).
        let outcome: Int = raw & ~GrantMapFlags.readonly.rawValue != GrantMapFlags.hostMap.rawValue ? 1 : withPhysmapLock {
            guard physmapBox != nil, frame < MemoryOpLimits.guestFrameLimit, !fabric.ownsFrame(self, GuestFrameNumber(frame)) else { return 1 }
            if withGrantLock({ mapsGrant(at: frame) }) { return 2 }
            if let previous = memory.hostAddress(of: GuestFrameNumber(frame)) {
                let shown = layerPage(at: frame)
                if shown == nil, holdsPage(previous) { return 1 }
                _ = withPhysmap { $0.unmap(GuestFrameNumber(frame), releasing: false) }
                if let shown { setLocation(shown, PhysmapState.noFrame) }
            }
            guard fabric.mapGrantedFrame(self, at: GuestFrameNumber(frame), granter: acquired.owner, granterFrame: acquired.frame, writable: writable) else { return 1 }
            physmapState.maximumGpfn = max(physmapState.maximumGpfn, frame)
            withGrantLock {
                let m = mapping(handle)!
                m.pointee.granter = granter.rawValue
                m.pointee.ref = ref
                m.pointee.flags = writable ? 1 : 3
                m.pointee.hostFrame = frame
                m.pointee.granterFrame = acquired.frame
                insertMappedFrame(frame)
                m.pointee.owner = acquired.owner.rawValue
            }
            return 0
        }
        guard outcome == 0 else {
            fabric.releaseGrant(self, granter: granter, ref: ref, writable: writable)
            withGrantLock { freeHandle(handle) }
            if outcome == 2 { shutDown(UInt8(ShutdownReason.crash.rawValue), fabric: fabric) }
            return (.generalError, nil)
        }
        return (.okay, handle)
    }

    /// unmap_common for one entry: a handle past the maptrack or not in use is bad_handle (a
    /// second unmap included); host_addr 0 removes nothing and is okay (as on Xen); a frame
    /// other than the mapping's is general_error. Otherwise the frame becomes a hole, the handle
    /// is freed, and the granter drops the pin the mapping took, of the kind it recorded.
    @inlinable func unmapGrant<F: EventFabric>(hostAddr: UInt64, handle: UInt32, fabric: F) -> GrantStatus where F.Memory == Memory {
        let record: GrantMapping? = withGrantLock {
            guard let m = mapping(handle), m.pointee.inUse else { return nil }
            return m.pointee
        }
        guard let record else { return .badHandle }
        if hostAddr == 0 { return .okay }
        guard hostAddr >> guestPageShift == record.hostFrame else { return .generalError }
        let removed: Bool = withPhysmapLock {
            // Taken again under the physmap lock: a racing unmap of the same handle loses here.
            let still = withGrantLock { () -> Bool in
                guard let m = mapping(handle), m.pointee.inUse, m.pointee.hostFrame == record.hostFrame else { return false }
                removeMappedFrame(record.hostFrame)
                freeHandle(handle)
                return true
            }
            guard still else { return false }
            fabric.unmapGrantedFrame(self, at: GuestFrameNumber(record.hostFrame), granter: DomainID(record.owner), granterFrame: record.granterFrame)
            return true
        }
        guard removed else { return .badHandle }
        fabric.releaseGrant(self, granter: DomainID(record.granter), ref: record.ref, writable: !record.readOnly)
        return .okay
    }

    /// gnttab_copy_one: the source then the destination domain (a frame side must name
    /// DOMID_SELF exactly: permission_denied; a grant side a domain that exists: bad_domain),
    /// the source grant pinned for reading or the own frame found (bad_page), the destination
    /// pinned for writing or found; then offsets and length within a page (bad_copy_arg) and
    /// within each grant's window (general_error); the bytes move and both pins are dropped.
    @inlinable func copyGrant<F: EventFabric>(source s: (UInt64, UInt16, UInt16, Bool), dest d: (UInt64, UInt16, UInt16, Bool), length: UInt16, vcpu: Int, fabric: F) -> GrantStatus where F.Memory == Memory {
        func side(_ x: (UInt64, UInt16, UInt16, Bool)) -> (GrantStatus, DomainID) {
            let dom = DomainID(x.1)
            if !x.3 { return (dom == .selfDomain ? .okay : .permissionDenied, id) }
            if dom == .selfDomain || dom == id { return (.okay, id) }
            return (fabric.domainExists(dom) ? .okay : .badDomain, dom)
        }
        let (ss, sdom) = side(s)
        guard ss == .okay else { return ss }
        let (ds, ddom) = side(d)
        guard ds == .okay else { return ds }
        var srcGrant: GrantAcquisition? = nil, dstGrant: GrantAcquisition? = nil
        defer {
            if let g = srcGrant, g.status == .okay { fabric.releaseGrant(self, granter: sdom, ref: UInt32(truncatingIfNeeded: s.0), writable: false) }
            if let g = dstGrant, g.status == .okay { fabric.releaseGrant(self, granter: ddom, ref: UInt32(truncatingIfNeeded: d.0), writable: true) }
        }
        if s.3 {
            let g = fabric.acquireGrant(self, granter: sdom, ref: UInt32(truncatingIfNeeded: s.0), writable: false, use: .copy)
            srcGrant = g
            guard g.status == .okay else { return g.status }
        } else if !ownFrameUsable(s.0) {
            return .badPage
        }
        if d.3 {
            let g = fabric.acquireGrant(self, granter: ddom, ref: UInt32(truncatingIfNeeded: d.0), writable: true, use: .copy)
            dstGrant = g
            guard g.status == .okay else { return g.status }
        } else if !ownFrameUsable(d.0) {
            return .badPage
        }
        guard Int(s.2) + Int(length) <= Int(guestPageSize), Int(d.2) + Int(length) <= Int(guestPageSize) else { return .badCopyArg }
        if let g = srcGrant, s.2 < g.offset || Int(s.2) + Int(length) > Int(g.offset) + Int(g.length) { return .generalError }
        if let g = dstGrant, d.2 < g.offset || Int(d.2) + Int(length) > Int(g.offset) + Int(g.length) { return .generalError }
        guard length > 0 else { return .okay }
        let from = srcGrant.map { fabric.grantedPage(self, vcpu: vcpu, window: 0, granter: $0.owner, granterFrame: $0.frame, writable: false) } ?? memory.hostAddress(of: GuestFrameNumber(s.0))
        let to = dstGrant.map { fabric.grantedPage(self, vcpu: vcpu, window: 1, granter: $0.owner, granterFrame: $0.frame, writable: true) } ?? memory.hostAddress(of: GuestFrameNumber(d.0))
        defer { fabric.releaseGrantedPages(self, vcpu: vcpu) }
        guard let from, let to else { return .generalError }
        (to + Int(d.2)).copyMemory(from: from + Int(s.2), byteCount: Int(length))
        return .okay
    }

    /// A frame of the caller's own a copy may use: backed, and not showing another domain's
    /// grant (get_paged_frame: such a page is not the caller's).
    @inlinable func ownFrameUsable(_ frame: UInt64) -> Bool {
        memory.hostAddress(of: GuestFrameNumber(frame)) != nil && !withGrantLock { mapsGrant(at: frame) }
    }
}
