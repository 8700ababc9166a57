import CGuestAtomics
import GuestABI
import XenABI
import ViridianABI
import XenCore
import XenNative
import XenViridian

/// The operations `xv bench` and Benchmarks/ measure, each prepared identically on a native and
/// a translated world (two domains of two vCPUs, callback vectors 0x40 and 0x41). `run*` is
/// the measured part; `reset*` puts the guest back in the starting state the way a guest's
/// upcall handler would, outside the measurement.
public enum BenchOperation: String, CaseIterable, Sendable {
    /// EVTCHNOP_send on an interdomain channel, end to end: from domain 1's hypercall on vCPU 0
    /// to domain 2's pending bit, selector, upcall_pending and upcall on vCPU 0.
    case sendInterdomain = "evtchn_send_interdomain"
    /// EVTCHNOP_send on an IPI channel from vCPU 0 to vCPU 1 of domain 1, up to vCPU 1's upcall.
    case sendIPI = "evtchn_send_ipi"
    /// EVTCHNOP_unmask on vCPU 0 of a masked, pending port bound to vCPU 1: the upcall on vCPU 1.
    case unmaskPending = "evtchn_unmask_pending"
    /// Upcall delivery on the receiving side only: an event arrives for domain 2's port
    /// (native: Xen sets it pending; translated: the hypervisor has set the port's SynIC event
    /// flag and the SINT interrupt reaches the layer) up to the guest's upcall.
    case upcallDelivery = "upcall_delivery"
    /// __HYPERVISOR_set_timer_op for a deadline a second ahead (native: the embedder's timer
    /// armed; translated: synthetic timer 0 programmed).
    case setTimerOp = "set_timer_op"
    /// VCPUOP_set_singleshot_timer with a deadline already past: VIRQ_TIMER to the guest's
    /// upcall on vCPU 0 of domain 1 (xen_shinfo_test's "deadline in the past" stage).
    case singleshotTimerDelivery = "singleshot_timer_virq"
    /// SCHEDOP_yield (translated: one HvCallNotifyLongSpinWait).
    case schedYield = "sched_yield"
    /// HVMOP_flush_tlbs (translated: one HvCallFlushVirtualAddressSpace).
    case tlbFlush = "hvm_flush_tlbs"
    /// The embedder's tick re-anchoring vCPU 0's vcpu_time_info (translated: from the
    /// reference TSC page and HV_X64_MSR_TIME_REF_COUNT).
    case pvclockUpdate = "pvclock_update"
    /// __HYPERVISOR_multicall of 8 EVTCHNOP_send entries on an IPI channel to vCPU 1: the
    /// first makes the port pending and raises the upcall, the other seven find it pending (one
    /// upcall, one Viridian call for the batch).
    case multicall8 = "multicall_8_sends"
    /// EVTCHNOP_send from vCPU 0 to an IPI port of vCPU 1, which is parked in SCHEDOP_poll on
    /// that port: the send, the event's upcall and the poller's wake callback.
    case pollWakeup = "sched_poll_wakeup"
    /// GNTTABOP_map_grant_ref of another domain's page, then GNTTABOP_unmap_grant_ref of it.
    case grantMapUnmap = "grant_map_unmap"
    /// GNTTABOP_copy of 4 KiB from another domain's grant into an own frame.
    case grantCopy = "grant_copy_4k"

    /// A one-line description of what the operation measures, for `xv bench`'s table and JSON.
    public var summary: String {
        switch self {
        case .sendInterdomain: return "EVTCHNOP_send, interdomain, sender hypercall to receiver upcall"
        case .sendIPI: return "EVTCHNOP_send, IPI channel to another vCPU"
        case .unmaskPending: return "EVTCHNOP_unmask of a pending port on another vCPU"
        case .upcallDelivery: return "event arrival to guest upcall (receiving side)"
        case .setTimerOp: return "set_timer_op, a deadline one second ahead"
        case .singleshotTimerDelivery: return "VCPUOP_set_singleshot_timer in the past, to the VIRQ_TIMER upcall"
        case .schedYield: return "SCHEDOP_yield"
        case .tlbFlush: return "HVMOP_flush_tlbs"
        case .pvclockUpdate: return "vcpu_time_info re-anchored (the embedder's tick)"
        case .multicall8: return "multicall of 8 EVTCHNOP_send on one IPI channel"
        case .pollWakeup: return "EVTCHNOP_send to a vCPU parked in SCHEDOP_poll on the port, to its wake callback"
        case .grantMapUnmap: return "GNTTABOP_map_grant_ref of another domain's page, then unmap_grant_ref"
        case .grantCopy: return "GNTTABOP_copy of 4 KiB from another domain's grant into an own frame"
        }
    }

