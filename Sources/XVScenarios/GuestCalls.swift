import GuestABI
import XenABI
import XenCore

/// What a test guest does: write an argument structure into its argument page and issue the
/// hypercall, as a Linux PV-on-HVM kernel would (HYPERVISOR_event_channel_op(cmd, &op)).
extension XenWorld {
    /// The guest-physical address of the argument page (`WorldLayout.argumentPage`), where slot 0 starts.
    public var argumentAddress: UInt64 { WorldLayout.argumentPage.rawValue << guestPageShift }

    /// The argument page holds `slotSize`-byte slots; vCPUs that run at once each use their own.
    public static var slotSize: Int { 256 }

    /// The guest-physical address of argument slot `slot`.
    public func argumentAddress(slot: Int) -> UInt64 { argumentAddress + UInt64(Self.slotSize * slot) }

    func argumentSlot(_ domain: DomainID, _ slot: Int) -> UnsafeMutableRawPointer {
        ram(domain).region.hostAddress(of: WorldLayout.argumentPage)! + Self.slotSize * slot
    }

    /// Writes little-endian `fields` (offset, size, value) at argument slot `slot` (the start
    /// of the argument page by default), after zeroing `size` bytes.
    public func writeArguments(_ domain: DomainID, size: Int, _ fields: [(ABIField, UInt64)], slot: Int = 0) {
        let page = argumentSlot(domain, slot)
        page.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        for (field, value) in fields { Self.store(page + field.offset, size: field.size, value) }
    }

    /// Reads `field` (up to 8 bytes, little-endian) back from argument slot `slot` of `domain`: an OUT field a hypercall wrote.
    public func readArgument(_ domain: DomainID, _ field: ABIField, slot: Int = 0) -> UInt64 {
        let page = argumentSlot(domain, slot)
        var v: UInt64 = 0
        for i in 0..<min(field.size, 8) { v |= UInt64(page.load(fromByteOffset: field.offset + i, as: UInt8.self)) << (8 * i) }
        return v
    }

    static func store(_ p: UnsafeMutableRawPointer, size: Int, _ value: UInt64) {
        for i in 0..<min(size, 8) { p.storeBytes(of: UInt8(truncatingIfNeeded: value >> (8 * i)), toByteOffset: i, as: UInt8.self) }
    }

    /// __HYPERVISOR_event_channel_op(cmd, argument page).
    @discardableResult
    public func evtchn(_ domain: DomainID, vcpu: Int = 0, _ op: EventChannelOp, size: Int = 32, _ fields: [(ABIField, UInt64)], slot: Int = 0) -> Int64 {
        writeArguments(domain, size: size, fields, slot: slot)
        return hypercall(domain: domain, vcpu: vcpu, XenHypercallRegisters(rax: XenHypercall.eventChannelOp.rawValue, rdi: UInt64(op.rawValue),
                                                                      rsi: argumentAddress(slot: slot)))
    }

    /// __HYPERVISOR_hvm_op(op, argument page).
    @discardableResult
    public func hvm(_ domain: DomainID, vcpu: Int = 0, _ op: HVMOp, size: Int = 16, _ fields: [(ABIField, UInt64)]) -> Int64 {
        writeArguments(domain, size: size, fields)
        return hypercall(domain: domain, vcpu: vcpu, XenHypercallRegisters(rax: XenHypercall.hvmOp.rawValue, rdi: UInt64(op.rawValue), rsi: argumentAddress))
    }

    /// __HYPERVISOR_memory_op(op | start << MEMOP_EXTENT_SHIFT, argument page), with `list`
    /// (8-byte extent frames, or a batch's idxs then gpfns) at `listAddress`.
    @discardableResult
    public func memoryOp(_ domain: DomainID, vcpu: Int = 0, _ op: MemoryOp, start: UInt64 = 0, size: Int = 32, _ fields: [(ABIField, UInt64)],
                         list: [UInt64] = []) -> Int64 {
        writeArguments(domain, size: size, fields)
        let page = argumentSlot(domain, 0)
        for (i, value) in list.enumerated() { page.storeBytes(of: value.littleEndian, toByteOffset: Self.listOffset + 8 * i, as: UInt64.self) }
        return hypercall(domain: domain, vcpu: vcpu, XenHypercallRegisters(rax: XenHypercall.memoryOp.rawValue,
                                                                      rdi: UInt64(op.rawValue) | start << MemoryOpLimits.extentShift, rsi: argumentAddress))
    }

