import CGuestAtomics
import GuestABI
import ViridianABI

/// Mapping one partition's guest-physical pages into another (in the style of
/// HvCallMapGpaPages / HvCallUnmapGpaPages, TLFS "Partition Management"). A mapped page is seen
/// by the mapping partition at its target frame with the access rights of the mapping: reads
/// need HV_MAP_GPA_READABLE, writes HV_MAP_GPA_WRITABLE. Mappings do not chain: the source must
/// be the source partition's own memory.
extension ViridianReference {
    /// Map flags the reference accepts; others (large pages, unknown bits) are INVALID_PARAMETER.
    @inlinable static var supportedMapFlags: HVMapGPAFlags {
        // Raw values, not an array literal: the literal allocates in an unoptimised build, and
        // grant maps reach this on their fast path.
        HVMapGPAFlags(rawValue: HVMapGPAFlags.readable.rawValue | HVMapGPAFlags.writable.rawValue | HVMapGPAFlags.kernelExecutable.rawValue
                      | HVMapGPAFlags.userExecutable.rawValue | HVMapGPAFlags.adjustable.rawValue | HVMapGPAFlags.noAccess.rawValue
                      | HVMapGPAFlags.notCached.rawValue)
    }

    /// Maps `sourceFrame` of partition `source` at `frame` of partition `target`.
    @inlinable func mapPage(target: Int, frame: UInt64, source: Int, sourceFrame: UInt64, flags: HVMapGPAFlags) -> HVStatus {
        guard memories[source].hostAddress(of: GuestFrameNumber(sourceFrame)) != nil else { return .invalidParameter }
        let (i, found) = partitions[target].mappingIndex(frame)
        guard !found else { return .invalidParameter }
        guard partitions[target].mappings.count < partitions[target].config.maxMappedPages else { return .insufficientMemory }
        // Append and shift rather than insert(_:at:), whose generic path allocates in an
        // unoptimised build (grant maps reach this on their fast path).
        let mapping = GPAMapping(frame: frame, sourcePartition: source, sourceFrame: sourceFrame, flags: flags)
        partitions[target].mappings.append(mapping)
        var j = partitions[target].mappings.count - 1
        while j > i {
            partitions[target].mappings[j] = partitions[target].mappings[j - 1]
            j -= 1
        }
        partitions[target].mappings[i] = mapping
        host.guestMappingChanged(partition: partitions[target].id, frame: GuestFrameNumber(frame),
                                 page: flags.contains(.readable) ? memories[source].hostAddress(of: GuestFrameNumber(sourceFrame)) : nil,
                                 writable: flags.contains(.writable))
        return .success
    }

    @inlinable func unmapPage(target: Int, frame: UInt64) -> HVStatus {
        let (i, found) = partitions[target].mappingIndex(frame)
        guard found else { return .invalidParameter }
        partitions[target].mappings.remove(at: i)
        host.guestMappingChanged(partition: partitions[target].id, frame: GuestFrameNumber(frame), page: nil, writable: false)
        return .success
    }

    @inlinable static func checkMapFlags(_ flags: HVMapGPAFlags) -> HVStatus {
        guard flags.isSubset(of: supportedMapFlags) else { return .invalidParameter }
        // A writable page must be readable.
        if flags.contains(.writable) && !flags.contains(.readable) { return .invalidParameter }
        return .success
    }

    /// The partition a hypercall names: HV_PARTITION_ID_SELF is the caller.
    @inlinable func partitionIndex(named id: UInt64, caller p: Int) -> Int? {
        id == PartitionID.selfPartition.rawValue ? p : index(of: PartitionID(id))
    }

    /// HvCallMapGpaPages from partition `a.p`: maps the caller's pages listed in the rep list
    /// at consecutive frames from `target_gpa_base` of the target partition. Statuses: unknown
    /// target → INVALID_PARTITION_ID; unsupported flags, a source page the caller does not
    /// have, a target frame already mapped or past 2^52 → INVALID_PARAMETER; the target's
    /// mapping capacity exhausted → INSUFFICIENT_MEMORY. Reps completed counts the pages mapped.
    @inlinable func mapGPAPages(_ a: HypercallArguments) -> HandlerResult {
        guard let target = partitionIndex(named: a.u64(HvInputMapGpaPagesLayout.targetPartitionId.offset), caller: a.p) else {
            return HandlerResult(status: .invalidPartitionId, repsCompleted: a.repStart)
        }
        let base = a.u64(HvInputMapGpaPagesLayout.targetGpaBase.offset)
        let flags = HVMapGPAFlags(rawValue: a.u32(HvInputMapGpaPagesLayout.mapFlags.offset))
        let flagStatus = Self.checkMapFlags(flags)
        guard flagStatus == .success else { return HandlerResult(status: flagStatus, repsCompleted: a.repStart) }
        for rep in a.repStart..<a.repEnd {
            let (frame, overflow) = base.addingReportingOverflow(UInt64(rep))
            guard !overflow, frame <= Self.maximumFrame else { return HandlerResult(status: .invalidParameter, repsCompleted: rep) }
            let sourceFrame = a.u64(HvInputMapGpaPagesLayout.size + rep * 8)
            let status = mapPage(target: target, frame: frame, source: a.p, sourceFrame: sourceFrame, flags: flags)
            guard status == .success else { return HandlerResult(status: status, repsCompleted: rep) }
        }
        return HandlerResult(status: .success, repsCompleted: a.repEnd)
    }

