import CGuestAtomics
import GuestABI
import XenABI

/// A vCPU's Xen timers (xen-project/xen xen/common/sched/core.c do_set_timer_op and
/// xen/common/domain.c common_vcpu_op, 4.17): the single-shot timer (set_timer_op and
/// VCPUOP_set_singleshot_timer) and the periodic timer, both delivered as VIRQ_TIMER on the
/// vCPU's bound port. The side keeps one timer per vCPU armed for the earlier deadline
/// (`EventFabric.armTimer`) and calls `timerFired` when it goes off.
extension XenDomain {
    /// The Linux workaround of do_set_timer_op: a deadline more than 2^50 ns (about 13 days)
    /// ahead, or one with bit 63 set, is taken as a deadline 100 ms from now.
    @inlinable static var hugeTimeoutLimit: UInt64 { 1 << 50 }
    @inlinable static var hugeTimeoutDelay: UInt64 { 100_000_000 }
    /// VCPUOP_set_periodic_timer: at least 1 ms, at most STIME_DELTA_MAX (2^62 - 1 ns).
    @inlinable static var minimumPeriod: UInt64 { 1_000_000 }
    @inlinable static var maximumPeriod: UInt64 { (1 << 62) - 1 }

    @inlinable func timerWord(_ vcpu: Int, _ offset: Int) -> UnsafeMutableRawPointer { vcpuWords + vcpu * VCPUWords.stride + offset }

    /// __HYPERVISOR_set_timer_op (RDI: an s_time_t deadline): 0 stops the single-shot timer; a
    /// negative or huge one becomes now + 100 ms; any other is set as given (one in the past
    /// fires at once). Always 0.
    @inline(never)
    @inlinable public func setTimerOp<F: EventFabric>(_ timeout: UInt64, vcpu: Int, fabric: F) -> Int64 where F.Memory == Memory {
        if timeout == 0 {
            setSingleshot(vcpu, 0, fabric: fabric)
            return 0
        }
        let now = systemTime(fabric: fabric) ?? 0
        let offset = Int64(bitPattern: timeout &- now)
        if Int64(bitPattern: timeout) < 0 || (offset > 0 && UInt64(offset) >> 50 != 0) {
            setSingleshot(vcpu, now &+ Self.hugeTimeoutDelay, fabric: fabric)
        } else {
            setSingleshot(vcpu, timeout, fabric: fabric)
        }
        return 0
    }

    /// VCPUOP_set_singleshot_timer and stop_singleshot_timer (only on the calling vCPU:
    /// -EINVAL for another), set_periodic_timer and stop_periodic_timer.
    @inlinable func vcpuTimerOp<F: EventFabric>(_ op: VCPUOp, _ v: Int, arg: UInt64, current: Int, fabric: F) -> Int64 where F.Memory == Memory {
        switch op {
        case .setSingleshotTimer:
            guard v == current else { return XenErrno.einval.hypercallReturnValue }
            guard memory.argumentReadable(at: arg, size: VcpuSetSingleshotTimerLayout.size),
                  let deadline = memory.argument(UInt64.self, at: arg, VcpuSetSingleshotTimerLayout.timeoutAbsNs) else {
                return XenErrno.efault.hypercallReturnValue
            }
            // Xen 4.17 ignores VCPU_SSHOTTMR_future: a deadline already past sends the event
            // at once (the timer stopped), a later one is set.
            let now = systemTime(fabric: fabric) ?? 0
            if Int64(bitPattern: deadline) < Int64(bitPattern: now) {
                setSingleshot(v, 0, fabric: fabric)
                sendVIRQ(.timer, vcpu: v, from: current, fabric: fabric)
            } else {
                setSingleshot(v, deadline == 0 ? 1 : deadline, fabric: fabric)
            }
            return 0
        case .stopSingleshotTimer:
            guard v == current else { return XenErrno.einval.hypercallReturnValue }
            setSingleshot(v, 0, fabric: fabric)
            return 0
        case .setPeriodicTimer:
            guard let period = memory.argument(UInt64.self, at: arg, VcpuSetPeriodicTimerLayout.periodNs) else {
                return XenErrno.efault.hypercallReturnValue
            }
            guard period >= Self.minimumPeriod, period <= Self.maximumPeriod else { return XenErrno.einval.hypercallReturnValue }
            setPeriodic(v, period, fabric: fabric)
            return 0
        default: // .stopPeriodicTimer
            setPeriodic(v, 0, fabric: fabric)
            return 0
        }
    }

