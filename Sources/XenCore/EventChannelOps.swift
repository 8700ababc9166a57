import GuestABI
import XenABI

/// __HYPERVISOR_event_channel_op: every EVTCHNOP, with Xen's argument checks, errno choices
/// and write-backs (xen-project/xen xen/common/event_channel.c, 4.17), over a fabric for what
/// crosses domains and vCPUs. Argument structures are read at the offsets of
/// `Specs/xen/structs.tbl`; an unreadable one is -EFAULT before anything changes, an
/// unwritable result is -EFAULT after the operation took effect (as in Xen, whose
/// copy_to_guest comes last).
extension XenDomain {
    /// `cmd` is the C `int cmd` of do_event_channel_op; `arg` the guest's pointer.
    @inlinable public func eventChannelOp<F: EventFabric>(_ cmd: UInt32, arg: UInt64, vcpu: Int, fabric: F) -> Int64 where F.Memory == Memory {
        let op = EventChannelOp(rawValue: cmd)
        // Xen copies the whole structure in before it looks at a field: a structure that runs
        // into memory the guest does not own is -EFAULT with nothing done, even where the
        // fields read first are readable.
        if let size = Self.argumentSize(op), !memory.argumentReadable(at: arg, size: size) { return XenErrno.efault.hypercallReturnValue }
        switch op {
        case .send: return Self.result(send(arg, vcpu: vcpu, fabric: fabric))
        case .unmask: return Self.result(unmaskOp(arg, vcpu: vcpu, fabric: fabric))
        case .status: return Self.result(status(arg, fabric: fabric))
        // Binding changes hold the domain's event lock (Xen's d->event_lock).
        case .allocUnbound: return Self.result(withEventLock { allocUnbound(arg, fabric: fabric) })
        case .bindInterdomain: return Self.result(withEventLock { bindInterdomain(arg, vcpu: vcpu, fabric: fabric) })
        case .bindVirq: return Self.result(withEventLock { bindVIRQ(arg) })
        case .bindIpi: return Self.result(withEventLock { bindIPI(arg) })
        case .close: return Self.result(withEventLock { closeOp(arg, fabric: fabric) })
        case .bindVcpu: return Self.result(withEventLock { bindVCPU(arg, fabric: fabric) })
        case .reset: return Self.result(withEventLock { resetOp(arg, vcpu: vcpu, fabric: fabric) })
        case .initControl: return Self.result(withEventLock { initControl(arg) })
        case .expandArray: return Self.result(withEventLock { expandArray(arg, vcpu: vcpu, fabric: fabric) })
        case .setPriority: return Self.result(withEventLock { setPriority(arg) })
        default:
            // EVTCHNOP_bind_pirq and unknown numbers: the spec table's declared answer.
            if case .rejected(let errno) = op.disposition { return errno.hypercallReturnValue }
            return XenErrno.enosys.hypercallReturnValue
        }
    }

    /// The size of the structure an EVTCHNOP copies in, for those with more than the one field
    /// their handler reads first (send, unmask and close read their only field).
    @inline(__always)
    @inlinable static func argumentSize(_ op: EventChannelOp) -> Int? {
        switch op {
        case .allocUnbound: return EvtchnAllocUnboundLayout.size
        case .bindInterdomain: return EvtchnBindInterdomainLayout.size
        case .bindVirq: return EvtchnBindVirqLayout.size
        case .bindIpi: return EvtchnBindIpiLayout.size
        case .status: return EvtchnStatusLayout.size
        case .bindVcpu: return EvtchnBindVcpuLayout.size
        case .reset: return EvtchnResetLayout.size
        case .initControl: return EvtchnInitControlLayout.size
        case .expandArray: return EvtchnExpandArrayLayout.size
        case .setPriority: return EvtchnSetPriorityLayout.size
        default: return nil
        }
    }

