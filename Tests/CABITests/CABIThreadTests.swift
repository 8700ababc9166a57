import CGuestAtomics
import CXenViridian
import Foundation
import Testing
import XenViridianC
import XVTestSupport

/// The C ABI under the threading contract (Docs/Threading.md): two vCPUs of one domain send
/// through `xv_hypercall` on their own threads, each to its own vCPU of another domain, while a
/// third thread moves the guests' TSC and a fourth creates more domains. Every send answers 0
/// and every event arrives; also run under ThreadSanitizer (.ci/tsan).
@Suite("Threads: the C ABI")
struct CABIThreadTests {
    static let sends = 5_000

    @Test(arguments: [XV_SIDE_NATIVE, XV_SIDE_TRANSLATED])
    func sendsCreationAndTimeOnThreads(side: UInt32) throws {
        let e = CEmbedder(side: side)
        #expect(e.addDomain(1, vcpus: 2) == XV_OK && e.addDomain(2, vcpus: 2) == XV_OK)
        #expect(e.setCallbackVector(1) == 0 && e.setCallbackVector(2) == 0)
        // Two channels from domain 1 to domain 2, the second bound to domain 2's vCPU 1.
        let (l0, r0) = try #require(e.connect(1, 2))
        let (l1, r1) = try #require(e.connect(1, 2))
        let a2 = e.page(2, CEmbedder.argGFN)
        a2.storeBytes(of: r1, toByteOffset: 0, as: UInt32.self)
        a2.storeBytes(of: UInt32(1), toByteOffset: 4, as: UInt32.self)
        #expect(e.call(2, 32, 8, e.arg) == 0)   // EVTCHNOP_bind_vcpu
        e.acknowledge(1); e.acknowledge(2)
        // Each sender's argument in its own 64 bytes of domain 1's argument page.
        let a1 = e.page(1, CEmbedder.argGFN)
        a1.storeBytes(of: l0, toByteOffset: 1024, as: UInt32.self)
        a1.storeBytes(of: l1, toByteOffset: 1088, as: UInt32.self)
        let shared2 = UInt(bitPattern: e.page(2, 0))
        let system = UInt(bitPattern: e.system)
        let arg = e.arg
        let failures = Counter(), missing = Counter(), done = Counter()
        func sender(vcpu: UInt32, port: UInt32, offset: UInt64) -> @Sendable () -> Void {
            {
                let s = OpaquePointer(bitPattern: system)
                let word = UnsafeMutableRawPointer(bitPattern: shared2)! + 2048 + Int(port / 64) * 8
                let bit = UInt64(1) << UInt64(port % 64)
                var r = xv_hypercall_regs()
                r.rax = 32; r.rdi = 4; r.rsi = arg + offset
                var failed = 0, lost = 0
                for _ in 0..<Self.sends {
                    if xv_hypercall(s, 1, vcpu, &r) != 0 { failed += 1 }
                    var seen = false
                    for spin in 0..<200_000 {
                        if xv_atomic_load_u64(word) & bit != 0 { seen = true; break }
                        if spin > 1000 { sched_yield() }
                    }
                    if !seen { lost += 1 }
                    _ = xv_atomic_fetch_and_u64(word, ~bit)
                }
                failures.add(failed); missing.add(lost); done.add(1)
            }
        }
        runConcurrently([
            sender(vcpu: 0, port: r0, offset: 1024),
            sender(vcpu: 1, port: r1, offset: 1088),
            {
                // The embedder's timer thread.
                let s = OpaquePointer(bitPattern: system)
                var tsc: UInt64 = 0
                while done.load() < 2 { tsc += 25_000; xv_set_guest_tsc(s, tsc); sched_yield() }
            },
            {
                // More domains, created while the others run.
                for d in UInt16(3)...8 { if e.addDomainConcurrently(d) != XV_OK { failures.add(1) } }
            },
        ])
        #expect(failures.load() == 0)
        #expect(missing.load() == 0, "\(missing.load()) events did not arrive")
        for d in UInt16(3)...8 { #expect(e.call(d, 17) == (4 << 16 | 17)) }
    }
}

/// A counter threads add to and the test reads after they joined.
final class Counter: @unchecked Sendable {
    private let word = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    init() { word.initialize(to: 0) }
    deinit { word.deallocate() }
    func load() -> Int { Int(xv_atomic_load_u64(word)) }
    func add(_ n: Int) { _ = xv_atomic_fetch_add_u64(word, UInt64(n)) }
}
