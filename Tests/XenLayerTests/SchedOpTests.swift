import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// __HYPERVISOR_sched_op rows of Specs/translation/scheduling.tbl (`translation.schedop`) that
/// do not need the time base: SCHEDOP_yield, shutdown, shutdown_code, remote_shutdown and
/// pin_override, on both sides.
@Suite("sched_op: yield, shutdown, shutdown_code, remote_shutdown, pin_override")
struct SchedOpTests {
    func sched(_ w: any XenWorld, _ op: SchedulerOp, arg: UInt64 = 0, domain d: DomainID = dom1, vcpu: Int = 0) -> Int64 {
        w.hypercall(domain: d, vcpu: vcpu, XenHypercallRegisters(rax: XenHypercall.schedOp.rawValue, rdi: UInt64(op.rawValue), rsi: arg))
    }

    @Test("SCHEDOP_yield: 0, and one yield each (translated: one HvCallNotifyLongSpinWait)")
    func yield() {
        onBothWorlds { w, side in
            #expect(sched(w, .yield) == 0 && sched(w, .yield, vcpu: 1) == 0, "\(side)")
            #expect(w.yields(dom1) == 2 && w.yields(dom2) == 0, "\(side)")
        }
        let t = TranslatedWorld(domains: 1, vcpus: 1)
        let before = t.layer(dom1).viridianHypercalls
        #expect(sched(t, .yield) == 0 && t.layer(dom1).viridianHypercalls - before == 1)
    }

    @Test("SCHEDOP_shutdown: 0; the embedder hears once, with the first code; any byte is a reason; -EFAULT for an unreadable argument")
    func shutdown() {
        onBothWorlds { w, side in
            let edge = WorldLayout.frames << guestPageShift - 2
            #expect(sched(w, .shutdown, arg: edge) == errEFAULT, "\(side)")
            #expect(w.recorder.shutdowns(domain: dom1).count == 0 && !w.xenDomain(dom1).isShuttingDown, "\(side)")
            w.writeArguments(dom1, size: 4, [(SchedShutdownLayout.reason, 0x1_03)])
            #expect(sched(w, .shutdown, arg: w.argumentAddress) == 0, "\(side)")
            #expect(w.recorder.shutdowns(domain: dom1) == (1, 3), "\(side): the reason is the low byte (SHUTDOWN_crash)")
            #expect(w.xenDomain(dom1).isShuttingDown && w.xenDomain(dom1).shutdownCode == 3, "\(side)")
            w.writeArguments(dom1, size: 4, [(SchedShutdownLayout.reason, UInt64(ShutdownReason.reboot.rawValue))])
            #expect(sched(w, .shutdown, arg: w.argumentAddress, vcpu: 1) == 0, "\(side)")
            #expect(w.recorder.shutdowns(domain: dom1) == (1, 3), "\(side): a second shutdown changes nothing")
            // Beyond SHUTDOWN_MAX is accepted, as Xen accepts it.
            w.writeArguments(dom2, size: 4, [(SchedShutdownLayout.reason, 0xEE)])
            #expect(sched(w, .shutdown, arg: w.argumentAddress, domain: dom2) == 0 && w.recorder.shutdowns(domain: dom2) == (1, 0xEE), "\(side)")
        }
    }

    @Test("SCHEDOP_shutdown_code sets the code once without shutting down; the shutdown that follows reports it")
    func shutdownCode() {
        onBothWorlds { w, side in
            w.writeArguments(dom1, size: 4, [(SchedShutdownLayout.reason, UInt64(ShutdownReason.suspend.rawValue))])
            #expect(sched(w, .shutdownCode, arg: w.argumentAddress) == 0, "\(side)")
            w.writeArguments(dom1, size: 4, [(SchedShutdownLayout.reason, UInt64(ShutdownReason.watchdog.rawValue))])
            #expect(sched(w, .shutdownCode, arg: w.argumentAddress) == 0, "\(side)")
            #expect(w.xenDomain(dom1).shutdownCode == 2 && !w.xenDomain(dom1).isShuttingDown, "\(side)")
            #expect(w.recorder.shutdowns(domain: dom1).count == 0, "\(side)")
            w.writeArguments(dom1, size: 4, [(SchedShutdownLayout.reason, UInt64(ShutdownReason.poweroff.rawValue))])
            #expect(sched(w, .shutdown, arg: w.argumentAddress) == 0, "\(side)")
            #expect(w.recorder.shutdowns(domain: dom1) == (1, 2), "\(side): SHUTDOWN_suspend, set first")
            #expect(sched(w, .shutdownCode, arg: UInt64.max) == errEFAULT, "\(side)")
        }
    }

