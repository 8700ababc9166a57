import CKVM
import CXenViridian
import Foundation
import XenViridianC

/// The host's clock thread: the only caller of xv_set_guest_tsc. It publishes the guests'
/// TSC (the host's own: every vCPU's IA32_TSC was set to it) every `tick`, and sooner when a
/// native Xen timer is due (the library's timer_changed callback names its deadline). Due
/// timers fire inside xv_set_guest_tsc, on this thread, and their upcalls go out as MSIs.
/// The translated side's timers live in the reference Viridian hypervisor, which names no
/// deadline to the embedder, so they fire at the first tick after they are due.
final class XenHostClock: @unchecked Sendable {
    let tick: Duration
    unowned(unsafe) var host: XenHost!
    private let condition = NSCondition()
    private var running = false
    private var stopped = false
    private let finished = DispatchSemaphore(value: 0)
    /// Native timers: (domain, vCPU) -> deadline in Xen system time.
    private var deadlines: [UInt64: UInt64] = [:]

    init(tick: Duration) { self.tick = tick }

    var tickNanoseconds: UInt64 { UInt64(tick.components.seconds) * 1_000_000_000 + UInt64(tick.components.attoseconds / 1_000_000_000) }

    func start() {
        running = true
        let t = Thread { [self] in
            loop()
            finished.signal()
        }
        t.name = "xv clock"
        t.start()
    }

    func stop() {
        condition.withLock { stopped = true; condition.signal() }
        if running { finished.wait() }
    }

    /// timer_changed: a native timer armed (its deadline) or disarmed (nil).
    func timerChanged(domain: UInt16, vcpu: UInt32, deadline: UInt64?) {
        condition.withLock {
            let key = UInt64(domain) << 32 | UInt64(vcpu)
            if let deadline { deadlines[key] = deadline } else { deadlines.removeValue(forKey: key) }
            condition.signal()
        }
    }

    private func loop() {
        let system = host.system
        condition.lock()
        while !stopped {
            condition.unlock()
            xv_set_guest_tsc(system, xv_kvm_rdtsc())
            condition.lock()
            // The earliest native deadline still ahead, in nanoseconds from now. One already
            // passed has fired in xv_set_guest_tsc (and one armed already due fires as it is
            // armed), so it is forgotten.
            var wait = tickNanoseconds
            for (key, deadline) in deadlines {
                let now = xv_system_time(system, UInt16(key >> 32))
                guard now != UInt64.max else { continue }
                if deadline <= now { deadlines.removeValue(forKey: key) } else { wait = min(wait, deadline - now) }
            }
            if wait > 0 { _ = condition.wait(until: Date().addingTimeInterval(Double(wait) / 1e9)) }
        }
        condition.unlock()
    }
}