    /// Runs a binding change with the domain's event lock held.
    @inline(__always)
    @inlinable func withEventLock<R>(_ body: () -> R) -> R {
        lockEvents()
        defer { unlockEvents() }
        return body()
    }

    @inline(__always)
    @inlinable static func result(_ outcome: LayerOutcome) -> Int64 {
        outcome == .ok ? 0 : (outcome.xenErrno ?? .eio).hypercallReturnValue
    }

    /// Resolves the `dom` field of alloc_unbound, status and reset: DOMID_SELF or the caller's
    /// own id is the caller. Another domain is -ESRCH when it does not exist and -EPERM when it
    /// does (Xen's XSM_TARGET check refuses a domU). Xen looks at the other domain's port
    /// before refusing; neither side here reads another domain's state for a call that cannot
    /// succeed (documented in Docs/Layer.md).
    @inline(__always)
    @inlinable func resolveOwnDomain<F: EventFabric>(_ dom: UInt16, fabric: F) -> LayerOutcome where F.Memory == Memory {
        let d = DomainID(dom)
        if d == .selfDomain || d == id { return .ok }
        return fabric.domainExists(d) ? .permissionDenied : .noSuchDomain
    }

    // MARK: - Fast path

    /// How often a send reads its port again when the binding it read was changed under it
    /// (a close or rebind of either end on another thread) before it gives up and drops the
    /// event, as a send on a port being closed may be.
    @inlinable static var sendRetries: Int { 64 }

    /// EVTCHNOP_send (evtchn_send): interdomain → the peer through the fabric; IPI → pending on
    /// the bound vCPU; unbound → dropped silently; anything else -EINVAL. The port's binding
    /// is read from its published word; the fabric is called with no lock held, and tells when
    /// the binding it was given no longer holds (then the port is read again: the send takes
    /// effect on whatever the port is bound to by then, or fails as Xen's would).
    @inline(__always)
    @inlinable func send<F: EventFabric>(_ arg: UInt64, vcpu: Int, fabric: F) -> LayerOutcome where F.Memory == Memory {
        guard let port = memory.argument(UInt32.self, at: arg, EvtchnSendLayout.port) else { return .badAddress }
        guard isValid(port) else { return .portInvalid }
        for _ in 0..<Self.sendRetries {
            // The binding as published: an interdomain send needs no lock of its own port (the
            // fabric checks the far end under that port's lock, and tells when it has moved).
            let c = binding(port)
            switch c.state {
            case .interdomain:
                if let outcome = fabric.send(self, port: port, channel: c, from: vcpu) { return outcome }
            case .ipi:
                // Pending under the port's lock, so a close cannot free it in between.
                lockChannel(port)
                let still = channelPointer(port).pointee.state == .ipi
                let target = still ? setPendingLocked(port) : nil
                unlockChannel(port)
                guard still else { continue }
                if let target { fabric.raiseUpcall(self, vcpu: target, from: vcpu) }
                return .ok
            case .unbound:
                return .ok
            default:
                return .portInvalid
            }
        }
        return .ok
    }

    /// EVTCHNOP_unmask (evtchn_unmask): any valid port, bound or not.
    @inline(__always)
    @inlinable func unmaskOp<F: EventFabric>(_ arg: UInt64, vcpu: Int, fabric: F) -> LayerOutcome where F.Memory == Memory {
        guard let port = memory.argument(UInt32.self, at: arg, EvtchnUnmaskLayout.port) else { return .badAddress }
        guard isValid(port) else { return .portInvalid }
        lockChannel(port)
        let target = unmaskLocked(port)
        unlockChannel(port)
        if let target { fabric.raiseUpcall(self, vcpu: target, from: vcpu) }
        return .ok
    }

    // MARK: - Binding (the caller holds the event lock)

