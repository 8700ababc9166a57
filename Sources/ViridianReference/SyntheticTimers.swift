import CGuestAtomics
import GuestABI
import ViridianABI

/// Synthetic timers (TLFS "Synthetic Timers"; semantics the TLFS leaves open follow Linux
/// arch/x86/kvm/hyperv.c stimer_set_config, stimer_set_count, stimer_start, stimer_expiration).
extension ViridianReference {
    /// (Re)computes the deadline of timer `t` after a CONFIG or COUNT write.
    /// One-shot: COUNT is the absolute expiration time (already past: expires at once).
    /// Periodic: the first expiration is one period from now.
    @inlinable func armTimer(_ p: Int, _ v: Int, timer t: Int) {
        var timer = partitions[p].vps[v].timers[t]
        timer.deadline = nil
        timer.undelivered = nil
        if timer.config.enable && timer.count != 0 {
            let now = referenceTime(p)
            if timer.config.periodic {
                let (next, overflow) = now.addingReportingOverflow(timer.count)
                timer.deadline = overflow ? .max : next
            } else {
                timer.deadline = timer.count
            }
        }
        partitions[p].vps[v].timers[t] = timer
        fireDueTimers(p)
    }

    /// Fires every armed timer of partition `p` whose deadline has come, earliest first.
    @inlinable func fireDueTimers(_ p: Int) {
        let now = referenceTime(p)
        while true {
            var best: (v: Int, t: Int, deadline: UInt64)?
            for v in partitions[p].vps.indices {
                for t in 0..<Int(SynICLimits.stimerCount) {
                    guard let d = partitions[p].vps[v].timers[t].deadline, d <= now else { continue }
                    if best == nil || d < best!.deadline { best = (v, t, d) }
                }
            }
            guard let (v, t, deadline) = best else { return }
            expireTimer(p, v, timer: t, deadline: deadline, now: now)
        }
    }

    /// Timer `t` reached `deadline`. A periodic timer moves to its next period strictly after
    /// now, skipping periods that passed while the clock jumped (KVM stimer_start does this for
    /// lazy and non-lazy timers alike; the reference does the same, so the two bits behave
    /// identically). An expiration that cannot be delivered waits, coalescing with later ones.
    @inlinable func expireTimer(_ p: Int, _ v: Int, timer t: Int, deadline: UInt64, now: UInt64) {
        var timer = partitions[p].vps[v].timers[t]
        if timer.config.periodic {
            let period = timer.count
            let missed = (now - deadline) / period
            // A deadline past 2^64 ticks (58,000 years) is never reached: the timer stops.
            let (step, o1) = (missed + 1).multipliedReportingOverflow(by: period)
            let (next, o2) = deadline.addingReportingOverflow(step)
            timer.deadline = o1 || o2 ? nil : next
        } else {
            timer.deadline = nil
        }
        if timer.undelivered == nil { timer.undelivered = deadline }
        partitions[p].vps[v].timers[t] = timer
        _ = deliverTimer(p, v, timer: t, now: deadline)
    }

    /// Delivers timer `t`'s undelivered expiration: a direct-mode interrupt, or an
    /// HVMSG_TIMER_EXPIRED message in the slot of its SINT (delivery time `now`). A one-shot
    /// timer is disabled once delivered (TLFS). Returns whether it was delivered; when the slot
    /// is busy MessagePending is set and the expiration waits for EOM.
    @discardableResult
    @inlinable func deliverTimer(_ p: Int, _ v: Int, timer t: Int, now: UInt64) -> Bool {
        var timer = partitions[p].vps[v].timers[t]
        guard let expiration = timer.undelivered else { return false }
        let config = timer.config
        var slot: UnsafeMutableRawPointer?
        if !config.directMode {
            guard partitions[p].vps[v].canDeliverMessages, let s = messageSlot(p, v, sint: Int(config.sintx)) else { return false }
            guard SIMSlot.isFree(s) || SIMSlot.pendAndRecheck(s) else { return false }
            slot = s
        }
        // The timer's state is final before the interrupt: the host's interrupt path may run
        // the guest's handler at once, and a handler that re-arms the timer must not have its
        // new configuration overwritten by this delivery.
        timer.undelivered = nil
        if !config.periodic { timer.config.enable = false }
        partitions[p].vps[v].timers[t] = timer
        if let slot {
            writeTimerMessage(slot, timer: t, expiration: expiration, delivery: now)
            assertSINT(p, v, sint: Int(config.sintx))
        } else {
            host.raiseInterrupt(partition: partitions[p].id, vp: VPIndex(UInt32(v)),
                                vector: UInt8(truncatingIfNeeded: config.apicVector), autoEOI: false)
        }
        return true
    }