    @Test("SCHEDOP_remote_shutdown: -EFAULT, then -ESRCH for no such domain (DOMID_SELF included), then -EPERM, itself included; nothing shuts down")
    func remoteShutdown() {
        onBothWorlds { w, side in
            func remote(_ dom: UInt64) -> Int64 {
                w.writeArguments(dom1, size: 8, [(SchedRemoteShutdownLayout.domainId, dom), (SchedRemoteShutdownLayout.reason, 0)])
                return sched(w, .remoteShutdown, arg: w.argumentAddress)
            }
            #expect(remote(2) == errEPERM && remote(1) == errEPERM, "\(side)")
            for dom: UInt64 in [7, 0x7FF0, 0x7FF1, 0xFFFF] { #expect(remote(dom) == errESRCH, "\(side) dom \(dom)") }
            #expect(sched(w, .remoteShutdown, arg: WorldLayout.frames << guestPageShift - 4) == errEFAULT, "\(side)")
            #expect(w.recorder.shutdowns(domain: dom1).count == 0 && w.recorder.shutdowns(domain: dom2).count == 0, "\(side)")
        }
    }

    @Test("SCHEDOP_watchdog: id 0 takes watchdogs 1 and 2, then -ENOSPC; re-arming, freeing with timeout 0, unknown ids -EINVAL; an expired watchdog shuts the domain down with SHUTDOWN_watchdog")
    func watchdog() {
        onBothWorlds { w, side in
            func dog(_ id: UInt64, _ timeout: UInt64) -> Int64 {
                w.writeArguments(dom1, size: 8, [(SchedWatchdogLayout.id, id), (SchedWatchdogLayout.timeout, timeout)])
                return sched(w, .watchdog, arg: w.argumentAddress)
            }
            #expect(dog(0, 30) == 1 && dog(0, 60) == 2 && dog(0, 5) == XenErrno.enospc.hypercallReturnValue, "\(side)")
            #expect(dog(3, 5) == errEINVAL && dog(0xFFFF_FFFF, 5) == errEINVAL, "\(side)")
            #expect(dog(2, 0) == 0 && dog(2, 5) == errEINVAL, "\(side): freed, then not in use")
            #expect(dog(0, 90) == 2, "\(side): the freed one is taken again")
            #expect(sched(w, .watchdog, arg: UInt64.max - 3) == errEFAULT, "\(side)")
            // Re-armed before it fires: 30 s becomes 100 s from now; nothing at 40 s.
            #expect(dog(1, 100) == 0, "\(side)")
            w.advanceTime(toTSC: 40 * 2_500_000_000)
            #expect(w.recorder.shutdowns(domain: dom1).count == 0, "\(side)")
            // Watchdog 2 (90 s) fires first.
            w.advanceTime(toTSC: 95 * 2_500_000_000)
            #expect(w.recorder.shutdowns(domain: dom1) == (1, UInt8(ShutdownReason.watchdog.rawValue)), "\(side)")
            w.advanceTime(toTSC: 200 * 2_500_000_000)
            #expect(w.recorder.shutdowns(domain: dom1).count == 1, "\(side): a domain shuts down once")
        }
    }

    @Test("SCHEDOP_pin_override -EPERM (hardware domain only); unknown commands -ENOSYS")
    func refusals() {
        onBothWorlds { w, side in
            #expect(sched(w, .pinOverride, arg: UInt64.max) == errEPERM, "\(side)")
            for cmd: UInt32 in [8, 9, 0xFFFF_FFFF] { #expect(sched(w, SchedulerOp(rawValue: cmd)) == errENOSYS, "\(side) \(cmd)") }
            for op in XenDispatchCoverage.schedNotYetImplemented { #expect(sched(w, op, arg: w.argumentAddress) == errENOSYS, "\(side) \(op.rawValue)") }
        }
    }
}