    @inlinable func allocUnbound<F: EventFabric>(_ arg: UInt64, fabric: F) -> LayerOutcome where F.Memory == Memory {
        guard let dom = memory.argument(UInt16.self, at: arg, EvtchnAllocUnboundLayout.dom),
              let remoteDom = memory.argument(UInt16.self, at: arg, EvtchnAllocUnboundLayout.remoteDom) else { return .badAddress }
        let own = resolveOwnDomain(dom, fabric: fabric)
        guard own == .ok else { return own }
        guard let port = allocatePort() else { return .portsExhausted }
        // Xen does not check that remote_dom exists: it may be created later.
        let remote = DomainID(remoteDom) == .selfDomain ? id : DomainID(remoteDom)
        bind(port, state: .unbound, remoteDomain: remote)
        let offered = fabric.offer(self, port: port, to: remote)
        guard offered == .ok else {
            release(port)
            return offered
        }
        return memory.setArgument(port, at: arg, EvtchnAllocUnboundLayout.port) ? .ok : .badAddress
    }

    @inlinable func bindInterdomain<F: EventFabric>(_ arg: UInt64, vcpu: Int, fabric: F) -> LayerOutcome where F.Memory == Memory {
        guard let remoteDom = memory.argument(UInt16.self, at: arg, EvtchnBindInterdomainLayout.remoteDom),
              let remotePort = memory.argument(UInt32.self, at: arg, EvtchnBindInterdomainLayout.remotePort) else { return .badAddress }
        let remote = DomainID(remoteDom) == .selfDomain ? id : DomainID(remoteDom)
        guard remote == id || fabric.domainExists(remote) else { return .noSuchDomain }
        guard let port = allocatePort() else { return .portsExhausted }
        // The fabric binds both ends (the local one through bindInterdomain).
        let connected = fabric.connect(self, localPort: port, to: remote, remotePort: remotePort)
        guard connected == .ok else {
            releaseAllocation(port)
            return connected
        }
        // Xen marks the new local port pending, in case the remote end signalled before the
        // bind (evtchn_bind_interdomain).
        lockChannel(port)
        let target = channelPointer(port).pointee.state == .interdomain ? setPendingLocked(port) : nil
        unlockChannel(port)
        if let target { fabric.raiseUpcall(self, vcpu: target, from: vcpu) }
        return memory.setArgument(port, at: arg, EvtchnBindInterdomainLayout.localPort) ? .ok : .badAddress
    }

    /// Xen `virq_is_global`: every VIRQ but TIMER, DEBUG, XENOPROF and XENPMU is per-domain and
    /// bound on vCPU 0; the x86 arch VIRQs are global.
    @inlinable static func isGlobal(virq: UInt32) -> Bool {
        switch VIRQ(rawValue: virq) {
        case .timer, .debug, .xenoprof, .xenpmu: return false
        default: return true
        }
    }

    @inlinable func bindVIRQ(_ arg: UInt64) -> LayerOutcome {
        guard let virq = memory.argument(UInt32.self, at: arg, EvtchnBindVirqLayout.virq),
              let vcpu = memory.argument(UInt32.self, at: arg, EvtchnBindVirqLayout.vcpu) else { return .badAddress }
        guard virq < XenVIRQLimits.count else { return .invalidArgument }
        guard !Self.isGlobal(virq: virq) || vcpu == 0 else { return .invalidArgument }
        guard vcpu < UInt32(vcpuCount) else { return .noSuchVcpu }
        guard vcpus[Int(vcpu)].virqPorts[Int(virq)] == 0 else { return .alreadyExists }
        guard let port = allocatePort() else { return .portsExhausted }
        bind(port, state: .virq, notifyVCPU: Int(vcpu), virq: UInt8(virq))
        vcpus[Int(vcpu)].virqPorts[Int(virq)] = port
        return memory.setArgument(port, at: arg, EvtchnBindVirqLayout.port) ? .ok : .badAddress
    }

