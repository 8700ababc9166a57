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
    static var hugeTimeoutLimit: UInt64 { 1 << 50 }
    static var hugeTimeoutDelay: UInt64 { 100_000_000 }
    /// VCPUOP_set_periodic_timer: at least 1 ms, at most STIME_DELTA_MAX (2^62 - 1 ns).
    static var minimumPeriod: UInt64 { 1_000_000 }
    static var maximumPeriod: UInt64 { (1 << 62) - 1 }

    func timerWord(_ vcpu: Int, _ offset: Int) -> UnsafeMutableRawPointer { vcpuWords + vcpu * VCPUWords.stride + offset }

    /// __HYPERVISOR_set_timer_op (RDI: an s_time_t deadline): 0 stops the single-shot timer; a
    /// negative or huge one becomes now + 100 ms; any other is set as given (one in the past
    /// fires at once). Always 0.
    @inline(never)
    public func setTimerOp<F: EventFabric>(_ timeout: UInt64, vcpu: Int, fabric: F) -> Int64 where F.Memory == Memory {
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
    func vcpuTimerOp<F: EventFabric>(_ op: VCPUOp, _ v: Int, arg: UInt64, current: Int, fabric: F) -> Int64 where F.Memory == Memory {
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
    public func timers(_ vcpu: Int) -> (singleshot: UInt64, period: UInt64) {
        guard vcpu >= 0, vcpu < vcpuCount else { return (0, 0) }
        return (xv_load_acquire_u64(timerWord(vcpu, VCPUWords.singleshotDeadline)), xv_load_acquire_u64(timerWord(vcpu, VCPUWords.periodicPeriod)))
    }

    func setSingleshot<F: EventFabric>(_ v: Int, _ deadline: UInt64, fabric: F) where F.Memory == Memory {
        withTimers(v, fabric: fabric) { xv_store_release_u64(timerWord(v, VCPUWords.singleshotDeadline), deadline) }
    }

    func setPeriodic<F: EventFabric>(_ v: Int, _ period: UInt64, fabric: F) where F.Memory == Memory {
        let now = period == 0 ? 0 : systemTime(fabric: fabric) ?? 0
        withTimers(v, fabric: fabric) {
            xv_store_release_u64(timerWord(v, VCPUWords.periodicPeriod), period)
            xv_store_release_u64(timerWord(v, VCPUWords.periodicNext), period == 0 ? 0 : now &+ period)
        }
    }

    /// Changes the timer state under the vCPU's time lock, then arms the side's timer for the
    /// earlier deadline (outside the lock: the side may call back).
    func withTimers<F: EventFabric>(_ v: Int, fabric: F, _ body: () -> Void) where F.Memory == Memory {
        let lock = timerWord(v, VCPUWords.timeLock)
        xv_spin_lock(lock)
        body()
        let deadline = earliestDeadline(v)
        xv_spin_unlock(lock)
        fabric.armTimer(self, vcpu: v, deadline: deadline)
    }

    func earliestDeadline(_ v: Int) -> UInt64? {
        let one = xv_load_acquire_u64(timerWord(v, VCPUWords.singleshotDeadline))
        let next = xv_load_acquire_u64(timerWord(v, VCPUWords.periodicPeriod)) == 0 ? 0 : xv_load_acquire_u64(timerWord(v, VCPUWords.periodicNext))
        switch (one, next) {
        case (0, 0): return nil
        case (0, _): return next
        case (_, 0): return one
        default: return min(one, next)
        }
    }

    /// The side's timer for `vcpu` went off: every deadline due by now (to within the 100 ns
    /// the translated side's timer counts in) sends one VIRQ_TIMER; the single-shot timer
    /// stops, the periodic one moves to now + period (Xen's vcpu_periodic_timer_work); the
    /// side's timer is armed again for what remains.
    public func timerFired<F: EventFabric>(vcpu v: Int, fabric: F) where F.Memory == Memory {
        guard v >= 0, v < vcpuCount, let now = systemTime(fabric: fabric) else { return }
        var fire = false
        withTimers(v, fabric: fabric) {
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
    }

    static func due(_ deadline: UInt64, _ now: UInt64) -> Bool { deadline <= now || deadline - now < 100 }

    /// send_guest_vcpu_virq: the port `vcpu` bound `virq` to, if any, made pending.
    public func sendVIRQ<F: EventFabric>(_ virq: VIRQ, vcpu: Int, from current: Int, fabric: F) where F.Memory == Memory {
        guard vcpu >= 0, vcpu < vcpuCount, virq.rawValue < 24 else { return }
        let port = withEventLock { vcpus[vcpu].virqPorts[Int(virq.rawValue)] }
        guard port != 0 else { return }
        let r = deliver(port) { $0.state == .virq && UInt32($0.virq) == virq.rawValue && Int($0.notifyVCPU) == vcpu }
        if let target = r.upcall { fabric.raiseUpcall(self, vcpu: target, from: current) }
    }
}
