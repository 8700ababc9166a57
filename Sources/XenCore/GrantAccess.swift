import CGuestAtomics
import GuestABI
import XenABI

/// What a granter's table answered a grantee: the status, the granter's frame the grant names,
/// and the window of it the grantee may touch (all of it but for a v2 sub-page grant).
public struct GrantAcquisition: Sendable, Equatable {
    /// GNTST_okay, or why the granter refused (GNTST_bad_gntref, GNTST_permission_denied, GNTST_general_error...; xen/include/public/grant_table.h).
    public var status: GrantStatus
    /// The domain whose frame `frame` is: the granter, or where a transitive grant led.
    public var owner: DomainID
    /// The granted frame number in `owner`'s guest-physical space (a v1 entry's 32-bit frame widened, or a v2 entry's 64-bit one).
    public var frame: UInt64
    /// Byte offset of the window inside the frame (0 unless a v2 sub-page grant).
    public var offset: UInt16
    /// Length of the window in bytes (4096 unless a v2 sub-page grant).
    public var length: UInt16

    /// An answer; a refusal needs only its status, the defaults describe a whole page of no domain.
    @inlinable public init(status: GrantStatus, owner: DomainID = .invalid, frame: UInt64 = 0, offset: UInt16 = 0, length: UInt16 = 4096) {
        self.status = status
        self.owner = owner
        self.frame = frame
        self.offset = offset
        self.length = length
    }

    @inlinable static func failed(_ status: GrantStatus) -> GrantAcquisition { GrantAcquisition(status: status) }
}

/// What a grant is pinned for: a host mapping, a copy, or the copy a transitive grant leads
/// to (which may not itself be transitive: Xen follows one step).
public enum GrantUse: UInt8, Sendable {
    /// `map`: GNTTABOP_map_grant_ref; `copy`: GNTTABOP_copy, which may follow a v2 transitive grant one step; `copyNotTransitive`: that one step, which may not be transitive again.
    case map, copy, copyNotTransitive
}