    /// Where `memoryOp` puts its list in the argument page, and where a batch's errs go.
    public static var listOffset: Int { 1024 }
    /// Where a memory_op batch's errs array goes in the argument page (byte offset).
    public static var errsOffset: Int { 3072 }
    /// The guest-physical address of `memoryOp`'s list.
    public var listAddress: UInt64 { argumentAddress + UInt64(Self.listOffset) }
    /// The guest-physical address of a batch's errs array.
    public var errsAddress: UInt64 { argumentAddress + UInt64(Self.errsOffset) }

    /// The guest writes grant entry `ref` of its own table in the format its version uses: v1
    /// flags, domid and 32-bit frame; v2 header and full_page frame. False when the table has
    /// not grown to the entry's frame.
    @discardableResult
    public func writeGrantEntry(_ domain: DomainID, ref: Int, flags: UInt16, domid: UInt16, frame: UInt64) -> Bool {
        let dom = xenDomain(domain)
        let v2 = dom.grantTableVersion == 2
        let perFrame = v2 ? 256 : 512
        guard let page = dom.grantFramePage(ref / perFrame) else { return false }
        let e = page + (ref % perFrame) * (v2 ? 16 : 8)
        e.storeBytes(of: flags, as: UInt16.self)
        e.storeBytes(of: domid, toByteOffset: 2, as: UInt16.self)
        if v2 { e.storeBytes(of: frame, toByteOffset: 8, as: UInt64.self) } else { e.storeBytes(of: UInt32(truncatingIfNeeded: frame), toByteOffset: 4, as: UInt32.self) }
        return true
    }

    /// The page the guest's `frame` shows, nil for a hole.
    public func page(_ domain: DomainID, frame: UInt64) -> UnsafeMutableRawPointer? { ram(domain).region.hostAddress(of: GuestFrameNumber(frame)) }

    /// HVM_PARAM_CALLBACK_IRQ = vector type with `vector`.
    @discardableResult
    public func setCallbackVector(_ domain: DomainID, _ vector: UInt8) -> Int64 {
        hvm(domain, .setParam, [(XenHvmParamLayout.domid, UInt64(DomainID.selfDomain.rawValue)),
                                (XenHvmParamLayout.index, UInt64(HVMParam.callbackIrq.rawValue)),
                                (XenHvmParamLayout.value, UInt64(HVMCallbackType.vector.rawValue) << 56 | UInt64(vector))])
    }

    /// alloc_unbound on `domain` for `remote`; the port or the negative errno.
    public func allocUnbound(_ domain: DomainID, remote: DomainID) -> Int64 {
        let r = evtchn(domain, .allocUnbound, [(EvtchnAllocUnboundLayout.dom, UInt64(DomainID.selfDomain.rawValue)),
                                               (EvtchnAllocUnboundLayout.remoteDom, UInt64(remote.rawValue))])
        return r == 0 ? Int64(readArgument(domain, EvtchnAllocUnboundLayout.port)) : r
    }

    /// EVTCHNOP_bind_interdomain from `vcpu` of `domain` to `remotePort` of `remote`: the local port, or the negative errno.
    public func bindInterdomain(_ domain: DomainID, remote: DomainID, remotePort: UInt32, vcpu: Int = 0) -> Int64 {
        let r = evtchn(domain, vcpu: vcpu, .bindInterdomain, [(EvtchnBindInterdomainLayout.remoteDom, UInt64(remote.rawValue)),
                                                  (EvtchnBindInterdomainLayout.remotePort, UInt64(remotePort))])
        return r == 0 ? Int64(readArgument(domain, EvtchnBindInterdomainLayout.localPort)) : r
    }

    /// EVTCHNOP_bind_ipi for `vcpu`: the port, or the negative errno.
    public func bindIPI(_ domain: DomainID, vcpu: Int) -> Int64 {
        let r = evtchn(domain, .bindIpi, [(EvtchnBindIpiLayout.vcpu, UInt64(vcpu))])
        return r == 0 ? Int64(readArgument(domain, EvtchnBindIpiLayout.port)) : r
    }

    /// EVTCHNOP_bind_virq of `virq` for `vcpu`: the port, or the negative errno.
    public func bindVIRQ(_ domain: DomainID, virq: UInt32, vcpu: Int) -> Int64 {
        let r = evtchn(domain, .bindVirq, [(EvtchnBindVirqLayout.virq, UInt64(virq)), (EvtchnBindVirqLayout.vcpu, UInt64(vcpu))])
        return r == 0 ? Int64(readArgument(domain, EvtchnBindVirqLayout.port)) : r
    }

