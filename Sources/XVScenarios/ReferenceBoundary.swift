import GuestABI
import ViridianABI
import ViridianReference

/// The translated world's Viridian target: ViridianReference behind a call boundary. Every
/// call the layer makes into the reference goes through one of the `xv_cg_reference_*`
/// functions below, and every interrupt the reference raises into the layer through
/// `xv_cg_layer_from_reference`. They are `@inline(never)` with fixed symbol names so that
/// `xv bench --instructions` can tell, under callgrind, the layer's own instructions from the
/// reference hypervisor's (`--toggle-collect` on these names; `InstructionProbe`). Without
/// the boundary, cross-module optimisation inlines parts of the reference into the layer and
/// no tool can split them. The cost is one call and return per Viridian call or interrupt,
/// which a real target has anyway (a hypercall is a VM exit), and which the timing figures
/// include as well.
public struct ReferenceBoundary: ViridianTarget, ViridianRootServices {
    /// The reference hypervisor of the translated world.
    public typealias Reference = ViridianReference<GuestRAMRegion, LayerInterruptRouter>
    /// The world owns the reference; the boundary is stored in every layer and in the root.
    public let reference: Reference

    /// The boundary in front of `reference`.
    public init(_ reference: Reference) { self.reference = reference }

    /// `ViridianReference.hypercall`, through `xv_cg_reference_hypercall`.
    @inline(__always)
    public func hypercall(partition: PartitionID, vp: VPIndex, input: HVHypercallInput, rdx: UInt64, r8: UInt64) -> HypercallCompletion {
        referenceHypercall(reference, partition, vp, input, rdx, r8)
    }
    /// `ViridianReference.readMSR`, through `xv_cg_reference_read_msr`.
    @inline(__always)
    public func readMSR(partition: PartitionID, vp: VPIndex, msr: HVMSR) -> MSRRead { referenceReadMSR(reference, partition, vp, msr) }
    /// `ViridianReference.writeMSR`, through `xv_cg_reference_write_msr`.
    @inline(__always)
    public func writeMSR(partition: PartitionID, vp: VPIndex, msr: HVMSR, value: UInt64) -> MSRWrite {
        referenceWriteMSR(reference, partition, vp, msr, value)
    }
    /// `ViridianReference.cpuid`, through `xv_cg_reference_cpuid`.
    @inline(__always)
    public func cpuid(partition: PartitionID, leaf: UInt32) -> CPUIDResult { referenceCPUID(reference, partition, leaf) }

    /// `ViridianReference.createPort`, through `xv_cg_reference_create_port`.
    @inline(__always)
    public func createPort(in partition: PartitionID, port: PortID, kind: PortKind) -> HVStatus { referenceCreatePort(reference, partition, port, kind) }
    /// `ViridianReference.deletePort`, through `xv_cg_reference_delete_port`.
    @inline(__always)
    public func deletePort(in partition: PartitionID, port: PortID) -> HVStatus { referenceDeletePort(reference, partition, port) }
    /// `ViridianReference.connectPort`, through `xv_cg_reference_connect_port`.
    @inline(__always)
    public func connectPort(from partition: PartitionID, connection: ConnectionID, to target: PartitionID, port: PortID) -> HVStatus {
        referenceConnectPort(reference, partition, connection, target, port)
    }
    /// `ViridianReference.disconnectPort`, through `xv_cg_reference_disconnect_port`.
    @inline(__always)
    public func disconnectPort(from partition: PartitionID, connection: ConnectionID) -> HVStatus {
        referenceDisconnectPort(reference, partition, connection)
    }
    /// `ViridianReference.mapGPAPages`, through `xv_cg_reference_map_gpa_pages`.
    @inline(__always)
    public func mapGPAPages(into target: PartitionID, at targetBase: GuestFrameNumber, from source: PartitionID,
                            sourceBase: GuestFrameNumber, count: Int, flags: HVMapGPAFlags) -> (status: HVStatus, mapped: Int) {
        referenceMapGPAPages(reference, target, targetBase, source, sourceBase, count, flags)
    }
    /// `ViridianReference.unmapGPAPages`, through `xv_cg_reference_unmap_gpa_pages`.
    @inline(__always)
    public func unmapGPAPages(from target: PartitionID, at targetBase: GuestFrameNumber, count: Int) -> (status: HVStatus, unmapped: Int) {
        referenceUnmapGPAPages(reference, target, targetBase, count)
    }
    /// `ViridianReference.hostAddress`, through `xv_cg_reference_host_address`.
    @inline(__always)
    public func hostAddress(partition: PartitionID, frame: GuestFrameNumber, write: Bool) -> UnsafeMutableRawPointer? {
        referenceHostAddress(reference, partition, frame, write)
    }
}

// The boundary functions. Their names are what `InstructionProbe.referenceSymbols` and
// `InstructionProbe.layerReentrySymbol` give callgrind; keep them in step.

