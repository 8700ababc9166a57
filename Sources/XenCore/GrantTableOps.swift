import CGuestAtomics
import GuestABI
import XenABI

/// __HYPERVISOR_grant_table_op for an HVM domU (xen-project/xen RELEASE-4.17.7:
/// xen/arch/x86/hvm/hypercall.c hvm_grant_table_op, xen/common/grant_table.c do_grant_table_op,
/// gnttab_setup_table, gnttab_query_size, gnttab_set_version, gnttab_get_version,
/// gnttab_swap_grant_ref). The operations on the domain's own table are here; map, unmap and
/// copy, which reach another domain, are `GrantMapping.swift` and `GrantAccess.swift`.
extension XenDomain {
    /// RDI = `unsigned int cmd`, RSI = the argument list, RDX = `unsigned int count`.
    @inline(never)
    @inlinable func grantTableOp<F: EventFabric>(_ cmd: UInt64, arg: UInt64, count: UInt64, vcpu: Int, fabric: F) -> Int64 where F.Memory == Memory {
        // hvm_grant_table_op lets an HVM guest use these alone ("all other commands need
        // auditing"), on the whole cmd: continuation bits make a command unknown too.
        let op = GrantTableOp(rawValue: UInt32(truncatingIfNeeded: cmd))
        switch op {
        case .querySize, .setupTable, .setVersion, .getVersion, .copy, .mapGrantRef, .unmapGrantRef, .swapGrantRef: break
        default: return XenErrno.enosys.hypercallReturnValue
        }
        // do_grant_table_op: a count that is negative as an int is -EINVAL.
        let n = UInt32(truncatingIfNeeded: count)
        guard Int32(bitPattern: n) >= 0 else { return XenErrno.einval.hypercallReturnValue }
        switch op {
        case .setupTable: return n == 1 ? setupTable(arg, fabric: fabric) : XenErrno.einval.hypercallReturnValue
        case .querySize: return n == 1 ? querySize(arg, fabric: fabric) : XenErrno.einval.hypercallReturnValue
        case .setVersion: return setGrantVersion(arg)
        case .getVersion: return getGrantVersion(arg, fabric: fabric)
        case .swapGrantRef: return swapGrantRefs(arg, count: n)
        case .mapGrantRef: return mapGrantRefs(arg, count: n, vcpu: vcpu, fabric: fabric)
        case .unmapGrantRef: return unmapGrantRefs(arg, count: n, fabric: fabric)
        case .copy: return copyGrants(arg, count: n, vcpu: vcpu, fabric: fabric)
        default: return Self.notYetImplemented
        }
    }

    /// The GNTST_* for a `dom` field (rcu_lock_domain_by_any_id, then XSM_TARGET): nil for the
    /// caller itself.
    @inlinable func grantDomainStatus<F: EventFabric>(_ dom: UInt16, fabric: F) -> GrantStatus? where F.Memory == Memory {
        switch resolveOwnDomain(dom, fabric: fabric) {
        case .ok: return nil
        case .permissionDenied: return .permissionDenied
        default: return .badDomain
        }
    }

    /// GNTTABOP_setup_table: status bad_domain or permission_denied for another domain,
    /// general_error for more frames than max_grant_frames; otherwise the table grows to
    /// nr_frames and frame_list gets where the guest maps each frame (INVALID_GFN while it is
    /// unmapped: a translated guest maps them with XENMEM_add_to_physmap); a frame_list entry
    /// that cannot be written makes the status bad_virt_addr. Only status is written back; the
    /// call returns 0 unless that write fails.
    @inlinable func setupTable<F: EventFabric>(_ arg: UInt64, fabric: F) -> Int64 where F.Memory == Memory {
        guard memory.argumentReadable(at: arg, size: GnttabSetupTableLayout.size),
              let dom = memory.argument(UInt16.self, at: arg, GnttabSetupTableLayout.dom),
              let frames = memory.argument(UInt32.self, at: arg, GnttabSetupTableLayout.nrFrames),
              let list = memory.argument(UInt64.self, at: arg, GnttabSetupTableLayout.frameList) else {
            return XenErrno.efault.hypercallReturnValue
        }
        var status = grantDomainStatus(dom, fabric: fabric) ?? .okay
        if status == .okay {
            if frames > maxGrantFrames {
                status = .generalError
            } else {
                withPhysmapLock { growGrantTable(to: frames) }
                for i in 0..<Int(frames) {
                    let gfn = withPhysmapLock { grantFrameLocations[i] }
                    if !memory.setArgument(gfn, at: list, ABIField(offset: 8 * i, size: 8)) { status = .badVirtAddr }
                }
            }
        }
        return memory.setArgument(UInt16(bitPattern: status.rawValue), at: arg, GnttabSetupTableLayout.status) ? 0 : XenErrno.efault.hypercallReturnValue
    }

