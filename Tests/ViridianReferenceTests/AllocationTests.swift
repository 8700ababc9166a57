import CMallocCounter
import GuestABI
import Testing
import ViridianABI
@testable import ViridianReference

/// The SignalEvent and PostMessage paths allocate nothing (counted per thread by the
/// CMallocCounter test-support target, which interposes the process's malloc).
@Suite("Allocations")
struct AllocationTests {
    @Test("the malloc counter sees allocations on this thread")
    func counterWorks() {
        #expect(xv_malloc_counter_is_active() == 1)
        xv_malloc_counter_begin()
        let a = [UInt8](repeating: 1, count: Int.random(in: 100...200))
        let n = xv_malloc_counter_end()
        #expect(a.count >= 100 && n >= 1)
    }

    @Test("HVCALL_SIGNAL_EVENT and HVCALL_POST_MESSAGE (delivery, queueing, EOM redelivery) allocate nothing")
    func messagingAllocatesNothing() {
        let (rig, sender, receiver) = ConnectionsTests.pair(PartitionConfiguration(vpCount: 2, messageQueueDepth: 4))
        rig.host.recording = false
        // Warm up once (first-use paths of the test rig itself).
        _ = ConnectionsTests.signal(rig, sender)
        let signal = TestRig.input(.signalEvent, fast: true)
        let post = TestRig.input(.postMessage)
        let input = Frames.input << 12
        for (i, q) in [UInt64(0x110), UInt64(0x1234_5678) | 8 << 32, 42].enumerated() {
            rig.ram(sender).store(q, at: GuestPhysicalAddress(input + UInt64(i * 8)))
        }
        let simpSlot = GuestPhysicalAddress(Frames.simp(1) << 12 + UInt64(ConnectionsTests.messageSINT * 256))
        let flagByte = GuestPhysicalAddress(Frames.siefp(1) << 12 + UInt64(ConnectionsTests.eventSINT * 256) + 100 / 8)
        let reference = rig.reference
        let receiverMemory = rig.ram(receiver)
        var statuses: UInt64 = 0
        var allocations: UInt64 = 0
        for pass in 0..<2 {
        // Pass 0 warms up: the first use of each path instantiates generic type metadata (the
        // Swift runtime allocates those caches once; 4 allocations at the time of writing).
        // Pass 1 is counted.
        if pass == 1 { rig.host.interruptCount = 0; xv_malloc_counter_begin() }
        for round in 0..<1_000 {
            // An event: set, raised, cleared by the "guest".
            statuses |= UInt64(reference.hypercall(partition: sender, vp: VPIndex(0), input: signal, rdx: 0x120 | UInt64(round % 8) << 32, r8: 0).status.rawValue)
            receiverMemory.store(UInt16(0), at: flagByte)
            // Three messages: one to the slot, two queued; then EOM twice to drain.
            for _ in 0..<3 {
                statuses |= UInt64(reference.hypercall(partition: sender, vp: VPIndex(0), input: post, rdx: input, r8: 0).status.rawValue)
            }
            for _ in 0..<3 {
                receiverMemory.store(UInt32(0), at: simpSlot)
                _ = reference.writeMSR(partition: receiver, vp: VPIndex(1), msr: .eom, value: 0)
            }
        }
        }
        allocations = xv_malloc_counter_end()
        #expect(statuses == 0, "every call succeeded")
        #expect(allocations == 0)
        #expect(rig.host.interruptCount == 4_000, "an event and three messages delivered per round")
    }
}
