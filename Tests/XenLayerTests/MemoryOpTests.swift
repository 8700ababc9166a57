import Testing
import GuestABI
import XenABI
import XenCore
import XenNative
import XenViridian
import XVScenarios

let errEBUSY = XenErrno.ebusy.hypercallReturnValue
let errENOMEM = XenErrno.enomem.hypercallReturnValue

/// memory_op (Specs/translation/memory.tbl `translation.xenmem`), on both sides: every row
/// the table hands to the layer, with Xen's answers to hostile arguments.
@Suite("memory_op: physmap, reservations, memory map")
struct MemoryOpTests {
    let selfDom = UInt64(DomainID.selfDomain.rawValue)

    func addToPhysmap(_ w: any XenWorld, space: MapSpace, idx: UInt64, gpfn: UInt64, size: UInt64 = 0, dom: UInt64? = nil, start: UInt64 = 0) -> Int64 {
        w.memoryOp(dom1, .addToPhysmap, start: start, [(XenAddToPhysmapLayout.domid, dom ?? selfDom), (XenAddToPhysmapLayout.rangeSize, size),
                                                     (XenAddToPhysmapLayout.space, UInt64(space.rawValue)), (XenAddToPhysmapLayout.idx, idx),
                                                     (XenAddToPhysmapLayout.gpfn, gpfn)])
    }

    func reservation(_ w: any XenWorld, _ op: MemoryOp, frames: [UInt64], count: UInt64? = nil, order: UInt64 = 0, flags: UInt64 = 0,
                     dom: UInt64? = nil, start: UInt64 = 0) -> Int64 {
        w.memoryOp(dom1, op, start: start, [(XenMemoryReservationLayout.extentStart, w.listAddress),
                                           (XenMemoryReservationLayout.nrExtents, count ?? UInt64(frames.count)),
                                           (XenMemoryReservationLayout.extentOrder, order), (XenMemoryReservationLayout.memFlags, flags),
                                           (XenMemoryReservationLayout.domid, dom ?? selfDom)], list: frames)
    }

    func query(_ w: any XenWorld, _ op: MemoryOp, dom: UInt64? = nil, start: UInt64 = 0) -> Int64 {
        w.memoryOp(dom1, op, start: start, [(XenMemoryDomainLayout.domid, dom ?? selfDom)])
    }

    @Test("XENMEM_add_to_physmap XENMAPSPACE_shared_info moves shared_info to the guest's frame: events follow it, the old frame is a hole, the RAM it replaced is released")
    func sharedInfoMoves() {
        onBothWorlds { w, side in
            let si = w.sharedInfo(dom1)
            #expect(addToPhysmap(w, space: .sharedInfo, idx: 0, gpfn: 30) == 0, "\(side)")
            #expect(w.page(dom1, frame: 30) == si && w.page(dom1, frame: 0) == nil, "\(side): frame 30 shows shared_info, frame 0 nothing")
            #expect(w.xenDomain(dom1).sharedInfoLocation == GuestFrameNumber(30), "\(side)")
            #expect(query(w, .currentReservation) == 47, "\(side): the RAM page at 30 went back")
            #expect(query(w, .maximumGpfn) == 47, "\(side)")
            // Events still land in shared_info, now seen at frame 30.
            let ipi = UInt32(w.bindIPI(dom1, vcpu: 0))
            #expect(w.send(dom1, port: ipi) == 0, "\(side)")
            let word = w.page(dom1, frame: 30)!.load(fromByteOffset: SharedInfoLayout.evtchnPending.offset, as: UInt64.self)
            #expect(word & (1 << UInt64(ipi)) != 0, "\(side): the pending bit is visible at the new frame")
            // Again: the previous location becomes a hole; the same frame is a no-op.
            #expect(addToPhysmap(w, space: .sharedInfo, idx: 0, gpfn: 31) == 0, "\(side)")
            #expect(w.page(dom1, frame: 31) == si && w.page(dom1, frame: 30) == nil, "\(side)")
            #expect(addToPhysmap(w, space: .sharedInfo, idx: 0, gpfn: 31) == 0 && query(w, .currentReservation) == 46, "\(side)")
            let type = w.hvm(dom1, .getMemType, [(XenHvmGetMemTypeLayout.domid, selfDom), (XenHvmGetMemTypeLayout.pfn, 30)])
            #expect(type == 0 && w.readArgument(dom1, XenHvmGetMemTypeLayout.memType) == UInt64(HVMMemType.mmioDm.rawValue), "\(side): a hole is not RAM")
            // Moving to a frame past the old maximum raises maximum_gpfn, when the frame can be shown.
            #expect(query(w, .maximumGpfn) == 47, "\(side)")
        }
    }