    @inlinable func bindIPI(_ arg: UInt64) -> LayerOutcome {
        guard let vcpu = memory.argument(UInt32.self, at: arg, EvtchnBindIpiLayout.vcpu) else { return .badAddress }
        guard vcpu < UInt32(vcpuCount) else { return .noSuchVcpu }
        guard let port = allocatePort() else { return .portsExhausted }
        bind(port, state: .ipi, notifyVCPU: Int(vcpu))
        return memory.setArgument(port, at: arg, EvtchnBindIpiLayout.port) ? .ok : .badAddress
    }

    @inlinable func bindVCPU<F: EventFabric>(_ arg: UInt64, fabric: F) -> LayerOutcome where F.Memory == Memory {
        guard let port = memory.argument(UInt32.self, at: arg, EvtchnBindVcpuLayout.port),
              let vcpu = memory.argument(UInt32.self, at: arg, EvtchnBindVcpuLayout.vcpu) else { return .badAddress }
        guard vcpu < UInt32(vcpuCount) else { return .noSuchVcpu }
        guard isValid(port) else { return .portInvalid }
        let changed: LayerOutcome? = withChannel(port) {
            switch $0.state {
            case .virq:
                guard Self.isGlobal(virq: UInt32($0.virq)) else { return .portInvalid }
                $0.notifyVCPU = UInt16(vcpu)
                return nil
            case .unbound, .interdomain:
                $0.notifyVCPU = UInt16(vcpu)
                return .ok
            default:
                return .portInvalid
            }
        }
        if changed == .ok { fabric.notifyVCPUChanged(self, port: port) }
        return changed == .portInvalid ? .portInvalid : .ok
    }

    // MARK: - Close, status, reset

    @inlinable func closeOp<F: EventFabric>(_ arg: UInt64, fabric: F) -> LayerOutcome where F.Memory == Memory {
        guard let port = memory.argument(UInt32.self, at: arg, EvtchnCloseLayout.port) else { return .badAddress }
        return close(port, fabric: fabric)
    }

    /// Xen `evtchn_close`. The caller holds the event lock. A peer may bind or close the other
    /// end meanwhile (under this port's lock), so an unbound port is freed only while it is
    /// still unbound, and an interdomain one is left to the fabric, which frees it under the
    /// locks that change both ends together.
    @inlinable func close<F: EventFabric>(_ port: UInt32, fabric: F) -> LayerOutcome where F.Memory == Memory {
        guard isValid(port) else { return .portInvalid }
        while true {
            let c = channel(port)
            switch c.state {
            case .free, .reserved:
                return .portInvalid
            case .unbound:
                let freed = withChannel(port) {
                    guard $0.state == .unbound else { return false }
                    freeLocked(port)
                    return true
                }
                guard freed else { continue }
                fabric.withdraw(self, port: port)
            case .virq:
                let owner = Self.isGlobal(virq: UInt32(c.virq)) ? 0 : Int(c.notifyVCPU)
                vcpus[owner].virqPorts[Int(c.virq)] = 0
                freeChannel(port)
            case .ipi:
                freeChannel(port)
            case .interdomain:
                fabric.disconnect(self, port: port, channel: c)
            }
            releaseAllocation(port)
            return .ok
        }
    }

    @inlinable func status<F: EventFabric>(_ arg: UInt64, fabric: F) -> LayerOutcome where F.Memory == Memory {
        guard let dom = memory.argument(UInt16.self, at: arg, EvtchnStatusLayout.dom),
              let port = memory.argument(UInt32.self, at: arg, EvtchnStatusLayout.port) else { return .badAddress }
        let own = resolveOwnDomain(dom, fabric: fabric)
        guard own == .ok else { return own }
        guard isValid(port) else { return .portInvalid }
        let c = channel(port)
        var ok = memory.setArgument(c.state.status.rawValue, at: arg, EvtchnStatusLayout.status)
            && memory.setArgument(UInt32(c.notifyVCPU), at: arg, EvtchnStatusLayout.vcpu)
        switch c.state {
        case .unbound:
            ok = ok && memory.setArgument(c.remoteDomain.rawValue, at: arg, EvtchnStatusLayout.uUnboundDom)
        case .interdomain:
            ok = ok && memory.setArgument(c.remoteDomain.rawValue, at: arg, EvtchnStatusLayout.uInterdomainDom)
                && memory.setArgument(c.remotePort, at: arg, EvtchnStatusLayout.uInterdomainPort)
        case .virq:
            ok = ok && memory.setArgument(UInt32(c.virq), at: arg, EvtchnStatusLayout.uVirq)
        default:
            break
        }
        return ok ? .ok : .badAddress
    }

