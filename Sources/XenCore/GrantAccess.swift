import CGuestAtomics
import GuestABI
import XenABI

/// What a granter's table answered a grantee: the status, the granter's frame the grant names,
/// and the window of it the grantee may touch (all of it but for a v2 sub-page grant).
public struct GrantAcquisition: Sendable, Equatable {
    public var status: GrantStatus
    public var frame: UInt64
    public var offset: UInt16
    public var length: UInt16

    public init(status: GrantStatus, frame: UInt64 = 0, offset: UInt16 = 0, length: UInt16 = 4096) {
        self.status = status
        self.frame = frame
        self.offset = offset
        self.length = length
    }

    static func failed(_ status: GrantStatus) -> GrantAcquisition { GrantAcquisition(status: status) }
}

/// The granter's side of map_grant_ref and copy (xen-project/xen RELEASE-4.17.7
/// xen/common/grant_table.c: map_grant_ref's checks on the active entry, _set_status_v1 and
/// _set_status_v2, get_paged_frame, acquire_grant_for_copy, reduce_status_for_pin,
/// release_grant_for_copy). Only the granter's own layer runs these on its own table: on the
/// translated side another domain reaches them through the root, never by reading the table.
extension XenDomain {
    /// Pins `ref` for `grantee`, for a host mapping (`forMap`) or a copy, read-only or writable:
    /// - a ref past the table is bad_gntref;
    /// - a grant pinned by another domain, or whose pin counter for this kind is full (128),
    ///   or pinned as a sub-page grant for a map, is general_error;
    /// - the entry must be GTF_permit_access for `grantee` (v1: checked and marked with a
    ///   compare-and-swap on flags and domid, five tries; v2: the status word ORed, then the
    ///   header read again), not GTF_readonly for a writable pin, and not a sub-page grant for
    ///   a map: general_error otherwise; GTF_reading, and GTF_writing for a writable pin, are
    ///   set in the granter's entry;
    /// - the frame must be the granter's own RAM (not one of the layer's pages, not a frame
    ///   where the granter itself maps a grant): bad_page otherwise, with the flags undone.
    package func acquireGrant(ref: UInt32, grantee: DomainID, writable: Bool, forMap: Bool) -> GrantAcquisition {
        withGrantLock {
            guard ref < grantEntryCount else { return .failed(.badGntref) }
            let act = activeGrant(ref)
            let wasPinned = act.pointee.pinned
            if wasPinned {
                guard act.pointee.grantee == grantee.rawValue, !(forMap && act.pointee.subPage) else { return .failed(.generalError) }
            }
            guard UInt64(writable ? act.pointee.writePins : act.pointee.readPins) < GrantTableLimits.maxPins else { return .failed(.generalError) }
            if !wasPinned || (writable && act.pointee.writePins == 0) {
                let s = grantState.version == 2
                    ? setStatusV2(ref, grantee: grantee, writable: writable, forMap: forMap, pinned: wasPinned)
                    : setStatusV1(ref, grantee: grantee, writable: writable, forMap: forMap, pinned: wasPinned)
                guard s == .okay else { return .failed(s) }
            }
            if !wasPinned {
                let (frame, offset, length, subPage) = grantedFrame(ref)
                guard let page = memory.hostAddress(of: GuestFrameNumber(frame)), !isLayerHostPage(page), !mapsGrant(at: frame) else {
                    reduceStatus(ref, act.pointee)
                    return .failed(.badPage)
                }
                act.pointee.grantee = grantee.rawValue
                act.pointee.frame = frame
                act.pointee.offset = offset
                act.pointee.length = length
                act.pointee.subPage = subPage
            }
            if writable { act.pointee.writePins += 1 } else { act.pointee.readPins += 1 }
            return GrantAcquisition(status: .okay, frame: act.pointee.frame, offset: act.pointee.offset, length: act.pointee.length)
        }
    }

    /// Drops one pin of `ref` of the kind it was taken with (a mapping's own record, never the
    /// caller's say: XSA-234), clearing GTF_reading with the last pin and GTF_writing with the
    /// last writable one.
    package func releaseGrant(ref: UInt32, writable: Bool) {
        withGrantLock {
            guard ref < grantEntryCount else { return }
            let act = activeGrant(ref)
            if writable {
                guard act.pointee.writePins > 0 else { return }
                act.pointee.writePins -= 1
            } else {
                guard act.pointee.readPins > 0 else { return }
                act.pointee.readPins -= 1
            }
            reduceStatus(ref, act.pointee)
        }
    }

    /// The pins `ref` holds (read, write), for tests and the embedder's view.
    public func grantPins(_ ref: UInt32) -> (read: Int, write: Int) {
        withGrantLock {
            guard ref < grantEntryCount else { return (0, 0) }
            let a = activeGrant(ref).pointee
            return (Int(a.readPins), Int(a.writePins))
        }
    }

