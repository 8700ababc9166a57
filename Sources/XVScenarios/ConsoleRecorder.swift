import CGuestAtomics
import XenABI
import XenCore

/// Keeps every console line each domain writes, in order: the embedder's console in the test
/// worlds, so both sides' output can be compared. Lines may come from any vCPU's thread.
public final class ConsoleRecorder: XenConsoleSink {
    private let lock: UnsafeMutablePointer<UInt32>
    @exclusivity(unchecked) private var storage: [(DomainID, [UInt8])] = []

    /// An empty recorder.
    public init() {
        lock = .allocate(capacity: 16)
        lock.initialize(repeating: 0, count: 16)
    }

    deinit { lock.deallocate() }

    /// Appends a copy of `line` for `domain` under the recorder's lock (allocates: not for fast paths).
    public func consoleLine(domain: DomainID, _ line: UnsafeRawBufferPointer) {
        let bytes = Array(line)
        xv_spin_lock(lock)
        storage.append((domain, bytes))
        xv_spin_unlock(lock)
    }

    /// The lines so far, as (domain, bytes).
    public var lines: [(DomainID, [UInt8])] {
        xv_spin_lock(lock)
        defer { xv_spin_unlock(lock) }
        return storage
    }

    /// The lines of one domain, as text (bytes the layer passes on are printable ASCII).
    public func text(of domain: DomainID) -> [String] {
        lines.filter { $0.0 == domain }.map { String(decoding: $0.1, as: UTF8.self) }
    }
}