@_silgen_name("xv_cg_reference_hypercall") @inline(never)
func referenceHypercall(_ r: ReferenceBoundary.Reference, _ p: PartitionID, _ vp: VPIndex, _ input: HVHypercallInput, _ rdx: UInt64, _ r8: UInt64) -> HypercallCompletion {
    r.hypercall(partition: p, vp: vp, input: input, rdx: rdx, r8: r8)
}
@_silgen_name("xv_cg_reference_read_msr") @inline(never)
func referenceReadMSR(_ r: ReferenceBoundary.Reference, _ p: PartitionID, _ vp: VPIndex, _ msr: HVMSR) -> MSRRead {
    r.readMSR(partition: p, vp: vp, msr: msr)
}
@_silgen_name("xv_cg_reference_write_msr") @inline(never)
func referenceWriteMSR(_ r: ReferenceBoundary.Reference, _ p: PartitionID, _ vp: VPIndex, _ msr: HVMSR, _ value: UInt64) -> MSRWrite {
    r.writeMSR(partition: p, vp: vp, msr: msr, value: value)
}
@_silgen_name("xv_cg_reference_cpuid") @inline(never)
func referenceCPUID(_ r: ReferenceBoundary.Reference, _ p: PartitionID, _ leaf: UInt32) -> CPUIDResult { r.cpuid(partition: p, leaf: leaf) }
@_silgen_name("xv_cg_reference_create_port") @inline(never)
func referenceCreatePort(_ r: ReferenceBoundary.Reference, _ p: PartitionID, _ port: PortID, _ kind: PortKind) -> HVStatus {
    r.createPort(in: p, port: port, kind: kind)
}
@_silgen_name("xv_cg_reference_delete_port") @inline(never)
func referenceDeletePort(_ r: ReferenceBoundary.Reference, _ p: PartitionID, _ port: PortID) -> HVStatus { r.deletePort(in: p, port: port) }
@_silgen_name("xv_cg_reference_connect_port") @inline(never)
func referenceConnectPort(_ r: ReferenceBoundary.Reference, _ p: PartitionID, _ c: ConnectionID, _ target: PartitionID, _ port: PortID) -> HVStatus {
    r.connectPort(from: p, connection: c, to: target, port: port)
}
@_silgen_name("xv_cg_reference_disconnect_port") @inline(never)
func referenceDisconnectPort(_ r: ReferenceBoundary.Reference, _ p: PartitionID, _ c: ConnectionID) -> HVStatus {
    r.disconnectPort(from: p, connection: c)
}
@_silgen_name("xv_cg_reference_map_gpa_pages") @inline(never)
func referenceMapGPAPages(_ r: ReferenceBoundary.Reference, _ target: PartitionID, _ targetBase: GuestFrameNumber, _ source: PartitionID,
                          _ sourceBase: GuestFrameNumber, _ count: Int, _ flags: HVMapGPAFlags) -> (status: HVStatus, mapped: Int) {
    r.mapGPAPages(into: target, at: targetBase, from: source, sourceBase: sourceBase, count: count, flags: flags)
}
@_silgen_name("xv_cg_reference_unmap_gpa_pages") @inline(never)
func referenceUnmapGPAPages(_ r: ReferenceBoundary.Reference, _ target: PartitionID, _ targetBase: GuestFrameNumber, _ count: Int) -> (status: HVStatus, unmapped: Int) {
    r.unmapGPAPages(from: target, at: targetBase, count: count)
}
@_silgen_name("xv_cg_reference_host_address") @inline(never)
func referenceHostAddress(_ r: ReferenceBoundary.Reference, _ p: PartitionID, _ frame: GuestFrameNumber, _ write: Bool) -> UnsafeMutableRawPointer? {
    r.hostAddress(partition: p, frame: frame, write: write)
}

/// The reference's interrupt reaching the layer (the router's injection): back to layer work.
/// The VP and the vector travel in one word: the layer does not read the vector, and a
/// parameter nothing reads would let the optimiser replace this function by a clone without
/// it, under another name that callgrind is not told of (`InstructionCounter` refuses a binary
/// with such a clone of any `xv_cg_` function).
@_silgen_name("xv_cg_layer_from_reference") @inline(never)
func layerFromReference(_ layer: Unmanaged<LayerInterruptRouter.Layer>, _ vpAndVector: Int) {
    layer._withUnsafeGuaranteedRef { $0.interrupt(vp: vpAndVector >> 8, vector: UInt8(truncatingIfNeeded: vpAndVector)) }
}

@inline(__always)
func layerFromReference(_ layer: Unmanaged<LayerInterruptRouter.Layer>, _ vp: Int, _ vector: UInt8) {
    layerFromReference(layer, vp << 8 | Int(vector))
}
