import GuestABI
/// The root partition's side of inter-partition communication (TLFS "Inter-Partition
/// Communication": HvCallCreatePort, HvCallDeletePort, HvCallConnectPort and
/// HvCallDisconnectPort are calls only the root, the parent of the partitions, may make). The
/// layer's control plane asks for ports and connections through this protocol, as a VMBus-style
/// root service would; ViridianReference implements it as root API.
public protocol ViridianRootServices {
    /// Creates `port` in `partition`, the receiving side. HV_STATUS_SUCCESS or why not.
    func createPort(in partition: PartitionID, port: PortID, kind: PortKind) -> HVStatus
    /// Deletes a port; connections to it stay and fail until a port with that id exists again.
    func deletePort(in partition: PartitionID, port: PortID) -> HVStatus
    /// Connects `connection` of `partition` (the sending side) to `port` of `target`.
    func connectPort(from partition: PartitionID, connection: ConnectionID, to target: PartitionID, port: PortID) -> HVStatus
    /// Removes a connection.
    func disconnectPort(from partition: PartitionID, connection: ConnectionID) -> HVStatus
    /// HvCallMapGpaPages as the root issues it: `count` pages of `source` from `sourceBase`
    /// appear at consecutive frames of `target` from `targetBase`, with `flags`' access rights.
    /// The status and the pages mapped before it.
    func mapGPAPages(into target: PartitionID, at targetBase: GuestFrameNumber, from source: PartitionID,
                     sourceBase: GuestFrameNumber, count: Int, flags: HVMapGPAFlags) -> (status: HVStatus, mapped: Int)
    /// HvCallUnmapGpaPages: `count` frames of `target` from `targetBase` lose their mappings.
    func unmapGPAPages(from target: PartitionID, at targetBase: GuestFrameNumber, count: Int) -> (status: HVStatus, unmapped: Int)
    /// The host address of `frame` as `partition` sees it (a page mapped there from another
    /// partition, checked against the mapping's rights, or its own memory); nil when unbacked
    /// or when the access is not allowed.
    func hostAddress(partition: PartitionID, frame: GuestFrameNumber, write: Bool) -> UnsafeMutableRawPointer?
}

/// What a port delivers and where (TLFS "Ports" and HV_PORT_INFO).
@frozen
public enum PortKind: Sendable, Hashable {
    /// HvCallPostMessage on a connection to this port queues a message in the SIM slot of
    /// `sint` on `vp`.
    case message(vp: VPIndex, sint: UInt8)
    /// HvCallSignalEvent on a connection to this port sets flag `baseFlag + flagNumber`
    /// (flagNumber < flagCount) in the SIEF area of `sint` on `vp`.
    case event(vp: VPIndex, sint: UInt8, baseFlag: UInt16, flagCount: UInt16)
}

