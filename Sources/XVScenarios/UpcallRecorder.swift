import CGuestAtomics
import XenCore
import XenABI

/// Counts upcalls per (domain slot, vCPU) in fixed storage, so recording allocates nothing:
/// the embedder side of the benchmarks, the differential tests and the thread stress tests.
/// Upcalls arrive on any vCPU's thread, so counts are atomic words.
public final class UpcallRecorder: XenNativeSink {
    /// Domains the recorder counts: ids 1 ... 8 (others are ignored).
    public static var maxDomains: Int { 8 }
    /// vCPUs per domain the recorder counts: 0 ..< 32 (Xen's legacy limit).
    public static var maxVCPUs: Int { 32 }
    /// Counters a 64-byte line apart, so vCPUs counted on different threads share no line.
    static var stride: Int { 8 }
    private let counts: UnsafeMutablePointer<UInt64>
    /// TLB flushes asked of the embedder (native side), per domain, a line apart.
    private let flushes: UnsafeMutablePointer<UInt64>
    private let timers: UnsafeMutablePointer<UInt64>

    /// A recorder with every count at zero, the guest TSC at 0 and no timer armed; its counters are allocated here, once.
    public init() {
        counts = .allocate(capacity: Self.maxDomains * Self.maxVCPUs * Self.stride)
        counts.initialize(repeating: 0, count: Self.maxDomains * Self.maxVCPUs * Self.stride)
        flushes = .allocate(capacity: (Self.maxDomains + 1) * Self.stride)
        flushes.initialize(repeating: 0, count: (Self.maxDomains + 1) * Self.stride)
        timers = .allocate(capacity: Self.maxDomains * Self.maxVCPUs)
        timers.initialize(repeating: 0, count: Self.maxDomains * Self.maxVCPUs)
    }

    deinit {
        counts.deallocate()
        flushes.deallocate()
        timers.deallocate()
    }

    /// Word `index` of `domain`'s line of embedder counters (0 flushes, 1 NMIs, 2 yields,
    /// 3 shutdowns, 4 the last shutdown reason, 5 vCPUs started, 6 vCPUs stopped); nil for a
    /// domain outside 1...maxDomains.
    func domainWord(_ domain: DomainID, _ index: Int) -> UnsafeMutablePointer<UInt64>? {
        let d = Int(domain.rawValue) - 1
        guard d >= 0, d < Self.maxDomains else { return nil }
        return flushes + d * Self.stride + index
    }

    /// HVMOP_flush_tlbs on the native side: counted per domain (a locked add: flushes may come
    /// from several vCPUs at once, and no benchmark's fast path counts here).
    public func flushTLBs(domain: DomainID) {
        if let w = domainWord(domain, 0) { _ = xv_atomic_fetch_add_u64(w, 1) }
    }

    /// NMIs asked for, per domain (a locked add, as flushes).
    public func nmi(domain: DomainID, vcpu: Int) {
        if let w = domainWord(domain, 1) { _ = xv_atomic_fetch_add_u64(w, 1) }
    }

    /// NMIs recorded for `domain` (0 for a domain outside 1 ... maxDomains).
    public func nmiCount(domain: DomainID) -> Int { domainWord(domain, 1).map { Int(xv_atomic_load_u64($0)) } ?? 0 }

    /// SCHEDOP_yield on the native side, per domain.
    public func yieldVCPU(domain: DomainID, vcpu: Int) {
        if let w = domainWord(domain, 2) { _ = xv_atomic_fetch_add_u64(w, 1) }
    }

    /// SCHEDOP_yields recorded for `domain`.
    public func yieldCount(domain: DomainID) -> Int { domainWord(domain, 2).map { Int(xv_atomic_load_u64($0)) } ?? 0 }

    /// Shutdowns reported, per domain, and the last reason.
    public func shutdown(domain: DomainID, reason: UInt8) {
        guard let count = domainWord(domain, 3), let last = domainWord(domain, 4) else { return }
        xv_store_release_u64(last, UInt64(reason))
        _ = xv_atomic_fetch_add_u64(count, 1)
    }

