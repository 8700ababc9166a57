/// A simple in-memory guest-physical address space: `frameCount` zeroed 4 KiB frames starting at
/// frame 0, allocated once. For tests, benchmarks and embedders without their own memory map.
///
/// `GuestRAM` owns the allocation; `region` is the non-owning `GuestMemory` value handed to the
/// core. The owner must outlive every user of the region (the core stores only the region).
public final class GuestRAM {
    /// First byte of frame 0.
    public let base: UnsafeMutableRawPointer
    /// Number of backed frames; frames at or past this are unbacked.
    public let frameCount: UInt64

    /// Allocates and zeroes `frameCount` frames (at least one).
    public init(frameCount: UInt64) {
        let frames = max(frameCount, 1)
        self.frameCount = frames
        let bytes = Int(frames * guestPageSize)
        self.base = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: Int(guestPageSize))
        self.base.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
    }

    deinit { base.deallocate() }

    /// The `GuestMemory` view of this RAM.
    public var region: GuestRAMRegion { GuestRAMRegion(base: base, frameCount: frameCount) }
}

/// A non-owning view of a contiguous block of guest frames starting at frame 0.
@frozen
public struct GuestRAMRegion: GuestMemory {
    public let base: UnsafeMutableRawPointer
    public let frameCount: UInt64

    @inlinable
    public init(base: UnsafeMutableRawPointer, frameCount: UInt64) {
        self.base = base
        self.frameCount = frameCount
    }

    @inlinable
    public func hostAddress(of frame: GuestFrameNumber) -> UnsafeMutableRawPointer? {
        frame.rawValue < frameCount ? base + Int(frame.rawValue << guestPageShift) : nil
    }
}
