import CGuestAtomics
import XenABI

/// How many words a `DomainChunks` table keeps per domain (at least 1).
public protocol DomainChunkLayout {
    /// The words per domain.
    static var wordsPerDomain: Int { get }
}

/// A fixed number of words per domain id, in chunks of 256 ids allocated when an id first needs
/// one, so a table costs what its domains use, not the 32,752 ids there could be. A chunk is
/// published with a release store and read with an acquire load, and lives as long as the
/// table: a lookup is two loads, with no lock and no reference counting. Creating a chunk is
/// the caller's to serialise. Serves the root's records (XenViridianRoot) and the C ABI's
/// domain directory (XVEmbedding). `Layout` fixes the words per domain at compile time, so a
/// lookup's index is a shift, as it was in each table before.
public struct DomainChunks<Layout: DomainChunkLayout> {
    /// Per chunk: the address of its `chunkSize * wordsPerDomain` words, 0 until allocated.
    @usableFromInline let chunks: UnsafeMutablePointer<UInt64>
    /// The words each domain has.
    @inlinable public var wordsPerDomain: Int { Layout.wordsPerDomain }

    /// Domain ids per chunk.
    @inlinable public static var chunkSize: Int { 256 }
    /// Chunks that cover every id below DOMID_FIRST_RESERVED.
    @inlinable public static var chunkCount: Int { (Int(DomainID.firstReserved.rawValue) + chunkSize - 1) / chunkSize }

    /// An empty table (no chunk allocated).
    public init() {
        chunks = .allocate(capacity: Self.chunkCount)
        chunks.initialize(repeating: 0, count: Self.chunkCount)
    }

    /// Frees every chunk and the table; the words' contents are the caller's to release first.
    public func deallocate() {
        for c in 0..<Self.chunkCount where chunks[c] != 0 { UnsafeMutablePointer<UInt64>(bitPattern: UInt(chunks[c]))!.deallocate() }
        chunks.deallocate()
    }

    /// `domain`'s words, when its chunk exists (a domain never given words reads as zeros); nil
    /// for a reserved id or a chunk not allocated.
    @inline(__always)
    @inlinable public func words(_ domain: DomainID) -> UnsafeMutablePointer<UInt64>? {
        guard domain < DomainID.firstReserved else { return nil }
        let d = Int(domain.rawValue)
        guard let chunk = UnsafeMutablePointer<UInt64>(bitPattern: UInt(xv_load_acquire_u64(chunks + d / Self.chunkSize))) else { return nil }
        return chunk + (d % Self.chunkSize) * wordsPerDomain
    }

    /// `domain`'s words, allocating (zeroed) its chunk; nil for a reserved id. The caller
    /// serialises calls that may allocate.
    @inlinable public func wordsCreating(_ domain: DomainID) -> UnsafeMutablePointer<UInt64>? {
        guard domain < DomainID.firstReserved else { return nil }
        if let w = words(domain) { return w }
        let d = Int(domain.rawValue)
        let chunk = UnsafeMutablePointer<UInt64>.allocate(capacity: Self.chunkSize * wordsPerDomain)
        chunk.initialize(repeating: 0, count: Self.chunkSize * wordsPerDomain)
        xv_store_release_u64(chunks + d / Self.chunkSize, UInt64(UInt(bitPattern: chunk)))
        return chunk + (d % Self.chunkSize) * wordsPerDomain
    }

    /// Chunks allocated so far.
    @inlinable public var allocatedChunks: Int {
        (0..<Self.chunkCount).reduce(0) { $0 + (xv_load_acquire_u64(chunks + $1) != 0 ? 1 : 0) }
    }

    /// Calls `body` with every id of every allocated chunk and its words, in id order.
    @inlinable public func forEachAllocated(_ body: (DomainID, UnsafeMutablePointer<UInt64>) -> Void) {
        for c in 0..<Self.chunkCount {
            guard let chunk = UnsafeMutablePointer<UInt64>(bitPattern: UInt(xv_load_acquire_u64(chunks + c))) else { continue }
            for i in 0..<Self.chunkSize where c * Self.chunkSize + i < Int(DomainID.firstReserved.rawValue) {
                body(DomainID(UInt16(c * Self.chunkSize + i)), chunk + i * wordsPerDomain)
            }
        }
    }
}