    @Test("XENMEM_add_to_physmap refusals: shared_info idx 1, INVALID_GFN, a frame beyond the p2m, the layer's frames (as a frame the embedder cannot back), the domain, the spaces Xen refuses, the start bits, -EFAULT")
    func addToPhysmapRefusals() {
        onBothWorlds { w, side in
            #expect(addToPhysmap(w, space: .sharedInfo, idx: 1, gpfn: 30) == errEINVAL, "\(side)")
            #expect(addToPhysmap(w, space: .sharedInfo, idx: 0, gpfn: UInt64.max) == errEINVAL, "\(side): INVALID_GFN")
            #expect(addToPhysmap(w, space: .sharedInfo, idx: 0, gpfn: 1 << 36) == errEINVAL, "\(side): beyond 48-bit guest-physical")
            for gpfn in [WorldLayout.frames, WorldLayout.frames + 1, WorldLayout.frames + 10] {
                #expect(addToPhysmap(w, space: .sharedInfo, idx: 0, gpfn: gpfn) == errENOMEM, "\(side): frame \(gpfn)")
            }
            #expect(addToPhysmap(w, space: .sharedInfo, idx: 0, gpfn: 30, dom: 2) == errEPERM, "\(side)")
            #expect(addToPhysmap(w, space: .sharedInfo, idx: 0, gpfn: 30, dom: 9) == errESRCH, "\(side)")
            #expect(addToPhysmap(w, space: .sharedInfo, idx: 0, gpfn: 30, dom: 0x7FF1) == errESRCH, "\(side): DOMID_IO")
            #expect(addToPhysmap(w, space: .gmfnForeign, idx: 0, gpfn: 30) == errENOSYS, "\(side): foreign only through the batch")
            #expect(addToPhysmap(w, space: .devMmio, idx: 0, gpfn: 30) == XenErrno.eacces.hypercallReturnValue, "\(side): hardware domain only")
            #expect(addToPhysmap(w, space: MapSpace(rawValue: 9), idx: 0, gpfn: 30) == errEINVAL, "\(side): unknown space")
            #expect(addToPhysmap(w, space: .sharedInfo, idx: 0, gpfn: 30, start: 1 << 16) == XenErrno.edom.hypercallReturnValue, "\(side)")
            let edge = WorldLayout.frames << guestPageShift - 8
            #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.memoryOp.rawValue, rdi: UInt64(MemoryOp.addToPhysmap.rawValue), rsi: edge)) == errEFAULT, "\(side)")
            #expect(w.page(dom1, frame: 0) == w.sharedInfo(dom1) && query(w, .currentReservation) == 48, "\(side): nothing moved")
        }
        // The translated side's layer frames are untouched by all of it.
        let t = TranslatedWorld(domains: 1, vcpus: 2)
        let layerFrame = WorldLayout.layerFrames().rawValue
        let count = LayerConfiguration.layerFrameCount(vcpuCount: 2)
        let before = (0..<count).map { t.ram(dom1).region.hostAddress(of: GuestFrameNumber(layerFrame + UInt64($0))) }
        for f in 0..<UInt64(count) {
            #expect(addToPhysmap(t, space: .sharedInfo, idx: 0, gpfn: layerFrame + f) == errENOMEM)
            #expect(addToPhysmap(t, space: .gmfn, idx: layerFrame + f, gpfn: 30) == errEINVAL, "the guest cannot name a layer frame as a source")
            #expect(reservation(t, .populatePhysmap, frames: [layerFrame + f]) == 0)
            #expect(reservation(t, .decreaseReservation, frames: [layerFrame + f]) == 0)
        }
        #expect((0..<count).map { t.ram(dom1).region.hostAddress(of: GuestFrameNumber(layerFrame + UInt64($0))) } == before)
    }