    /// The frame `ref` names and the window a copy may use: v1's frame; v2's full_page frame or
    /// sub_page frame with its offset and length.
    func grantedFrame(_ ref: UInt32) -> (UInt64, UInt16, UInt16, Bool) {
        let e = grantEntry(ref)
        if grantState.version == 1 { return (UInt64(e.load(fromByteOffset: GrantEntryV1Layout.frame.offset, as: UInt32.self)), 0, 4096, false) }
        let flags = e.load(as: UInt16.self)
        if flags & GrantEntryFlags.subPage.rawValue != 0 {
            return (e.load(fromByteOffset: GrantEntryV2Layout.subPageFrame.offset, as: UInt64.self),
                    e.load(fromByteOffset: GrantEntryV2Layout.subPagePageOff.offset, as: UInt16.self),
                    e.load(fromByteOffset: GrantEntryV2Layout.subPageLength.offset, as: UInt16.self), true)
        }
        return (e.load(fromByteOffset: GrantEntryV2Layout.fullPageFrame.offset, as: UInt64.self), 0, 4096, false)
    }

    /// _set_status_v1: a compare-and-swap loop on the entry's {flags, domid} word.
    func setStatusV1(_ ref: UInt32, grantee: DomainID, writable: Bool, forMap: Bool, pinned: Bool) -> GrantStatus {
        let word = grantEntry(ref)
        let typeMask = GrantEntryFlags.typeMask.rawValue | (forMap ? GrantEntryFlags.subPage.rawValue : 0)
        var mismatches: UInt64 = 0
        while true {
            let old = xv_atomic_load_u32(word)
            let flags = UInt16(truncatingIfNeeded: old), domid = UInt16(truncatingIfNeeded: old >> 16)
            if !pinned, flags & typeMask != GrantEntryFlags.permitAccess.rawValue || domid != grantee.rawValue { return .generalError }
            if writable, flags & GrantEntryFlags.readonly.rawValue != 0 { return .generalError }
            let add = UInt32(GrantEntryFlags.reading.rawValue | (writable ? GrantEntryFlags.writing.rawValue : 0))
            if xv_atomic_cas_u32(word, old, old | add) == old { return .okay }
            mismatches += 1
            if mismatches == GrantTableLimits.statusRetries { return .generalError }
        }
    }

    /// _set_status_v2: the header checked, the status word ORed, the header checked again.
    func setStatusV2(_ ref: UInt32, grantee: DomainID, writable: Bool, forMap: Bool, pinned: Bool) -> GrantStatus {
        let header = grantEntry(ref), status = grantStatus(ref)
        let typeMask = GrantEntryFlags.typeMask.rawValue | (forMap ? GrantEntryFlags.subPage.rawValue : 0)
        func acceptable() -> Bool {
            let flags = xv_atomic_load_u16(header), domid = xv_atomic_load_u16(header + 2)
            if !pinned, flags & typeMask != GrantEntryFlags.permitAccess.rawValue || domid != grantee.rawValue { return false }
            return !(writable && flags & GrantEntryFlags.readonly.rawValue != 0)
        }
        guard acceptable() else { return .generalError }
        let add = GrantEntryFlags.reading.rawValue | (writable ? GrantEntryFlags.writing.rawValue : 0)
        _ = xv_atomic_fetch_or_u16(status, add)
        guard acceptable() else {
            if !pinned { _ = xv_atomic_fetch_and_u16(status, ~add) }
            else if writable { _ = xv_atomic_fetch_and_u16(status, ~GrantEntryFlags.writing.rawValue) }
            return .generalError
        }
        return .okay
    }

    /// reduce_status_for_pin: GTF_reading goes with the last pin, GTF_writing with the last
    /// writable pin.
    func reduceStatus(_ ref: UInt32, _ act: ActiveGrant) {
        var clear: UInt16 = 0
        if !act.pinned { clear |= GrantEntryFlags.reading.rawValue }
        if act.writePins == 0 { clear |= GrantEntryFlags.writing.rawValue }
        guard clear != 0 else { return }
        if grantState.version == 2 {
            _ = xv_atomic_fetch_and_u16(grantStatus(ref), ~clear)
        } else {
            _ = xv_atomic_fetch_and_u32(grantEntry(ref), ~UInt32(clear))
        }
    }

    /// Whether `page` is one of the layer's own (shared_info, grant and status frames): never
    /// grantable. Under the grant lock.
    func isLayerHostPage(_ page: UnsafeMutableRawPointer) -> Bool {
        if page == sharedInfoPage { return true }
        for f in 0..<Int(physmapState.grantFrames) where grantFramePages[f] == page { return true }
        for f in 0..<Int(grantState.statusFrames) where statusFramePages[f] == page { return true }
        return false
    }
}
