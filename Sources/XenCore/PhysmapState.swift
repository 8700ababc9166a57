import CGuestAtomics
import GuestABI
import XenABI

/// memory_op's view of the domain: Xen's reservation figures and where the guest sees the
/// layer's pages. Under the physmap lock.
@usableFromInline struct PhysmapState {
    /// A layer page the guest does not see.
    @inlinable static var noFrame: UInt64 { UInt64.max }
    /// Xen's d->tot_pages and d->max_pages.
    @usableFromInline var pages: UInt64
    @usableFromInline var maxPages: UInt64
    /// Xen's p2m max_mapped_pfn.
    @usableFromInline var maximumGpfn: UInt64
    /// Xen's max_page.
    @usableFromInline var hostPages: UInt64
    /// Where the guest sees shared_info.
    @usableFromInline var sharedInfoLocation: UInt64
    /// Frames the grant table has grown to (Xen's nr_grant_frames).
    @usableFromInline var grantFrames: UInt32

    @inlinable init(_ config: XenMemoryConfiguration, sharedInfoFrame: GuestFrameNumber) {
        pages = config.pages
        maxPages = config.maxPages
        maximumGpfn = max(config.maximumGpfn, sharedInfoFrame.rawValue)
        hostPages = config.hostPages
        sharedInfoLocation = sharedInfoFrame.rawValue
        grantFrames = 0
    }
}

/// A page of the layer's that the guest can map (XENMAPSPACE_shared_info, grant_table).
@usableFromInline enum LayerPage: Equatable {
    case sharedInfo
    case grantFrame(Int)
    case statusFrame(Int)
}

extension XenDomain {
    @inline(__always)
    @inlinable func withPhysmapLock<R>(_ body: () -> R) -> R {
        xv_spin_lock(words + DomainWords.physmapLock)
        defer { xv_spin_unlock(words + DomainWords.physmapLock) }
        return body()
    }

    /// Where the guest sees shared_info now; nil when it is mapped nowhere.
    @inlinable public var sharedInfoLocation: GuestFrameNumber? {
        withPhysmapLock { physmapState.sharedInfoLocation == PhysmapState.noFrame ? nil : GuestFrameNumber(physmapState.sharedInfoLocation) }
    }

    /// The reservation as memory_op reports it (current, maximum) and the highest frame mapped.
    @inlinable public var reservation: (pages: UInt64, maxPages: UInt64, maximumGpfn: UInt64) {
        withPhysmapLock { (physmapState.pages, physmapState.maxPages, physmapState.maximumGpfn) }
    }

    /// Grant-table frames the table has grown to, and where the guest sees frame `index` (nil:
    /// nowhere, or not grown yet).
    @inlinable public var grantFrameCount: UInt32 { withPhysmapLock { physmapState.grantFrames } }
    /// Where the guest sees grant-table frame `index` (XENMAPSPACE_grant_table), or nil when it is not placed, not grown yet or `index` is out of range. Takes the physmap lock.
    @inlinable public func grantFrameLocation(_ index: Int) -> GuestFrameNumber? {
        guard index >= 0, index < Int(maxGrantFrames) else { return nil }
        return withPhysmapLock { grantFrameLocations[index] == PhysmapState.noFrame ? nil : GuestFrameNumber(grantFrameLocations[index]) }
    }
    /// The host page of grant-table frame `index`, once the table has grown to it.
    @inlinable public func grantFramePage(_ index: Int) -> UnsafeMutableRawPointer? {
        guard index >= 0, index < Int(maxGrantFrames) else { return nil }
        return withPhysmapLock { grantFramePages[index] }
    }

    // MARK: - Under the physmap lock

    /// Which layer page the guest sees at `frame`, if any.
    @inlinable func layerPage(at frame: UInt64) -> LayerPage? {
        if physmapState.sharedInfoLocation == frame { return .sharedInfo }
        for f in 0..<Int(physmapState.grantFrames) where grantFrameLocations[f] == frame { return .grantFrame(f) }
        for f in 0..<Int(grantState.statusFrames) where statusFrameLocations[f] == frame { return .statusFrame(f) }
        return nil
    }

    @inlinable func setLocation(_ page: LayerPage, _ frame: UInt64) {
        switch page {
        case .sharedInfo: physmapState.sharedInfoLocation = frame
        case .grantFrame(let f): grantFrameLocations[f] = frame
        case .statusFrame(let f): statusFrameLocations[f] = frame
        }
    }

    @inlinable func location(_ page: LayerPage) -> UInt64 {
        switch page {
        case .sharedInfo: return physmapState.sharedInfoLocation
        case .grantFrame(let f): return grantFrameLocations[f]
        case .statusFrame(let f): return statusFrameLocations[f]
        }
    }

    @inlinable func hostPage(_ page: LayerPage) -> UnsafeMutableRawPointer {
        switch page {
        case .sharedInfo: return sharedInfoPage
        case .grantFrame(let f): return grantFramePages[f]!
        case .statusFrame(let f): return statusFramePages[f]!
        }
    }

    /// Whether the layer keeps a host pointer into `page` (a vcpu_info VCPUOP_register_vcpu_info
    /// placed there). Xen keeps a reference to such a page, so removing it from the map never
    /// frees it; the layer cannot keep the embedder's page alive, so it refuses to remove it.
    @inlinable func holdsPage(_ page: UnsafeMutableRawPointer) -> Bool {
        let base = UInt64(UInt(bitPattern: page))
        for v in 0..<vcpuCount {
            let host = xv_load_acquire_u64(vcpuWords + v * VCPUWords.stride + VCPUWords.vcpuInfoHost)
            if host != 0, host & ~(guestPageSize - 1) == base { return true }
        }
        return false
    }

    /// Grows the grant table to `count` frames (gnttab_grow_table): zeroed shared frames, their
    /// active entries, and under v2 the status frames they need. Under the physmap lock; takes
    /// the grant lock to publish the new size. The table never shrinks.
    @inlinable func growGrantTable(to count: UInt32) {
        guard physmapState.grantFrames < count else { return }
        withGrantLock {
            while physmapState.grantFrames < count {
                let f = Int(physmapState.grantFrames)
                let page = UnsafeMutableRawPointer.allocate(byteCount: Int(guestPageSize), alignment: Int(guestPageSize))
                page.initializeMemory(as: UInt8.self, repeating: 0, count: Int(guestPageSize))
                grantFramePages[f] = page
                let active = UnsafeMutablePointer<ActiveGrant>.allocate(capacity: Int(GrantTableLimits.v1EntriesPerFrame))
                active.initialize(repeating: ActiveGrant(), count: Int(GrantTableLimits.v1EntriesPerFrame))
                activeGrantPages[f] = active
                physmapState.grantFrames += 1
            }
            if grantState.version == 2 { populateStatusFrames() }
        }
    }
}