    @Test("XENMEM_add_to_physmap XENMAPSPACE_grant_table: frame idx grows the table up to max_grant_frames; the v2 status bit under v1 and idx past the maximum are -EINVAL")
    func grantFrames() {
        onBothWorlds { w, side in
            let d = w.xenDomain(dom1)
            #expect(d.maxGrantFrames == 32 && d.grantFrameCount == 1, "\(side): a table starts with one frame")
            #expect(addToPhysmap(w, space: .grantTable, idx: 0, gpfn: 40) == 0, "\(side)")
            #expect(d.grantFrameCount == 1 && w.page(dom1, frame: 40) == d.grantFramePage(0), "\(side)")
            #expect(addToPhysmap(w, space: .grantTable, idx: 3, gpfn: 41) == 0, "\(side)")
            #expect(d.grantFrameCount == 4 && d.grantFrameLocation(3) == GuestFrameNumber(41) && d.grantFrameLocation(1) == nil, "\(side)")
            #expect(w.page(dom1, frame: 41).map { p in (0..<4096).allSatisfy { p.load(fromByteOffset: $0, as: UInt8.self) == 0 } } == true, "\(side): a new frame is zeroed")
            // Moving frame 0 onto frame 41 unhooks frame 3 (a layer page is never released).
            #expect(addToPhysmap(w, space: .grantTable, idx: 0, gpfn: 41) == 0, "\(side)")
            #expect(d.grantFrameLocation(0) == GuestFrameNumber(41) && d.grantFrameLocation(3) == nil && w.page(dom1, frame: 40) == nil, "\(side)")
            #expect(addToPhysmap(w, space: .grantTable, idx: 32, gpfn: 42) == errEINVAL, "\(side): past max_grant_frames")
            #expect(addToPhysmap(w, space: .grantTable, idx: MapIndex.grantTableStatus, gpfn: 42) == errEINVAL, "\(side): no status frames under v1")
            #expect(addToPhysmap(w, space: .grantTable, idx: 1 << 32 | 2, gpfn: 42) == 0 && d.grantFrameLocation(2) == GuestFrameNumber(42), "\(side): idx is an unsigned int")
            #expect(d.grantFrameCount == 4, "\(side)")
        }
    }

    @Test("XENMEM_add_to_physmap XENMAPSPACE_gmfn and gmfn_range move the guest's own pages; a hole is -EINVAL, size below start -EILSEQ, a wrapping range -EOVERFLOW")
    func gmfnMoves() {
        onBothWorlds { w, side in
            w.page(dom1, frame: 20)!.storeBytes(of: 0xC0FFEE, as: UInt64.self)
            let page20 = w.page(dom1, frame: 20)
            #expect(addToPhysmap(w, space: .gmfn, idx: 20, gpfn: 21) == 0, "\(side)")
            #expect(w.page(dom1, frame: 21) == page20 && w.page(dom1, frame: 20) == nil, "\(side)")
            #expect(w.page(dom1, frame: 21)!.load(as: UInt64.self) == 0xC0FFEE, "\(side): the contents moved with the page")
            #expect(query(w, .currentReservation) == 47, "\(side): the page at 21 was released")
            #expect(addToPhysmap(w, space: .gmfn, idx: 20, gpfn: 22) == errEINVAL, "\(side): 20 is a hole now")
            // Moving shared_info by its frame number.
            #expect(addToPhysmap(w, space: .gmfn, idx: 0, gpfn: 23) == 0 && w.xenDomain(dom1).sharedInfoLocation == GuestFrameNumber(23), "\(side)")
            // gmfn_range: 3 pages 24..26 to 33..35, continuing from extent 1 (as a continuation would).
            let marks = (24..<27).map { f -> UnsafeMutableRawPointer? in w.page(dom1, frame: UInt64(f)) }
            #expect(addToPhysmap(w, space: .gmfnRange, idx: 24, gpfn: 33, size: 3, start: 1) == 0, "\(side)")
            #expect(w.page(dom1, frame: 24) == marks[0] && w.page(dom1, frame: 34) == marks[1] && w.page(dom1, frame: 35) == marks[2], "\(side): extent 0 skipped")
            #expect(addToPhysmap(w, space: .gmfnRange, idx: 24, gpfn: 33, size: 1, start: 2) == XenErrno.eilseq.hypercallReturnValue, "\(side)")
            #expect(addToPhysmap(w, space: .gmfnRange, idx: 24, gpfn: UInt64.max - 1, size: 3) == XenErrno.eoverflow.hypercallReturnValue, "\(side)")
            #expect(addToPhysmap(w, space: .gmfnRange, idx: UInt64.max - 1, gpfn: 33, size: 3) == XenErrno.eoverflow.hypercallReturnValue, "\(side)")
            // A range that runs into a hole stops there with -EINVAL, the pages before it moved.
            #expect(addToPhysmap(w, space: .gmfnRange, idx: 19, gpfn: 36, size: 2) == errEINVAL, "\(side)")
            #expect(w.page(dom1, frame: 19) == nil && w.page(dom1, frame: 36) != nil, "\(side)")
        }
    }

