import Foundation
import Testing
import XVTestSupport
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// The guest cannot tell native from translated: seeded random sequences of Xen operations
/// (three domains of two vCPUs: binds, sends, masks, unmasks, closes, resets, ABI switches,
/// callback vectors, hostile arguments) run on both worlds, and after every operation the
/// return value, the guest-visible frames of every domain and the upcalls each vCPU received
/// must be identical. A failure names the seed and the shortest sequence found that still
/// fails.
@Suite("Differential: native against translated")
struct DifferentialTests {

    /// One step of a guest: a hypercall (number, cmd, argument fields) or a guest-side write.
    enum Step: CustomStringConvertible {
        /// The guest writes grant entry `ref` of its table (v1: flags, domid, frame; the first 8
        /// bytes of a v2 entry alike).
        case grantEntry(DomainID, ref: Int, flags: UInt16, domid: UInt16, frame: UInt32)
        /// grant_table_op(cmd, argument page, count).
        case gnttab(DomainID, vcpu: Int, cmd: UInt64, count: UInt64, [(ABIField, UInt64)])
        /// memory_op(cmd, argument page) with `list` at the list offset (extent frames, a
        /// batch's idxs and gpfns).
        case memory(DomainID, vcpu: Int, cmd: UInt64, [(ABIField, UInt64)], list: [UInt64])
        case evtchn(DomainID, vcpu: Int, EventChannelOp, [(ABIField, UInt64)])
        case hvm(DomainID, vcpu: Int, HVMOp, [(ABIField, UInt64)])
        case raw(DomainID, vcpu: Int, XenHypercallRegisters)
        case mask(DomainID, port: UInt32, Bool)
        case acknowledge(DomainID, vcpu: Int)
        case fifoWord(DomainID, frame: UInt64, port: UInt32, UInt32)
        /// alloc_unbound on the second domain for the first, then bind_interdomain by the first
        /// to the port it returned: the way guests make channels, so sequences have many.
        case connect(DomainID, DomainID, vcpu: Int)
        /// The guest writes Xen's hypercall-page MSR.
        case hypercallPage(DomainID, vcpu: Int, UInt64)
        /// A vcpu_op with a structure at the argument page, naming vCPU `target`.
        case vcpu(DomainID, vcpu: Int, VCPUOp, target: UInt64, [(ABIField, UInt64)])
        /// A sched_op with its structure at the argument page.
        case sched(DomainID, vcpu: Int, SchedulerOp, [(ABIField, UInt64)])
        /// Time passes (both worlds' TSC moves to the value), then the embedder's tick
        /// re-anchors one vCPU's Xen time.
        case tick(DomainID, vcpu: Int, toTSC: UInt64)
        /// The guest writes a multicall list at `at` (op and five arguments per entry), then
        /// issues __HYPERVISOR_multicall with `count`.
        case multicall(DomainID, vcpu: Int, at: UInt64, [(UInt64, [UInt64])], count: UInt64)
        /// The embedder's scheduler moves a vCPU to a runstate.
        case runstate(DomainID, vcpu: Int, VCPURunstate)
        /// The embedder starts or stops a vCPU (INIT/SIPI).
        case vcpuUp(DomainID, vcpu: Int, Bool)
        /// The guest puts `bytes` at RDX (where backed), then makes the call.
        case console(DomainID, vcpu: Int, [UInt8], XenHypercallRegisters)
        /// Save here, restore on the other side, go on: every domain of each world is saved and
        /// restored, with its memory, into a fresh world of the other side (native's into a new
        /// translated world, translated's into a new native one), and the run continues there.
        case migrate

        var description: String {
            switch self {
            case .evtchn(let d, let v, let op, let f):
                return "d\(d.rawValue)v\(v) \(op.specName.map { "\($0)" } ?? "EVTCHNOP \(op.rawValue)") \(f.map { "@\($0.0.offset)=\($0.1)" }.joined(separator: " "))"
            case .hvm(let d, let v, let op, let f):
                return "d\(d.rawValue)v\(v) HVMOP \(op.rawValue) \(f.map { "@\($0.0.offset)=\($0.1)" }.joined(separator: " "))"
            case .raw(let d, let v, let r): return "d\(d.rawValue)v\(v) rax=\(r.rax) rdi=\(r.rdi) rsi=\(r.rsi)"
            case .mask(let d, let p, let m): return "d\(d.rawValue) guest \(m ? "masks" : "unmasks") \(p)"
            case .acknowledge(let d, let v): return "d\(d.rawValue)v\(v) guest acknowledges"
            case .fifoWord(let d, let f, let p, let w): return "d\(d.rawValue) guest writes event word \(p) in frame \(f) = \(w)"
            case .connect(let a, let b, let v): return "d\(a.rawValue)v\(v) connects to an unbound port of d\(b.rawValue)"
            case .hypercallPage(let d, let v, let value): return "d\(d.rawValue)v\(v) wrmsr hypercall page \(String(value, radix: 16))"
            case .vcpu(let d, let v, let op, let t, let f): return "d\(d.rawValue)v\(v) VCPUOP \(op.rawValue) on vCPU \(t) \(f.map { $0.1 })"
            case .sched(let d, let v, let op, let f): return "d\(d.rawValue)v\(v) SCHEDOP \(op.rawValue) \(f.map { $0.1 })"
            case .tick(let d, let v, let t): return "TSC to \(t), d\(d.rawValue) refreshes vCPU \(v)"
            case .multicall(let d, let v, let at, let e, let n): return "d\(d.rawValue)v\(v) multicall of \(n) at \(String(at, radix: 16)): \(e.map { "\($0.0)\($0.1)" })"
            case .runstate(let d, let v, let state): return "d\(d.rawValue) embedder moves vCPU \(v) to runstate \(state.rawValue)"
            case .vcpuUp(let d, let v, let up): return "d\(d.rawValue) embedder \(up ? "starts" : "stops") vCPU \(v)"
            case .grantEntry(let d, let ref, let flags, let domid, let frame): return "d\(d.rawValue) guest writes grant \(ref): flags \(flags) domid \(domid) frame \(frame)"
            case .gnttab(let d, let v, let cmd, let count, let f): return "d\(d.rawValue)v\(v) grant_table_op \(cmd) count \(count) \(f.map { $0.1 })"
            case .memory(let d, let v, let cmd, let f, let list): return "d\(d.rawValue)v\(v) memory_op \(cmd & 0x3F) start \(cmd >> 6) \(f.map { $0.1 }) list \(list)"
            case .console(let d, let v, let b, let r): return "d\(d.rawValue)v\(v) writes \(b.count) bytes at \(String(r.rdx, radix: 16)), console_io cmd \(r.rdi) count \(r.rsi)"
            case .migrate: return "every domain migrates to the other side"
            }
        }
    }

