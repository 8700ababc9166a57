/// The little-endian byte codec both saved-state formats use: the reference hypervisor's
/// partition state (`ViridianSaveFormat`) and the layer's domain image (`DomainImageFormat`).
/// The writer appends; the reader answers nil, moving nowhere, for a read past the end, so a
/// decoder over hostile bytes never traps.
public struct SaveImageWriter {
    /// The bytes written so far.
    public var bytes: [UInt8]
    /// A writer that appends to `bytes`.
    @inlinable public init(bytes: [UInt8] = []) { self.bytes = bytes }
    /// Appends one byte.
    @inlinable public mutating func u8(_ v: UInt8) { bytes.append(v) }
    /// Appends `v`, little-endian.
    @inlinable public mutating func u16(_ v: UInt16) { for i in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    /// Appends `v`, little-endian.
    @inlinable public mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    /// Appends `v`, little-endian.
    @inlinable public mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    /// Appends a presence byte (0 or 1), then the value (0 when absent).
    @inlinable public mutating func optional(_ v: UInt64?) { u8(v == nil ? 0 : 1); u64(v ?? 0) }
    /// Appends `count` bytes from `source`.
    @inlinable public mutating func raw(_ source: UnsafeRawPointer, count: Int) {
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: source, count: count))
    }
    /// Overwrites the four bytes at `offset` with `v`, little-endian (a length written after its contents).
    @inlinable public mutating func patch32(_ v: UInt32, at offset: Int) {
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
    }
    /// Overwrites the eight bytes at `offset` with `v`, little-endian.
    @inlinable public mutating func patch64(_ v: UInt64, at offset: Int) {
        for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
    }
}

/// Reads what `SaveImageWriter` wrote; every read past the end is nil and moves nowhere.
public struct SaveImageReader {
    /// The bytes being read.
    public let bytes: [UInt8]
    /// The offset of the next read.
    public var at: Int
    /// The offset reads stop at (the end of the bytes, or of the section being read).
    public var end: Int
    /// A reader of all of `bytes`.
    @inlinable public init(bytes: [UInt8]) { self.bytes = bytes; at = 0; end = bytes.count }
    /// Whether every byte up to `end` has been read.
    @inlinable public var isAtEnd: Bool { at == end }
    /// Bytes left before `end`.
    @inlinable public var remaining: Int { end - at }
    /// The next `n` (at most 8) bytes as a little-endian number, or nil past the end.
    @inlinable public mutating func take(_ n: Int) -> UInt64? {
        guard n >= 0, n <= end - at else { return nil }
        var v: UInt64 = 0
        for i in 0..<n { v |= UInt64(bytes[at + i]) << UInt64(8 * i) }
        at += n
        return v
    }
    /// The next byte.
    @inlinable public mutating func u8() -> UInt8? { take(1).map { UInt8($0) } }
    /// The next two bytes, little-endian.
    @inlinable public mutating func u16() -> UInt16? { take(2).map { UInt16($0) } }
    /// The next four bytes, little-endian.
    @inlinable public mutating func u32() -> UInt32? { take(4).map { UInt32($0) } }
    /// The next eight bytes, little-endian.
    @inlinable public mutating func u64() -> UInt64? { take(8) }
    /// A presence byte (which must be 0 or 1) and a value: `.some(nil)` for absent, nil when malformed.
    @inlinable public mutating func optional() -> UInt64?? {
        guard let flag = u8(), flag <= 1, let v = u64() else { return nil }
        return .some(flag == 1 ? v : nil)
    }
    /// The next `n` bytes, or nil past the end.
    @inlinable public mutating func bytes(_ n: Int) -> ArraySlice<UInt8>? {
        guard n >= 0, n <= end - at else { return nil }
        defer { at += n }
        return bytes[at..<at + n]
    }
}

/// FNV-1a, 64-bit (Fowler, Noll and Vo's public-domain hash): the saved images' check that no
/// byte changed, not a defence against a forger (who can recompute it).
public enum SaveImageChecksum {
    /// The FNV-1a 64 hash of `bytes[range]`.
    @inlinable public static func fnv1a(_ bytes: [UInt8], _ range: Range<Int>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in range {
            h ^= UInt64(bytes[i])
            h = h &* 0x0000_0100_0000_01b3
        }
        return h
    }
}
