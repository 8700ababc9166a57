import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// set_timer_op and the VCPUOP timers (Specs/translation/hypercalls.tbl, vcpu.tbl), delivered
/// as VIRQ_TIMER: native on the embedder's timer, translated on the VP's synthetic timer 0.
/// The stages of KVM's xen_shinfo_test that concern timers (a VIRQ_TIMER port, a single-shot
/// timer, a deadline in the past) are here.
@Suite("Timers: set_timer_op, single-shot and periodic, to VIRQ_TIMER")
struct TimerTests {
    static let hz: UInt64 = 2_500_000_000
    /// TSC ticks per millisecond at 2.5 GHz.
    static let ms: UInt64 = 2_500_000

    func setTimerOp(_ w: any XenWorld, _ deadline: UInt64, vcpu: Int = 0) -> Int64 {
        w.hypercall(domain: dom1, vcpu: vcpu, XenHypercallRegisters(rax: XenHypercall.setTimerOp.rawValue, rdi: deadline))
    }

    func vcpuTimer(_ w: any XenWorld, _ op: VCPUOp, target: Int, from: Int, _ fields: [(ABIField, UInt64)] = []) -> Int64 {
        w.writeArguments(dom1, size: 16, fields)
        return w.hypercall(domain: dom1, vcpu: from, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(op.rawValue),
                                                                          rsi: UInt64(target), rdx: w.argumentAddress))
    }

    /// A world with VIRQ_TIMER bound on vCPU 0 and a callback vector; the timer port.
    func prepared(_ w: any XenWorld) -> UInt32 {
        #expect(w.setCallbackVector(dom1, 0x50) == 0)
        w.advanceTime(toTSC: 1_000 * Self.ms)
        return UInt32(w.bindVIRQ(dom1, virq: VIRQ.timer.rawValue, vcpu: 0))
    }

    @Test("set_timer_op: a deadline ahead fires once when time reaches it, 0 stops it, one in the past fires at once")
    func setTimer() {
        onBothWorlds { w, side in
            let port = prepared(w)
            let base = w.systemTime(dom1)!
            #expect(setTimerOp(w, base + 2_000_000) == 0, "\(side)")
            #expect(!w.isPending(dom1, port: port), "\(side)")
            w.advanceTime(toTSC: 1_001 * Self.ms)
            #expect(!w.isPending(dom1, port: port), "\(side): 1 ms in, not yet")
            w.advanceTime(toTSC: 1_003 * Self.ms)
            #expect(w.isPending(dom1, port: port), "\(side): due")
            #expect(w.xenDomain(dom1).timers(0).singleshot == 0, "\(side): a single-shot timer stops once it fires")
            w.acknowledgeEvents(dom1, vcpu: 0)
            // Stopped before it is due: nothing.
            #expect(setTimerOp(w, base + 10_000_000) == 0 && setTimerOp(w, 0) == 0, "\(side)")
            w.advanceTime(toTSC: 1_020 * Self.ms)
            #expect(!w.isPending(dom1, port: port), "\(side)")
            // A deadline already past fires before the hypercall returns.
            #expect(setTimerOp(w, 5) == 0 && w.isPending(dom1, port: port), "\(side)")
        }
    }

    @Test("set_timer_op's Linux workaround: a deadline with bit 63 set, or more than 2^50 ns ahead, becomes now + 100 ms")
    func hugeDeadlines() {
        onBothWorlds { w, side in
            _ = prepared(w)
            #expect(w.xenDomain(dom1).timers(0).singleshot == 0, "\(side): nothing armed yet")
            let t = w.systemTime(dom1)!
            for huge in [UInt64(1) << 63, UInt64.max, t + (1 << 50) + 1, t + (1 << 51)] {
                #expect(setTimerOp(w, huge) == 0, "\(side)")
                #expect(w.xenDomain(dom1).timers(0).singleshot == t + 100_000_000, "\(side) \(huge)")
            }
            #expect(setTimerOp(w, t + (1 << 50) - 1) == 0 && w.xenDomain(dom1).timers(0).singleshot == t + (1 << 50) - 1, "\(side): just under 2^50 ahead is kept")
        }
    }

    @Test("VCPUOP_set_singleshot_timer: only on the calling vCPU; a deadline in the past sends VIRQ_TIMER at once (VCPU_SSHOTTMR_future is ignored, as in Xen 4.17); stop likewise; -EFAULT")
    func singleshot() {
        onBothWorlds { w, side in
            let port = prepared(w)
            let t = w.systemTime(dom1)!
            #expect(vcpuTimer(w, .setSingleshotTimer, target: 1, from: 0, [(VcpuSetSingleshotTimerLayout.timeoutAbsNs, t + 1_000_000)]) == errEINVAL, "\(side)")
            #expect(vcpuTimer(w, .stopSingleshotTimer, target: 1, from: 0) == errEINVAL, "\(side)")
            let flags = UInt64(SingleShotTimerFlags.future.rawValue)
            #expect(vcpuTimer(w, .setSingleshotTimer, target: 0, from: 0, [(VcpuSetSingleshotTimerLayout.timeoutAbsNs, t - 1), (VcpuSetSingleshotTimerLayout.flags, flags)]) == 0, "\(side)")
            #expect(w.isPending(dom1, port: port) && w.xenDomain(dom1).timers(0).singleshot == 0, "\(side): at once")
            w.acknowledgeEvents(dom1, vcpu: 0)
            #expect(vcpuTimer(w, .setSingleshotTimer, target: 0, from: 0, [(VcpuSetSingleshotTimerLayout.timeoutAbsNs, t + 1_000_000)]) == 0, "\(side)")
            #expect(w.xenDomain(dom1).timers(0).singleshot == t + 1_000_000, "\(side)")
            w.advanceTime(toTSC: 1_002 * Self.ms)
            #expect(w.isPending(dom1, port: port), "\(side)")
            #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue,
                rdi: UInt64(VCPUOp.setSingleshotTimer.rawValue), rsi: 0, rdx: UInt64.max - 4)) == errEFAULT, "\(side)")
        }
    }

    @Test("VCPUOP_set_periodic_timer: 1 ms to 2^62 - 1 ns (-EINVAL outside), a VIRQ_TIMER each period; stop_periodic_timer stops it; no VIRQ_TIMER port, no event and no fault")
    func periodic() {
        onBothWorlds { w, side in
            let port = prepared(w)
            for bad: UInt64 in [0, 999_999, 1 << 62, UInt64.max] {
                #expect(vcpuTimer(w, .setPeriodicTimer, target: 0, from: 0, [(VcpuSetPeriodicTimerLayout.periodNs, bad)]) == errEINVAL, "\(side) \(bad)")
            }
            #expect(vcpuTimer(w, .setPeriodicTimer, target: 0, from: 0, [(VcpuSetPeriodicTimerLayout.periodNs, 1_000_000)]) == 0, "\(side)")
            var events = 0
            for step in 1...5 {
                w.advanceTime(toTSC: (1_000 + UInt64(step)) * Self.ms + 1_000)
                if w.isPending(dom1, port: port) { events += 1; w.acknowledgeEvents(dom1, vcpu: 0) }
            }
            #expect(events == 5, "\(side): one per millisecond, got \(events)")
            #expect(vcpuTimer(w, .stopPeriodicTimer, target: 0, from: 0) == 0, "\(side)")
            w.advanceTime(toTSC: 1_010 * Self.ms)
            #expect(!w.isPending(dom1, port: port), "\(side)")
            // vCPU 1 has no VIRQ_TIMER port: its timer fires into nothing.
            #expect(setTimerOp(w, 1, vcpu: 1) == 0, "\(side)")
        }
    }
}