    /// Upcalls one operation raises on each side.
    public var upcallsPerOperation: Int {
        switch self {
        case .sendInterdomain, .sendIPI, .unmaskPending, .upcallDelivery, .singleshotTimerDelivery, .multicall8, .pollWakeup: return 1
        case .setTimerOp, .schedYield, .tlbFlush, .pvclockUpdate, .grantMapUnmap, .grantCopy: return 0
        }
    }

    /// Parked vCPUs one operation wakes (`XenVCPUWaker.wake`) on each side.
    public var wakesPerOperation: Int { self == .pollWakeup ? 1 : 0 }

    /// Viridian hypercalls one operation issues on the translated side (MSR accesses are not
    /// hypercalls).
    public var viridianCallsPerOperation: Int {
        switch self {
        case .upcallDelivery, .setTimerOp, .singleshotTimerDelivery, .pvclockUpdate: return 0
        case .sendInterdomain, .sendIPI, .unmaskPending, .schedYield, .tlbFlush, .multicall8, .pollWakeup: return 1
        // HvCallMapGpaPages and HvCallUnmapGpaPages: of the grantee's frame, or of the copy window.
        case .grantMapUnmap, .grantCopy: return 2
        }
    }
}

/// One operation, set up on both sides.
public final class BenchPair {
    /// The operation this pair measures.
    public let operation: BenchOperation
    /// The worlds' domains, vCPUs and event-channel ABI (`xv bench`'s scaling runs).
    public let shape: BenchWorldShape
    /// The native world: `shape`'s domains and vCPUs (two of each by default), set up for `operation`.
    public let native: NativeWorld
    /// The translated world, set up exactly as `native`.
    public let translated: TranslatedWorld
    let registers: XenHypercallRegisters
    let port: UInt32
    let vcpu: Int
    let target: DomainID
    let targetVCPU: Int
    let flagWord: UnsafeMutableRawPointer?
    let flagBit: UInt64
    // What the timed calls reach, held without reference counting (the worlds above own
    // them), so that the harness adds no retain or release to either side's measurement.
    let nativeSystem: Unmanaged<XenNativeSystem<GuestRAMRegion, UpcallRecorder>>
    let senderLayer: Unmanaged<LayerInterruptRouter.Layer>
    let receiverLayer: Unmanaged<LayerInterruptRouter.Layer>
    /// Wakes of parked vCPUs on each side (pollWakeup).
    public let nativeWakes = WakeCounter(), translatedWakes = WakeCounter()

