import CGuestAtomics
import GuestABI
import XenABI

/// __HYPERVISOR_sched_op (xen-project/xen xen/common/sched/core.c do_sched_op, 4.17;
/// xen/common/domain.c domain_shutdown; xen/include/xsm/dummy.h xsm_schedop_shutdown).
/// SCHEDOP_block, SCHEDOP_poll and SCHEDOP_watchdog wait for the time base and the parking
/// contract (`XenDispatchCoverage.schedNotYetImplemented`).
extension XenDomain {
    /// RDI = Xen's `int cmd`, RSI = the argument; `vcpu` is the caller.
    @inline(never)
    @inlinable public func schedOp<F: EventFabric>(_ cmd: UInt64, arg: UInt64, vcpu: Int, fabric: F) -> Int64 where F.Memory == Memory {
        let op = SchedulerOp(rawValue: UInt32(truncatingIfNeeded: cmd))
        if case .rejected(let errno) = op.disposition { return errno.hypercallReturnValue }
        switch op {
        case .yield:
            fabric.yieldVCPU(self, vcpu: vcpu)
            return 0
        case .shutdown:
            guard let reason = memory.argument(UInt32.self, at: arg, SchedShutdownLayout.reason) else { return XenErrno.efault.hypercallReturnValue }
            shutDown(UInt8(truncatingIfNeeded: reason), fabric: fabric)
            return 0
        case .shutdownCode:
            guard let reason = memory.argument(UInt32.self, at: arg, SchedShutdownLayout.reason) else { return XenErrno.efault.hypercallReturnValue }
            // Only the first code counts, and it does not shut the domain down.
            withEventLock {
                if xv_load_acquire_u32(words + DomainWords.shutdownCode) == UInt32.max {
                    xv_store_release_u32(words + DomainWords.shutdownCode, UInt32(UInt8(truncatingIfNeeded: reason)))
                }
            }
            return 0
        case .watchdog:
            guard memory.argumentReadable(at: arg, size: SchedWatchdogLayout.size),
                  let id = memory.argument(UInt32.self, at: arg, SchedWatchdogLayout.id),
                  let timeout = memory.argument(UInt32.self, at: arg, SchedWatchdogLayout.timeout) else {
                return XenErrno.efault.hypercallReturnValue
            }
            return watchdog(id: id, timeout: timeout, fabric: fabric)
        case .block:
            return schedBlock(vcpu)
        case .poll:
            return schedPoll(vcpu, arg: arg)
        case .remoteShutdown:
            // The whole structure first; then the domain by id (DOMID_SELF names none here);
            // then XSM_DM_PRIV, which a domU holds over no domain, itself included.
            guard memory.argumentReadable(at: arg, size: SchedRemoteShutdownLayout.size),
                  let target = memory.argument(UInt16.self, at: arg, SchedRemoteShutdownLayout.domainId) else {
                return XenErrno.efault.hypercallReturnValue
            }
            let d = DomainID(target)
            return (d == id || fabric.domainExists(d) ? XenErrno.eperm : XenErrno.esrch).hypercallReturnValue
        default:
            return Self.notYetImplemented
        }
    }

    /// Xen's domain_shutdown: the first code given wins (SCHEDOP_shutdown_code's, if set), any
    /// byte is accepted (Xen does not check it against SHUTDOWN_MAX), and the embedder hears of
    /// it once; later shutdowns change nothing and succeed.
    @inlinable func shutDown<F: EventFabric>(_ reason: UInt8, fabric: F) where F.Memory == Memory {
        let first: UInt8? = withEventLock {
            if xv_load_acquire_u32(words + DomainWords.shutdownCode) == UInt32.max {
                xv_store_release_u32(words + DomainWords.shutdownCode, UInt32(reason))
            }
            guard xv_load_acquire_u32(words + DomainWords.shuttingDown) == 0 else { return nil }
            xv_store_release_u32(words + DomainWords.shuttingDown, 1)
            return UInt8(truncatingIfNeeded: xv_load_acquire_u32(words + DomainWords.shutdownCode))
        }
        if let code = first { fabric.domainShutdown(self, reason: code) }
    }

    /// The domain's shutdown code: nil until SCHEDOP_shutdown or SCHEDOP_shutdown_code set one.
    @inlinable public var shutdownCode: UInt8? {
        let c = xv_load_acquire_u32(words + DomainWords.shutdownCode)
        return c == UInt32.max ? nil : UInt8(truncatingIfNeeded: c)
    }

    /// Whether the domain has shut down (Xen's d->is_shutting_down).
    @inlinable public var isShuttingDown: Bool { xv_load_acquire_u32(words + DomainWords.shuttingDown) != 0 }
}