    static let domains = 3, vcpus = 2

    /// A port number: mostly small (where the action is), sometimes hostile.
    static func port(_ r: inout SplitMix) -> UInt64 {
        switch r.below(10) {
        case 0: return [0, 63, 64, 1023, 1024, 4095, 4096, 131_071, 0xFFFF_FFFF][r.below(9)]
        default: return UInt64(r.below(12))
        }
    }
    static func domain(_ r: inout SplitMix) -> UInt64 {
        r.below(8) == 0 ? [0, 9, 0x7FF0, 0x7FF1, 0xFFFF][r.below(5)] : UInt64(1 + r.below(domains))
    }
    static func vcpu(_ r: inout SplitMix) -> Int { r.below(12) == 0 ? 2 + r.below(3) : r.below(vcpus) }
    /// A frame number anywhere around the end of the guest's map, where the translated side's
    /// layer frames lie (both sides must answer alike: the guest owns neither).
    static func edgeFrame(_ r: inout SplitMix) -> UInt64 { WorldLayout.frames - 4 + UInt64(r.below(16)) }
    /// A guest-physical address on those frames, or a structure straddling into them.
    static func edgeAddress(_ r: inout SplitMix) -> UInt64 {
        r.below(2) == 0 ? WorldLayout.frames << 12 - UInt64(1 + r.below(32)) : edgeFrame(&r) << 12 + UInt64(r.below(4096))
    }

    /// A memory_op: the guest's frames (never the argument page), shared_info's frame 0, the
    /// edge of its map where the translated side's layer frames lie, and hostile numbers.
    static func memoryStep(_ d: DomainID, vcpu v: Int, _ r: inout SplitMix) -> Step {
        func frame(_ r: inout SplitMix) -> UInt64 {
            r.below(8) < 5 ? 17 + UInt64(r.below(31)) : [0, edgeFrame(&r), UInt64.max, 1 << 36, WorldLayout.frames - 1][r.below(5)]
        }
        let dom: UInt64 = r.below(8) == 0 ? domain(&r) : 0x7FF0
        let start: UInt64 = r.below(8) == 0 ? UInt64(r.below(3)) : 0
        let w0 = WorldLayout.argumentPage.rawValue << guestPageShift
        let list = w0 + UInt64(NativeWorld.listOffset), errs = w0 + UInt64(NativeWorld.errsOffset)
        switch r.below(8) {
        case 0, 1:
            let space = UInt64([0, 0, 1, 2, 2, 3, 4, 5, 9][r.below(9)])
            let idx: UInt64 = space == 1 ? [0, 1, 3, 31, 32, 0x8000_0000][r.below(6)] : space == 0 ? [0, 0, 1][r.below(3)] : frame(&r)
            return .memory(d, vcpu: v, cmd: UInt64(MemoryOp.addToPhysmap.rawValue) | start << 6,
                           [(XenAddToPhysmapLayout.domid, dom), (XenAddToPhysmapLayout.rangeSize, UInt64(r.below(4))),
                            (XenAddToPhysmapLayout.space, space), (XenAddToPhysmapLayout.idx, idx), (XenAddToPhysmapLayout.gpfn, frame(&r))], list: [])
        case 2:
            let n = r.below(4)
            let space = UInt64([0, 1, 2, 2, 3, 4][r.below(6)])
            let idxs = (0..<n).map { _ in space == 2 ? frame(&r) : UInt64(r.below(3)) }
            let gpfns = (0..<n).map { _ in frame(&r) }
            return .memory(d, vcpu: v, cmd: UInt64(MemoryOp.addToPhysmapBatch.rawValue) | start << 6,
                           [(XenAddToPhysmapBatchLayout.domid, dom), (XenAddToPhysmapBatchLayout.space, space),
                            (XenAddToPhysmapBatchLayout.batchSize, UInt64(r.below(8) == 0 ? n + 1 : n)), (XenAddToPhysmapBatchLayout.uForeignDomid, domain(&r)),
                            (XenAddToPhysmapBatchLayout.idxs, list), (XenAddToPhysmapBatchLayout.gpfns, list + 8 * UInt64(n)),
                            (XenAddToPhysmapBatchLayout.errs, r.below(8) == 0 ? edgeAddress(&r) : errs)], list: idxs + gpfns)
        case 3:
            return .memory(d, vcpu: v, cmd: UInt64(MemoryOp.removeFromPhysmap.rawValue) | start << 6,
                           [(XenRemoveFromPhysmapLayout.domid, dom), (XenRemoveFromPhysmapLayout.gpfn, frame(&r))], list: [])
        case 4, 5:
            let op: MemoryOp = [.decreaseReservation, .decreaseReservation, .populatePhysmap, .populatePhysmap, .increaseReservation][r.below(5)]
            let n = 1 + r.below(3)
            let flags: UInt64 = [0, 0, 0, 12, 40, UInt64(MemoryFlags.populateOnDemand), UInt64(MemoryFlags.exactNodeRequest) | 1 << 8][r.below(7)]
            return .memory(d, vcpu: v, cmd: UInt64(op.rawValue) | start << 6,
                           [(XenMemoryReservationLayout.extentStart, r.below(8) == 0 ? edgeAddress(&r) : list),
                            (XenMemoryReservationLayout.nrExtents, [UInt64(n), UInt64(n), UInt64(n + 1), 1 << 26][r.below(4)]),
                            (XenMemoryReservationLayout.extentOrder, [0, 0, 0, 1, 2, 10][r.below(6)]),
                            (XenMemoryReservationLayout.memFlags, flags), (XenMemoryReservationLayout.domid, dom)],
                           list: (0..<n).map { _ in frame(&r) })
        case 6:
            let op: MemoryOp = [.currentReservation, .maximumReservation, .maximumGpfn, .maximumRamPage][r.below(4)]
            return .memory(d, vcpu: v, cmd: UInt64(op.rawValue) | start << 6, [(XenMemoryDomainLayout.domid, dom)], list: [])
        default:
            return .memory(d, vcpu: v, cmd: UInt64(MemoryOp.memoryMap.rawValue) | start << 6,
                           [(XenMemoryMapLayout.nrEntries, UInt64(r.below(3))), (XenMemoryMapLayout.buffer, r.below(4) == 0 ? edgeAddress(&r) : list)], list: [])
        }
    }

