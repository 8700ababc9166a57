import CGuestAtomics

/// A simple in-memory guest-physical address space for tests, benchmarks and embedders without
/// their own memory map: `frameCount` frames, 0 ..< `frameCount`, each shown through a page
/// table of host addresses, so that a frame can be a hole, its own RAM page, or another page
/// (the layer's shared_info or grant frames, `XENMEM_add_to_physmap`). Every frame starts
/// backed by its own zeroed page, allocated once.
///
/// `GuestRAM` owns the pages and the table; `region` is the non-owning `GuestMemory` value
/// handed to the core. The owner must outlive every user of the region (the core stores only
/// the region). Table entries are published with release stores and read with acquire loads,
/// so vCPU threads may read the map while the embedder changes it; changes themselves are the
/// embedder's to serialise (the layer makes them under its physmap lock).
public final class GuestRAM {
    /// First byte of frame 0's own page; frame n's own page is n pages further.
    public let base: UnsafeMutableRawPointer
    /// Number of frames the table covers; frames at or past this are never backed.
    public let frameCount: UInt64
    /// Per frame, the host address it shows (0: a hole).
    @usableFromInline let table: UnsafeMutablePointer<UInt64>
    /// Per own page: whether some frame shows it or the embedder handed it out.
    @usableFromInline let pageInUse: UnsafeMutablePointer<Bool>

    /// Allocates and zeroes `frameCount` frames (at least one), each backed by its own page.
    public init(frameCount: UInt64) {
        let frames = max(frameCount, 1)
        self.frameCount = frames
        let bytes = Int(frames * guestPageSize)
        self.base = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: Int(guestPageSize))
        self.base.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        table = .allocate(capacity: Int(frames))
        pageInUse = .allocate(capacity: Int(frames))
        for f in 0..<Int(frames) {
            table[f] = UInt64(UInt(bitPattern: base + f * Int(guestPageSize)))
            pageInUse[f] = true
        }
    }

    deinit {
        base.deallocate()
        table.deallocate()
        pageInUse.deallocate()
    }

    /// The `GuestMemory` view of every frame.
    @inlinable public var region: GuestRAMRegion { GuestRAMRegion(table: table, frameCount: frameCount) }

    /// The view of frames 0 ..< `frames` only (a guest's view of a partition whose later frames
    /// belong to someone else); the same table, so changes show in both views.
    @inlinable public func view(frames: UInt64) -> GuestRAMRegion { GuestRAMRegion(table: table, frameCount: min(frames, frameCount)) }

    /// Makes `frame` show `page` (any host page that outlives the mapping). What it showed
    /// before is unhooked, not freed (`unmap(_:releasing:)` frees). False for a frame past the
    /// table.
    @discardableResult
    @inlinable public func map(_ page: UnsafeMutableRawPointer, at frame: GuestFrameNumber) -> Bool {
        guard frame.rawValue < frameCount else { return false }
        if let own = ownIndex(page) { pageInUse[own] = true }
        xv_store_release_u64(table + Int(frame.rawValue), UInt64(UInt(bitPattern: page)))
        return true
    }

    /// Makes `frame` a hole. With `releasing`, an own page it showed becomes free for
    /// `populate` unless another frame still shows it; without, it stays allocated. False when
    /// it was a hole.
    @discardableResult
    @inlinable public func unmap(_ frame: GuestFrameNumber, releasing: Bool = true) -> Bool {
        guard frame.rawValue < frameCount else { return false }
        let f = Int(frame.rawValue), shown = table[f]
        guard shown != 0 else { return false }
        xv_store_release_u64(table + f, 0)
        if releasing, let own = ownIndex(shown) {
            var stillShown = false
            for g in 0..<Int(frameCount) where table[g] == shown { stillShown = true; break }
            if !stillShown { pageInUse[own] = false }
        }
        return true
    }

    /// Makes `frame` show a free own page, zeroed (its own page when that is free, else the
    /// lowest free one). What it showed before is unhooked, not freed. False when no own page
    /// is free or the frame is past the table.
    @inlinable public func populate(_ frame: GuestFrameNumber) -> Bool {
        guard frame.rawValue < frameCount else { return false }
        let home = Int(frame.rawValue)
        var index = home
        if pageInUse[home] {
            guard let free = (0..<Int(frameCount)).first(where: { !pageInUse[$0] }) else { return false }
            index = free
        }
        let page = base + index * Int(guestPageSize)
        page.initializeMemory(as: UInt8.self, repeating: 0, count: Int(guestPageSize))
        pageInUse[index] = true
        xv_store_release_u64(table + home, UInt64(UInt(bitPattern: page)))
        return true
    }

    /// Own pages no frame shows.
    @inlinable public var freePages: Int { (0..<Int(frameCount)).reduce(0) { $0 + (pageInUse[$1] ? 0 : 1) } }

    /// Makes frames and own pages 0 ..< `frames` what they are in `source`: the contents of
    /// every own page, which own page each frame shows, the holes and the free pages. A frame
    /// that shows a page not `source`'s own (a grant mapping, a layer page) becomes a hole
    /// here: restoring the domain's image shows that page again. What an embedder does with a
    /// domain's memory when it migrates it (Docs/SaveRestore.md).
    public func mirror(_ source: GuestRAM, frames: UInt64) {
        let n = Int(min(frames, frameCount, source.frameCount))
        for i in 0..<n {
            (base + i * Int(guestPageSize)).copyMemory(from: source.base + i * Int(guestPageSize), byteCount: Int(guestPageSize))
            pageInUse[i] = source.pageInUse[i]
        }
        for f in 0..<n {
            let shown = xv_load_acquire_u64(source.table + f)
            let page = source.ownIndex(shown).flatMap { $0 < n ? UInt64(UInt(bitPattern: base + $0 * Int(guestPageSize))) : nil } ?? 0
            xv_store_release_u64(table + f, page)
        }
    }

    @inlinable func ownIndex(_ address: UInt64) -> Int? {
        let start = UInt64(UInt(bitPattern: base))
        guard address >= start, address < start + frameCount * guestPageSize else { return nil }
        return Int((address - start) >> guestPageShift)
    }

    @inlinable func ownIndex(_ page: UnsafeMutableRawPointer) -> Int? { ownIndex(UInt64(UInt(bitPattern: page))) }
}

