import GuestABI
import ViridianABI

/// HvCallSendSyntheticClusterIpi(Ex) and HvCallFlushVirtualAddressSpace/List(Ex): the calls
/// that name a set of VPs.
extension ViridianReference {
    /// Decodes an HV_VP_SET from `format`, `validBankMask` and the banks at `banks` (one qword
    /// per set bit of the mask, ascending bank order: bit i of bank b is VP 64*b + i; TLFS
    /// datatypes/hv_vp_set.md). VP indexes the partition does not have are left out, as KVM
    /// does. Nil for a format other than HV_GENERIC_SET_SPARSE_4K or HV_GENERIC_SET_ALL.
    @inlinable func decodeVPSet(_ p: Int, format: UInt64, validBankMask: UInt64, banks: UnsafeRawPointer) -> ProcessorSet? {
        let vpCount = partitions[p].vps.count
        switch HVGenericSetFormat(rawValue: format) {
        case .all:
            return ProcessorSet.first(vpCount)
        case .sparse4k:
            var set = ProcessorSet()
            var mask = validBankMask
            var slot = 0
            while mask != 0 {
                let bank = mask.trailingZeroBitCount
                mask &= mask - 1
                let bits = UInt64(littleEndian: banks.loadUnaligned(fromByteOffset: slot * 8, as: UInt64.self))
                slot += 1
                guard bank < ProcessorSet.banksInUse(vpCount) else { continue }
                set.banks[bank] = bits & ProcessorSet.bankMask(bank, vpCount: vpCount)
            }
            return set
        default:
            return nil
        }
    }

    /// A 64-VP mask (non-Ex calls: bit i is VP i), restricted to the partition's VPs.
    @inlinable func processorMask(_ p: Int, _ mask: UInt64) -> ProcessorSet {
        var set = ProcessorSet()
        set.banks[0] = mask & ProcessorSet.bankMask(0, vpCount: partitions[p].vps.count)
        return set
    }

    /// Vectors 0x10...0xFF (TLFS HvCallSendSyntheticClusterIpi; KVM answers others with
    /// INVALID_HYPERCALL_INPUT).
    @inline(__always)
    @inlinable static func isValidIPIVector(_ vector: UInt32) -> Bool { vector >= UInt32(SynICLimits.firstValidVector) && vector <= 0xFF }

    @inlinable func raiseIPIs(_ p: Int, vector: UInt32, to set: ProcessorSet, deferred: UnsafeMutablePointer<DeferredInterrupts>? = nil) {
        let id = partitions[p].id
        for bank in 0..<ProcessorSet.banksInUse(partitions[p].vps.count) {
            var bits = set.banks[bank]
            while bits != 0 {
                let vp = bank * 64 + bits.trailingZeroBitCount
                bits &= bits - 1
                if let deferred, deferred.pointee.addIPI(id, vp, UInt8(vector)) { continue }
                host.raiseInterrupt(partition: id, vp: VPIndex(UInt32(vp)), vector: UInt8(vector), autoEOI: false)
            }
        }
    }

    /// HvCallSendSyntheticClusterIpi: vector, RsvdZ (target VTL and padding: the reference has
    /// no VTLs, so nonzero is INVALID_HYPERCALL_INPUT, as KVM answers for the fast form),
    /// processor mask. VPs the partition does not have are ignored (KVM).
    @inlinable func sendIPI(_ a: HypercallArguments) -> HVStatus {
        let vector = a.u32(HvSendIpiLayout.vector.offset)
        guard a.u32(HvSendIpiLayout.reserved.offset) == 0, Self.isValidIPIVector(vector) else { return .invalidHypercallInput }
        raiseIPIs(a.p, vector: vector, to: processorMask(a.p, a.u64(HvSendIpiLayout.cpuMask.offset)), deferred: a.deferred)
        return .success
    }

