import GuestABI
import ViridianABI

/// How the embedder places a domain on the Viridian target.
public struct LayerConfiguration: Sendable {
    /// The partition (created by the embedder on the target) that runs the domain, with at
    /// least as many VPs as the domain has vCPUs; vCPU n is VP n.
    public var partition: PartitionID
    /// First of `3 * vcpuCount` guest frames the layer owns, which the embedder keeps out of
    /// the guest's memory map (as it does for the shared_info frame): per vCPU n, frame 3n is
    /// its SynIC message page, 3n + 1 its event-flags page and 3n + 2 the input page of the
    /// Viridian hypercalls it issues.
    public var layerFrames: GuestFrameNumber
    /// The SINT vector while the guest has set no upcall vector (at least 0x10). Events that
    /// arrive then still become Xen pending bits; no upcall is raised, as in Xen.
    public var bootstrapVector: UInt8

    public init(partition: PartitionID, layerFrames: GuestFrameNumber, bootstrapVector: UInt8 = 0xF0) {
        self.partition = partition
        self.layerFrames = layerFrames
        self.bootstrapVector = bootstrapVector
    }

    /// Frames the layer needs for a domain with `vcpuCount` vCPUs.
    public static func layerFrameCount(vcpuCount: Int) -> Int { 3 * vcpuCount }
}
