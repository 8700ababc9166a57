import CXenViridian
import GuestABI
import ViridianABI

/// The embedder's own Viridian hypervisor (`xv_viridian_target`, XV_SIDE_TARGET) as the
/// layer's target: every protocol requirement is one call through the embedder's table. A value
/// type, so the layer specialised on it copies the table's pointers and counts no references.
public struct CallbackTarget: ViridianTarget, ViridianRootServices {
    /// The embedder's table (a copy).
    public let table: xv_viridian_target

    /// Checks the table: every entry present, the reserved ones NULL. Nil otherwise.
    public init?(_ table: xv_viridian_target) {
        guard table.hypercall != nil, table.rdmsr != nil, table.wrmsr != nil, table.cpuid != nil,
              table.create_port != nil, table.delete_port != nil, table.connect_port != nil, table.disconnect_port != nil,
              table.map_gpa_pages != nil, table.unmap_gpa_pages != nil, table.host_address != nil else { return nil }
        guard reservedFieldsClear(table.reserved) else { return nil }
        self.table = table
    }

    /// A hypercall: the control word and registers to the embedder, its RAX back as the result.
    public func hypercall(partition: PartitionID, vp: VPIndex, input: HVHypercallInput, rdx: UInt64, r8: UInt64) -> HypercallCompletion {
        let rax = table.hypercall!(table.context, partition.rawValue, vp.rawValue, input.rawValue, rdx, r8)
        return HypercallCompletion(result: HVHypercallResult(rawValue: rax))
    }

    /// A synthetic MSR read: the value, or #GP when the embedder answers non-zero.
    public func readMSR(partition: PartitionID, vp: VPIndex, msr: HVMSR) -> MSRRead {
        var value: UInt64 = 0
        return table.rdmsr!(table.context, partition.rawValue, vp.rawValue, msr.rawValue, &value) == 0 ? .value(value) : .generalProtection
    }

    /// A synthetic MSR write: done, or #GP when the embedder answers non-zero.
    public func writeMSR(partition: PartitionID, vp: VPIndex, msr: HVMSR, value: UInt64) -> MSRWrite {
        table.wrmsr!(table.context, partition.rawValue, vp.rawValue, msr.rawValue, value) == 0 ? .done : .generalProtection
    }

    /// A hypervisor CPUID leaf.
    public func cpuid(partition: PartitionID, leaf: UInt32) -> CPUIDResult {
        var out = xv_cpuid_result()
        table.cpuid!(table.context, partition.rawValue, leaf, &out)
        return CPUIDResult(eax: out.eax, ebx: out.ebx, ecx: out.ecx, edx: out.edx)
    }

    /// HvCallCreatePort with the port's HV_PORT_INFO.
    public func createPort(in partition: PartitionID, port: PortID, kind: PortKind) -> HVStatus {
        var info = xv_port_info()
        switch kind {
        case .message(let vp, let sint):
            info.kind = 0; info.vp = vp.rawValue; info.sint = sint
        case .event(let vp, let sint, let baseFlag, let flagCount):
            info.kind = 1; info.vp = vp.rawValue; info.sint = sint; info.base_flag = baseFlag; info.flag_count = flagCount
        }
        return HVStatus(rawValue: table.create_port!(table.context, partition.rawValue, port.rawValue, &info))
    }

    /// HvCallDeletePort.
    public func deletePort(in partition: PartitionID, port: PortID) -> HVStatus {
        HVStatus(rawValue: table.delete_port!(table.context, partition.rawValue, port.rawValue))
    }

    /// HvCallConnectPort.
    public func connectPort(from partition: PartitionID, connection: ConnectionID, to target: PartitionID, port: PortID) -> HVStatus {
        HVStatus(rawValue: table.connect_port!(table.context, partition.rawValue, connection.rawValue, target.rawValue, port.rawValue))
    }

    /// HvCallDisconnectPort.
    public func disconnectPort(from partition: PartitionID, connection: ConnectionID) -> HVStatus {
        HVStatus(rawValue: table.disconnect_port!(table.context, partition.rawValue, connection.rawValue))
    }

    /// HvCallMapGpaPages: the status and how many pages were mapped.
    public func mapGPAPages(into target: PartitionID, at targetBase: GuestFrameNumber, from source: PartitionID,
                            sourceBase: GuestFrameNumber, count: Int, flags: HVMapGPAFlags) -> (status: HVStatus, mapped: Int) {
        var mapped: UInt64 = 0
        let status = table.map_gpa_pages!(table.context, target.rawValue, targetBase.rawValue, source.rawValue, sourceBase.rawValue,
                                          UInt64(max(count, 0)), flags.rawValue, &mapped)
        return (HVStatus(rawValue: status), Int(min(mapped, UInt64(max(count, 0)))))
    }

    /// HvCallUnmapGpaPages: the status and how many pages were unmapped.
    public func unmapGPAPages(from target: PartitionID, at targetBase: GuestFrameNumber, count: Int) -> (status: HVStatus, unmapped: Int) {
        var unmapped: UInt64 = 0
        let status = table.unmap_gpa_pages!(table.context, target.rawValue, targetBase.rawValue, UInt64(max(count, 0)), &unmapped)
        return (HVStatus(rawValue: status), Int(min(unmapped, UInt64(max(count, 0)))))
    }

    /// Where the target shows the frame, for the access asked.
    public func hostAddress(partition: PartitionID, frame: GuestFrameNumber, write: Bool) -> UnsafeMutableRawPointer? {
        table.host_address!(table.context, partition.rawValue, frame.rawValue, write ? 1 : 0)
    }
}
