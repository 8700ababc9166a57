import CMallocCounter
import Testing
import XVScenarios

/// The fast paths allocate nothing, on either side: EVTCHNOP_send (interdomain and IPI),
/// EVTCHNOP_unmask with a pending event, and upcall delivery, each with its Viridian calls and
/// the receiving layer's interrupt handling. Counted per thread (glibc malloc interposition),
/// after a warm-up that lets the Swift runtime instantiate generic metadata once.
@Suite("Allocations on the fast paths")
struct AllocationTests {
    @Test("EVTCHNOP_send, EVTCHNOP_unmask and upcall delivery allocate nothing, native and translated",
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
        for _ in 0..<1_000 {
            pair.resetNative()
            xv_malloc_counter_begin(); let a = pair.runNative(); native += xv_malloc_counter_end()
            pair.resetTranslated()
            xv_malloc_counter_begin(); let b = pair.runTranslated(); translated += xv_malloc_counter_end()
            #expect(a == 0 && b == 0)
        }
        #expect(native == 0, "native \(operation.rawValue) allocated \(native) times in 1,000 operations")
        #expect(translated == 0, "translated \(operation.rawValue) allocated \(translated) times in 1,000 operations")
        // Every operation raised exactly one upcall on each side, with at most one Viridian call.
        #expect(pair.nativeUpcalls - upcallsBefore.0 == 1_000)
        #expect(pair.translatedUpcalls - upcallsBefore.1 == 1_000)
        let calls = pair.viridianHypercalls - callsBefore
        #expect(calls == (operation == .upcallDelivery ? 0 : 1_000), "\(calls) Viridian hypercalls for 1,000 operations")
    }
}
