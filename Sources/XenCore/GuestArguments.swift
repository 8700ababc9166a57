import GuestABI

/// Reading and writing hypercall argument structures: a field of the structure at `base` (the
/// pointer the guest passed), at the offset the spec tables give. A field may straddle a page
/// (Xen's copy_from_guest copies across pages); an unbacked byte, or an address that wraps, is
/// a failure the caller answers with -EFAULT.
extension GuestMemory {
    @inline(__always)
    @inlinable func argument<T: FixedWidthInteger>(_ type: T.Type, at base: UInt64, _ field: ABIField) -> T? {
        let (at, overflow) = base.addingReportingOverflow(UInt64(field.offset))
        guard !overflow else { return nil }
        let address = GuestPhysicalAddress(at)
        if let value = load(T.self, at: address) { return value }
        var value = T.zero
        let ok = withUnsafeMutableBytes(of: &value) { read(at: address, into: $0) }
        return ok ? T(littleEndian: value) : nil
    }

    @inline(__always)
    @inlinable func setArgument<T: FixedWidthInteger>(_ value: T, at base: UInt64, _ field: ABIField) -> Bool {
        let (at, overflow) = base.addingReportingOverflow(UInt64(field.offset))
        guard !overflow else { return false }
        let address = GuestPhysicalAddress(at)
        if store(value, at: address) { return true }
        var le = value.littleEndian
        return withUnsafeBytes(of: &le) { write(at: address, from: $0) }
    }

    /// Whether all `size` bytes of an argument structure at `base` are backed (Xen's
    /// copy_from_guest of the whole structure, before the handler looks at any field). A
    /// structure is at most a page, so only its first and last bytes' pages need checking.
    @inline(__always)
    @inlinable func argumentReadable(at base: UInt64, size: Int) -> Bool {
        guard size > 0 else { return true }
        let (last, overflow) = base.addingReportingOverflow(UInt64(size - 1))
        guard !overflow, argumentPage(GuestPhysicalAddress(base).frame) != nil else { return false }
        return GuestPhysicalAddress(last).frame == GuestPhysicalAddress(base).frame || argumentPage(GuestPhysicalAddress(last).frame) != nil
    }
}