    /// EVTCHNOP_send on `port` from `vcpu`: 0 or the negative errno.
    @discardableResult
    public func send(_ domain: DomainID, port: UInt32, vcpu: Int = 0) -> Int64 {
        evtchn(domain, vcpu: vcpu, .send, [(EvtchnSendLayout.port, UInt64(port))])
    }

    /// EVTCHNOP_unmask of `port` from `vcpu`: 0 or the negative errno.
    @discardableResult
    public func unmask(_ domain: DomainID, port: UInt32, vcpu: Int = 0) -> Int64 {
        evtchn(domain, vcpu: vcpu, .unmask, [(EvtchnUnmaskLayout.port, UInt64(port))])
    }

    /// EVTCHNOP_close of `port`: 0 or the negative errno.
    @discardableResult
    public func close(_ domain: DomainID, port: UInt32) -> Int64 {
        evtchn(domain, .close, [(EvtchnCloseLayout.port, UInt64(port))])
    }

    /// EVTCHNOP_status: (status, vcpu, u word 0, u word 1) or the negative errno in `status`.
    public func status(_ domain: DomainID, port: UInt32, dom: DomainID = .selfDomain) -> (Int64, UInt32, UInt64) {
        let r = evtchn(domain, .status, [(EvtchnStatusLayout.dom, UInt64(dom.rawValue)), (EvtchnStatusLayout.port, UInt64(port))])
        guard r == 0 else { return (r, 0, 0) }
        return (Int64(readArgument(domain, EvtchnStatusLayout.status)), UInt32(readArgument(domain, EvtchnStatusLayout.vcpu)),
                readArgument(domain, EvtchnStatusLayout.u))
    }

    // MARK: - Guest-side views of shared_info

    /// The host address of `domain`'s shared_info page (fixed for the domain's life).
    public func sharedInfo(_ domain: DomainID) -> UnsafeMutableRawPointer { xenDomain(domain).sharedInfoPage }

    /// Whether `port`'s bit in shared_info's 2-level evtchn_pending array is set.
    public func isPending(_ domain: DomainID, port: UInt32) -> Bool {
        let w = sharedInfo(domain).load(fromByteOffset: SharedInfoLayout.evtchnPending.offset(ofElement: Int(port / 64)), as: UInt64.self)
        return w & (1 << UInt64(port % 64)) != 0
    }

    /// Sets or clears `port`'s bit in shared_info's evtchn_mask array, as the guest does (a plain read-modify-write, not atomic).
    public func setMasked(_ domain: DomainID, port: UInt32, _ masked: Bool) {
        let at = SharedInfoLayout.evtchnMask.offset(ofElement: Int(port / 64))
        var w = sharedInfo(domain).load(fromByteOffset: at, as: UInt64.self)
        if masked { w |= 1 << UInt64(port % 64) } else { w &= ~(1 << UInt64(port % 64)) }
        sharedInfo(domain).storeBytes(of: w, toByteOffset: at, as: UInt64.self)
    }

    /// The vCPU's vcpu_info, wherever it is (shared_info, or where the guest registered it).
    public func vcpuInfo(_ domain: DomainID, vcpu: Int) -> UnsafeMutableRawPointer { xenDomain(domain).vcpuInfoPointer(vcpu)! }

    /// Whether `vcpu`'s evtchn_upcall_pending byte is set.
    public func upcallPending(_ domain: DomainID, vcpu: Int) -> Bool {
        vcpuInfo(domain, vcpu: vcpu).load(fromByteOffset: VcpuInfoLayout.evtchnUpcallPending.offset, as: UInt8.self) != 0
    }

    /// What a Linux upcall handler does for the 2-level ABI, in the guest: clear
    /// evtchn_upcall_pending, take the selector, and clear the pending bits it names.
    public func acknowledgeEvents(_ domain: DomainID, vcpu: Int) {
        let si = sharedInfo(domain)
        let vi = vcpuInfo(domain, vcpu: vcpu)
        vi.storeBytes(of: 0, toByteOffset: VcpuInfoLayout.evtchnUpcallPending.offset, as: UInt8.self)
        var sel = vi.load(fromByteOffset: VcpuInfoLayout.evtchnPendingSel.offset, as: UInt64.self)
        vi.storeBytes(of: 0, toByteOffset: VcpuInfoLayout.evtchnPendingSel.offset, as: UInt64.self)
        while sel != 0 {
            let w = sel.trailingZeroBitCount
            sel &= sel - 1
            si.storeBytes(of: 0, toByteOffset: SharedInfoLayout.evtchnPending.offset(ofElement: w), as: UInt64.self)
        }
    }
}
