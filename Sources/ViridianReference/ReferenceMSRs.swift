import CGuestAtomics
import GuestABI
import ViridianABI

/// Synthetic MSRs (TLFS Appendix C and the chapters of each MSR). Which MSRs exist, their
/// access (ro/rw/wo) and the CPUID bit that gates each come from `Specs/viridian/msrs.tbl`
/// (`ReferenceMSR`, `HVMSR.access`). An MSR the reference does not implement, or one the
/// partition was not offered, raises #GP on read and write, as KVM's hv_check_msr_access does.
/// RsvdP bits keep their old value on a write; RsvdZ bits set raise #GP.
extension ViridianReference {
    /// Resolves the partition, VP and MSR of an access; nil means #GP.
    @inline(__always)
    @inlinable func msrTarget(_ partition: PartitionID, _ vp: VPIndex, _ msr: HVMSR) -> (p: Int, v: Int, msr: ReferenceMSR)? {
        guard let p = index(of: partition), let v = vpIndex(p, vp), let m = ReferenceMSR(msr),
              m.isPermitted(by: partitions[p].config.privileges) else { return nil }
        return (p, v, m)
    }

    /// RDMSR.
    @inlinable public func readMSR(partition: PartitionID, vp: VPIndex, msr: HVMSR) -> MSRRead {
        lockEntry()
        defer { unlockEntry() }
        guard let (p, v, m) = msrTarget(partition, vp, msr) else { return .generalProtection }
        let vpState = partitions[p].vps[v]
        switch m {
        case .guestOsId: return .value(partitions[p].guestOSID)
        case .hypercall: return .value(partitions[p].hypercall.rawValue)
        case .vpIndex: return .value(UInt64(v))
        case .timeRefCount: return .value(referenceTime(p))
        case .referenceTsc: return .value(partitions[p].referenceTSC.rawValue)
        case .tscFrequency: return .value(clock.tscFrequency)
        case .apicFrequency: return .value(apicFrequency)
        case .vpAssistPage: return .value(vpState.vpAssistPage.rawValue)
        case .scontrol: return .value(vpState.scontrol.rawValue)
        case .sversion: return .value(UInt64(SynICLimits.version1))
        case .siefp: return .value(vpState.siefp.rawValue)
        case .simp: return .value(vpState.simp.rawValue)
        case .eom: return .value(0)  // TLFS: EOM reads as 0.
        case .sint0, .sint1, .sint2, .sint3, .sint4, .sint5, .sint6, .sint7,
             .sint8, .sint9, .sint10, .sint11, .sint12, .sint13, .sint14, .sint15:
            return .value(vpState.sints[Int(m.rawValue - HVMSR.sint0.rawValue)])
        case .stimer0Config, .stimer1Config, .stimer2Config, .stimer3Config:
            return .value(vpState.timers[Int(m.rawValue - HVMSR.stimer0Config.rawValue) / 2].config.rawValue)
        case .stimer0Count, .stimer1Count, .stimer2Count, .stimer3Count:
            return .value(vpState.timers[Int(m.rawValue - HVMSR.stimer0Count.rawValue) / 2].count)
        }
    }