    /// The single-shot deadline of `vcpu` (0: stopped) and its periodic period (0: stopped).
    @inlinable public func timers(_ vcpu: Int) -> (singleshot: UInt64, period: UInt64) {
        guard vcpu >= 0, vcpu < vcpuCount else { return (0, 0) }
        return (xv_load_acquire_u64(timerWord(vcpu, VCPUWords.singleshotDeadline)), xv_load_acquire_u64(timerWord(vcpu, VCPUWords.periodicPeriod)))
    }

    @inlinable func setSingleshot<F: EventFabric>(_ v: Int, _ deadline: UInt64, fabric: F) where F.Memory == Memory {
        withTimers(v, fabric: fabric) { xv_store_release_u64(timerWord(v, VCPUWords.singleshotDeadline), deadline) }
    }

    @inlinable func setPeriodic<F: EventFabric>(_ v: Int, _ period: UInt64, fabric: F) where F.Memory == Memory {
        let now = period == 0 ? 0 : systemTime(fabric: fabric) ?? 0
        withTimers(v, fabric: fabric) {
            xv_store_release_u64(timerWord(v, VCPUWords.periodicPeriod), period)
            xv_store_release_u64(timerWord(v, VCPUWords.periodicNext), period == 0 ? 0 : now &+ period)
        }
    }

    /// Changes the timer state under the vCPU's time lock, then arms the side's timer for the
    /// earlier deadline (outside the lock: the side may call back).
    @inlinable func withTimers<F: EventFabric>(_ v: Int, fabric: F, _ body: () -> Void) where F.Memory == Memory {
        let lock = timerWord(v, VCPUWords.timeLock)
        xv_spin_lock(lock)
        body()
        let deadline = earliestDeadline(v)
        xv_spin_unlock(lock)
        fabric.armTimer(self, vcpu: v, deadline: deadline.map { sideDeadline($0) })
    }

    @inlinable func earliestDeadline(_ v: Int) -> UInt64? {
        let one = xv_load_acquire_u64(timerWord(v, VCPUWords.singleshotDeadline))
        let next = xv_load_acquire_u64(timerWord(v, VCPUWords.periodicPeriod)) == 0 ? 0 : xv_load_acquire_u64(timerWord(v, VCPUWords.periodicNext))
        var earliest: UInt64? = one == 0 ? nil : one
        if next != 0 { earliest = min(earliest ?? next, next) }
        // The domain's watchdogs ride on vCPU 0's timer.
        if v == 0 {
            for i in 0..<Self.watchdogCount {
                let d = xv_load_acquire_u64(words + DomainWords.watchdogDeadlines + 8 * i)
                if d != 0 { earliest = min(earliest ?? d, d) }
            }
        }
        return earliest
    }