/// The granter's side of map_grant_ref and copy (xen-project/xen RELEASE-4.17.7
/// xen/common/grant_table.c: map_grant_ref's checks on the active entry, _set_status_v1 and
/// _set_status_v2, get_paged_frame, acquire_grant_for_copy, reduce_status_for_pin,
/// release_grant_for_copy). Only the granter's own layer runs these on its own table: on the
/// translated side another domain reaches them through the root, never by reading the table.
extension XenDomain {
    /// Pins `ref` for `grantee`, for a host mapping or a copy, read-only or writable:
    /// - a ref past the table is bad_gntref;
    /// - a grant pinned by another domain, or whose pin counter for this kind is full (128),
    ///   or pinned as a sub-page or transitive grant for a map, is general_error;
    /// - the entry must be GTF_permit_access for `grantee` (or, for a copy under v2,
    ///   GTF_transitive) (v1: checked and marked with a compare-and-swap on flags and domid,
    ///   five tries; v2: the status word ORed, then the header read again), not GTF_readonly
    ///   for a writable pin, and not a sub-page grant for a map: general_error otherwise;
    ///   GTF_reading, and GTF_writing for a writable pin, are set in the granter's entry;
    /// - the frame must be the granter's own RAM (not one of the layer's pages, not a frame
    ///   where the granter itself maps a grant): bad_page otherwise, with the flags undone;
    /// - a transitive grant is followed one step: its trans_domid (not the granter itself, and
    ///   a domain that exists: general_error otherwise) is asked, through `fabric`, to pin its
    ///   gref for the granter, with the granter's lock dropped meanwhile; if the entry changed
    ///   in that time the pin is given back and the answer is general_error (Xen asks the
    ///   guest to retry).
    @inlinable package func acquireGrant<F: EventFabric>(ref: UInt32, grantee: DomainID, writable: Bool, use: GrantUse, fabric: F) -> GrantAcquisition where F.Memory == Memory {
        let first: (GrantAcquisition, transitive: (DomainID, UInt32, UInt8, UInt8)?) = withGrantLock {
            guard ref < grantEntryCount else { return (.failed(.badGntref), nil) }
            let act = activeGrant(ref)
            let wasPinned = act.pointee.pinned
            if wasPinned {
                guard act.pointee.grantee == grantee.rawValue, !(use == .map && act.pointee.subPage) else { return (.failed(.generalError), nil) }
            }
            guard UInt64(writable ? act.pointee.writePins : act.pointee.readPins) < GrantTableLimits.maxPins else { return (.failed(.generalError), nil) }
            if !wasPinned || (writable && act.pointee.writePins == 0) {
                let s = grantState.version == 2
                    ? setStatusV2(ref, grantee: grantee, writable: writable, use: use, pinned: wasPinned)
                    : setStatusV1(ref, grantee: grantee, writable: writable, use: use, pinned: wasPinned)
                guard s == .okay else { return (.failed(s), nil) }
            }
            let followsTransitive = wasPinned
                ? act.pointee.transDomain != DomainID.invalid.rawValue
                : grantState.version == 2 && grantEntry(ref).load(as: UInt16.self) & GrantEntryFlags.typeMask.rawValue == GrantEntryFlags.transitive.rawValue
            if followsTransitive {
                let e = grantEntry(ref)
                // Each pin of a transitive grant holds a pin of the grant it leads to.
                let trans = wasPinned ? DomainID(act.pointee.transDomain) : DomainID(e.load(fromByteOffset: GrantEntryV2Layout.transitiveTransDomid.offset, as: UInt16.self))
                let transRef = wasPinned ? act.pointee.transRef : e.load(fromByteOffset: GrantEntryV2Layout.transitiveGref.offset, as: UInt32.self)
                guard use == .copy, trans != id, trans != .selfDomain else {
                    reduceStatus(ref, act.pointee)
                    return (.failed(.generalError), nil)
                }
                // Pinned for the caller while the lock is dropped, as Xen does.
                if writable { act.pointee.writePins += 1 } else { act.pointee.readPins += 1 }
                act.pointee.grantee = grantee.rawValue
                return (.failed(.okay), (trans, transRef, act.pointee.readPins, act.pointee.writePins))
            }
            if !wasPinned {
                let (frame, offset, length, subPage) = grantedFrame(ref)
                guard let page = memory.hostAddress(of: GuestFrameNumber(frame)), !isLayerHostPage(page), !mapsGrant(at: frame) else {
                    reduceStatus(ref, act.pointee)
                    return (.failed(.badPage), nil)
                }
                act.pointee.grantee = grantee.rawValue
                act.pointee.frame = frame
                act.pointee.offset = offset
                act.pointee.length = length
                act.pointee.subPage = subPage
                act.pointee.transDomain = DomainID.invalid.rawValue
            }
            if writable { act.pointee.writePins += 1 } else { act.pointee.readPins += 1 }
            return (GrantAcquisition(status: .okay, owner: id, frame: act.pointee.frame, offset: act.pointee.offset, length: act.pointee.length), nil)
        }
        guard let (trans, transRef, readPins, writePins) = first.transitive else { return first.0 }
        let inner = fabric.domainExists(trans)
            ? fabric.acquireGrant(self, granter: trans, ref: transRef, writable: writable, use: .copyNotTransitive)
            : GrantAcquisition(status: .generalError)
        let settled: GrantStatus = withGrantLock {
            let act = activeGrant(ref)
            let unchanged = grantState.version == 2 && ref < grantEntryCount && act.pointee.readPins == readPins && act.pointee.writePins == writePins
            if inner.status != .okay || !unchanged {
                if writable { act.pointee.writePins -= 1 } else { act.pointee.readPins -= 1 }
                reduceStatus(ref, act.pointee)
                return inner.status != .okay ? inner.status : .generalError
            }
            act.pointee.frame = inner.frame
            act.pointee.offset = inner.offset
            act.pointee.length = inner.length
            // Never mappable, as Xen marks a transitive pin is_sub_page.
            act.pointee.subPage = true
            act.pointee.transDomain = trans.rawValue
            act.pointee.transRef = transRef
            return .okay
        }
        guard settled == .okay else {
            if inner.status == .okay { fabric.releaseGrant(self, granter: trans, ref: transRef, writable: writable) }
            return GrantAcquisition(status: settled)
        }
        return inner
    }

