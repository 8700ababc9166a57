import CGuestAtomics

/// Atomic bit operations on words the guest shares with the hypervisor: shared_info's pending
/// and mask bitmaps, a vcpu_info's selector and upcall byte, FIFO event words and control
/// blocks. The guest's vCPUs change the same words while a hypercall runs, so every
/// read-modify-write is one locked instruction, as Xen's guest_test_and_set_bit and friends are
/// (xen-project/xen xen/include/xen/guest_atomics.h). Pointers come from `GuestMemory` and are
/// naturally aligned by the ABI offsets they are built from.
@usableFromInline enum GuestWords {
    /// Sets bit `bit` of the 64-bit word at `p`; true when it was already set.
    @inline(__always)
    @inlinable static func testAndSet(_ p: UnsafeMutableRawPointer, bit64 bit: Int) -> Bool {
        let mask = UInt64(1) << UInt64(bit & 63)
        return xv_atomic_fetch_or_u64(p, mask.littleEndian).littleEndian & mask != 0
    }

    /// Clears bit `bit` of the 64-bit word at `p`; true when it was set.
    @inline(__always)
    @inlinable static func testAndClear(_ p: UnsafeMutableRawPointer, bit64 bit: Int) -> Bool {
        let mask = UInt64(1) << UInt64(bit & 63)
        return xv_atomic_fetch_and_u64(p, (~mask).littleEndian).littleEndian & mask != 0
    }

    @inline(__always)
    @inlinable static func test(_ p: UnsafeRawPointer, bit64 bit: Int) -> Bool {
        UInt64(littleEndian: xv_atomic_load_u64(p)) & (UInt64(1) << UInt64(bit & 63)) != 0
    }

    /// Swaps the 64-bit word at `p` with 0 and returns what it held.
    @inline(__always)
    @inlinable static func take64(_ p: UnsafeMutableRawPointer) -> UInt64 {
        UInt64(littleEndian: xv_atomic_exchange_u64(p, 0))
    }

    @inline(__always)
    @inlinable static func testAndSet(_ p: UnsafeMutableRawPointer, bit32 bit: Int) -> Bool {
        let mask = UInt32(1) << UInt32(bit & 31)
        return xv_atomic_fetch_or_u32(p, mask.littleEndian).littleEndian & mask != 0
    }

    @inline(__always)
    @inlinable static func testAndClear(_ p: UnsafeMutableRawPointer, bit32 bit: Int) -> Bool {
        let mask = UInt32(1) << UInt32(bit & 31)
        return xv_atomic_fetch_and_u32(p, (~mask).littleEndian).littleEndian & mask != 0
    }

    @inline(__always)
    @inlinable static func load32(_ p: UnsafeRawPointer) -> UInt32 { UInt32(littleEndian: xv_atomic_load_u32(p)) }

    @inline(__always)
    @inlinable static func store32(_ p: UnsafeMutableRawPointer, _ v: UInt32) { xv_atomic_store_u32(p, v.littleEndian) }

    /// Compare-and-swap on a 32-bit word; returns the value found (== `expected` on success).
    @inline(__always)
    @inlinable static func compareExchange32(_ p: UnsafeMutableRawPointer, expected: UInt32, desired: UInt32) -> UInt32 {
        UInt32(littleEndian: xv_atomic_cas_u32(p, expected.littleEndian, desired.littleEndian))
    }

    /// Sets bit 0 of the byte at `p`; true when it was already set (vcpu_info
    /// evtchn_upcall_pending).
    @inline(__always)
    @inlinable static func testAndSetByte(_ p: UnsafeMutableRawPointer) -> Bool {
        xv_atomic_fetch_or_u8(p, 1) & 1 != 0
    }
}