/// A non-owning view of frames 0 ..< `frameCount` through a `GuestRAM` page table.
@frozen
public struct GuestRAMRegion: GuestMemory {
    /// The page table this view reads: per frame, the host address it shows, 0 for a hole. Not owned: its owner (normally a `GuestRAM`) must outlive the view.
    public let table: UnsafeMutablePointer<UInt64>
    /// Number of frames the view covers; frames at or past it are never backed.
    public let frameCount: UInt64
    /// The embedder's walk of the calling vCPU's page tables, for argument addresses that are
    /// no guest frame (`argumentPage`); nil: argument addresses are guest-physical.
    public let linear: GuestLinearTranslator?

    /// A view of the first `frameCount` entries of `table`; does not take ownership (normally made by `GuestRAM.region` or `GuestRAM.view(frames:)`).
    @inlinable
    public init(table: UnsafeMutablePointer<UInt64>, frameCount: UInt64, linear: GuestLinearTranslator? = nil) {
        self.table = table
        self.frameCount = frameCount
        self.linear = linear
    }

    /// An argument address's page: its frame when it is one of the view's, otherwise the
    /// frame the embedder's walk of the calling vCPU's page tables gives for it, which must be
    /// one of the view's too (so no linear address reaches past the guest's frames).
    @inlinable
    public func argumentPage(_ frame: GuestFrameNumber) -> UnsafeMutableRawPointer? {
        if frame.rawValue < frameCount { return hostAddress(of: frame) }
        guard let linear, let physical = linear.frame(ofLinearPage: frame.rawValue) else { return nil }
        return hostAddress(of: GuestFrameNumber(physical))
    }

    /// The host address of `frame`'s page (one acquire load of its table entry), or nil for a hole or a frame past `frameCount`. Safe from any thread.
    @inlinable
    public func hostAddress(of frame: GuestFrameNumber) -> UnsafeMutableRawPointer? {
        frame.rawValue < frameCount ? UnsafeMutableRawPointer(bitPattern: UInt(xv_load_acquire_u64(table + Int(frame.rawValue)))) : nil
    }
}

/// The embedder's walk of a guest's page tables: a C function that gives the guest frame a
/// linear page maps to, as the vCPU whose hypercall is running sees it (the call is made on that
/// vCPU's thread), or UINT64_MAX when the page is not mapped. `context` and `domain` are passed
/// back as they are.
public struct GuestLinearTranslator {
    /// The walk: (context, domain, linear page number) -> guest frame number or UINT64_MAX.
    public let translate: @convention(c) (UnsafeMutableRawPointer?, UInt16, UInt64) -> UInt64
    /// The embedder's context pointer.
    public let context: UnsafeMutableRawPointer?
    /// The domain whose vCPU is asking.
    public let domain: UInt16

    /// A translator calling `translate` with `context` and `domain`.
    @inlinable
    public init(translate: @convention(c) (UnsafeMutableRawPointer?, UInt16, UInt64) -> UInt64, context: UnsafeMutableRawPointer?, domain: UInt16) {
        self.translate = translate
        self.context = context
        self.domain = domain
    }

    /// The guest frame `page` maps to, or nil.
    @inlinable
    public func frame(ofLinearPage page: UInt64) -> UInt64? {
        let f = translate(context, domain, page)
        return f == UInt64.max ? nil : f
    }
}