    /// Shutdowns recorded for `domain`, and the last reason given (SHUTDOWN_* code).
    public func shutdowns(domain: DomainID) -> (count: Int, reason: UInt8) {
        guard let count = domainWord(domain, 3), let last = domainWord(domain, 4) else { return (0, 0) }
        return (Int(xv_atomic_load_u64(count)), UInt8(truncatingIfNeeded: xv_load_acquire_u64(last)))
    }

    /// VCPUOP_initialise's contexts as the embedder received them, by (domain, vCPU), and
    /// whether to refuse them (single-threaded tests only).
    @exclusivity(unchecked) public private(set) var contexts: [Int: XenVCPUContext] = [:]
    /// Whether `initialiseVCPU` refuses every context (the guest then gets -EINVAL); set by a test before it runs.
    @exclusivity(unchecked) public var refusesContexts = false
    /// Records `context` for (domain, vCPU) and accepts it, unless `refusesContexts`. Not thread-safe (a dictionary write).
    public func initialiseVCPU(domain: DomainID, vcpu: Int, _ context: XenVCPUContext) -> Bool {
        guard !refusesContexts else { return false }
        contexts[Int(domain.rawValue) * Self.maxVCPUs + vcpu] = context
        return true
    }
    /// The context VCPUOP_initialise last gave `vcpu` of `domain`, if any.
    public func context(domain: DomainID, vcpu: Int) -> XenVCPUContext? { contexts[Int(domain.rawValue) * Self.maxVCPUs + vcpu] }

    /// VCPUOP_up and VCPUOP_down that changed whether a vCPU runs, per domain (words 5 and 6).
    public func vcpuPowerChanged(domain: DomainID, vcpu: Int, up: Bool) {
        if let w = domainWord(domain, up ? 5 : 6) { _ = xv_atomic_fetch_add_u64(w, 1) }
    }
    /// VCPUOP_up and VCPUOP_down power changes recorded for `domain`.
    public func powerChanges(domain: DomainID) -> (ups: Int, downs: Int) {
        (domainWord(domain, 5).map { Int(xv_atomic_load_u64($0)) } ?? 0, domainWord(domain, 6).map { Int(xv_atomic_load_u64($0)) } ?? 0)
    }

    /// The native side's guest TSC (set by the world as it advances time) and its frequency,
    /// the reference hypervisor's default, so both worlds describe one clock alike.
    public let guestTSCHz: UInt64 = 2_500_000_000
    /// The native side's guest TSC now (an acquire load); it moves only through `setGuestTSC`.
    public func guestTSC() -> UInt64 { xv_load_acquire_u64(flushes + Self.maxDomains * Self.stride) }
    /// Sets the native side's guest TSC (a release store; the world moves it forward only).
    public func setGuestTSC(_ tsc: UInt64) { xv_store_release_u64(flushes + Self.maxDomains * Self.stride, tsc) }

    /// The native side's armed timers, per (domain, vCPU): deadline + 1, 0 while disarmed.
    /// `expire` is how the world fires one (XenNativeSystem.timerExpired); a deadline already
    /// past when armed fires at once, as a host timer does.
    @exclusivity(unchecked) public var expire: ((DomainID, Int) -> Void)?

    /// Arms `vcpu`'s timer at Xen system time `deadline` (ns), replacing the one before, or disarms it (nil); a deadline not after now fires at once, on the calling thread, through `expire`.
    public func armTimer(domain: DomainID, vcpu: Int, deadline: UInt64?) {
        let d = Int(domain.rawValue) - 1
        guard d >= 0, d < Self.maxDomains, vcpu >= 0, vcpu < Self.maxVCPUs else { return }
        xv_store_release_u64(timers + d * Self.maxVCPUs + vcpu, deadline.map { $0 &+ 1 } ?? 0)
        if let deadline, deadline <= systemTimeNow() {
            xv_store_release_u64(timers + d * Self.maxVCPUs + vcpu, 0)
            expire?(domain, vcpu)
        }
    }

    /// The armed deadline of (domain, vCPU), if any.
    public func armedTimer(domain: DomainID, vcpu: Int) -> UInt64? {
        let d = Int(domain.rawValue) - 1
        guard d >= 0, d < Self.maxDomains, vcpu >= 0, vcpu < Self.maxVCPUs else { return nil }
        let w = xv_load_acquire_u64(timers + d * Self.maxVCPUs + vcpu)
        return w == 0 ? nil : w - 1
    }

