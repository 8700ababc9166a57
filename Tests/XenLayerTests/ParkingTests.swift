import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// SCHEDOP_block and SCHEDOP_poll with the parking contract (`XenParkRequest`, `XenVCPUWaker`),
/// on both sides; XTF xsa-221's poll on ports that were never allocated.
@Suite("Parking: SCHEDOP_block and SCHEDOP_poll")
struct ParkingTests {
    final class Wakes: XenVCPUWaker {
        var woken: [Int] = []
        func wake(domain: DomainID, vcpu: Int) { woken.append(vcpu) }
    }

    func sched(_ w: any XenWorld, _ op: SchedulerOp, vcpu: Int, arg: UInt64 = 0) -> Int64 {
        w.hypercall(domain: dom1, vcpu: vcpu, XenHypercallRegisters(rax: XenHypercall.schedOp.rawValue, rdi: UInt64(op.rawValue), rsi: arg))
    }

    /// Writes a sched_poll at the argument page with its port list 1 KiB in.
    func poll(_ w: any XenWorld, vcpu: Int, ports: [UInt32], count: UInt64? = nil, timeout: UInt64 = 0) -> Int64 {
        let list = w.argumentAddress + 1024
        for (i, p) in ports.enumerated() { _ = w.ram(dom1).region.store(p, at: GuestPhysicalAddress(list + UInt64(4 * i))) }
        w.writeArguments(dom1, size: 24, [(SchedPollLayout.ports, list), (SchedPollLayout.nrPorts, count ?? UInt64(ports.count)), (SchedPollLayout.timeout, timeout)])
        return sched(w, .poll, vcpu: vcpu, arg: w.argumentAddress)
    }

    @Test("SCHEDOP_block parks until an upcall for the vCPU, which wakes it once; an upcall already pending means no park")
    func block() {
        onBothWorlds { w, side in
            let wakes = Wakes()
            w.xenDomain(dom1).waker = wakes
            #expect(w.setCallbackVector(dom1, 0x40) == 0)
            let ipi = UInt32(w.bindIPI(dom1, vcpu: 1))
            #expect(sched(w, .block, vcpu: 1) == 0 && w.xenDomain(dom1).parkRequest(1) == .block, "\(side)")
            #expect(w.send(dom1, port: ipi, vcpu: 0) == 0, "\(side)")
            #expect(w.xenDomain(dom1).parkRequest(1) == nil && wakes.woken == [1], "\(side): woken once")
            // The upcall is still pending (not acknowledged): blocking again returns at once.
            #expect(sched(w, .block, vcpu: 1) == 0 && w.xenDomain(dom1).parkRequest(1) == nil, "\(side)")
            #expect(wakes.woken == [1], "\(side)")
        }
    }

    @Test("SCHEDOP_poll: more than 128 ports -EINVAL; never-allocated ports -EINVAL (XTF xsa-221); a pending port returns at once; a polled port wakes, masked or not; another port does not; a timeout is the embedder's")
    func poll() {
        onBothWorlds { w, side in
            let wakes = Wakes()
            let d = w.xenDomain(dom1)
            d.waker = wakes
            let a = UInt32(w.bindIPI(dom1, vcpu: 0)), b = UInt32(w.bindIPI(dom1, vcpu: 0))
            #expect(poll(w, vcpu: 1, ports: [a], count: 129) == errEINVAL && d.parkRequest(1) == nil, "\(side)")
            for never: UInt32 in [1000, 4095, 131_071, 0xFFFF_FFFF] {
                #expect(poll(w, vcpu: 1, ports: [a, never]) == errEINVAL && d.parkRequest(1) == nil, "\(side) port \(never)")
            }
            #expect(sched(w, .poll, vcpu: 1, arg: UInt64.max - 8) == errEFAULT, "\(side)")
            // Port a polled, masked: b's event does not wake, a's does.
            w.setMasked(dom1, port: a, true)
            #expect(poll(w, vcpu: 1, ports: [a], timeout: 5_000_000) == 0 && d.parkRequest(1) == .poll(deadline: 5_000_000), "\(side)")
            #expect(w.send(dom1, port: b) == 0 && d.parkRequest(1) != nil && wakes.woken.isEmpty, "\(side): another port")
            #expect(w.send(dom1, port: a) == 0 && d.parkRequest(1) == nil && wakes.woken == [1], "\(side): the polled port, masked")
            // Already pending: no park.
            #expect(poll(w, vcpu: 1, ports: [b, a]) == 0 && d.parkRequest(1) == nil, "\(side)")
            w.acknowledgeEvents(dom1, vcpu: 0)
            w.setMasked(dom1, port: a, false)
            // Several ports: any port's event wakes; the embedder's timeout resumes instead.
            #expect(poll(w, vcpu: 1, ports: [a, b]) == 0 && d.parkRequest(1) == .poll(deadline: nil), "\(side)")
            d.resume(1)
            #expect(d.parkRequest(1) == nil, "\(side)")
            _ = w.send(dom1, port: b)
            #expect(wakes.woken == [1], "\(side): a resumed vCPU is not woken again")
        }
    }
}

import Foundation

/// The contract on real threads: a vCPU thread parks on a semaphore after SCHEDOP_poll, and a
/// send from another thread wakes it.
@Suite("Parking on real threads")
struct ParkingThreadTests {
    final class SemaphoreWaker: XenVCPUWaker, @unchecked Sendable {
        let semaphore = DispatchSemaphore(value: 0)
        func wake(domain: DomainID, vcpu: Int) { semaphore.signal() }
    }

    @Test("a parked vCPU thread is woken by an event sent from another thread, 200 times, on both sides")
    func wakeAcrossThreads() {
        onBothWorlds { w, side in
            let waker = SemaphoreWaker()
            let d = w.xenDomain(dom1)
            d.waker = waker
            let port = UInt32(w.bindIPI(dom1, vcpu: 1))
            let list = w.argumentAddress + 1024
            _ = w.ram(dom1).region.store(port, at: GuestPhysicalAddress(list))
            w.writeArguments(dom1, size: 24, [(SchedPollLayout.ports, list), (SchedPollLayout.nrPorts, 1), (SchedPollLayout.timeout, 0)])
            var woken = 0
            for _ in 0..<200 {
                w.acknowledgeEvents(dom1, vcpu: 1)
                #expect(w.hypercall(domain: dom1, vcpu: 1, XenHypercallRegisters(rax: XenHypercall.schedOp.rawValue, rdi: 3, rsi: w.argumentAddress)) == 0)
                let box = WorldReference(w)
                let sender = Thread { _ = box.world.send(dom1, port: port, vcpu: 0) }
                sender.start()
                // The embedder's loop: sleep while the request stands.
                while d.parkRequest(1) != nil {
                    if waker.semaphore.wait(timeout: .now() + 5) == .timedOut { break }
                }
                if d.parkRequest(1) == nil { woken += 1 }
                while sender.isExecuting || !sender.isFinished { usleep(50) }
                // Drain a wake that came after the loop saw the request gone.
                while waker.semaphore.wait(timeout: .now()) == .success {}
            }
            #expect(woken == 200, "\(side)")
        }
    }
}