    /// Drops one pin of `ref` of the kind it was taken with (a mapping's own record, never the
    /// caller's say: XSA-234), clearing GTF_reading with the last pin and GTF_writing with the
    /// last writable one; a transitive grant gives back the pin it took in turn.
    @inlinable package func releaseGrant<F: EventFabric>(ref: UInt32, writable: Bool, fabric: F) where F.Memory == Memory {
        let transitive: (DomainID, UInt32)? = withGrantLock {
            guard ref < grantEntryCount else { return nil }
            let act = activeGrant(ref)
            if writable {
                guard act.pointee.writePins > 0 else { return nil }
                act.pointee.writePins -= 1
            } else {
                guard act.pointee.readPins > 0 else { return nil }
                act.pointee.readPins -= 1
            }
            let trans = act.pointee.transDomain
            let transRef = act.pointee.transRef
            if !act.pointee.pinned { act.pointee.transDomain = DomainID.invalid.rawValue }
            reduceStatus(ref, act.pointee)
            return trans == DomainID.invalid.rawValue ? nil : (DomainID(trans), transRef)
        }
        if let (trans, transRef) = transitive { fabric.releaseGrant(self, granter: trans, ref: transRef, writable: writable) }
    }

    /// The pins `ref` holds (read, write), for tests and the embedder's view.
    @inlinable public func grantPins(_ ref: UInt32) -> (read: Int, write: Int) {
        withGrantLock {
            guard ref < grantEntryCount else { return (0, 0) }
            let a = activeGrant(ref).pointee
            return (Int(a.readPins), Int(a.writePins))
        }
    }

    /// The frame `ref` names and the window a copy may use: v1's frame; v2's full_page frame or
    /// sub_page frame with its offset and length.
    @inlinable func grantedFrame(_ ref: UInt32) -> (UInt64, UInt16, UInt16, Bool) {
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
    @inlinable func setStatusV1(_ ref: UInt32, grantee: DomainID, writable: Bool, use: GrantUse, pinned: Bool) -> GrantStatus {
        let word = grantEntry(ref)
        let typeMask = GrantEntryFlags.typeMask.rawValue | (use == .map ? GrantEntryFlags.subPage.rawValue : 0)
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
    @inlinable func setStatusV2(_ ref: UInt32, grantee: DomainID, writable: Bool, use: GrantUse, pinned: Bool) -> GrantStatus {
        let header = grantEntry(ref), status = grantStatus(ref)
        let typeMask = GrantEntryFlags.typeMask.rawValue | (use == .map ? GrantEntryFlags.subPage.rawValue : 0)
        // A copy may follow a transitive grant; the one it leads to may not be transitive.
        let transitiveOK = use == .copy
        func acceptable() -> Bool {
            let flags = xv_atomic_load_u16(header), domid = xv_atomic_load_u16(header + 2)
            let type = flags & typeMask
            if !pinned, !(type == GrantEntryFlags.permitAccess.rawValue || (transitiveOK && type == GrantEntryFlags.transitive.rawValue)) || domid != grantee.rawValue { return false }
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
    @inlinable func reduceStatus(_ ref: UInt32, _ act: ActiveGrant) {
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
    @inlinable func isLayerHostPage(_ page: UnsafeMutableRawPointer) -> Bool {
        if page == sharedInfoPage { return true }
        for f in 0..<Int(physmapState.grantFrames) where grantFramePages[f] == page { return true }
        for f in 0..<Int(grantState.statusFrames) where statusFramePages[f] == page { return true }
        return false
    }
}
