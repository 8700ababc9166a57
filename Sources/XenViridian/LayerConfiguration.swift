import GuestABI
import ViridianABI

/// How the embedder places a domain on the Viridian target.
public struct LayerConfiguration: Sendable {
    /// The partition (created by the embedder on the target) that runs the domain, with at
    /// least as many VPs as the domain has vCPUs; vCPU n is VP n.
    public var partition: PartitionID
    /// First of `5 * vcpuCount + 1` frames of the partition's memory that the layer owns: per
    /// vCPU n, frame 3n is its SynIC message page, 3n + 1 its event-flags page and 3n + 2 the
    /// input page of the Viridian hypercalls it issues; frame 3 * vcpuCount is the partition's
    /// reference TSC page, from which the guest's Xen time is derived; after it, two per vCPU
    /// are the windows a grant copy maps the other domain's page into (HvCallMapGpaPages). They must be backed in the partition's
    /// memory and absent from the guest's memory view, like Hyper-V's overlay pages, which are
    /// not guest RAM: the layer refuses to start otherwise, so no guest address or frame number
    /// can name them.
    public var layerFrames: GuestFrameNumber
    /// The SINT vector while the guest has set no upcall vector (at least 0x10). Events that
    /// arrive then still become Xen pending bits; no upcall is raised, as in Xen.
    public var bootstrapVector: UInt8

    /// A placement of the domain on `partition` with its layer frames from `layerFrames`; the bootstrap vector defaults to 0xF0.
    @inlinable public init(partition: PartitionID, layerFrames: GuestFrameNumber, bootstrapVector: UInt8 = 0xF0) {
        self.partition = partition
        self.layerFrames = layerFrames
        self.bootstrapVector = bootstrapVector
    }

    /// Frames the layer needs for a domain with `vcpuCount` vCPUs.
    @inlinable public static func layerFrameCount(vcpuCount: Int) -> Int { 5 * vcpuCount + 1 }
}