    /// The side's timer for `vcpu` went off: every deadline due by now (to within the 100 ns
    /// the translated side's timer counts in) sends one VIRQ_TIMER; the single-shot timer
    /// stops, the periodic one moves to now + period (Xen's vcpu_periodic_timer_work); the
    /// side's timer is armed again for what remains.
    @inlinable public func timerFired<F: EventFabric>(vcpu v: Int, fabric: F) where F.Memory == Memory {
        guard v >= 0, v < vcpuCount, let now = systemTime(fabric: fabric) else { return }
        var fire = false, watchdogFired = false
        withTimers(v, fabric: fabric) {
            // The domain's watchdogs, on vCPU 0's timer: each fires once (its deadline is
            // cleared, the slot stays in use, as Xen's timer is not re-armed).
            if v == 0 {
                for i in 0..<Self.watchdogCount {
                    let at = words + DomainWords.watchdogDeadlines + 8 * i
                    let d = xv_load_acquire_u64(at)
                    if d != 0, Self.due(d, now) { xv_store_release_u64(at, 0); watchdogFired = true }
                }
            }
            let one = xv_load_acquire_u64(timerWord(v, VCPUWords.singleshotDeadline))
            if one != 0, Self.due(one, now) {
                xv_store_release_u64(timerWord(v, VCPUWords.singleshotDeadline), 0)
                fire = true
            }
            let period = xv_load_acquire_u64(timerWord(v, VCPUWords.periodicPeriod))
            if period != 0, Self.due(xv_load_acquire_u64(timerWord(v, VCPUWords.periodicNext)), now) {
                xv_store_release_u64(timerWord(v, VCPUWords.periodicNext), now &+ period)
                fire = true
            }
        }
        if fire { sendVIRQ(.timer, vcpu: v, from: v, fabric: fabric) }
        if watchdogFired { shutDown(UInt8(ShutdownReason.watchdog.rawValue), fabric: fabric) }
    }

    /// NR_DOMAIN_WATCHDOG_TIMERS (xen/include/xen/sched.h).
    @inlinable static var watchdogCount: Int { 2 }

    /// SCHEDOP_watchdog (xen/common/sched/core.c domain_watchdog): id 0 takes a free watchdog,
    /// armed `timeout` seconds from now, and returns its id (1 or 2), -ENOSPC when both are in
    /// use; id 1 or 2 re-arms that one, or frees it with timeout 0; any other id, or one not in
    /// use, -EINVAL. A watchdog that fires shuts the domain down with SHUTDOWN_watchdog.
    @inlinable func watchdog<F: EventFabric>(id: UInt32, timeout: UInt32, fabric: F) -> Int64 where F.Memory == Memory {
        let now = systemTime(fabric: fabric) ?? 0
        let (deadline, overflow) = now.addingReportingOverflow(UInt64(timeout) &* 1_000_000_000)
        let at = overflow ? UInt64.max : deadline
        var result: Int64 = 0
        withTimers(0, fabric: fabric) {
            let inUse = xv_load_acquire_u32(words + DomainWords.watchdogsInUse)
            if id == 0 {
                guard let i = (0..<Self.watchdogCount).first(where: { inUse & (1 << UInt32($0)) == 0 }) else {
                    result = XenErrno.enospc.hypercallReturnValue
                    return
                }
                xv_store_release_u32(words + DomainWords.watchdogsInUse, inUse | 1 << UInt32(i))
                xv_store_release_u64(words + DomainWords.watchdogDeadlines + 8 * i, at)
                result = Int64(i + 1)
                return
            }
            let i = Int(id) - 1
            guard i < Self.watchdogCount, inUse & (1 << UInt32(i)) != 0 else {
                result = XenErrno.einval.hypercallReturnValue
                return
            }
            if timeout == 0 {
                xv_store_release_u32(words + DomainWords.watchdogsInUse, inUse & ~(1 << UInt32(i)))
                xv_store_release_u64(words + DomainWords.watchdogDeadlines + 8 * i, 0)
            } else {
                xv_store_release_u64(words + DomainWords.watchdogDeadlines + 8 * i, at)
            }
        }
        return result
    }

    @inlinable static func due(_ deadline: UInt64, _ now: UInt64) -> Bool { deadline <= now || deadline - now < 100 }

    /// send_guest_vcpu_virq: the port `vcpu` bound `virq` to, if any, made pending.
    @inlinable public func sendVIRQ<F: EventFabric>(_ virq: VIRQ, vcpu: Int, from current: Int, fabric: F) where F.Memory == Memory {
        guard vcpu >= 0, vcpu < vcpuCount, virq.rawValue < 24 else { return }
        let port = withEventLock { vcpus[vcpu].virqPorts[Int(virq.rawValue)] }
        guard port != 0 else { return }
        let r = deliver(port) { $0.state == .virq && UInt32($0.virq) == virq.rawValue && Int($0.notifyVCPU) == vcpu }
        if let target = r.upcall { fabric.raiseUpcall(self, vcpu: target, from: current) }
    }
}