    /// GNTTABOP_query_size: the table's frames now and at most, or a bad_domain or
    /// permission_denied status with the guest's numbers left as they were; the whole structure
    /// is written back.
    @inlinable func querySize<F: EventFabric>(_ arg: UInt64, fabric: F) -> Int64 where F.Memory == Memory {
        guard memory.argumentReadable(at: arg, size: GnttabQuerySizeLayout.size),
              let dom = memory.argument(UInt16.self, at: arg, GnttabQuerySizeLayout.dom),
              var frames = memory.argument(UInt32.self, at: arg, GnttabQuerySizeLayout.nrFrames),
              var maxFrames = memory.argument(UInt32.self, at: arg, GnttabQuerySizeLayout.maxNrFrames) else {
            return XenErrno.efault.hypercallReturnValue
        }
        let status = grantDomainStatus(dom, fabric: fabric) ?? .okay
        if status == .okay {
            frames = withPhysmapLock { physmapState.grantFrames }
            maxFrames = maxGrantFrames
        }
        guard memory.setArgument(frames, at: arg, GnttabQuerySizeLayout.nrFrames),
              memory.setArgument(maxFrames, at: arg, GnttabQuerySizeLayout.maxNrFrames),
              memory.setArgument(UInt16(bitPattern: status.rawValue), at: arg, GnttabQuerySizeLayout.status) else {
            return XenErrno.efault.hypercallReturnValue
        }
        return 0
    }

    /// GNTTABOP_get_version: the domain's version; another domain -EPERM, none -ESRCH.
    @inlinable func getGrantVersion<F: EventFabric>(_ arg: UInt64, fabric: F) -> Int64 where F.Memory == Memory {
        guard memory.argumentReadable(at: arg, size: GnttabGetVersionLayout.size),
              let dom = memory.argument(UInt16.self, at: arg, GnttabGetVersionLayout.dom) else {
            return XenErrno.efault.hypercallReturnValue
        }
        let owner = resolveOwnDomain(dom, fabric: fabric)
        guard owner == .ok else { return Self.result(owner) }
        return memory.setArgument(grantTableVersion, at: arg, GnttabGetVersionLayout.version) ? 0 : XenErrno.efault.hypercallReturnValue
    }

    /// GNTTABOP_set_version (gnttab_set_version), on the caller's own table:
    /// - a version other than 1 or 2 is -EINVAL; 2 above the domain's maximum is -ENOSYS; the
    ///   version in use is 0 at once;
    /// - a grant of this domain pinned by a mapping or a copy (refs 8 and up) is -EBUSY;
    /// - v2 to v1 with a reserved entry (0-7) that v1 cannot express (a frame at or above 2^32,
    ///   a transitive grant) is -ERANGE;
    /// - otherwise v2 gains its status frames, or v1 loses them (taken out of the guest's map:
    ///   XSA-255), every shared frame is cleared, and the reserved entries are carried over in
    ///   the new format (v2 to v1 keeps permit_access entries only).
    /// Whatever the answer, the version now in use is written back (-EFAULT if it cannot be).
    @inlinable func setGrantVersion(_ arg: UInt64) -> Int64 {
        guard let requested = memory.argument(UInt32.self, at: arg, GnttabSetVersionLayout.version) else {
            return XenErrno.efault.hypercallReturnValue
        }
        let (rc, now): (Int64, UInt32) = withPhysmapLock { withGrantLock { switchGrantVersion(to: requested) } }
        return memory.setArgument(now, at: arg, GnttabSetVersionLayout.version) ? rc : XenErrno.efault.hypercallReturnValue
    }

