/// Size of a guest page on x86_64, in bytes. Both Xen (`XEN_PAGE_SIZE`) and Viridian
/// (`HV_HYP_PAGE_SIZE`) use 4 KiB pages for every structure this project touches.
public let guestPageSize: UInt64 = 4096

/// log2 of `guestPageSize`.
public let guestPageShift: UInt64 = 12

/// A guest-physical address (Xen "GPA"; Viridian "GPA"). Guest-controlled: never trusted.
@frozen
public struct GuestPhysicalAddress: RawRepresentable, Hashable, Comparable, Sendable {
    /// The address as a 64-bit number, exactly as the guest gave it.
    public var rawValue: UInt64
    /// Wraps a raw 64-bit guest-physical address; no range or alignment check.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Wraps a raw 64-bit guest-physical address (unlabelled form of `init(rawValue:)`).
    @inlinable public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    /// The frame that contains this address.
    @inlinable public var frame: GuestFrameNumber { GuestFrameNumber(rawValue: rawValue >> guestPageShift) }
    /// Byte offset inside that frame.
    @inlinable public var offsetInPage: UInt64 { rawValue & (guestPageSize - 1) }
    /// Whether the address is a multiple of `alignment` (a power of two).
    @inlinable public func isAligned(to alignment: UInt64) -> Bool { rawValue & (alignment - 1) == 0 }

    /// `self + bytes`, or nil when that overflows 64 bits (a hostile address must not wrap).
    @inlinable
    public func advanced(by bytes: UInt64) -> GuestPhysicalAddress? {
        let (sum, overflow) = rawValue.addingReportingOverflow(bytes)
        return overflow ? nil : GuestPhysicalAddress(rawValue: sum)
    }

    /// Whether `length` bytes starting here stay inside one page (TLFS: hypercall input and
    /// output blocks must not cross a page boundary). A zero length never crosses.
    @inlinable
    public func rangeStaysInOnePage(length: UInt64) -> Bool {
        length == 0 || (length <= guestPageSize && offsetInPage + length <= guestPageSize)
    }

    /// Orders addresses by their numeric value.
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// A guest frame number: a guest-physical address shifted right by `guestPageShift`
/// (Xen `xen_pfn_t` / "gfn"; Viridian "GPFN"). Guest-controlled: never trusted.
@frozen
public struct GuestFrameNumber: RawRepresentable, Hashable, Comparable, Sendable {
    /// The frame number as a 64-bit number, exactly as the guest gave it (it may exceed what a 64-bit address can hold; see `address`).
    public var rawValue: UInt64
    /// Wraps a raw frame number; no range check.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Wraps a raw frame number (unlabelled form of `init(rawValue:)`).
    @inlinable public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    /// The first address of the frame, or nil when the frame number is too large to be shifted
    /// into a 64-bit address.
    @inlinable
    public var address: GuestPhysicalAddress? {
        rawValue > (UInt64.max >> guestPageShift) ? nil : GuestPhysicalAddress(rawValue: rawValue << guestPageShift)
    }

    /// Orders frame numbers by their numeric value.
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}