    /// HvCallSendSyntheticClusterIpiEx: the variable header holds the sparse banks and must be
    /// exactly one qword per valid bank (KVM: else INVALID_HYPERCALL_INPUT); an empty sparse set
    /// succeeds without checking the vector (KVM; KVM's hyperv_features.c expects SUCCESS for an
    /// all-zero input); an unknown format is INVALID_PARAMETER (TLFS defines two formats; KVM
    /// treats others as sparse).
    @inlinable func sendIPIEx(_ a: HypercallArguments) -> HVStatus {
        let vector = a.u32(HvSendIpiExLayout.vector.offset)
        let format = a.u64(HvSendIpiExLayout.vpSetFormat.offset)
        let validBankMask = a.u64(HvSendIpiExLayout.vpSetValidBankMask.offset)
        guard a.u32(HvSendIpiExLayout.reserved.offset) == 0,
              Int(a.input.variableHeaderSize) == validBankMask.nonzeroBitCount else { return .invalidHypercallInput }
        guard let set = decodeVPSet(a.p, format: format, validBankMask: validBankMask, banks: a.block + HvSendIpiExLayout.size) else {
            return .invalidParameter
        }
        if format == HVGenericSetFormat.sparse4k.rawValue && validBankMask == 0 { return .success }
        guard Self.isValidIPIVector(vector) else { return .invalidHypercallInput }
        raiseIPIs(a.p, vector: vector, to: set)
        return .success
    }

    /// The four flush calls. Flags outside the four HV_FLUSH_* bits are INVALID_PARAMETER (TLFS:
    /// reserved; KVM ignores them), as is the extended GVA range format when the partition was
    /// not offered HV_FEATURE_EXT_GVA_RANGES_FLUSH. A zero processor mask without
    /// HV_FLUSH_ALL_PROCESSORS means all processors: Windows Server 2012 sends that and expects
    /// a flush (Linux arch/x86/kvm/hyperv.c kvm_hv_flush_tlb). List forms hand the host the
    /// GVA ranges of this invocation and complete every rep of it.
    @inlinable func flush(_ a: HypercallArguments) -> HandlerResult {
        let isEx = a.call == .flushVirtualAddressSpaceEx || a.call == .flushVirtualAddressListEx
        let isList = a.call == .flushVirtualAddressList || a.call == .flushVirtualAddressListEx
        let addressSpace = a.u64(HvTlbFlushLayout.addressSpace.offset)
        let flags = HVFlushFlags(rawValue: a.u64(HvTlbFlushLayout.flags.offset))
        // Built from raw values: an option-set array literal allocates its array in unoptimised builds.
        let known = HVFlushFlags(rawValue: HVFlushFlags.allProcessors.rawValue | HVFlushFlags.allVirtualAddressSpaces.rawValue
                                     | HVFlushFlags.nonGlobalMappingsOnly.rawValue | HVFlushFlags.useExtendedRangeFormat.rawValue)
        guard flags.isSubset(of: known) else { return .status(.invalidParameter) }
        if flags.contains(.useExtendedRangeFormat) && !partitions[a.p].config.privileges.edx.contains(.extendedGVARangesFlush) {
            return .status(.invalidParameter)
        }
        var processors: ProcessorSet
        var listOffset: Int
        if isEx {
            let format = a.u64(HvTlbFlushExLayout.hvVpSetFormat.offset)
            let validBankMask = a.u64(HvTlbFlushExLayout.hvVpSetValidBankMask.offset)
            guard Int(a.input.variableHeaderSize) == validBankMask.nonzeroBitCount else { return .status(.invalidHypercallInput) }
            guard let set = decodeVPSet(a.p, format: format, validBankMask: validBankMask, banks: a.block + HvTlbFlushExLayout.size) else {
                return .status(.invalidParameter)
            }
            processors = flags.contains(.allProcessors) ? ProcessorSet.first(partitions[a.p].vps.count) : set
            listOffset = HvTlbFlushExLayout.size + a.variableHeaderBytes
        } else {
            let mask = a.u64(HvTlbFlushLayout.processorMask.offset)
            processors = flags.contains(.allProcessors) || mask == 0 ? ProcessorSet.first(partitions[a.p].vps.count) : processorMask(a.p, mask)
            listOffset = HvTlbFlushLayout.size
        }
        let ranges = isList
            ? GVARangeList(base: a.block + listOffset + a.repStart * 8, count: a.repEnd - a.repStart)
            : GVARangeList.empty
        if !processors.isEmpty {
            host.flushTLB(TLBFlushRequest(partition: partitions[a.p].id, vp: VPIndex(UInt32(a.v)), call: a.call.code,
                                          addressSpace: addressSpace, flags: flags, processors: processors, ranges: ranges))
        }
        return HandlerResult(status: .success, repsCompleted: isList ? a.repEnd : 0)
    }
}