    @Test("XENMEM_add_to_physmap_batch: one status per entry in errs; INVALID_GFN ends the call -EINVAL; gmfn_range -EOPNOTSUPP; gmfn_foreign -EPERM per entry; size and start -EILSEQ")
    func batch() {
        onBothWorlds { w, side in
            func batch(space: MapSpace, idxs: [UInt64], gpfns: [UInt64], size: UInt64? = nil, start: UInt64 = 0, foreign: UInt64 = 0) -> Int64 {
                let n = UInt64(idxs.count)
                return w.memoryOp(dom1, .addToPhysmapBatch, start: start,
                                  [(XenAddToPhysmapBatchLayout.domid, selfDom), (XenAddToPhysmapBatchLayout.space, UInt64(space.rawValue)),
                                   (XenAddToPhysmapBatchLayout.batchSize, size ?? n), (XenAddToPhysmapBatchLayout.uForeignDomid, foreign),
                                   (XenAddToPhysmapBatchLayout.idxs, w.listAddress), (XenAddToPhysmapBatchLayout.gpfns, w.listAddress + 8 * n),
                                   (XenAddToPhysmapBatchLayout.errs, w.errsAddress)], list: idxs + gpfns)
            }
            func errs(_ n: Int) -> [Int32] {
                let page = w.page(dom1, frame: WorldLayout.argumentPage.rawValue)!
                return (0..<n).map { page.load(fromByteOffset: type(of: w).errsOffset + 4 * $0, as: Int32.self) }
            }
            w.page(dom1, frame: WorldLayout.argumentPage.rawValue)!.initializeMemory(as: UInt8.self, repeating: 0xEE, count: 4096)
            #expect(batch(space: .gmfn, idxs: [23, 19, 24], gpfns: [33, 34, WorldLayout.frames]) == 0, "\(side)")
            #expect(w.page(dom1, frame: 19) == nil && w.page(dom1, frame: 23) == nil, "\(side): 23 and 19 moved, 24 did not")
            #expect(errs(3) == [0, 0, Int32(errENOMEM)], "\(side)")
            #expect(batch(space: .gmfn, idxs: [23, 25], gpfns: [35, 36]) == 0 && errs(2) == [Int32(errEINVAL), 0], "\(side): 23 is a hole now")
            #expect(batch(space: .gmfn, idxs: [26, 27], gpfns: [UInt64.max, 37]) == errEINVAL, "\(side)")
            #expect(w.page(dom1, frame: 37) != nil && w.page(dom1, frame: 27) != nil, "\(side): nothing after INVALID_GFN")
            #expect(batch(space: .gmfnRange, idxs: [26], gpfns: [37]) == errEOPNOTSUPP, "\(side)")
            #expect(batch(space: .gmfnForeign, idxs: [1], gpfns: [38], foreign: 2) == 0 && errs(1) == [Int32(errEPERM)], "\(side)")
            #expect(batch(space: .devMmio, idxs: [1], gpfns: [38]) == XenErrno.eacces.hypercallReturnValue, "\(side)")
            #expect(batch(space: .gmfn, idxs: [], gpfns: [], size: 0) == 0, "\(side): an empty batch")
            #expect(batch(space: .gmfn, idxs: [26], gpfns: [38], size: 1, start: 1) == XenErrno.eilseq.hypercallReturnValue, "\(side): size == start past 0")
            #expect(batch(space: .gmfn, idxs: [26], gpfns: [38], size: 1, start: 2) == XenErrno.eilseq.hypercallReturnValue, "\(side)")
            #expect(batch(space: .sharedInfo, idxs: [0, 1], gpfns: [39, 40]) == 0 && errs(2) == [0, Int32(errEINVAL)], "\(side)")
            #expect(w.xenDomain(dom1).sharedInfoLocation == GuestFrameNumber(39), "\(side)")
            // An unreadable idx list is -EFAULT.
            let r = w.memoryOp(dom1, .addToPhysmapBatch, [(XenAddToPhysmapBatchLayout.domid, selfDom), (XenAddToPhysmapBatchLayout.batchSize, 1),
                                                          (XenAddToPhysmapBatchLayout.space, UInt64(MapSpace.gmfn.rawValue)),
                                                          (XenAddToPhysmapBatchLayout.idxs, WorldLayout.frames << guestPageShift),
                                                          (XenAddToPhysmapBatchLayout.gpfns, w.listAddress), (XenAddToPhysmapBatchLayout.errs, w.errsAddress)])
            #expect(r == errEFAULT, "\(side)")
        }
    }