    /// Builds both worlds of `shape` (the standard two domains of two vCPUs by default) and prepares them identically for `operation`: callback vectors, FIFO event channels when the shape has them, the channel or grant entries it uses, the clock advanced to TSC 2,500,000,000 (one second), the argument structures and the hypercall registers; then both sides are reset.
    public init(_ operation: BenchOperation, shape: BenchWorldShape = .standard) {
        self.operation = operation
        self.shape = shape
        native = shape.makeNative()
        translated = shape.makeTranslated()
        nativeSystem = .passUnretained(native.system)
        senderLayer = .passUnretained(translated.layer(DomainID(1)))
        receiverLayer = .passUnretained(translated.layer(DomainID(2)))
        var port: UInt32 = 0
        var cmd = EventChannelOp.send
        var target = DomainID(2)
        var targetVCPU = 0
        for w in [native as any XenWorld, translated] {
            _ = w.setCallbackVector(DomainID(1), 0x40)
            _ = w.setCallbackVector(DomainID(2), 0x41)
            shape.prepare(w)
            switch operation {
            case .sendInterdomain, .upcallDelivery:
                let remote = w.allocUnbound(DomainID(2), remote: DomainID(1))
                let local = w.bindInterdomain(DomainID(1), remote: DomainID(2), remotePort: UInt32(remote))
                w.acknowledgeEvents(DomainID(1), vcpu: 0)
                port = operation == .sendInterdomain ? UInt32(local) : UInt32(remote)
            case .sendIPI, .multicall8, .pollWakeup:
                port = UInt32(w.bindIPI(DomainID(1), vcpu: shape.ipiVCPU))
                target = DomainID(1); targetVCPU = shape.ipiVCPU
            case .unmaskPending:
                port = UInt32(w.bindIPI(DomainID(1), vcpu: shape.ipiVCPU))
                cmd = .unmask
                target = DomainID(1); targetVCPU = shape.ipiVCPU
            case .singleshotTimerDelivery:
                port = UInt32(w.bindVIRQ(DomainID(1), virq: VIRQ.timer.rawValue, vcpu: 0))
                target = DomainID(1); targetVCPU = 0
            case .setTimerOp, .schedYield, .tlbFlush, .pvclockUpdate:
                target = DomainID(1); targetVCPU = 0
            case .grantMapUnmap, .grantCopy:
                // Domain 2 grants frame 40 (ref 8, writable) and frame 41 (ref 9) to domain 1.
                for (ref, frame) in [(8, UInt64(40)), (9, 41)] {
                    w.writeGrantEntry(DomainID(2), ref: ref, flags: GrantEntryFlags.permitAccess.rawValue, domid: 1, frame: frame)
                }
                target = DomainID(1); targetVCPU = 0
            }
            w.advanceTime(toTSC: 2_500_000_000)
            w.writeArguments(DomainID(1), size: 4, [(EvtchnSendLayout.port, UInt64(port))])
            if operation == .multicall8 {
                // Eight entries in the argument page's second half, each EVTCHNOP_send of the
                // port written at its start.
                let list = (WorldLayout.argumentPage.rawValue << guestPageShift) + 2048
                for i in 0..<8 {
                    let base = GuestPhysicalAddress(list + UInt64(64 * i))
                    _ = w.ram(DomainID(1)).region.store(XenHypercall.eventChannelOp.rawValue, at: base)
                    _ = w.ram(DomainID(1)).region.store(UInt64(EventChannelOp.send.rawValue), at: GuestPhysicalAddress(base.rawValue + 16))
                    _ = w.ram(DomainID(1)).region.store(WorldLayout.argumentPage.rawValue << guestPageShift, at: GuestPhysicalAddress(base.rawValue + 24))
                }
            }
            if operation == .pollWakeup {
                // sched_poll at byte 512 of the argument page, its one port at byte 600.
                let page = WorldLayout.argumentPage.rawValue << guestPageShift
                _ = w.ram(DomainID(1)).region.store(page + 600, at: GuestPhysicalAddress(page + 512 + UInt64(SchedPollLayout.ports.offset)))
                _ = w.ram(DomainID(1)).region.store(UInt32(1), at: GuestPhysicalAddress(page + 512 + UInt64(SchedPollLayout.nrPorts.offset)))
                _ = w.ram(DomainID(1)).region.store(port, at: GuestPhysicalAddress(page + 600))
                w.xenDomain(DomainID(1)).waker = w === native ? nativeWakes : translatedWakes
            }
            if operation == .grantMapUnmap {
                // map_grant_ref at slot 0 (ref 8 of domain 2 at frame 30), unmap_grant_ref at slot 1
                // (the handle the map gets: the maptrack hands the freed one out again).
                w.writeArguments(DomainID(1), size: 32, [(GnttabMapGrantRefLayout.hostAddr, 30 << 12), (GnttabMapGrantRefLayout.flags, UInt64(GrantMapFlags.hostMap.rawValue)),
                                                         (GnttabMapGrantRefLayout.ref, 8), (GnttabMapGrantRefLayout.dom, 2)])
                w.writeArguments(DomainID(1), size: 24, [(GnttabUnmapGrantRefLayout.hostAddr, 30 << 12), (GnttabUnmapGrantRefLayout.handle, 0)], slot: 1)
            }
            if operation == .grantCopy {
                w.writeArguments(DomainID(1), size: 40, [(GnttabCopyLayout.sourceUGmfn, 9), (GnttabCopyLayout.sourceDomid, 2), (GnttabCopyLayout.destUGmfn, 25),
                                                         (GnttabCopyLayout.destDomid, UInt64(DomainID.selfDomain.rawValue)), (GnttabCopyLayout.len, 4096),
                                                         (GnttabCopyLayout.flags, UInt64(GrantCopyFlags.sourceGref.rawValue))])
            }
            if operation == .singleshotTimerDelivery {
                // A deadline long past (1 ns), flags 0.
                w.writeArguments(DomainID(1), size: 16, [(VcpuSetSingleshotTimerLayout.timeoutAbsNs, 1)])
            }
        }
        self.port = port
        self.vcpu = 0
        self.target = target
        self.targetVCPU = targetVCPU
        let argument = WorldLayout.argumentPage.rawValue << guestPageShift
        switch operation {
        case .setTimerOp:
            registers = XenHypercallRegisters(rax: XenHypercall.setTimerOp.rawValue, rdi: 2_000_000_000)
        case .singleshotTimerDelivery:
            registers = XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(VCPUOp.setSingleshotTimer.rawValue), rsi: 0, rdx: argument)
        case .schedYield:
            registers = XenHypercallRegisters(rax: XenHypercall.schedOp.rawValue, rdi: UInt64(SchedulerOp.yield.rawValue))
        case .tlbFlush:
            registers = XenHypercallRegisters(rax: XenHypercall.hvmOp.rawValue, rdi: UInt64(HVMOp.flushTlbs.rawValue))
        case .multicall8:
            registers = XenHypercallRegisters(rax: XenHypercall.multicall.rawValue, rdi: argument + 2048, rsi: 8)
        case .grantMapUnmap:
            registers = XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.mapGrantRef.rawValue), rsi: argument, rdx: 1)
        case .grantCopy:
            registers = XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.copy.rawValue), rsi: argument, rdx: 1)
        default:
            registers = XenHypercallRegisters(rax: XenHypercall.eventChannelOp.rawValue, rdi: UInt64(cmd.rawValue), rsi: argument)
        }
        if operation == .upcallDelivery, let (vp, sint, flag) = translated.layer(DomainID(2)).eventFlag(of: port) {
            let sief = translated.ram(DomainID(2)).region.hostAddress(of: GuestFrameNumber(WorldLayout.layerFrames(guestFrames: shape.guestFrames).rawValue + UInt64(3 * vp + 1)))!
            flagWord = sief + sint * 256 + (flag / 64) * 8
            flagBit = 1 << UInt64(flag % 64)
        } else {
            flagWord = nil
            flagBit = 0
        }
        resetNative()
        resetTranslated()
    }

    /// The measured operation, native side. Returns RAX (0).
    @inline(__always)
    public func runNative() -> Int64 {
        if operation == .pvclockUpdate {
            return nativeSystem._withUnsafeGuaranteedRef { system in system.withDomain(DomainID(1)) { $0.refreshTime(vcpu: 0, fabric: system) } ?? false } ? 0 : -1
        }
        if operation == .upcallDelivery {
            let port = port
            nativeSystem._withUnsafeGuaranteedRef { system in _ = system.withDomain(target) { system.raise($0, port: port) } }
            return 0
        }
        let (vcpu, registers) = (vcpu, registers)
        if operation == .grantMapUnmap {
            let unmap = Self.unmapRegisters
            return nativeSystem._withUnsafeGuaranteedRef { $0.hypercall(domain: DomainID(1), vcpu: vcpu, registers) | $0.hypercall(domain: DomainID(1), vcpu: vcpu, unmap) }
        }
        return nativeSystem._withUnsafeGuaranteedRef { $0.hypercall(domain: DomainID(1), vcpu: vcpu, registers) }
    }

    /// The measured operation, translated side. Returns RAX (0).
    @inline(__always)
    public func runTranslated() -> Int64 {
        if operation == .pvclockUpdate {
            return senderLayer._withUnsafeGuaranteedRef { $0.domain.refreshTime(vcpu: 0, fabric: $0) } ? 0 : -1
        }
        if operation == .upcallDelivery {
            flagWord!.storeBytes(of: flagWord!.load(as: UInt64.self) | flagBit, as: UInt64.self)
            receiverLayer._withUnsafeGuaranteedRef { $0.interrupt(vp: 0, vector: 0x41) }
            return 0
        }
        let (vcpu, registers) = (vcpu, registers)
        if operation == .grantMapUnmap {
            let unmap = Self.unmapRegisters
            return senderLayer._withUnsafeGuaranteedRef { $0.hypercall(vcpu: vcpu, registers) | $0.hypercall(vcpu: vcpu, unmap) }
        }
        return senderLayer._withUnsafeGuaranteedRef { $0.hypercall(vcpu: vcpu, registers) }
    }

    /// grantMapUnmap's second call: unmap_grant_ref from argument slot 1.
    static var unmapRegisters: XenHypercallRegisters {
        XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.unmapGrantRef.rawValue),
                              rsi: (WorldLayout.argumentPage.rawValue << guestPageShift) + 256, rdx: 1)
    }

    /// Puts the native guest back in the operation's starting state (events acknowledged, and the port re-pended or the poller re-parked where the operation needs it); not measured.
    public func resetNative() { reset(native) }
    /// The same reset on the translated world.
    public func resetTranslated() { reset(translated) }

    func reset(_ w: any XenWorld) {
        acknowledge(w)
        if operation == .pollWakeup {
            // The port's event is taken, and vCPU 1 polls it again (it parks: nothing pending).
            let at = SharedInfoLayout.evtchnPending.offset(ofElement: Int(port / 64))
            let si = w.sharedInfo(target)
            si.storeBytes(of: si.load(fromByteOffset: at, as: UInt64.self) & ~(1 << UInt64(port % 64)), toByteOffset: at, as: UInt64.self)
            let poll = (WorldLayout.argumentPage.rawValue << guestPageShift) + 512
            _ = w.hypercall(domain: target, vcpu: targetVCPU, XenHypercallRegisters(rax: XenHypercall.schedOp.rawValue, rdi: UInt64(SchedulerOp.poll.rawValue), rsi: poll))
        }
        if operation == .unmaskPending {
            // The port is pending and masked again, as if an event had arrived while masked.
            w.setMasked(target, port: port, true)
            let at = SharedInfoLayout.evtchnPending.offset(ofElement: Int(port / 64))
            let si = w.sharedInfo(target)
            si.storeBytes(of: si.load(fromByteOffset: at, as: UInt64.self) | 1 << UInt64(port % 64), toByteOffset: at, as: UInt64.self)
        }
    }

    /// Upcalls each side has delivered to the target vCPU so far.
    public var nativeUpcalls: Int { native.recorder.count(domain: target, vcpu: targetVCPU) }
    /// Upcalls the translated side has delivered to the target vCPU so far.
    public var translatedUpcalls: Int { translated.recorder.count(domain: target, vcpu: targetVCPU) }
    /// Whether the poller is parked on each side (pollWakeup, after a reset).
    public var parked: (native: Bool, translated: Bool) {
        (native.xenDomain(target).parkRequest(targetVCPU) != nil, translated.xenDomain(target).parkRequest(targetVCPU) != nil)
    }
    /// Viridian hypercalls the translated side has issued so far.
    public var viridianHypercalls: Int { translated.viridianHypercalls }
}

/// Counts `XenVCPUWaker.wake` calls (a relaxed atomic add; no allocation).
public final class WakeCounter: XenVCPUWaker {
    private let count = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    /// A counter at zero.
    public init() { count.initialize(to: 0) }
    deinit { count.deallocate() }
    /// Counts one wake; safe from any thread, with a port lock held (it only adds).
    public func wake(domain: DomainID, vcpu: Int) { _ = xv_fetch_add_relaxed_u64(count, 1) }
    /// Wakes counted so far (a relaxed load).
    public var wakes: Int { Int(xv_load_relaxed_u64(count)) }
}