    /// Fires, earliest first, every armed timer due at the current TSC.
    public func fireDueTimers() {
        let now = systemTimeNow()
        while true {
            var best: (Int, Int, UInt64)?
            for d in 0..<Self.maxDomains {
                for v in 0..<Self.maxVCPUs {
                    let w = xv_load_acquire_u64(timers + d * Self.maxVCPUs + v)
                    guard w != 0, w - 1 <= now, best == nil || w - 1 < best!.2 else { continue }
                    best = (d, v, w - 1)
                }
            }
            guard let (d, v, _) = best else { return }
            xv_store_release_u64(timers + d * Self.maxVCPUs + v, 0)
            expire?(DomainID(UInt16(d + 1)), v)
        }
    }

    /// Xen system time at the current TSC, as the native side computes it.
    func systemTimeNow() -> UInt64 {
        let page = ReferenceTSCParameters(tscHz: guestTSCHz)!
        return page.nanoseconds(atTSC: page.tsc(atReferenceTime: page.referenceTime(atTSC: guestTSC())))
    }

    /// Whole-domain TLB flushes recorded for `domain`.
    public func flushCount(domain: DomainID) -> Int { domainWord(domain, 0).map { Int(xv_atomic_load_u64($0)) } ?? 0 }

    /// Upcalls recorded so far, all domains.
    public var total: Int {
        var n = 0
        for i in 0..<Self.maxDomains * Self.maxVCPUs { n += Int(xv_load_relaxed_u64(counts + i * Self.stride)) }
        return n
    }

    /// Domains are numbered 1...maxDomains in these worlds; anything else is ignored.
    public func upcall(domain: DomainID, vcpu: Int, vector: UInt8) {
        let d = Int(domain.rawValue) - 1
        guard d >= 0, d < Self.maxDomains, vcpu >= 0, vcpu < Self.maxVCPUs else { return }
        // A relaxed load and store, not a locked add: the harness adds no locked instruction
        // to either side's measurement. Exact while one thread at a time raises a given
        // vCPU's upcalls (the benchmarks, and the stress tests' handshake vCPU). The vector
        // is the next word of the same line.
        let c = counts + (d * Self.maxVCPUs + vcpu) * Self.stride
        xv_store_relaxed_u64(c + 1, UInt64(vector))
        xv_store_relaxed_u64(c, xv_load_relaxed_u64(c) &+ 1)
    }

    /// Upcalls recorded for `vcpu` of `domain` (a relaxed load). Unchecked: `domain` must be 1 ... maxDomains and `vcpu` below maxVCPUs.
    public func count(domain: DomainID, vcpu: Int) -> Int {
        let d = Int(domain.rawValue) - 1
        guard d >= 0, d < Self.maxDomains, vcpu >= 0, vcpu < Self.maxVCPUs else { return 0 }
        return Int(xv_load_relaxed_u64(counts + (d * Self.maxVCPUs + vcpu) * Self.stride))
    }
    /// The vector of the last upcall recorded for `vcpu` of `domain` (0 before any). Unchecked, as `count`.
    public func lastVector(domain: DomainID, vcpu: Int) -> UInt8 {
        let d = Int(domain.rawValue) - 1
        guard d >= 0, d < Self.maxDomains, vcpu >= 0, vcpu < Self.maxVCPUs else { return 0 }
        return UInt8(truncatingIfNeeded: xv_load_relaxed_u64(counts + (d * Self.maxVCPUs + vcpu) * Self.stride + 1))
    }

    /// Every count and vector, in order: what the differential test compares.
    public func snapshot(domains: Int, vcpus: Int) -> [Int] {
        var out: [Int] = []
        for d in 0..<domains {
            for v in 0..<vcpus { out.append(count(domain: DomainID(UInt16(d + 1)), vcpu: v)); out.append(Int(lastVector(domain: DomainID(UInt16(d + 1)), vcpu: v))) }
        }
        return out
    }
}