    /// HV_MESSAGE of type HVMSG_TIMER_EXPIRED with an HV_TIMER_MESSAGE_PAYLOAD.
    @inlinable func writeTimerMessage(_ slot: UnsafeMutableRawPointer, timer t: Int, expiration: UInt64, delivery: UInt64) {
        // Everything but the type first, the type last (a release store): see publishMessage.
        let typeEnd = HvMessageLayout.headerMessageType.offset + 4
        (slot + typeEnd).initializeMemory(as: UInt8.self, repeating: 0, count: Self.messageSize - typeEnd)
        slot.storeBytes(of: UInt8(HvTimerMessagePayloadLayout.size), toByteOffset: HvMessageLayout.headerPayloadSize.offset, as: UInt8.self)
        let payload = slot + HvMessageLayout.payload.offset
        payload.storeBytes(of: UInt32(t).littleEndian, toByteOffset: HvTimerMessagePayloadLayout.timerIndex.offset, as: UInt32.self)
        payload.storeBytes(of: expiration.littleEndian, toByteOffset: HvTimerMessagePayloadLayout.expirationTime.offset, as: UInt64.self)
        payload.storeBytes(of: delivery.littleEndian, toByteOffset: HvTimerMessagePayloadLayout.deliveryTime.offset, as: UInt64.self)
        xv_store_release_u32(slot + HvMessageLayout.headerMessageType.offset, HVMessageType.timerExpired.rawValue.littleEndian)
    }

    /// WRMSR STIMERx_CONFIG. RsvdZ bits raise #GP (TLFS: bits 15:13 and 63:20), as does direct
    /// mode when HV_STIMER_DIRECT_MODE_AVAILABLE was not offered (KVM). An enabled message-mode
    /// timer with SINTx 0 is disabled at once (TLFS).
    @inlinable func writeTimerConfig(_ p: Int, _ v: Int, timer t: Int, value: UInt64) -> MSRWrite {
        let config = HVSTimerConfigMSR(rawValue: value)
        guard !config.hasReservedBitsSet else { return .generalProtection }
        if config.directMode && !partitions[p].config.privileges.edx.contains(.stimerDirectMode) { return .generalProtection }
        partitions[p].vps[v].timers[t].config = Self.disablingWithoutSINT(config)
        armTimer(p, v, timer: t)
        return .done
    }

    /// TLFS: an enabled message-mode timer with SINTx 0 is marked disabled at once.
    @inlinable static func disablingWithoutSINT(_ config: HVSTimerConfigMSR) -> HVSTimerConfigMSR {
        var c = config
        if c.enable && !c.directMode && c.sintx == 0 { c.enable = false }
        return c
    }

    /// WRMSR STIMERx_COUNT. Zero stops and disables the timer; nonzero with AutoEnable enables
    /// it (TLFS).
    @inlinable func writeTimerCount(_ p: Int, _ v: Int, timer t: Int, value: UInt64) -> MSRWrite {
        partitions[p].vps[v].timers[t].count = value
        if value == 0 {
            partitions[p].vps[v].timers[t].config.enable = false
        } else if partitions[p].vps[v].timers[t].config.autoEnable {
            var c = partitions[p].vps[v].timers[t].config
            c.enable = true
            partitions[p].vps[v].timers[t].config = Self.disablingWithoutSINT(c)
        }
        armTimer(p, v, timer: t)
        return .done
    }
}