    /// WRMSR.
    @inlinable public func writeMSR(partition: PartitionID, vp: VPIndex, msr: HVMSR, value: UInt64) -> MSRWrite {
        lockEntry()
        defer { unlockEntry() }
        guard let (p, v, m) = msrTarget(partition, vp, msr) else { return .generalProtection }
        if msr.access == .readOnly { return .generalProtection }
        switch m {
        case .vpIndex, .timeRefCount, .tscFrequency, .apicFrequency, .sversion:
            return .generalProtection  // read-only (also refused by the table's access above)
        case .guestOsId:
            // Zero disables the hypercall interface (TLFS "Reporting the Guest OS Identity").
            partitions[p].guestOSID = value
            if value == 0 { partitions[p].hypercall.enable = false }
            return .done
        case .hypercall:
            return writeHypercallMSR(p, value: value)
        case .referenceTsc:
            let new = partitions[p].referenceTSC.writing(value)
            if new.enable && hostAddress(p, frame: new.gpfn, write: true) == nil { return .generalProtection }
            partitions[p].referenceTSC = new
            if new.enable { writeReferenceTSCPage(p) }
            return .done
        case .vpAssistPage:
            let new = partitions[p].vps[v].vpAssistPage.writing(value)
            if new.enable {
                // KVM clears only the first u32 (apic_assist) when the page is enabled.
                guard let page = hostAddress(p, frame: new.gpfn, write: true) else { return .generalProtection }
                page.storeBytes(of: UInt32(0), as: UInt32.self)
            }
            partitions[p].vps[v].vpAssistPage = new
            return .done
        case .scontrol:
            partitions[p].vps[v].scontrol = partitions[p].vps[v].scontrol.writing(value)
            retryAllDeliveries(p, v)
            return .done
        case .siefp:
            let new = partitions[p].vps[v].siefp.writing(value)
            if new.enable && hostAddress(p, frame: new.gpfn, write: true) == nil { return .generalProtection }
            partitions[p].vps[v].siefp = new
            return .done
        case .simp:
            let new = partitions[p].vps[v].simp.writing(value)
            if new.enable && hostAddress(p, frame: new.gpfn, write: true) == nil { return .generalProtection }
            partitions[p].vps[v].simp = new
            retryAllDeliveries(p, v)
            return .done
        case .eom:
            retryAllDeliveries(p, v)
            return .done
        case .sint0, .sint1, .sint2, .sint3, .sint4, .sint5, .sint6, .sint7,
             .sint8, .sint9, .sint10, .sint11, .sint12, .sint13, .sint14, .sint15:
            let s = Int(m.rawValue - HVMSR.sint0.rawValue)
            let new = partitions[p].vps[v].sint(s).writing(value)
            // Vectors 0-15 raise #GP; KVM (synic_set_sint) lets a masked SINT hold one, since
            // guests write the masked reset value 0x10000.
            if new.vector < UInt64(SynICLimits.firstValidVector) && !new.masked { return .generalProtection }
            partitions[p].vps[v].sints[s] = new.rawValue
            return .done
        case .stimer0Config, .stimer1Config, .stimer2Config, .stimer3Config:
            return writeTimerConfig(p, v, timer: Int(m.rawValue - HVMSR.stimer0Config.rawValue) / 2, value: value)
        case .stimer0Count, .stimer1Count, .stimer2Count, .stimer3Count:
            return writeTimerCount(p, v, timer: Int(m.rawValue - HVMSR.stimer0Count.rawValue) / 2, value: value)
        }
    }

    /// HV_X64_MSR_HYPERCALL. Writes are dropped while the guest OS id is 0 ("the enable bit
    /// remains zero", TLFS) and once Locked is set (TLFS: immutable until reset). Enabling
    /// writes the embedder's stub at the start of the page and INT3 after it; an unbacked page
    /// raises #GP (KVM does the same when it cannot write the page).
    @inlinable func writeHypercallMSR(_ p: Int, value: UInt64) -> MSRWrite {
        let old = partitions[p].hypercall
        guard partitions[p].guestOSID != 0, !old.locked else { return .done }
        let new = old.writing(value)
        if new.enable {
            guard let page = hostAddress(p, frame: new.gpfn, write: true) else { return .generalProtection }
            let stub = partitions[p].config.hypercallStub
            page.initializeMemory(as: UInt8.self, repeating: 0xCC, count: Int(guestPageSize))
            for i in 0..<stub.count { page.storeBytes(of: stub.bytes[i], toByteOffset: i, as: UInt8.self) }
        }
        partitions[p].hypercall = new
        return .done
    }

    /// Publishes scale and offset on the enabled reference TSC page with a new nonzero
    /// sequence (TLFS "Reference TSC Page"; 0 and 0xFFFFFFFF are skipped as KVM
    /// kvm_hv_setup_tsc_page does, both having meant "invalid").
    @inlinable func writeReferenceTSCPage(_ p: Int) {
        let msr = partitions[p].referenceTSC
        guard msr.enable, let page = hostAddress(p, frame: msr.gpfn, write: true) else { return }
        var sequence = partitions[p].tscSequence &+ 1
        if sequence == 0 || sequence == .max { sequence = 1 }
        page.storeBytes(of: UInt32(0), toByteOffset: HvReferenceTscPageLayout.tscSequence.offset, as: UInt32.self)
        page.storeBytes(of: clock.scale.littleEndian, toByteOffset: HvReferenceTscPageLayout.tscScale.offset, as: UInt64.self)
        page.storeBytes(of: partitions[p].referenceOffset.littleEndian, toByteOffset: HvReferenceTscPageLayout.tscOffset.offset, as: UInt64.self)
        page.storeBytes(of: sequence.littleEndian, toByteOffset: HvReferenceTscPageLayout.tscSequence.offset, as: UInt32.self)
        partitions[p].tscSequence = sequence
    }
}
