import Testing
import GuestABI
import XenABI
import XenCore
import XenNative
import XVScenarios

/// grant_table_op on the caller's own table (Specs/translation/grant-tables.tbl
/// `translation.gnttabop`): HVM's list of commands, setup_table, query_size, set_version and
/// get_version (with XSA-255's status frames), swap_grant_ref; on both sides.
@Suite("grant_table_op: the domain's own table")
struct GrantTableTests {
    let selfDom = UInt64(DomainID.selfDomain.rawValue)

    func gnttab(_ w: any XenWorld, _ op: GrantTableOp, count: UInt64 = 1, size: Int = 32, _ fields: [(ABIField, UInt64)], cmdHigh: UInt64 = 0) -> Int64 {
        w.writeArguments(dom1, size: size, fields)
        return w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(op.rawValue) | cmdHigh,
                                                                      rsi: w.argumentAddress, rdx: count))
    }

    func status(_ w: any XenWorld, _ field: ABIField) -> Int16 { Int16(truncatingIfNeeded: w.readArgument(dom1, field)) }

    func setVersion(_ w: any XenWorld, _ v: UInt64) -> (Int64, UInt64) {
        let r = gnttab(w, .setVersion, [(GnttabSetVersionLayout.version, v)])
        return (r, w.readArgument(dom1, GnttabSetVersionLayout.version))
    }

    func addToPhysmap(_ w: any XenWorld, idx: UInt64, gpfn: UInt64) -> Int64 {
        w.memoryOp(dom1, .addToPhysmap, [(XenAddToPhysmapLayout.domid, selfDom), (XenAddToPhysmapLayout.space, UInt64(MapSpace.grantTable.rawValue)),
                                        (XenAddToPhysmapLayout.idx, idx), (XenAddToPhysmapLayout.gpfn, gpfn)])
    }

    /// Writes a v1 entry in the domain's grant frame, as its guest would.
    static func writeV1(_ w: any XenWorld, ref: Int, flags: UInt16, domid: UInt16, frame: UInt32) {
        w.writeGrantEntry(dom1, ref: ref, flags: flags, domid: domid, frame: UInt64(frame))
    }

    static func readV1(_ w: any XenWorld, ref: Int) -> (UInt16, UInt16, UInt32) {
        let e = w.xenDomain(dom1).grantFramePage(ref / 512)! + (ref % 512) * 8
        return (e.load(as: UInt16.self), e.load(fromByteOffset: 2, as: UInt16.self), e.load(fromByteOffset: 4, as: UInt32.self))
    }

    @Test("HVM's list: dump_table, transfer, unmap_and_replace, get_status_frames and cache_flush are -ENOSYS (XTF xsa-232's cache_flush on DOMID_IO frames included), as is any command with bits 12 and up; the upper half of RDI and RDX is dropped; a count negative as an int is -EINVAL")
    func commandList() {
        onBothWorlds { w, side in
            for op in [GrantTableOp.dumpTable, .transfer, .unmapAndReplace, .getStatusFrames, .cacheFlush, GrantTableOp(rawValue: 13), GrantTableOp(rawValue: 0xFFF)] {
                #expect(gnttab(w, op, [], cmdHigh: 0) == errENOSYS, "\(side): GNTTABOP \(op.rawValue)")
            }
            // xsa-232: cache_flush of every page of the first MiB (DOMID_IO's) with CLEAN|INVAL.
            for page in UInt64(0)..<256 {
                let r = gnttab(w, .cacheFlush, [(GnttabCacheFlushLayout.aDevBusAddr, page << 12), (GnttabCacheFlushLayout.length, 4096),
                                                (GnttabCacheFlushLayout.op, UInt64(GrantCacheFlushOp.clean.rawValue | GrantCacheFlushOp.inval.rawValue))])
                #expect(r == errENOSYS, "\(side)")
            }
            #expect(gnttab(w, .querySize, [], cmdHigh: 1 << 12) == errENOSYS, "\(side): continuation bits")
            #expect(gnttab(w, .querySize, [(GnttabQuerySizeLayout.dom, selfDom)], cmdHigh: 1 << 32) == 0, "\(side): cmd is an unsigned int")
            #expect(gnttab(w, .querySize, count: 1 << 32 | 1, [(GnttabQuerySizeLayout.dom, selfDom)]) == 0, "\(side): so is count")
            #expect(gnttab(w, .swapGrantRef, count: 0x8000_0000, []) == errEINVAL, "\(side)")
            #expect(gnttab(w, .swapGrantRef, count: 0, []) == 0, "\(side): nothing to do")
        }
    }

    @Test("GNTTABOP_query_size: frames now and at most; another domain permission_denied and none bad_domain with the guest's numbers kept; count other than 1 -EINVAL; -EFAULT")
    func querySize() {
        onBothWorlds { w, side in
            #expect(gnttab(w, .querySize, [(GnttabQuerySizeLayout.dom, selfDom)]) == 0, "\(side)")
            #expect(w.readArgument(dom1, GnttabQuerySizeLayout.nrFrames) == 1 && w.readArgument(dom1, GnttabQuerySizeLayout.maxNrFrames) == 32, "\(side)")
            #expect(status(w, GnttabQuerySizeLayout.status) == GrantStatus.okay.rawValue, "\(side)")
            for (dom, expected) in [(UInt64(2), GrantStatus.permissionDenied), (9, .badDomain), (0x7FF1, .badDomain)] {
                #expect(gnttab(w, .querySize, [(GnttabQuerySizeLayout.dom, dom), (GnttabQuerySizeLayout.nrFrames, 77), (GnttabQuerySizeLayout.maxNrFrames, 88)]) == 0, "\(side)")
                #expect(status(w, GnttabQuerySizeLayout.status) == expected.rawValue, "\(side) dom \(dom)")
                #expect(w.readArgument(dom1, GnttabQuerySizeLayout.nrFrames) == 77 && w.readArgument(dom1, GnttabQuerySizeLayout.maxNrFrames) == 88, "\(side)")
            }
            #expect(gnttab(w, .querySize, count: 2, [(GnttabQuerySizeLayout.dom, selfDom)]) == errEINVAL, "\(side)")
            #expect(gnttab(w, .querySize, count: 0, [(GnttabQuerySizeLayout.dom, selfDom)]) == errEINVAL, "\(side)")
            let edge = WorldLayout.frames << guestPageShift - 8
            #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.querySize.rawValue), rsi: edge, rdx: 1)) == errEFAULT, "\(side)")
        }
    }

    @Test("GNTTABOP_setup_table grows the table and lists where the guest maps each frame (INVALID_GFN until XENMEM_add_to_physmap); more than max_grant_frames general_error; another domain permission_denied; an unwritable list bad_virt_addr")
    func setupTable() {
        onBothWorlds { w, side in
            #expect(addToPhysmap(w, idx: 1, gpfn: 40) == 0, "\(side)")
            let list = w.listAddress
            func setup(_ n: UInt64, dom: UInt64? = nil, list at: UInt64? = nil) -> Int64 {
                gnttab(w, .setupTable, [(GnttabSetupTableLayout.dom, dom ?? selfDom), (GnttabSetupTableLayout.nrFrames, n), (GnttabSetupTableLayout.frameList, at ?? list)])
            }
            #expect(setup(4) == 0 && status(w, GnttabSetupTableLayout.status) == GrantStatus.okay.rawValue, "\(side)")
            let page = w.page(dom1, frame: WorldLayout.argumentPage.rawValue)! + type(of: w).listOffset
            #expect((0..<4).map { page.load(fromByteOffset: 8 * $0, as: UInt64.self) } == [UInt64.max, 40, UInt64.max, UInt64.max], "\(side)")
            #expect(w.xenDomain(dom1).grantFrameCount == 4, "\(side): grown to 4")
            #expect(setup(33) == 0 && status(w, GnttabSetupTableLayout.status) == GrantStatus.generalError.rawValue && w.xenDomain(dom1).grantFrameCount == 4, "\(side)")
            #expect(setup(2, dom: 2) == 0 && status(w, GnttabSetupTableLayout.status) == GrantStatus.permissionDenied.rawValue, "\(side)")
            #expect(setup(2, dom: 9) == 0 && status(w, GnttabSetupTableLayout.status) == GrantStatus.badDomain.rawValue, "\(side)")
            #expect(setup(2, list: WorldLayout.frames << guestPageShift - 8) == 0 && status(w, GnttabSetupTableLayout.status) == GrantStatus.badVirtAddr.rawValue, "\(side)")
            #expect(setup(0) == 0 && status(w, GnttabSetupTableLayout.status) == GrantStatus.okay.rawValue, "\(side): nothing asked")
            #expect(gnttab(w, .setupTable, count: 2, [(GnttabSetupTableLayout.dom, selfDom)]) == errEINVAL, "\(side)")
        }
    }

    @Test("GNTTABOP_set_version and get_version: 0 and 3 -EINVAL, the same version 0; v2's status frames map through XENMEM_add_to_physmap and leave the guest's map on the way back to v1 (XSA-255); reserved entries carried over, the rest cleared; -ERANGE; get_version of another domain -EPERM, none -ESRCH")
    func versions() {
        onBothWorlds { w, side in
            #expect(setVersion(w, 0) == (errEINVAL, 1) && setVersion(w, 3) == (errEINVAL, 1), "\(side): the version in use is written back")
            #expect(setVersion(w, 1) == (0, 1), "\(side)")
            Self.writeV1(w, ref: 0, flags: GrantEntryFlags.permitAccess.rawValue | GrantEntryFlags.reading.rawValue, domid: 2, frame: 0x1234)
            Self.writeV1(w, ref: 1, flags: GrantEntryFlags.acceptTransfer.rawValue, domid: 2, frame: 7)
            Self.writeV1(w, ref: 9, flags: GrantEntryFlags.permitAccess.rawValue, domid: 2, frame: 99)
            #expect(setVersion(w, 2) == (0, 2) && w.xenDomain(dom1).grantTableVersion == 2, "\(side)")
            #expect(gnttab(w, .getVersion, [(GnttabGetVersionLayout.dom, selfDom)]) == 0 && w.readArgument(dom1, GnttabGetVersionLayout.version) == 2, "\(side)")
            // v2 entry 0: the header without reading/writing, the frame in full_page, reading in its status word.
            let e0 = w.xenDomain(dom1).grantFramePage(0)!
            #expect(e0.load(as: UInt16.self) == GrantEntryFlags.permitAccess.rawValue && e0.load(fromByteOffset: 2, as: UInt16.self) == 2, "\(side)")
            #expect(e0.load(fromByteOffset: GrantEntryV2Layout.fullPageFrame.offset, as: UInt64.self) == 0x1234, "\(side)")
            #expect((e0 + 9 * 16).load(as: UInt16.self) == 0, "\(side): ref 9 is not reserved and is cleared")
            // A status frame, mapped where the guest asks.
            #expect(addToPhysmap(w, idx: MapIndex.grantTableStatus, gpfn: 44) == 0, "\(side)")
            let statusPage = w.page(dom1, frame: 44)!
            #expect(statusPage.load(as: UInt16.self) == GrantEntryFlags.reading.rawValue, "\(side): ref 0's status word")
            #expect(addToPhysmap(w, idx: MapIndex.grantTableStatus | 4, gpfn: 45) == errEINVAL, "\(side): status frame 4 needs 40 grant frames, more than 32")
            #expect(addToPhysmap(w, idx: MapIndex.grantTableStatus | 3, gpfn: 45) == 0 && w.xenDomain(dom1).grantFrameCount == 32, "\(side): status frame 3 grows the table to 32")
            // A reserved entry v1 cannot hold: -ERANGE, still v2.
            let e2 = e0 + 2 * 16
            e2.storeBytes(of: GrantEntryFlags.permitAccess.rawValue, as: UInt16.self)
            e2.storeBytes(of: UInt64(1) << 32, toByteOffset: GrantEntryV2Layout.fullPageFrame.offset, as: UInt64.self)
            #expect(setVersion(w, 1) == (XenErrno.erange.hypercallReturnValue, 2), "\(side)")
            e2.storeBytes(of: GrantEntryFlags.transitive.rawValue, as: UInt16.self)
            #expect(setVersion(w, 1) == (XenErrno.erange.hypercallReturnValue, 2), "\(side): transitive")
            e2.storeBytes(of: 0, as: UInt16.self)
            // Back to v1: the status frames leave the guest's map (XSA-255), ref 0 gets its reading bit back.
            #expect(setVersion(w, 1) == (0, 1), "\(side)")
            #expect(w.page(dom1, frame: 44) == nil && w.page(dom1, frame: 45) == nil, "\(side): the status frames are holes now")
            #expect(Self.readV1(w, ref: 0) == (GrantEntryFlags.permitAccess.rawValue | GrantEntryFlags.reading.rawValue, 2, 0x1234), "\(side)")
            #expect(Self.readV1(w, ref: 1) == (0, 0, 0), "\(side): an accept_transfer entry does not survive v2 to v1")
            #expect(addToPhysmap(w, idx: MapIndex.grantTableStatus, gpfn: 44) == errEINVAL, "\(side): no status frames under v1")
            #expect(gnttab(w, .getVersion, [(GnttabGetVersionLayout.dom, 2)]) == errEPERM && gnttab(w, .getVersion, [(GnttabGetVersionLayout.dom, 9)]) == errESRCH, "\(side)")
        }
        // A domain limited to v1.
        let ram = GuestRAM(frameCount: 20)
        let system = XenNativeSystem<GuestRAMRegion, UpcallRecorder>(sink: UpcallRecorder())
        try! system.createDomain(DomainConfiguration(id: dom1, vcpuCount: 1, sharedInfoFrame: GuestFrameNumber(0), maxGrantVersion: 1), memory: ram.region)
        _ = ram.region.store(UInt32(2), at: GuestPhysicalAddress(16 << 12))
        #expect(system.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.setVersion.rawValue), rsi: 16 << 12, rdx: 1)) == errENOSYS)
        #expect(ram.region.load(UInt32.self, at: GuestPhysicalAddress(16 << 12)) == 1)
    }

    @Test("GNTTABOP_swap_grant_ref: entries change places; a ref past the table bad_gntref, the same ref okay; per-entry status, -EFAULT for a list off guest memory")
    func swap() {
        onBothWorlds { w, side in
            Self.writeV1(w, ref: 3, flags: GrantEntryFlags.permitAccess.rawValue, domid: 2, frame: 30)
            Self.writeV1(w, ref: 4, flags: GrantEntryFlags.permitAccess.rawValue | GrantEntryFlags.readonly.rawValue, domid: 3, frame: 40)
            let size = GnttabSwapGrantRefLayout.size
            func at(_ i: Int, _ f: ABIField) -> ABIField { ABIField(offset: i * size + f.offset, size: f.size) }
            let r = gnttab(w, .swapGrantRef, count: 4, size: 64, [(at(0, GnttabSwapGrantRefLayout.refA), 3), (at(0, GnttabSwapGrantRefLayout.refB), 4),
                                                                  (at(1, GnttabSwapGrantRefLayout.refA), 512), (at(1, GnttabSwapGrantRefLayout.refB), 4),
                                                                  (at(2, GnttabSwapGrantRefLayout.refA), 5), (at(2, GnttabSwapGrantRefLayout.refB), 5),
                                                                  (at(3, GnttabSwapGrantRefLayout.refA), 4), (at(3, GnttabSwapGrantRefLayout.refB), 0xFFFF_FFFF)])
            #expect(r == 0, "\(side)")
            #expect((0..<4).map { Int16(truncatingIfNeeded: w.readArgument(dom1, at($0, GnttabSwapGrantRefLayout.status))) }
                    == [GrantStatus.okay.rawValue, GrantStatus.badGntref.rawValue, GrantStatus.okay.rawValue, GrantStatus.badGntref.rawValue], "\(side)")
            #expect(Self.readV1(w, ref: 3) == (GrantEntryFlags.permitAccess.rawValue | GrantEntryFlags.readonly.rawValue, 3, 40) && Self.readV1(w, ref: 4).2 == 30, "\(side)")
            let edge = WorldLayout.frames << guestPageShift - 8
            #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.swapGrantRef.rawValue), rsi: edge, rdx: 1)) == errEFAULT, "\(side)")
        }
    }
}