    /// VCPUOP_initialise (a valid 64-bit or 32-bit context, sometimes with one field spoilt),
    /// up and down, on any vCPU.
    static func powerStep(_ d: DomainID, vcpu v: Int, _ r: inout SplitMix) -> Step {
        let target = UInt64(r.below(8) == 0 ? 2 : r.below(vcpus))
        switch r.below(4) {
        case 0, 1:
            var fields = r.below(2) == 0 ? VCPUPowerTests.longMode : VCPUPowerTests.flat32
            if r.below(2) == 0 { fields[r.below(fields.count)].1 = [0, 1, 0x8B, 0xC93, 1 << 47, UInt64(r.below(1 << 16))][r.below(6)] }
            return .vcpu(d, vcpu: v, .initialise, target: target, fields)
        case 2: return .raw(d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(VCPUOp.up.rawValue), rsi: target))
        default: return .raw(d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(VCPUOp.down.rawValue), rsi: target))
        }
    }

    /// A grant-table operation on the domain's own table, or the guest writing one of its
    /// entries (reserved refs and others, with flags that make pins and version switches differ).
    static func grantStep(_ d: DomainID, vcpu v: Int, _ r: inout SplitMix) -> Step {
        let dom: UInt64 = r.below(8) == 0 ? domain(&r) : 0x7FF0
        let list = WorldLayout.argumentPage.rawValue << guestPageShift + UInt64(NativeWorld.listOffset)
        func ref(_ r: inout SplitMix) -> UInt64 { [UInt64(r.below(12)), UInt64(r.below(600)), 0xFFFF_FFFF][r.below(8) < 6 ? 0 : r.below(3)] }
        func frame(_ r: inout SplitMix) -> UInt64 { r.below(8) < 6 ? 17 + UInt64(r.below(31)) : [0, edgeFrame(&r), 1 << 36][r.below(3)] }
        func peer(_ r: inout SplitMix) -> UInt64 { r.below(8) == 0 ? domain(&r) : UInt64(1 + r.below(domains)) }
        switch r.below(11) {
        case 7, 8:
            let flags: UInt64 = [2, 2, 2 | 4, 0, 1 | 2, 2 | 1 << 16][r.below(6)]
            return .gnttab(d, vcpu: v, cmd: UInt64(GrantTableOp.mapGrantRef.rawValue), count: [1, 1, 2][r.below(3)],
                           [(GnttabMapGrantRefLayout.hostAddr, frame(&r) << 12), (GnttabMapGrantRefLayout.flags, flags), (GnttabMapGrantRefLayout.ref, ref(&r)),
                            (GnttabMapGrantRefLayout.dom, peer(&r)), (GnttabMapGrantRefLayout.handle, UInt64(0xEE)),
                            (ABIField(offset: 32, size: 8), frame(&r) << 12), (ABIField(offset: 40, size: 4), UInt64(2)), (ABIField(offset: 44, size: 4), ref(&r)),
                            (ABIField(offset: 48, size: 2), peer(&r))])
        case 9:
            return .gnttab(d, vcpu: v, cmd: UInt64(GrantTableOp.unmapGrantRef.rawValue), count: 1,
                           [(GnttabUnmapGrantRefLayout.hostAddr, r.below(6) == 0 ? 0 : frame(&r) << 12), (GnttabUnmapGrantRefLayout.handle, UInt64(r.below(8) == 0 ? 300 : r.below(4)))])
        case 10:
            let srcGref = r.below(2) == 0, dstGref = r.below(2) == 0
            let flags = (srcGref ? UInt64(GrantCopyFlags.sourceGref.rawValue) : 0) | (dstGref ? UInt64(GrantCopyFlags.destGref.rawValue) : 0)
            return .gnttab(d, vcpu: v, cmd: UInt64(GrantTableOp.copy.rawValue), count: 1,
                           [(GnttabCopyLayout.sourceUGmfn, srcGref ? ref(&r) : frame(&r)), (GnttabCopyLayout.sourceDomid, srcGref ? peer(&r) : [0x7FF0, 0x7FF0, peer(&r)][r.below(3)]),
                            (GnttabCopyLayout.sourceOffset, UInt64([0, 100, 4000][r.below(3)])),
                            (GnttabCopyLayout.destUGmfn, dstGref ? ref(&r) : frame(&r)), (GnttabCopyLayout.destDomid, dstGref ? peer(&r) : 0x7FF0),
                            (GnttabCopyLayout.destOffset, UInt64([0, 8, 4095][r.below(3)])), (GnttabCopyLayout.len, UInt64([8, 96, 4096, 0][r.below(4)])),
                            (GnttabCopyLayout.flags, flags)])
        case 0:
            let flags: UInt16 = [1, 1 | 4, 1 | 8, 2, 3, 0, 1 | 0x100][r.below(7)]
            return .grantEntry(d, ref: r.below(12), flags: flags, domid: UInt16(1 + r.below(domains)), frame: [UInt32(r.below(48)), 0xFFFF_FFFF][r.below(6) == 0 ? 1 : 0])
        case 1: return .gnttab(d, vcpu: v, cmd: UInt64(GrantTableOp.querySize.rawValue), count: [1, 1, 0, 2][r.below(4)], [(GnttabQuerySizeLayout.dom, dom)])
        case 2:
            return .gnttab(d, vcpu: v, cmd: UInt64(GrantTableOp.setupTable.rawValue), count: [1, 1, 2][r.below(3)],
                           [(GnttabSetupTableLayout.dom, dom), (GnttabSetupTableLayout.nrFrames, UInt64([1, 2, 4, 33][r.below(4)])),
                            (GnttabSetupTableLayout.frameList, r.below(6) == 0 ? edgeAddress(&r) : list)])
        case 3: return .gnttab(d, vcpu: v, cmd: UInt64(GrantTableOp.setVersion.rawValue), count: 1, [(GnttabSetVersionLayout.version, UInt64([1, 2, 2, 0, 3][r.below(5)]))])
        case 4: return .gnttab(d, vcpu: v, cmd: UInt64(GrantTableOp.getVersion.rawValue), count: 1, [(GnttabGetVersionLayout.dom, dom)])
        case 5:
            return .gnttab(d, vcpu: v, cmd: UInt64(GrantTableOp.swapGrantRef.rawValue), count: UInt64(1 + r.below(2)),
                           [(GnttabSwapGrantRefLayout.refA, ref(&r)), (GnttabSwapGrantRefLayout.refB, ref(&r)),
                            (ABIField(offset: 12, size: 4), ref(&r)), (ABIField(offset: 16, size: 4), ref(&r))])
        default:
            // XENMEM_add_to_physmap of a grant or status frame.
            let idx: UInt64 = [0, 1, 3, 31, 32, MapIndex.grantTableStatus, MapIndex.grantTableStatus | 1, MapIndex.grantTableStatus | 4][r.below(8)]
            return .memory(d, vcpu: v, cmd: UInt64(MemoryOp.addToPhysmap.rawValue),
                           [(XenAddToPhysmapLayout.domid, UInt64(0x7FF0)), (XenAddToPhysmapLayout.space, UInt64(MapSpace.grantTable.rawValue)),
                            (XenAddToPhysmapLayout.idx, idx), (XenAddToPhysmapLayout.gpfn, 17 + UInt64(r.below(31)))], list: [])
        }
    }

    static func randomStep(_ r: inout SplitMix) -> Step {
        let d = DomainID(UInt16(1 + r.below(domains)))
        let v = r.below(vcpus)
        let free = WorldLayout.firstFreeFrame
        let w0 = WorldLayout.argumentPage.rawValue << guestPageShift
        switch r.below(31) {
        case 29, 30: return grantStep(d, vcpu: v, &r)
        case 26, 27: return memoryStep(d, vcpu: v, &r)
        case 28: return powerStep(d, vcpu: v, &r)
        case 22, 23, 24: return .connect(d, DomainID(UInt16(1 + r.below(domains))), vcpu: v)
        case 25: return .evtchn(d, vcpu: v, .send, [(EvtchnSendLayout.port, UInt64(1 + r.below(8)))])
        case 0, 1: return .evtchn(d, vcpu: v, .allocUnbound, [(EvtchnAllocUnboundLayout.dom, r.below(6) == 0 ? domain(&r) : 0x7FF0),
                                                              (EvtchnAllocUnboundLayout.remoteDom, domain(&r))])
        case 2, 3: return .evtchn(d, vcpu: v, .bindInterdomain, [(EvtchnBindInterdomainLayout.remoteDom, domain(&r)),
                                                                 (EvtchnBindInterdomainLayout.remotePort, port(&r))])
        case 4: return .evtchn(d, vcpu: v, .bindIpi, [(EvtchnBindIpiLayout.vcpu, UInt64(vcpu(&r)))])
        case 5: return .evtchn(d, vcpu: v, .bindVirq, [(EvtchnBindVirqLayout.virq, UInt64(r.below(26))), (EvtchnBindVirqLayout.vcpu, UInt64(vcpu(&r)))])
        case 6, 7, 8: return .evtchn(d, vcpu: v, .send, [(EvtchnSendLayout.port, port(&r))])
        case 9: return .evtchn(d, vcpu: v, .unmask, [(EvtchnUnmaskLayout.port, port(&r))])
        case 10: return .evtchn(d, vcpu: v, .close, [(EvtchnCloseLayout.port, port(&r))])
        case 11: return .evtchn(d, vcpu: v, .status, [(EvtchnStatusLayout.dom, r.below(4) == 0 ? domain(&r) : 0x7FF0), (EvtchnStatusLayout.port, port(&r))])
        case 12: return .evtchn(d, vcpu: v, .bindVcpu, [(EvtchnBindVcpuLayout.port, port(&r)), (EvtchnBindVcpuLayout.vcpu, UInt64(vcpu(&r)))])
        case 13: return r.below(4) == 0 ? .evtchn(d, vcpu: v, .reset, [(EvtchnResetLayout.dom, r.below(3) == 0 ? domain(&r) : 0x7FF0)])
                                        : .acknowledge(d, vcpu: v)
        case 14: return .evtchn(d, vcpu: v, .initControl, [(EvtchnInitControlLayout.controlGfn, r.below(8) == 0 ? [UInt64.max - 1, edgeFrame(&r)][r.below(2)] : free + UInt64(r.below(4))),
                                                           (EvtchnInitControlLayout.offset, UInt64(r.below(8) == 0 ? r.below(4096) : 8 * r.below(4) * 64)),
                                                           (EvtchnInitControlLayout.vcpu, UInt64(vcpu(&r)))])
        case 15: return .evtchn(d, vcpu: v, .expandArray, [(EvtchnExpandArrayLayout.arrayGfn, r.below(8) == 0 ? [0x10_0000, edgeFrame(&r)][r.below(2)] : free + 4 + UInt64(r.below(4)))])
        case 16: return .evtchn(d, vcpu: v, .setPriority, [(EvtchnSetPriorityLayout.port, port(&r)), (EvtchnSetPriorityLayout.priority, UInt64(r.below(18)))])
        case 17: return .mask(d, port: UInt32(r.below(12)), r.below(2) == 0)
        case 18: return .acknowledge(d, vcpu: v)
        case 19:
            let vector = r.below(6) == 0 ? UInt64(r.below(256)) : UInt64(0x40 + r.below(4))
            let type: UInt64 = r.below(6) == 0 ? UInt64(r.below(3)) : 2
            return .hvm(d, vcpu: v, .setParam, [(XenHvmParamLayout.domid, r.below(6) == 0 ? domain(&r) : 0x7FF0),
                                                (XenHvmParamLayout.index, r.below(8) == 0 ? UInt64(r.below(45)) : 0),
                                                (XenHvmParamLayout.value, type << 56 | vector)])
        case 20:
            return .hvm(d, vcpu: v, .setEvtchnUpcallVector, [(XenHvmEvtchnUpcallVectorLayout.vcpu, UInt64(vcpu(&r))),
                                                             (XenHvmEvtchnUpcallVectorLayout.vector, UInt64(r.below(6) == 0 ? r.below(256) : 0x50 + r.below(4)))])
        default:
            switch r.below(22) {
            case 21:
                let at = [w0 + 2048 + UInt64(r.below(16)) * 64, edgeAddress(&r)][r.below(4) == 0 ? 1 : 0]
                let entries: [(UInt64, [UInt64])] = (0..<(1 + r.below(8))).map { _ in
                    switch r.below(6) {
                    case 0: return (XenHypercall.eventChannelOp.rawValue, [UInt64(EventChannelOp.send.rawValue), w0])
                    case 1: return (XenHypercall.xenVersion.rawValue, [UInt64(r.below(12)), 0])
                    case 2: return (XenHypercall.vmAssist.rawValue, [UInt64(r.below(2)), 5])
                    case 3: return (XenHypercall.multicall.rawValue, [at, 1])
                    case 4: return (XenHypercall.hvmOp.rawValue, [UInt64(HVMOp.flushTlbs.rawValue), 0])
                    default: return (UInt64(r.below(64)), [UInt64(r.below(16)), w0])
                    }
                }
                return .multicall(d, vcpu: v, at: at, entries, count: [UInt64(entries.count), UInt64(entries.count) + 2, 0][r.below(3)])
            case 19: return .runstate(d, vcpu: r.below(vcpus), VCPURunstate(rawValue: Int32(r.below(5))))
            case 20:
                let target = UInt64(r.below(8) == 0 ? 2 : r.below(vcpus))
                if r.below(2) == 0 {
                    return .raw(d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(VCPUOp.getRunstateInfo.rawValue), rsi: target,
                                                               rdx: [w0 + 512 + UInt64(r.below(3000)), edgeAddress(&r)][r.below(2)]))
                }
                return .vcpu(d, vcpu: v, .registerRunstateMemoryArea, target: target,
                             [(VcpuRegisterRunstateMemoryAreaLayout.addrH, [free << guestPageShift + UInt64(r.below(8000)), 0, edgeAddress(&r)][r.below(3)])])
            case 17:
                // Deadlines around the clock the ticks move (up to 2^62 TSC, 2^61 ns or so).
                let deadline: UInt64 = [0, 1, UInt64(r.below(1 << 40)), UInt64(r.below(1 << 20)) << 40, 1 << 63, UInt64.max, (1 << 61) + UInt64(r.below(1 << 36))][r.below(7)]
                return .raw(d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.setTimerOp.rawValue, rdi: deadline))
            case 18:
                let target = UInt64(r.below(8) == 0 ? 2 : r.below(vcpus))
                switch r.below(4) {
                case 0: return .vcpu(d, vcpu: v, .setSingleshotTimer, target: target,
                                     [(VcpuSetSingleshotTimerLayout.timeoutAbsNs, [UInt64(r.below(1 << 40)), UInt64(r.below(1 << 20)) << 40, 0][r.below(3)]),
                                      (VcpuSetSingleshotTimerLayout.flags, UInt64(r.below(2)))])
                case 1: return .vcpu(d, vcpu: v, .stopSingleshotTimer, target: target, [])
                case 2: return .vcpu(d, vcpu: v, .setPeriodicTimer, target: target, [(VcpuSetPeriodicTimerLayout.periodNs, [999_999, 1_000_000, 5_000_000 + UInt64(r.below(1000)), 1 << 62][r.below(4)])])
                default: return .vcpu(d, vcpu: v, .stopPeriodicTimer, target: target, [])
                }
            case 15: return .tick(d, vcpu: r.below(vcpus), toTSC: [UInt64(r.below(1 << 40)), UInt64(r.below(1 << 20)) << 40, (1 << 62) + UInt64(r.below(1 << 30))][r.below(3)])
            case 16:
                switch r.below(3) {
                case 0: return .raw(d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.hvmOp.rawValue, rdi: UInt64(HVMOp.getTime.rawValue),
                                                                   rsi: [w0 + UInt64(r.below(4090)), edgeAddress(&r)][r.below(2)]))
                default:
                    let area = [free << guestPageShift + UInt64(r.below(8000)), 0, edgeAddress(&r)][r.below(3)]
                    return .vcpu(d, vcpu: v, .registerVcpuTimeMemoryArea, target: UInt64(r.below(vcpus)), [(VcpuRegisterTimeMemoryAreaLayout.addrH, area)])
                }
            case 14:
                let op: SchedulerOp = [.yield, .yield, .shutdown, .shutdownCode, .remoteShutdown, .pinOverride, SchedulerOp(rawValue: 9), .watchdog, .watchdog][r.below(9)]
                if op == .watchdog {
                    return .sched(d, vcpu: v, op, [(SchedWatchdogLayout.id, UInt64(r.below(4))), (SchedWatchdogLayout.timeout, [0, 1, 30, 0xFFFF_FFFF][r.below(4)])])
                }
                if op == .remoteShutdown {
                    return .sched(d, vcpu: v, op, [(SchedRemoteShutdownLayout.domainId, domain(&r)), (SchedRemoteShutdownLayout.reason, UInt64(0))])
                }
                return .sched(d, vcpu: v, op, [(SchedShutdownLayout.reason, UInt64(r.below(8) == 0 ? r.below(256) : r.below(6)))])
            case 12:
                let target = UInt64(r.below(8) == 0 ? 2 + r.below(3) : r.below(vcpus))
                switch r.below(3) {
                case 0:
                    let frame = [free + UInt64(r.below(8)), edgeFrame(&r), UInt64.max][r.below(3)]
                    let offset = r.below(4) == 0 ? UInt64(r.below(4100)) : UInt64(r.below(64) * 64)
                    return .vcpu(d, vcpu: v, .registerVcpuInfo, target: target,
                                 [(VcpuRegisterVcpuInfoLayout.mfn, frame), (VcpuRegisterVcpuInfoLayout.offset, offset)])
                case 1: return .raw(d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(VCPUOp.isUp.rawValue), rsi: target))
                default: return .raw(d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(VCPUOp.sendNmi.rawValue), rsi: target, rdx: [0, w0][r.below(2)]))
                }
            case 13: return .vcpuUp(d, vcpu: r.below(vcpus), r.below(2) == 0)
            case 9: return .raw(d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.hvmOp.rawValue, rdi: UInt64(HVMOp.flushTlbs.rawValue), rsi: [0, 0, w0][r.below(3)]))
            case 10:
                let dom: UInt64 = [0x7FF0, 0x7FF0, UInt64(d.rawValue), domain(&r)][r.below(4)]
                return r.below(2) == 0
                    ? .hvm(d, vcpu: v, .getMemType, [(XenHvmGetMemTypeLayout.domid, dom), (XenHvmGetMemTypeLayout.pfn, [UInt64(r.below(60)), edgeFrame(&r), UInt64.max][r.below(3)])])
                    : .hvm(d, vcpu: v, .pagetableDying, [(XenHvmPagetableDyingLayout.domid, dom), (XenHvmPagetableDyingLayout.gpa, UInt64(r.below(1 << 20)))])
            case 11: return .raw(d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.mmuextOp.rawValue, rdi: [0, w0, UInt64.max][r.below(3)],
                                                               rsi: [1, 1 << 31, UInt64(r.below(8)) | 1 << 31][r.below(3)], rdx: 0,
                                                               r10: [0x7FF0, domain(&r), 0x7FF1, UInt64(r.below(1 << 32))][r.below(4)]))
            case 6: return .raw(d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.xenVersion.rawValue, rdi: [UInt64(r.below(13)), 0xFFFF_FFFF, 1 << 32 | 6][r.below(3)],
                                                              rsi: [w0, edgeAddress(&r), 0, UInt64.max - 2][r.below(4)]))
            case 7: return .raw(d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.vmAssist.rawValue, rdi: UInt64(r.below(3)), rsi: [5, 5, UInt64(r.below(7)), 64][r.below(4)]))
            case 8:
                // Text with newlines, tabs, control and high bytes, sometimes longer than a line.
                let alphabet: [UInt8] = [0x0A, 0x09, 0x00, 0x1B, 0x80, 0xFF] + Array(0x41...0x46) + [0x20, 0x7E]
                let text = (0..<r.below(320)).map { _ in r.below(4) == 0 ? alphabet[r.below(alphabet.count)] : UInt8(0x61 + r.below(26)) }
                let at = [w0 + 1024 + UInt64(r.below(2000)), edgeAddress(&r)][r.below(2)]
                return .console(d, vcpu: v, text, XenHypercallRegisters(rax: XenHypercall.consoleIo.rawValue, rdi: [0, 0, 0, 0, 1, 2][r.below(6)],
                                                                        rsi: [UInt64(text.count), UInt64(text.count), UInt64(r.below(300)), 0xFFFF_FFFF, 0x8000_0000][r.below(5)],
                                                                        rdx: at))
            case 0: return .raw(d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.eventChannelOp.rawValue, rdi: UInt64(r.below(16)),
                                                              rsi: [0x4000_0000, UInt64.max - 2, 0, edgeAddress(&r)][r.below(4)]))
            case 4: return .raw(d, vcpu: v, XenHypercallRegisters(rax: [XenHypercall.eventChannelOp.rawValue, XenHypercall.hvmOp.rawValue][r.below(2)],
                                                              rdi: [0, 1, 3, 4, 5, 6, 7, 11, 23][r.below(9)], rsi: edgeAddress(&r)))
            case 5: return .hypercallPage(d, vcpu: v, edgeFrame(&r) << 12 | (r.below(8) == 0 ? UInt64(r.below(4096)) : 0))
            case 1: return .raw(d, vcpu: v, XenHypercallRegisters(rax: UInt64(r.below(64)), rdi: UInt64(r.below(16)), rsi: 16 << 12))
            case 2: return .fifoWord(d, frame: free + 4 + UInt64(r.below(2)), port: UInt32(r.below(12)), [0, 1 << 30, 1 << 29, 1 << 31 | 1 << 29 | 5][r.below(4)])
            default: return .evtchn(d, vcpu: v, .send, [(EvtchnSendLayout.port, UInt64(r.below(12)))])
            }
        }
    }

    static func apply(_ step: Step, to w: any XenWorld) -> Int64 {
        switch step {
        case .migrate: return 0  // both worlds at once: `firstDivergence`
        case .vcpu(let d, let v, let op, let target, let f):
            w.writeArguments(d, size: VcpuHvmContextLayout.size, f)
            return w.hypercall(domain: d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(op.rawValue),
                                                                       rsi: target, rdx: w.argumentAddress))
        case .evtchn(let d, let v, let op, let f): return w.evtchn(d, vcpu: v, op, f)
        case .hvm(let d, let v, let op, let f): return w.hvm(d, vcpu: v, op, f)
        case .raw(let d, let v, let regs): return w.hypercall(domain: d, vcpu: v, regs)
        case .mask(let d, let p, let m): w.setMasked(d, port: p, m); return 0
        case .acknowledge(let d, let v): w.acknowledgeEvents(d, vcpu: v); return 0
        case .connect(let a, let b, let v):
            let port = w.allocUnbound(b, remote: a)
            guard port > 0 else { return port }
            return w.bindInterdomain(a, remote: b, remotePort: UInt32(port), vcpu: v)
        case .hypercallPage(let d, let v, let value):
            switch w.xenDomain(d).writeMSR(0x4000_0000, value: value, vcpu: v) {
            case .xen(.done): return 0
            case .xen(.generalProtection): return -1
            default: return -2
            }
        case .sched(let d, let v, let op, let f):
            w.writeArguments(d, size: 8, f)
            return w.hypercall(domain: d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.schedOp.rawValue, rdi: UInt64(op.rawValue), rsi: w.argumentAddress))
        case .tick(let d, let v, let tsc):
            w.advanceTime(toTSC: tsc)
            return w.refreshTime(d, vcpu: v) ? 0 : -1
        case .multicall(let d, let v, let at, let entries, let count):
            // Only the guest's own frames: in a translated world the layer's follow them.
            let end = WorldLayout.frames << guestPageShift
            for (i, (op, args)) in entries.enumerated() {
                let base = at &+ UInt64(i * 64)
                let words = [op, 0xEE] + args + [UInt64](repeating: 0, count: 6 - args.count)
                for (j, word) in words.enumerated() where base &+ UInt64(8 * j) < end && base &+ UInt64(8 * j + 8) <= end {
                    _ = w.ram(d).region.store(word, at: GuestPhysicalAddress(base &+ UInt64(8 * j)))
                }
            }
            return w.hypercall(domain: d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.multicall.rawValue, rdi: at, rsi: count))
        case .runstate(let d, let v, let state):
            w.setRunstate(d, vcpu: v, state)
            return 0
        case .vcpuUp(let d, let v, let up):
            w.setVCPUUp(d, vcpu: v, up)
            return 0
        case .console(let d, let v, let bytes, let regs):
            // Only the guest's own frames: in a translated world the layer's follow them.
            for (i, b) in bytes.enumerated() where regs.rdx &+ UInt64(i) < WorldLayout.frames << guestPageShift {
                _ = w.ram(d).region.store(b, at: GuestPhysicalAddress(regs.rdx &+ UInt64(i)))
            }
            return w.hypercall(domain: d, vcpu: v, regs)
        case .fifoWord(let d, let frame, let p, let value):
            // memory_op may have made the frame a hole.
            w.ram(d).region.hostAddress(of: GuestFrameNumber(frame))?.storeBytes(of: value, toByteOffset: Int(p) * 4, as: UInt32.self)
            return 0
        case .grantEntry(let d, let ref, let flags, let domid, let frame):
            return w.writeGrantEntry(d, ref: ref, flags: flags, domid: domid, frame: UInt64(frame)) ? 0 : -1
        case .gnttab(let d, let v, let cmd, let count, let f):
            w.writeArguments(d, size: 64, f)
            return w.hypercall(domain: d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: cmd, rsi: w.argumentAddress, rdx: count))
        case .memory(let d, let v, let cmd, let f, let list):
            w.writeArguments(d, size: 32, f)
            let page = w.ram(d).region.hostAddress(of: WorldLayout.argumentPage)!
            for (i, value) in list.enumerated() { page.storeBytes(of: value, toByteOffset: NativeWorld.listOffset + 8 * i, as: UInt64.self) }
            return w.hypercall(domain: d, vcpu: v, XenHypercallRegisters(rax: XenHypercall.memoryOp.rawValue, rdi: cmd, rsi: w.argumentAddress))
        }
    }

    /// The first step at which the worlds differ, with what differed; nil when they never do.
    /// With `.migrate` steps a third world runs too, a native one that never migrates: both
    /// migrating worlds must also stay identical to it, so a state that migration loses on
    /// both sides alike still shows.
    static func firstDivergence(_ steps: [Step]) -> (index: Int, what: String)? {
        var native: any XenWorld = NativeWorld(domains: domains, vcpus: vcpus)
        var translated: any XenWorld = TranslatedWorld(domains: domains, vcpus: vcpus)
        let oracle: (any XenWorld)? = steps.contains { if case .migrate = $0 { return true } else { return false } }
            ? NativeWorld(domains: domains, vcpus: vcpus) : nil
        for (i, step) in steps.enumerated() {
            if case .migrate = step {
                // Each side's state crosses to the other, with its embedder's records: what the
                // guests saw must not change.
                let toTranslated = TranslatedWorld(domains: domains, vcpus: vcpus, recorder: native.recorder, console: native.console)
                let toNative = NativeWorld(domains: domains, vcpus: vcpus, recorder: translated.recorder, console: translated.console)
                do {
                    try toTranslated.migrate(from: native)
                    try toNative.migrate(from: translated)
                } catch {
                    return (i, "an image was refused: \(error.specName.map { "\($0)" } ?? "\(error.rawValue)")")
                }
                (native, translated) = (toNative, toTranslated)
                // A restore re-anchors every vCPU's pvclock (as Xen does); the world that never
                // migrates gets the same re-anchoring from its embedder's tick.
                if let oracle {
                    for d in 0..<domains { for v in 0..<vcpus { _ = oracle.refreshTime(oracle.domainID(d), vcpu: v) } }
                }
            }
            let a = apply(step, to: native), b = apply(step, to: translated)
            if a != b { return (i, "returned \(a) native, \(b) translated") }
            // Each world keeps its own yield and flush counts, which migrations start again.
            if let what = differences(native, translated, counters: oracle == nil) { return (i, what) }
            if let oracle {
                let c = apply(step, to: oracle)
                if a != c { return (i, "returned \(a) after migrations, \(c) without") }
                if let what = differences(oracle, native, counters: false) { return (i, "after migrations (native against never migrated): \(what)") }
            }
        }
        return nil
    }

    /// What differs between two worlds' guest-visible state and embedder records, if anything.
    /// `counters`: compare the yield and TLB-flush counts too, which each world keeps for itself
    /// (a migrated world starts them again).
    static func differences(_ native: any XenWorld, _ translated: any XenWorld, counters: Bool = true) -> String? {
        for d in 0..<domains {
            let id = DomainID(UInt16(d + 1))
            for f in WorldLayout.comparedFrames {
                let ma = native.ram(id).region.hostAddress(of: GuestFrameNumber(f))
                let mb = translated.ram(id).region.hostAddress(of: GuestFrameNumber(f))
                guard let pa = ma, let pb = mb else {
                    if (ma == nil) != (mb == nil) { return "domain \(id.rawValue) frame \(f) is a hole on one side only" }
                    continue
                }
                if memcmp(pa, pb, 4096) != 0 {
                    let at = (0..<4096).first { pa.load(fromByteOffset: $0, as: UInt8.self) != pb.load(fromByteOffset: $0, as: UInt8.self) }!
                    return "domain \(id.rawValue) frame \(f) byte \(at) differs"
                }
            }
        }
        for d in 0..<domains where native.recorder.nmiCount(domain: DomainID(UInt16(d + 1))) != translated.recorder.nmiCount(domain: DomainID(UInt16(d + 1))) {
            return "domain \(d + 1): NMIs differ"
        }
        for d in 0..<domains {
            let id = DomainID(UInt16(d + 1))
            if counters, native.yields(id) != translated.yields(id) { return "domain \(d + 1): yields differ" }
            if native.recorder.shutdowns(domain: id) != translated.recorder.shutdowns(domain: id) { return "domain \(d + 1): shutdowns differ" }
            if native.recorder.powerChanges(domain: id) != translated.recorder.powerChanges(domain: id) { return "domain \(d + 1): vCPU starts and stops differ" }
            let (gn, gt) = (native.xenDomain(id), translated.xenDomain(id))
            if gn.grantMappingCount != gt.grantMappingCount || gn.grantTableVersion != gt.grantTableVersion { return "domain \(d + 1): grant mappings or version differ" }
            for ref in UInt32(0)..<12 {
                if gn.grantPins(ref) != gt.grantPins(ref) { return "domain \(d + 1): pins of grant \(ref) differ" }
            }
            if memcmp(gn.grantFramePage(0)!, gt.grantFramePage(0)!, 4096) != 0 { return "domain \(d + 1): grant frame 0 differs" }
            for v in 0..<vcpus where native.recorder.context(domain: id, vcpu: v) != translated.recorder.context(domain: id, vcpu: v) {
                return "domain \(d + 1) vCPU \(v): initial contexts differ"
            }
        }
        for d in 0..<domains where counters && native.tlbFlushes(DomainID(UInt16(d + 1))) != translated.tlbFlushes(DomainID(UInt16(d + 1))) {
            return "domain \(d + 1): TLB flushes differ"
        }
        if native.console.lines.map({ [UInt64($0.0.rawValue)] + $0.1.map(UInt64.init) }) != translated.console.lines.map({ [UInt64($0.0.rawValue)] + $0.1.map(UInt64.init) }) {
            return "console lines differ"
        }
        if native.recorder.snapshot(domains: domains, vcpus: vcpus) != translated.recorder.snapshot(domains: domains, vcpus: vcpus) {
            return "upcalls differ: native \(native.recorder.snapshot(domains: domains, vcpus: vcpus)), translated \(translated.recorder.snapshot(domains: domains, vcpus: vcpus))"
        }
        return nil
    }

    /// Removes steps one at a time while the sequence still diverges (a greedy delta
    /// debugging pass, repeated until nothing more can go).
    static func shrink(_ steps: [Step]) -> [Step] {
        var current = steps
        var changed = true
        while changed {
            changed = false
            var i = 0
            while i < current.count {
                var candidate = current
                candidate.remove(at: i)
                if firstDivergence(candidate) != nil { current = candidate; changed = true } else { i += 1 }
            }
        }
        return current
    }

    @Test("the generator reaches xen_version, vm_assist, console_io, HVMOP_flush_tlbs, memory_op, VCPUOP_initialise and grant_table_op with answers other than errors: console lines, flushes, moved pages, ballooned frames, started vCPUs, v2 tables, grant maps and copies come out")
    func generatorReachesTheNewFamilies() {
        var lines = 0, versionOK = 0, assistOK = 0, flushes = 0, ticks = 0, placed = 0, ballooned = 0, holes = 0, initialised = 0, v2 = 0, grantMaps = 0, grantCopies = 0
        for n in 0..<600 {
            var r = SplitMix(seed: 0x5856_4456_4946_4600 &+ UInt64(n))
            let w = NativeWorld(domains: Self.domains, vcpus: Self.vcpus)
            for _ in 0..<40 {
                let step = Self.randomStep(&r)
                let result = Self.apply(step, to: w)
                if case .tick = step, result == 0 { ticks += 1 }
                if case .vcpu(_, _, .initialise, _, _) = step, result == 0 { initialised += 1 }
                if case .gnttab(let d, _, let cmd, _, let f) = step {
                    if cmd == UInt64(GrantTableOp.setVersion.rawValue), result == 0, f.first?.1 == 2 { v2 += 1 }
                    let status = Int16(truncatingIfNeeded: w.readArgument(d, cmd == UInt64(GrantTableOp.copy.rawValue) ? GnttabCopyLayout.status : GnttabMapGrantRefLayout.status))
                    if cmd == UInt64(GrantTableOp.mapGrantRef.rawValue), result == 0, status == 0 { grantMaps += 1 }
                    if cmd == UInt64(GrantTableOp.copy.rawValue), result == 0, status == 0 { grantCopies += 1 }
                }
                if case .memory(_, _, let cmd, _, _) = step {
                    if cmd == UInt64(MemoryOp.addToPhysmap.rawValue), result == 0 { placed += 1 }
                    if cmd == UInt64(MemoryOp.decreaseReservation.rawValue) || cmd == UInt64(MemoryOp.populatePhysmap.rawValue), result > 0 { ballooned += 1 }
                }
                if case .raw(_, _, let regs) = step, result >= 0 {
                    if regs.rax == XenHypercall.xenVersion.rawValue { versionOK += 1 }
                    if regs.rax == XenHypercall.vmAssist.rawValue { assistOK += 1 }
                }
            }
            lines += w.console.lines.count
            holes += (1...Self.domains).map { d in WorldLayout.comparedFrames.filter { w.ram(DomainID(UInt16(d))).region.hostAddress(of: GuestFrameNumber($0)) == nil }.count }.reduce(0, +)
            flushes += (1...Self.domains).map { w.tlbFlushes(DomainID(UInt16($0))) }.reduce(0, +)
        }
        #expect(lines > 0 && versionOK > 0 && assistOK > 0 && flushes > 0 && ticks > 0 && placed > 0 && ballooned > 0 && holes > 0 && initialised > 0 && v2 > 0 && grantMaps > 0 && grantCopies > 0,
                "lines \(lines), xen_version \(versionOK), vm_assist \(assistOK), TLB flushes \(flushes), time refreshes \(ticks), add_to_physmap \(placed), balloon \(ballooned), holes \(holes), VCPUOP_initialise \(initialised), grant v2 switches \(v2), grant maps \(grantMaps), grant copies \(grantCopies)")
    }

    /// Runs `count` seeded sequences of 40 steps from `base` (a migration every 8th step when
    /// `migrating`) and records the first that diverges, shrunk.
    static func runSequences(base: UInt64, count: Int, migrating: Bool) {
        for n in 0..<count {
            let seed = base &+ UInt64(n)
            var r = SplitMix(seed: seed)
            let steps = (0..<40).map { k in migrating && k % 8 == 7 ? Step.migrate : Self.randomStep(&r) }
            guard let (index, what) = Self.firstDivergence(steps) else { continue }
            let shortest = Self.shrink(Array(steps[...index]))
            let failure = Self.firstDivergence(shortest)
            Issue.record("""
                seed \(String(seed, radix: 16))\(migrating ? " with migrations" : ""): step \(index) diverged (\(what)).
                shortest reproducer (\(shortest.count) steps, diverges at \(failure.map { "\($0.index): \($0.what)" } ?? "?")):
                \(shortest.map { "  \($0)" }.joined(separator: "\n"))
                """)
            return
        }
    }

    @Test("200 seeded random sequences of 40 operations with a migration to the other side every 8: identical returns, guest frames, console lines and upcalls throughout, and identical to a world that never migrates")
    func randomSequencesWithMigrations() { Self.runSequences(base: 0x5856_4d49_4752_4100, count: 200, migrating: true) }

    @Test("2,000 seeded random sequences of 40 operations: identical returns, guest frames, console lines and upcalls")
    func randomSequences() { Self.runSequences(base: 0x5856_4456_4946_4600, count: 2_000, migrating: false) }
}
