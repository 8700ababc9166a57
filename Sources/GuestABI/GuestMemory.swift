/// Guest-physical memory as the embedder provides it: the host address of each backed 4 KiB
/// frame. This is the shape of KVM memory slots and rust-vmm `vm-memory`'s
/// `get_host_address`: the core turns a guest-physical address into a host pointer once per
/// page and never overlays Swift structures on it.
///
/// Conformers are usually small value types (a base pointer and a length) so that generic code
/// specialised on them copies nothing and counts no references.
public protocol GuestMemory {
    /// The host address of the first byte of `frame`, or nil when no memory backs it. The page
    /// behind the address stays valid while the memory it belongs to exists.
    func hostAddress(of frame: GuestFrameNumber) -> UnsafeMutableRawPointer?

    /// The host address of the page a hypercall argument's address lands in, `frame` being
    /// that address's page number. For an HVM guest Xen reads pointer arguments as guest-linear
    /// addresses, through the calling vCPU's page tables (xen-project/xen
    /// xen/arch/x86/hvm/hvm.c hvm_copy_from_guest_linear). A memory whose embedder can walk
    /// them answers here for a page number that is no guest frame (a paging guest's kernel
    /// addresses lie far above its RAM); the default is `hostAddress(of:)`, which treats every
    /// argument address as guest-physical, as identity-mapped guests and the tests have it.
    func argumentPage(_ frame: GuestFrameNumber) -> UnsafeMutableRawPointer?
}

extension GuestMemory {
    /// Every argument address is guest-physical.
    @inlinable
    public func argumentPage(_ frame: GuestFrameNumber) -> UnsafeMutableRawPointer? { hostAddress(of: frame) }
}

extension GuestMemory {
    /// The host address of `length` bytes at `address`, when they are backed and lie inside one
    /// page; nil otherwise (a hostile address or length never reaches past its page).
    @inlinable
    public func hostAddress(of address: GuestPhysicalAddress, length: UInt64) -> UnsafeMutableRawPointer? {
        guard address.rangeStaysInOnePage(length: length), let page = argumentPage(address.frame) else { return nil }
        return page + Int(address.offsetInPage)
    }

    /// Reads a little-endian integer that lies inside one page; nil when it is not backed or
    /// would cross a page.
    @inlinable
    public func load<T: FixedWidthInteger>(_ type: T.Type, at address: GuestPhysicalAddress) -> T? {
        guard let p = hostAddress(of: address, length: UInt64(MemoryLayout<T>.size)) else { return nil }
        return T(littleEndian: p.loadUnaligned(as: T.self))
    }

    /// Writes a little-endian integer that lies inside one page; false when it is not backed or
    /// would cross a page.
    @inlinable
    @discardableResult
    public func store<T: FixedWidthInteger>(_ value: T, at address: GuestPhysicalAddress) -> Bool {
        guard let p = hostAddress(of: address, length: UInt64(MemoryLayout<T>.size)) else { return false }
        p.storeBytes(of: value.littleEndian, as: T.self)
        return true
    }

    /// Calls `body` for each page-sized piece of `count` bytes from `address`, in order, with
    /// the host address of the piece, its offset from `address` and its length; false as soon
    /// as a page is not backed or the range would wrap past 2^64.
    @inlinable
    func forEachPageChunk(at address: GuestPhysicalAddress, count: Int, _ body: (UnsafeMutableRawPointer, Int, Int) -> Void) -> Bool {
        var done = 0
        while done < count {
            guard let at = address.advanced(by: UInt64(done)), let page = argumentPage(at.frame) else { return false }
            let chunk = min(count - done, Int(guestPageSize - at.offsetInPage))
            body(page + Int(at.offsetInPage), done, chunk)
            done += chunk
        }
        return true
    }

    /// Copies `buffer.count` bytes starting at `address` into `buffer`, page by page; false (and
    /// `buffer` partly written) when any page is not backed or the range wraps.
    @inlinable
    public func read(at address: GuestPhysicalAddress, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        forEachPageChunk(at: address, count: buffer.count) { guest, offset, length in
            (buffer.baseAddress! + offset).copyMemory(from: guest, byteCount: length)
        }
    }

    /// Copies `bytes` to guest memory starting at `address`, page by page; false (and the guest
    /// partly written) when any page is not backed or the range wraps.
    @inlinable
    @discardableResult
    public func write(at address: GuestPhysicalAddress, from bytes: UnsafeRawBufferPointer) -> Bool {
        forEachPageChunk(at: address, count: bytes.count) { guest, offset, length in
            guest.copyMemory(from: bytes.baseAddress! + offset, byteCount: length)
        }
    }
}
