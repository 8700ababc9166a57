import CGuestAtomics
import GuestABI
import XenABI

/// One grant reference's active state in the granter's table (Xen's struct active_grant_entry):
/// how many host mappings (and copies in progress) pin it for reading and for writing, which
/// domain pinned it, and the granter's frame it was pinned at. Under the granter's grant lock.
@usableFromInline struct ActiveGrant {
    @usableFromInline var readPins: UInt8 = 0
    @usableFromInline var writePins: UInt8 = 0
    @usableFromInline var grantee: UInt16 = 0
    /// A v2 sub-page grant's window (offset, length), 0 and 4096 otherwise.
    @usableFromInline var offset: UInt16 = 0
    @usableFromInline var length: UInt16 = 4096
    @usableFromInline var subPage = false
    /// A transitive grant's domain and gref (DOMID_INVALID while none is followed).
    @usableFromInline var transDomain: UInt16 = DomainID.invalid.rawValue
    @usableFromInline var transRef: UInt32 = 0
    @usableFromInline var frame: UInt64 = 0

    @inlinable var pinned: Bool { readPins != 0 || writePins != 0 }
    @inlinable init(readPins: UInt8 = 0, writePins: UInt8 = 0, grantee: UInt16 = 0, offset: UInt16 = 0, length: UInt16 = 4096, transDomain: UInt16 = DomainID.invalid.rawValue, transRef: UInt32 = 0, frame: UInt64 = 0) { self.readPins = readPins; self.writePins = writePins; self.grantee = grantee; self.offset = offset; self.length = length; self.transDomain = transDomain; self.transRef = transRef; self.frame = frame }
}

/// The grant table's shape (Xen's struct grant_table, less its entries): the version in use,
/// the most the domain may use, and its v2 status frames. Changed under the physmap lock and
/// the grant lock both, so either one is enough to read it.
@usableFromInline struct GrantTableState {
    @usableFromInline var version: UInt32 = 1
    @usableFromInline var maxVersion: UInt32
    @usableFromInline var statusFrames: UInt32 = 0
    @inlinable init(version: UInt32 = 1, maxVersion: UInt32, statusFrames: UInt32 = 0) { self.version = version; self.maxVersion = maxVersion; self.statusFrames = statusFrames }
}

extension XenDomain {
    @inline(__always)
    @inlinable func withGrantLock<R>(_ body: () -> R) -> R {
        xv_spin_lock(words + DomainWords.grantLock)
        defer { xv_spin_unlock(words + DomainWords.grantLock) }
        return body()
    }

    /// The grant table version in use (GNTTABOP_get_version).
    @inlinable public var grantTableVersion: UInt32 { withGrantLock { grantState.version } }

    /// Status frames a table of `frames` grant frames has under v2 (grant_to_status_frames).
    @inlinable static func statusFrames(for frames: UInt32) -> UInt32 {
        UInt32((UInt64(frames) * GrantTableLimits.v2EntriesPerFrame + GrantTableLimits.statusPerFrame - 1) / GrantTableLimits.statusPerFrame)
    }

    /// Grant entries the table has now (nr_grant_entries), under either lock.
    @inlinable var grantEntryCount: UInt32 {
        physmapState.grantFrames * UInt32(grantState.version == 2 ? GrantTableLimits.v2EntriesPerFrame : GrantTableLimits.v1EntriesPerFrame)
    }

    /// The granter's entry `ref` in its shared frames: the v1 entry or the v2 entry's start.
    /// `ref` must be below `grantEntryCount`.
    @inlinable func grantEntry(_ ref: UInt32) -> UnsafeMutableRawPointer {
        let perFrame = UInt32(grantState.version == 2 ? GrantTableLimits.v2EntriesPerFrame : GrantTableLimits.v1EntriesPerFrame)
        let size = grantState.version == 2 ? GrantEntryV2Layout.size : GrantEntryV1Layout.size
        return grantFramePages[Int(ref / perFrame)]! + Int(ref % perFrame) * size
    }

    /// The v2 status word of `ref`.
    @inlinable func grantStatus(_ ref: UInt32) -> UnsafeMutableRawPointer {
        let perFrame = UInt32(GrantTableLimits.statusPerFrame)
        return statusFramePages[Int(ref / perFrame)]! + Int(ref % perFrame) * 2
    }

    /// The active state of `ref` (one page of 512 per grant frame, whatever the version).
    @inlinable func activeGrant(_ ref: UInt32) -> UnsafeMutablePointer<ActiveGrant> {
        let perPage = UInt32(GrantTableLimits.v1EntriesPerFrame)
        return activeGrantPages[Int(ref / perPage)]! + Int(ref % perPage)
    }

    /// Allocates v2 status frames until there are enough for the table's grant frames
    /// (gnttab_populate_status_frames). Under the physmap and grant locks.
    @inlinable func populateStatusFrames() {
        let needed = Self.statusFrames(for: physmapState.grantFrames)
        while grantState.statusFrames < needed {
            let page = UnsafeMutableRawPointer.allocate(byteCount: Int(guestPageSize), alignment: Int(guestPageSize))
            page.initializeMemory(as: UInt8.self, repeating: 0, count: Int(guestPageSize))
            statusFramePages[Int(grantState.statusFrames)] = page
            statusFrameLocations[Int(grantState.statusFrames)] = PhysmapState.noFrame
            grantState.statusFrames += 1
        }
    }

    /// Takes every status frame out of the guest's map and frees it (gnttab_unpopulate_status_frames,
    /// the XSA-255 fix: no frame stays mapped once v1 is back). Status frames are never
    /// grantable, so no other domain can hold one. Under the physmap and grant locks.
    @inlinable func unpopulateStatusFrames() {
        for f in 0..<Int(grantState.statusFrames) {
            if statusFrameLocations[f] != PhysmapState.noFrame {
                physmap?.unmap(GuestFrameNumber(statusFrameLocations[f]), releasing: false)
                statusFrameLocations[f] = PhysmapState.noFrame
            }
            statusFramePages[f]?.deallocate()
            statusFramePages[f] = nil
        }
        grantState.statusFrames = 0
    }
}