    /// The version switch itself, under the physmap and grant locks: the return code and the
    /// version in use afterwards.
    @inlinable func switchGrantVersion(to requested: UInt32) -> (Int64, UInt32) {
        let current = grantState.version
        guard requested == 1 || requested == 2 else { return (XenErrno.einval.hypercallReturnValue, current) }
        if requested == 2, grantState.maxVersion < 2 { return (XenErrno.enosys.hypercallReturnValue, current) }
        if requested == current { return (0, current) }
        let reserved = UInt32(GrantTableReserved.count)
        var ref = reserved
        while ref < grantEntryCount {
            if activeGrant(ref).pointee.pinned { return (XenErrno.ebusy.hypercallReturnValue, current) }
            ref += 1
        }
        // The reserved entries, read in the old format: flags (reading/writing included), domid, frame.
        var saved = InlineArray<8, (flags: UInt16, domid: UInt16, frame: UInt64)>(repeating: (0, 0, 0))
        for r in 0..<Int(reserved) {
            let e = grantEntry(UInt32(r))
            if current == 1 {
                saved[r] = (e.load(as: UInt16.self), e.load(fromByteOffset: 2, as: UInt16.self), UInt64(e.load(fromByteOffset: 4, as: UInt32.self)))
            } else {
                let flags = e.load(as: UInt16.self)
                let status = grantStatus(UInt32(r)).load(as: UInt16.self)
                let frame = e.load(fromByteOffset: GrantEntryV2Layout.fullPageFrame.offset, as: UInt64.self)
                let type = flags & GrantEntryFlags.typeMask.rawValue
                if type == GrantEntryFlags.transitive.rawValue || (type == GrantEntryFlags.permitAccess.rawValue && frame >> 32 != 0) {
                    return (XenErrno.erange.hypercallReturnValue, current)
                }
                saved[r] = type == GrantEntryFlags.permitAccess.rawValue
                    ? (flags | status, e.load(fromByteOffset: 2, as: UInt16.self), frame) : (0, 0, 0)
            }
        }
        if requested == 2 {
            grantState.version = 2
            populateStatusFrames()
        } else {
            unpopulateStatusFrames()
            grantState.version = 1
        }
        for f in 0..<Int(physmapState.grantFrames) {
            grantFramePages[f]!.initializeMemory(as: UInt8.self, repeating: 0, count: Int(guestPageSize))
        }
        let inUse = GrantEntryFlags.reading.rawValue | GrantEntryFlags.writing.rawValue
        for r in 0..<Int(reserved) {
            let e = grantEntry(UInt32(r)), s = saved[r]
            if requested == 1 {
                e.storeBytes(of: s.flags, as: UInt16.self)
                e.storeBytes(of: s.domid, toByteOffset: 2, as: UInt16.self)
                e.storeBytes(of: UInt32(truncatingIfNeeded: s.frame), toByteOffset: 4, as: UInt32.self)
            } else {
                e.storeBytes(of: s.flags & ~inUse, as: UInt16.self)
                e.storeBytes(of: s.domid, toByteOffset: 2, as: UInt16.self)
                e.storeBytes(of: s.frame, toByteOffset: GrantEntryV2Layout.fullPageFrame.offset, as: UInt64.self)
                grantStatus(UInt32(r)).storeBytes(of: s.flags & inUse, as: UInt16.self)
            }
        }
        return (0, requested)
    }

    /// GNTTABOP_swap_grant_ref, per entry: ref_a then ref_b at or past the table's end is
    /// bad_gntref, the same ref twice is okay, a pinned entry is eagain; otherwise the two
    /// shared entries (and v2 status words) change places. Only status is written back; an
    /// entry that cannot be read or whose status cannot be written ends the call with -EFAULT.
    @inlinable func swapGrantRefs(_ arg: UInt64, count: UInt32) -> Int64 {
        var i: UInt32 = 0
        while i < count {
            let (at, overflow) = arg.addingReportingOverflow(UInt64(i) * UInt64(GnttabSwapGrantRefLayout.size))
            guard !overflow, memory.argumentReadable(at: at, size: GnttabSwapGrantRefLayout.size),
                  let a = memory.argument(UInt32.self, at: at, GnttabSwapGrantRefLayout.refA),
                  let b = memory.argument(UInt32.self, at: at, GnttabSwapGrantRefLayout.refB) else {
                return XenErrno.efault.hypercallReturnValue
            }
            let status: GrantStatus = withGrantLock {
                let n = grantEntryCount
                guard a < n, b < n else { return .badGntref }
                if a == b { return .okay }
                guard !activeGrant(a).pointee.pinned, !activeGrant(b).pointee.pinned else { return .eagain }
                let size = grantState.version == 2 ? GrantEntryV2Layout.size : GrantEntryV1Layout.size
                Self.swapBytes(grantEntry(a), grantEntry(b), size)
                if grantState.version == 2 { Self.swapBytes(grantStatus(a), grantStatus(b), 2) }
                return .okay
            }
            guard memory.setArgument(UInt16(bitPattern: status.rawValue), at: at, GnttabSwapGrantRefLayout.status) else {
                return XenErrno.efault.hypercallReturnValue
            }
            i += 1
        }
        return 0
    }

    @inlinable static func swapBytes(_ a: UnsafeMutableRawPointer, _ b: UnsafeMutableRawPointer, _ n: Int) {
        for k in 0..<n {
            let x = a.load(fromByteOffset: k, as: UInt8.self)
            a.storeBytes(of: b.load(fromByteOffset: k, as: UInt8.self), toByteOffset: k, as: UInt8.self)
            b.storeBytes(of: x, toByteOffset: k, as: UInt8.self)
        }
    }
}
