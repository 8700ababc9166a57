import CMallocCounter
import Testing
import XVScenarios
import XenABI
import XenCore

/// The fast paths allocate nothing, on either side: EVTCHNOP_send (interdomain and IPI),
/// EVTCHNOP_unmask with a pending event, and upcall delivery, each with its Viridian calls and
/// the receiving layer's interrupt handling. Counted per thread (glibc malloc interposition),
/// after a warm-up that lets the Swift runtime instantiate generic metadata once.
@Suite("Allocations on the fast paths")
struct AllocationTests {
    @Test("every xv bench operation allocates nothing, native and translated, with its upcalls and Viridian calls",
          arguments: BenchOperation.allCases)
    func zeroAllocations(_ operation: BenchOperation) throws {
        try #require(xv_malloc_counter_is_active() != 0, "malloc interposition is not active on this platform")
        let pair = BenchPair(operation)
        for _ in 0..<100 {
            pair.resetNative(); _ = pair.runNative()
            pair.resetTranslated(); _ = pair.runTranslated()
        }
        var native: UInt64 = 0, translated: UInt64 = 0
        let callsBefore = pair.viridianHypercalls
        let upcallsBefore = (pair.nativeUpcalls, pair.translatedUpcalls)
        let wakesBefore = (pair.nativeWakes.wakes, pair.translatedWakes.wakes)
        var parkedEveryTime = true
        for _ in 0..<1_000 {
            pair.resetNative()
            if operation.wakesPerOperation > 0 { parkedEveryTime = parkedEveryTime && pair.parked.native }
            xv_malloc_counter_begin(); let a = pair.runNative(); native += xv_malloc_counter_end()
            pair.resetTranslated()
            if operation.wakesPerOperation > 0 { parkedEveryTime = parkedEveryTime && pair.parked.translated }
            xv_malloc_counter_begin(); let b = pair.runTranslated(); translated += xv_malloc_counter_end()
            #expect(a == 0 && b == 0)
        }
        #expect(native == 0, "native \(operation.rawValue) allocated \(native) times in 1,000 operations")
        #expect(translated == 0, "translated \(operation.rawValue) allocated \(translated) times in 1,000 operations")
        // Every operation raised its upcalls on each side, with its Viridian calls.
        #expect(pair.nativeUpcalls - upcallsBefore.0 == 1_000 * operation.upcallsPerOperation)
        #expect(pair.translatedUpcalls - upcallsBefore.1 == 1_000 * operation.upcallsPerOperation)
        let calls = pair.viridianHypercalls - callsBefore
        #expect(calls == 1_000 * operation.viridianCallsPerOperation, "\(calls) Viridian hypercalls for 1,000 operations")
        // And woke the vCPUs it should (SCHEDOP_poll), which were parked before each.
        #expect(pair.nativeWakes.wakes - wakesBefore.0 == 1_000 * operation.wakesPerOperation)
        #expect(pair.translatedWakes.wakes - wakesBefore.1 == 1_000 * operation.wakesPerOperation)
        #expect(parkedEveryTime, "the poller was parked before every operation")
    }
}

/// The timer, yield and flush paths of the rest of the surface allocate nothing either:
/// set_timer_op with its expiry delivered as VIRQ_TIMER, SCHEDOP_yield, HVMOP_flush_tlbs and
/// the pvclock re-anchoring, on both sides.
@Suite("Allocations on the timer, yield, flush and time paths")
struct SurfaceAllocationTests {
    @Test("set_timer_op to VIRQ_TIMER delivery, SCHEDOP_yield, HVMOP_flush_tlbs and refreshTime allocate nothing, native and translated")
    func zeroAllocations() throws {
        try #require(xv_malloc_counter_is_active() != 0, "malloc interposition is not active on this platform")
        for w in [NativeWorld(domains: 1, vcpus: 1), TranslatedWorld(domains: 1, vcpus: 1)] as [any XenWorld] {
            let d = DomainID(1)
            #expect(w.setCallbackVector(d, 0x50) == 0)
            let port = UInt32(w.bindVIRQ(d, virq: 0, vcpu: 0))
            var tsc: UInt64 = 2_500_000_000
            w.advanceTime(toTSC: tsc)
            func round() -> Bool {
                let now = w.systemTime(d)!
                guard w.hypercall(domain: d, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.setTimerOp.rawValue, rdi: now + 1_000_000)) == 0 else { return false }
                tsc += 2_500_000 * 2
                w.advanceTime(toTSC: tsc)
                guard w.isPending(d, port: port) else { return false }
                w.acknowledgeEvents(d, vcpu: 0)
                guard w.hypercall(domain: d, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.schedOp.rawValue, rdi: 0)) == 0,
                      w.hypercall(domain: d, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.hvmOp.rawValue, rdi: UInt64(HVMOp.flushTlbs.rawValue))) == 0
                else { return false }
                return w.refreshTime(d, vcpu: 0)
            }
            for _ in 0..<50 { #expect(round()) }
            var allocations: UInt64 = 0
            for _ in 0..<500 {
                xv_malloc_counter_begin(); let ok = round(); allocations += xv_malloc_counter_end()
                #expect(ok)
            }
            #expect(allocations == 0, "\(type(of: w)): \(allocations) allocations in 500 rounds")
        }
    }
}
