/// The position of one field inside a guest-visible structure: a byte offset from the start of
/// the structure, its size in bytes, and, for arrays, the element count.
///
/// Layouts come from the spec tables (`Specs/*/structs*.tbl`) through the generator; code reads
/// guest structures from bytes at these offsets and never overlays Swift structs on guest memory.
@frozen
public struct ABIField: Hashable, Sendable {
    /// Byte offset from the start of the enclosing structure.
    public let offset: Int
    /// Size of the whole field in bytes (all elements, for an array).
    public let size: Int
    /// Number of elements: 1 for a scalar or a nested structure.
    public let count: Int

    /// A field at byte `offset` of `size` bytes in all; `count` elements for an array (1 otherwise). No checks: the values come from the generated layouts.
    @inlinable
    public init(offset: Int, size: Int, count: Int = 1) {
        self.offset = offset
        self.size = size
        self.count = count
    }

    /// Size of one element (`size / count`).
    @inlinable
    public var elementSize: Int { size / count }

    /// Byte offset of element `index` of an array field. The caller bounds-checks `index`
    /// against `count`; this is plain arithmetic.
    @inlinable
    public func offset(ofElement index: Int) -> Int { offset + index * elementSize }

    /// One past the last byte of the field.
    @inlinable
    public var end: Int { offset + size }
}
