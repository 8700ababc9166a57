import XenCore
import XenABI

/// Counts upcalls per (domain slot, vCPU) in fixed storage, so recording allocates nothing:
/// the embedder side of the benchmarks and the differential tests.
public final class UpcallRecorder: XenUpcallSink {
    public static var maxDomains: Int { 8 }
    public static var maxVCPUs: Int { 32 }
    private let counts: UnsafeMutablePointer<Int>
    private let vectors: UnsafeMutablePointer<UInt8>
    public private(set) var total = 0

    public init() {
        counts = .allocate(capacity: Self.maxDomains * Self.maxVCPUs)
        counts.initialize(repeating: 0, count: Self.maxDomains * Self.maxVCPUs)
        vectors = .allocate(capacity: Self.maxDomains * Self.maxVCPUs)
        vectors.initialize(repeating: 0, count: Self.maxDomains * Self.maxVCPUs)
    }

    deinit {
        counts.deallocate()
        vectors.deallocate()
    }

    /// Domains are numbered 1...maxDomains in these worlds; anything else is ignored.
    public func upcall(domain: DomainID, vcpu: Int, vector: UInt8) {
        let d = Int(domain.rawValue) - 1
        guard d >= 0, d < Self.maxDomains, vcpu >= 0, vcpu < Self.maxVCPUs else { return }
        counts[d * Self.maxVCPUs + vcpu] += 1
        vectors[d * Self.maxVCPUs + vcpu] = vector
        total += 1
    }

    public func count(domain: DomainID, vcpu: Int) -> Int { counts[(Int(domain.rawValue) - 1) * Self.maxVCPUs + vcpu] }
    public func lastVector(domain: DomainID, vcpu: Int) -> UInt8 { vectors[(Int(domain.rawValue) - 1) * Self.maxVCPUs + vcpu] }

    /// Every count and vector, in order: what the differential test compares.
    public func snapshot(domains: Int, vcpus: Int) -> [Int] {
        var out: [Int] = []
        for d in 0..<domains { for v in 0..<vcpus { out.append(counts[d * Self.maxVCPUs + v]); out.append(Int(vectors[d * Self.maxVCPUs + v])) } }
        return out
    }
}