    /// HvCallUnmapGpaPages: unmaps `rep count` consecutive frames from `target_gpa_base`.
    /// Nonzero flags (large pages) or a frame with no mapping → INVALID_PARAMETER.
    @inlinable func unmapGPAPages(_ a: HypercallArguments) -> HandlerResult {
        guard let target = partitionIndex(named: a.u64(HvInputUnmapGpaPagesLayout.targetPartitionId.offset), caller: a.p) else {
            return HandlerResult(status: .invalidPartitionId, repsCompleted: a.repStart)
        }
        guard a.u32(HvInputUnmapGpaPagesLayout.unmapFlags.offset) == 0 else { return HandlerResult(status: .invalidParameter, repsCompleted: a.repStart) }
        let base = a.u64(HvInputUnmapGpaPagesLayout.targetGpaBase.offset)
        for rep in a.repStart..<a.repEnd {
            let (frame, overflow) = base.addingReportingOverflow(UInt64(rep))
            guard !overflow else { return HandlerResult(status: .invalidParameter, repsCompleted: rep) }
            let status = unmapPage(target: target, frame: frame)
            guard status == .success else { return HandlerResult(status: status, repsCompleted: rep) }
        }
        return HandlerResult(status: .success, repsCompleted: a.repEnd)
    }

    /// The largest frame number a 64-bit GPA can hold.
    @inlinable static var maximumFrame: UInt64 { UInt64.max >> guestPageShift }

    /// HvCallGetPartitionId: the caller's id, written at the output GPA (8-byte aligned, inside
    /// one page, writable; else INVALID_ALIGNMENT).
    @inlinable func getPartitionID(_ a: HypercallArguments) -> HVStatus {
        guard a.outputGPA & 7 == 0, let out = hostAddress(a.p, gpa: a.outputGPA, length: 8, write: true) else { return .invalidAlignment }
        out.storeBytes(of: partitions[a.p].id.rawValue.littleEndian, as: UInt64.self)
        return .success
    }

    // MARK: - Root API

    /// Maps `count` pages of `source`, from `sourceBase`, at consecutive frames of `target` from
    /// `targetBase`, as the root would. Returns the status and the pages mapped before it.
    @inlinable public func mapGPAPages(into target: PartitionID, at targetBase: GuestFrameNumber, from source: PartitionID,
                            sourceBase: GuestFrameNumber, count: Int, flags: HVMapGPAFlags) -> (status: HVStatus, mapped: Int) {
                                lockEntry()
                                defer { unlockEntry() }
        guard let t = index(of: target), let s = index(of: source) else { return (.invalidPartitionId, 0) }
        let flagStatus = Self.checkMapFlags(flags)
        guard flagStatus == .success else { return (flagStatus, 0) }
        for i in 0..<max(count, 0) {
            let (frame, o1) = targetBase.rawValue.addingReportingOverflow(UInt64(i))
            let (sourceFrame, o2) = sourceBase.rawValue.addingReportingOverflow(UInt64(i))
            guard !o1, !o2, frame <= Self.maximumFrame else { return (.invalidParameter, i) }
            let status = mapPage(target: t, frame: frame, source: s, sourceFrame: sourceFrame, flags: flags)
            guard status == .success else { return (status, i) }
        }
        return (.success, max(count, 0))
    }

    /// Unmaps `count` frames of `target` from `targetBase`.
    @inlinable public func unmapGPAPages(from target: PartitionID, at targetBase: GuestFrameNumber, count: Int) -> (status: HVStatus, unmapped: Int) {
        lockEntry()
        defer { unlockEntry() }
        guard let t = index(of: target) else { return (.invalidPartitionId, 0) }
        for i in 0..<max(count, 0) {
            let (frame, overflow) = targetBase.rawValue.addingReportingOverflow(UInt64(i))
            guard !overflow else { return (.invalidParameter, i) }
            let status = unmapPage(target: t, frame: frame)
            guard status == .success else { return (status, i) }
        }
        return (.success, max(count, 0))
    }
}