    @inlinable func resetOp<F: EventFabric>(_ arg: UInt64, vcpu: Int, fabric: F) -> LayerOutcome where F.Memory == Memory {
        guard let dom = memory.argument(UInt16.self, at: arg, EvtchnResetLayout.dom) else { return .badAddress }
        let own = resolveOwnDomain(dom, fabric: fabric)
        guard own == .ok else { return own }
        resetLocked(fabric: fabric)
        return .ok
    }

    /// Xen `evtchn_reset`: close every port, then leave the FIFO ABI. For the embedder (the
    /// toolstack's reset); EVTCHNOP_reset runs `resetLocked`.
    @inlinable public func reset<F: EventFabric>(fabric: F) where F.Memory == Memory {
        withEventLock { resetLocked(fabric: fabric) }
    }

    @inlinable func resetLocked<F: EventFabric>(fabric: F) where F.Memory == Memory {
        var port: UInt32 = 1
        while isValid(port) {
            _ = close(port, fabric: fabric)
            port += 1
        }
        if usesFIFO { fifoDestroy() }
    }

    // MARK: - FIFO ABI

    @inlinable func initControl(_ arg: UInt64) -> LayerOutcome {
        guard let gfn = memory.argument(UInt64.self, at: arg, EvtchnInitControlLayout.controlGfn),
              let offset = memory.argument(UInt32.self, at: arg, EvtchnInitControlLayout.offset),
              let vcpu = memory.argument(UInt32.self, at: arg, EvtchnInitControlLayout.vcpu) else { return .badAddress }
        guard vcpu < UInt32(vcpuCount) else { return .noSuchVcpu }
        guard offset <= UInt32(guestPageSize) - UInt32(EvtchnFifoControlBlockLayout.size), offset & 7 == 0 else {
            return .invalidArgument
        }
        // A frame number whose address would not fit 64 bits is not a frame the guest has.
        guard gfn <= UInt64.max >> guestPageShift else { return .invalidArgument }
        let control = GuestPhysicalAddress(gfn << guestPageShift | UInt64(offset))
        let done = fifoInitControl(vcpu: Int(vcpu), control: control)
        guard done == .ok else { return done }
        return memory.setArgument(UInt8(EventChannelFIFO.linkBits), at: arg, EvtchnInitControlLayout.linkBits) ? .ok : .badAddress
    }

    @inlinable func expandArray<F: EventFabric>(_ arg: UInt64, vcpu: Int, fabric: F) -> LayerOutcome where F.Memory == Memory {
        guard let gfn = memory.argument(UInt64.self, at: arg, EvtchnExpandArrayLayout.arrayGfn) else { return .badAddress }
        return fifoExpandArray(GuestFrameNumber(gfn)) { fabric.raiseUpcall(self, vcpu: $0, from: vcpu) }
    }

    @inlinable func setPriority(_ arg: UInt64) -> LayerOutcome {
        guard let port = memory.argument(UInt32.self, at: arg, EvtchnSetPriorityLayout.port),
              let priority = memory.argument(UInt32.self, at: arg, EvtchnSetPriorityLayout.priority) else { return .badAddress }
        guard isValid(port) else { return .portInvalid }
        guard usesFIFO else { return .notImplemented }
        guard priority <= EventChannelFIFO.priorityMin else { return .invalidArgument }
        withChannel(port) { $0.priority = UInt8(priority) }
        return .ok
    }
}