    @Test("XENMEM_remove_from_physmap: the frame becomes a hole and its page stays the domain's (reservation unchanged); a hole is -ENOENT; a page holding a registered vcpu_info is -EBUSY")
    func removeFromPhysmap() {
        onBothWorlds { w, side in
            func remove(_ gpfn: UInt64, dom: UInt64? = nil, start: UInt64 = 0) -> Int64 {
                w.memoryOp(dom1, .removeFromPhysmap, start: start, [(XenRemoveFromPhysmapLayout.domid, dom ?? selfDom), (XenRemoveFromPhysmapLayout.gpfn, gpfn)])
            }
            #expect(remove(25) == 0 && w.page(dom1, frame: 25) == nil, "\(side)")
            #expect(query(w, .currentReservation) == 48, "\(side)")
            #expect(remove(25) == errENOENT && remove(WorldLayout.frames) == errENOENT && remove(UInt64.max) == errENOENT, "\(side)")
            #expect(remove(26, start: 1) == errEINVAL && remove(26, dom: 2) == errEPERM && remove(26, dom: 9) == errESRCH, "\(side)")
            // shared_info removed: unhooked, still the domain's and still written.
            #expect(remove(0) == 0 && w.xenDomain(dom1).sharedInfoLocation == nil, "\(side)")
            #expect(addToPhysmap(w, space: .sharedInfo, idx: 0, gpfn: 0) == 0 && w.page(dom1, frame: 0) == w.sharedInfo(dom1), "\(side): mapped again")
            // A registered vcpu_info pins its page.
            w.writeArguments(dom1, size: 16, [(VcpuRegisterVcpuInfoLayout.mfn, 28), (VcpuRegisterVcpuInfoLayout.offset, 64)])
            let info = w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(VCPUOp.registerVcpuInfo.rawValue),
                                                                             rsi: 0, rdx: w.argumentAddress))
            #expect(info == 0, "\(side)")
            #expect(remove(28) == errEBUSY && w.page(dom1, frame: 28) != nil, "\(side)")
            #expect(reservation(w, .decreaseReservation, frames: [28]) == 0, "\(side): nor can it be ballooned out")
            #expect(addToPhysmap(w, space: .gmfn, idx: 29, gpfn: 28) == errEBUSY, "\(side): nor replaced")
        }
    }

    @Test("XENMEM_current_reservation, maximum_reservation, maximum_gpfn, maximum_ram_page: the embedder's figures; another domain -EPERM, none -ESRCH, start bits -EINVAL")
    func figures() {
        onBothWorlds { w, side in
            #expect(query(w, .currentReservation) == 48 && query(w, .maximumReservation) == 52 && query(w, .maximumGpfn) == 47, "\(side)")
            #expect(query(w, .currentReservation, dom: 1) == 48, "\(side): the own id")
            #expect(w.memoryOp(dom1, .maximumRamPage, []) == 1 << 20, "\(side)")
            for op in [MemoryOp.currentReservation, .maximumReservation, .maximumGpfn] {
                #expect(query(w, op, dom: 2) == errEPERM && query(w, op, dom: 7) == errESRCH && query(w, op, start: 1) == errEINVAL, "\(side) \(op.rawValue)")
                let edge = WorldLayout.frames << guestPageShift - 1
                #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.memoryOp.rawValue, rdi: UInt64(op.rawValue), rsi: edge)) == errEFAULT, "\(side)")
            }
            #expect(w.memoryOp(dom1, .maximumRamPage, start: 1, []) == errEINVAL, "\(side)")
        }
    }

    @Test("XENMEM_memory_map: min(nr_entries, the map) E820 entries and the count written back; start bits make it unknown (-ENOSYS); -EFAULT; no map set -ENOSYS")
    func memoryMap() {
        onBothWorlds { w, side in
            func map(_ n: UInt64, buffer: UInt64? = nil, start: UInt64 = 0) -> Int64 {
                w.memoryOp(dom1, .memoryMap, start: start, size: 16, [(XenMemoryMapLayout.nrEntries, n), (XenMemoryMapLayout.buffer, buffer ?? w.listAddress)])
            }
            #expect(map(4) == 0 && w.readArgument(dom1, XenMemoryMapLayout.nrEntries) == 1, "\(side)")
            let p = w.page(dom1, frame: WorldLayout.argumentPage.rawValue)! + type(of: w).listOffset
            #expect(p.loadUnaligned(as: UInt64.self) == 0 && p.loadUnaligned(fromByteOffset: 8, as: UInt64.self) == 48 << 12, "\(side)")
            #expect(p.loadUnaligned(fromByteOffset: 16, as: UInt32.self) == XenE820Entry.ram, "\(side)")
            #expect(map(0) == 0 && w.readArgument(dom1, XenMemoryMapLayout.nrEntries) == 0, "\(side)")
            #expect(map(1, start: 1) == errENOSYS, "\(side)")
            #expect(map(1, buffer: WorldLayout.frames << guestPageShift - 10) == errEFAULT, "\(side): an entry straddling the end of RAM")
        }
        let system = XenNativeSystemFixture()
        #expect(system.memoryMap() == errENOSYS, "a domain created without a memory map")
    }

    @Test("XENMEM_decrease_reservation and populate_physmap: frames released and backed again, extents all or nothing, max_pages, the start extent; increase_reservation only counts")
    func ballooning() {
        onBothWorlds { w, side in
            #expect(reservation(w, .decreaseReservation, frames: [26, 27]) == 2, "\(side)")
            #expect(w.page(dom1, frame: 26) == nil && w.page(dom1, frame: 27) == nil && query(w, .currentReservation) == 46, "\(side)")
            #expect(reservation(w, .decreaseReservation, frames: [28, 27, 29]) == 1, "\(side): stops at the hole")
            #expect(query(w, .currentReservation) == 45, "\(side)")
            // An order-1 extent over 30, 31.
            #expect(reservation(w, .decreaseReservation, frames: [30], order: 1) == 1 && w.page(dom1, frame: 31) == nil, "\(side)")
            #expect(query(w, .currentReservation) == 43, "\(side)")
            w.page(dom1, frame: 32)!.storeBytes(of: 7, as: UInt64.self)
            // populate 26 and 27 (zeroed), continuing from extent 0 of 2.
            #expect(reservation(w, .populatePhysmap, frames: [26, 27]) == 2, "\(side)")
            #expect(w.page(dom1, frame: 26).map { p in (0..<512).allSatisfy { p.load(fromByteOffset: $0 * 8, as: UInt64.self) == 0 } } == true, "\(side)")
            #expect(query(w, .currentReservation) == 45, "\(side)")
            // The start extent in the command's upper bits: only extent 1 (frame 28) is done.
            #expect(reservation(w, .populatePhysmap, frames: [40, 28], start: 1) == 2 && w.page(dom1, frame: 28) != nil, "\(side)")
            #expect(reservation(w, .populatePhysmap, frames: [40], start: 1) == 1, "\(side): start past the end")
            // An extent reaching past the guest's map (a layer frame when translated) changes nothing.
            let p47 = w.page(dom1, frame: 47)
            #expect(reservation(w, .populatePhysmap, frames: [47], order: 1) == 0, "\(side)")
            #expect(w.page(dom1, frame: 47) == p47, "\(side): frame 47 as it was")
            // Up to max_pages (52): 46 now, so order 2 fits once, then not.
            #expect(reservation(w, .populatePhysmap, frames: [29, 30], order: 0) == 2 && query(w, .currentReservation) == 48, "\(side)")
            #expect(reservation(w, .increaseReservation, frames: [], count: 10) == 4 && query(w, .currentReservation) == 52, "\(side): increase only counts")
            #expect(reservation(w, .populatePhysmap, frames: [31]) == 0, "\(side): at max_pages")
            #expect(query(w, .maximumGpfn) == 47, "\(side)")
        }
    }

    @Test("reservation refusals return the start extent: unreadable, too many extents, another domain, order above 9, address bits of a page, an exact node, populate-on-demand on oneself, no physmap")
    func reservationRefusals() {
        onBothWorlds { w, side in
            #expect(reservation(w, .decreaseReservation, frames: [26], order: 10) == 0, "\(side)")
            #expect(reservation(w, .decreaseReservation, frames: [26], count: 1 << 26) == 0, "\(side): more than UINT_MAX >> 6")
            #expect(reservation(w, .decreaseReservation, frames: [26], dom: 2) == 0 && reservation(w, .decreaseReservation, frames: [26], dom: 9) == 0, "\(side)")
            #expect(reservation(w, .decreaseReservation, frames: [26], flags: 12) == 0, "\(side): address bits 12")
            #expect(reservation(w, .decreaseReservation, frames: [26], flags: UInt64(MemoryFlags.exactNodeRequest) | 2 << 8) == 0, "\(side)")
            #expect(reservation(w, .populatePhysmap, frames: [26], flags: UInt64(MemoryFlags.populateOnDemand)) == 0, "\(side)")
            #expect(reservation(w, .decreaseReservation, frames: [26], start: 3) == 3, "\(side): start past nr_extents")
            #expect(w.page(dom1, frame: 26) != nil, "\(side): nothing happened")
            // Address bits above the host's need and a node without exact_node_request are accepted.
            #expect(reservation(w, .decreaseReservation, frames: [26], flags: 40 | 2 << 8) == 1, "\(side)")
            let edge = WorldLayout.frames << guestPageShift - 8
            #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.memoryOp.rawValue, rdi: 1 << 6 | 1, rsi: edge)) == 1, "\(side): unreadable: the start")
            w.xenDomain(dom1).physmap = nil
            #expect(reservation(w, .decreaseReservation, frames: [27]) == 0 && addToPhysmap(w, space: .sharedInfo, idx: 0, gpfn: 30) == errEOPNOTSUPP, "\(side): no physmap")
            #expect(reservation(w, .increaseReservation, frames: [], count: 2) == 2, "\(side): counting needs none")
        }
    }

    @Test("the embedder's physmap and waker are held apart: replacing either leaves the other, and both go with the domain")
    func embedderHooks() {
        onBothWorlds { w, side in
            let d = w.xenDomain(dom1)
            let wakes = WakeCounter()
            d.waker = wakes
            d.waker = wakes
            #expect(d.physmap != nil && d.waker === wakes, "\(side)")
            #expect(addToPhysmap(w, space: .sharedInfo, idx: 0, gpfn: 30) == 0, "\(side): the physmap still works")
            d.physmap = d.physmap
            #expect(d.waker === wakes && reservation(w, .decreaseReservation, frames: [31]) == 1, "\(side)")
        }
    }

    @Test("memory_op sub-ops: every XENMEM row gets its declared refusal or its handler; unknown ones -ENOSYS; the arch ones with start bits -ENOSYS")
    func rows() {
        onBothWorlds { w, side in
            for raw in UInt32(0)..<64 {
                let op = MemoryOp(rawValue: raw)
                w.writeArguments(dom1, size: 64, [])
                let r = w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.memoryOp.rawValue, rdi: UInt64(raw), rsi: w.argumentAddress))
                if case .rejected(let errno) = op.disposition {
                    #expect(r == errno.hypercallReturnValue, "\(side): XENMEM \(raw)")
                } else {
                    #expect(r != errENOSYS, "\(side): XENMEM \(raw) has a handler")
                }
            }
            for op in [MemoryOp.setMemoryMap, .setPodTarget, .getPodTarget, .machphysMfnList] {
                #expect(w.memoryOp(dom1, op, start: 1, []) == errENOSYS, "\(side) \(op.rawValue)")
            }
        }
    }
}

/// A native domain created with no memory map and no physmap.
struct XenNativeSystemFixture {
    let ram = GuestRAM(frameCount: 20)
    let recorder = UpcallRecorder()
    let system: XenNativeSystem<GuestRAMRegion, UpcallRecorder>

    init() {
        system = XenNativeSystem(sink: recorder)
        try! system.createDomain(DomainConfiguration(id: dom1, vcpuCount: 1, sharedInfoFrame: GuestFrameNumber(0)), memory: ram.region)
    }

    func memoryMap() -> Int64 {
        system.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.memoryOp.rawValue, rdi: UInt64(MemoryOp.memoryMap.rawValue), rsi: 16 << 12))
    }
}
