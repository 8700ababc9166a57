import CXenViridian
import GuestABI
import ViridianABI
import ViridianReference
import XenViridianC

/// An embedder's own Viridian hypervisor behind `xv_viridian_target` (XV_SIDE_TARGET): here the
/// reference hypervisor again, but reached only through the C table, with its interrupts
/// coming back through `xv_deliver_interrupt` as a foreign hypervisor's would.
final class ForeignTarget {
    /// The reference's host: interrupts to the C ABI, second-level changes to the embedder's
    /// page table.
    final class Host: ViridianHost {
        weak var owner: ForeignTarget?
        func raiseInterrupt(partition: PartitionID, vp: VPIndex, vector: UInt8, autoEOI: Bool) {
            guard let owner, let domain = owner.domains[partition.rawValue] else { return }
            _ = xv_deliver_interrupt(owner.system, domain, vp.rawValue, vector)
        }
        func flushTLB(_ request: TLBFlushRequest) {}
        func longSpinWait(partition: PartitionID, vp: VPIndex, spinCount: UInt32) {}
        func guestMappingChanged(partition: PartitionID, frame: GuestFrameNumber, page: UnsafeMutableRawPointer?, writable: Bool) {
            guard let owner, let table = owner.tables[partition.rawValue] else { return }
            table[Int(frame.rawValue)] = page.map { UInt64(UInt(bitPattern: $0)) } ?? 0
        }
    }

    let host = Host()
    let reference: ViridianReference<GuestRAMRegion, Host>
    var system: OpaquePointer?
    var domains: [UInt64: UInt16] = [:]
    var tables: [UInt64: UnsafeMutablePointer<UInt64>] = [:]
    /// Calls that reached the table, so the test can tell they went through it.
    var calls = 0

    init() {
        reference = ViridianReference(host: host)!
        host.owner = self
    }

    /// A partition for `domain` over its page table (guest frames and the layer's).
    func createPartition(domain: UInt16, vcpus: Int, table: UnsafeMutablePointer<UInt64>, frames: UInt64) -> UInt64 {
        let p = try! reference.createPartition(PartitionConfiguration(vpCount: vcpus, maxPorts: 1100, maxConnections: 1100),
                                               memory: GuestRAMRegion(table: table, frameCount: frames))
        domains[p.rawValue] = domain
        tables[p.rawValue] = table
        return p.rawValue
    }

    static func of(_ context: UnsafeMutableRawPointer?) -> ForeignTarget {
        let t = Unmanaged<ForeignTarget>.fromOpaque(context!).takeUnretainedValue()
        t.calls += 1
        return t
    }

    /// The C table, every entry forwarding to the reference.
    var table: xv_viridian_target {
        var t = xv_viridian_target()
        t.context = Unmanaged.passUnretained(self).toOpaque()
        t.hypercall = { c, p, vp, control, rdx, r8 in
            ForeignTarget.of(c).reference.hypercall(partition: PartitionID(p), vp: VPIndex(vp), input: HVHypercallInput(rawValue: control), rdx: rdx, r8: r8).result.rawValue
        }
        t.rdmsr = { c, p, vp, msr, value in
            guard case .value(let v) = ForeignTarget.of(c).reference.readMSR(partition: PartitionID(p), vp: VPIndex(vp), msr: HVMSR(rawValue: msr)) else { return 1 }
            value!.pointee = v
            return 0
        }
        t.wrmsr = { c, p, vp, msr, value in
            ForeignTarget.of(c).reference.writeMSR(partition: PartitionID(p), vp: VPIndex(vp), msr: HVMSR(rawValue: msr), value: value) == .done ? 0 : 1
        }
        t.cpuid = { c, p, leaf, out in
            let r = ForeignTarget.of(c).reference.cpuid(partition: PartitionID(p), leaf: leaf)
            out!.pointee = xv_cpuid_result(eax: r.eax, ebx: r.ebx, ecx: r.ecx, edx: r.edx)
        }
        t.create_port = { c, p, port, info in
            let i = info!.pointee
            let kind: PortKind = i.kind == 0 ? .message(vp: VPIndex(i.vp), sint: i.sint)
                : .event(vp: VPIndex(i.vp), sint: i.sint, baseFlag: i.base_flag, flagCount: i.flag_count)
            return ForeignTarget.of(c).reference.createPort(in: PartitionID(p), port: PortID(port), kind: kind).rawValue
        }
        t.delete_port = { c, p, port in ForeignTarget.of(c).reference.deletePort(in: PartitionID(p), port: PortID(port)).rawValue }
        t.connect_port = { c, p, connection, target, port in
            ForeignTarget.of(c).reference.connectPort(from: PartitionID(p), connection: ConnectionID(connection), to: PartitionID(target), port: PortID(port)).rawValue
        }
        t.disconnect_port = { c, p, connection in
            ForeignTarget.of(c).reference.disconnectPort(from: PartitionID(p), connection: ConnectionID(connection)).rawValue
        }
        t.map_gpa_pages = { c, target, targetGFN, source, sourceGFN, count, flags, mapped in
            let r = ForeignTarget.of(c).reference.mapGPAPages(into: PartitionID(target), at: GuestFrameNumber(targetGFN), from: PartitionID(source),
                                                sourceBase: GuestFrameNumber(sourceGFN), count: Int(count), flags: HVMapGPAFlags(rawValue: flags))
            mapped!.pointee = UInt64(r.mapped)
            return r.status.rawValue
        }
        t.unmap_gpa_pages = { c, p, gfn, count, unmapped in
            let r = ForeignTarget.of(c).reference.unmapGPAPages(from: PartitionID(p), at: GuestFrameNumber(gfn), count: Int(count))
            unmapped!.pointee = UInt64(r.unmapped)
            return r.status.rawValue
        }
        t.host_address = { c, p, gfn, write in
            ForeignTarget.of(c).reference.hostAddress(partition: PartitionID(p), frame: GuestFrameNumber(gfn), write: write != 0)
        }
        return t
    }
}
