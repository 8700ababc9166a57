import CGuestAtomics
import GuestABI
import ViridianABI

/// The input of one hypercall invocation after the entry checks: where its parameters are
/// (the guest's input page, or the fast registers copied to the stack), its rep range, and
/// the caller.
@usableFromInline struct HypercallArguments {
    @usableFromInline var p: Int
    @usableFromInline var v: Int
    @usableFromInline var call: ReferenceHypercall
    @usableFromInline var input: HVHypercallInput
    /// The input block: header, variable header and (rep calls) the whole rep list.
    @usableFromInline var block: UnsafeRawPointer
    @usableFromInline var blockLength: Int
    /// Output GPA (R8) of a memory-form call.
    @usableFromInline var outputGPA: UInt64
    /// Rep calls: the reps this invocation does, `repStart..<repEnd`.
    @usableFromInline var repStart: Int
    @usableFromInline var repEnd: Int
    /// Where a reader collects the interrupts it finds due (nil for a writer, which raises
    /// them at once).
    @usableFromInline var deferred: UnsafeMutablePointer<DeferredInterrupts>? = nil

    @inline(__always) @inlinable func u64(_ offset: Int) -> UInt64 { UInt64(littleEndian: block.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    @inline(__always) @inlinable func u32(_ offset: Int) -> UInt32 { UInt32(littleEndian: block.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    @inline(__always) @inlinable func u16(_ offset: Int) -> UInt16 { UInt16(littleEndian: block.loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }
    /// Size of the variable header in bytes.
    @inlinable var variableHeaderBytes: Int { Int(input.variableHeaderSize) * 8 }
    @inlinable init(p: Int, v: Int, call: ReferenceHypercall, input: HVHypercallInput, block: UnsafeRawPointer, blockLength: Int, outputGPA: UInt64, repStart: Int, repEnd: Int, deferred: UnsafeMutablePointer<DeferredInterrupts>? = nil) { self.p = p; self.v = v; self.call = call; self.input = input; self.block = block; self.blockLength = blockLength; self.outputGPA = outputGPA; self.repStart = repStart; self.repEnd = repEnd; self.deferred = deferred }
}

/// What a handler reports: a status, and for rep calls how far it got (absolute rep index).
@usableFromInline struct HandlerResult {
    @usableFromInline var status: HVStatus
    @usableFromInline var repsCompleted: Int
    @inlinable static func status(_ s: HVStatus) -> HandlerResult { HandlerResult(status: s, repsCompleted: 0) }
    @inlinable init(status: HVStatus, repsCompleted: Int) { self.status = status; self.repsCompleted = repsCompleted }
}

/// The hypercall interface (TLFS "Hypercall Interface"). Checks run in the order KVM's
/// kvm_hv_hypercall uses (Linux arch/x86/kvm/hyperv.c), which the TLFS permits (it fixes only
/// that ACCESS_DENIED comes first):
///  1. the guest OS id is 0: #UD (the call never reaches the hypervisor's handler);
///  2. a claimed call the partition lacks the privilege for: HV_STATUS_ACCESS_DENIED;
///  3. RsvdZ bits of the input value: HV_STATUS_INVALID_HYPERCALL_INPUT;
///  4. a code the reference does not implement: HV_STATUS_INVALID_HYPERCALL_CODE;
///  5. the fast bit on a call without a register form: #UD when XMM input was not offered
///     (KVM; the fast form of those calls needs XMM registers), else INVALID_HYPERCALL_INPUT
///     (the reference implements no XMM input);
///  6. rep count and start index against the call's class, and a variable header on a call
///     that takes none: HV_STATUS_INVALID_HYPERCALL_INPUT;
///  7. input or output GPA misaligned, a block crossing its page, or a GPA the partition cannot
///     access: HV_STATUS_INVALID_ALIGNMENT (TLFS hypercall-interface.md);
///  8. the call's own checks.
extension ViridianReference {
    /// The hypercall instruction of `vp` in `partition` with RCX = `input` and, for a fast call, RDX and R8 as its register input (else their GPAs of the input and output pages): checked in the order above, then carried out. The completion holds RAX, a rep continuation or #UD. Safe from any thread; the fast forms of HvCallSignalEvent and HvCallSendSyntheticClusterIpi take no shared lock.
    @inlinable public func hypercall(partition: PartitionID, vp: VPIndex, input: HVHypercallInput, rdx: UInt64, r8: UInt64) -> HypercallCompletion {
        // The fast paths as readers: no shared lock; their interrupts are raised once out.
        let code = HVCallCode(rawValue: UInt16(truncatingIfNeeded: input.callCode))
        if input.fast, code == .signalEvent || code == .sendIpi, let slot = readers.enter(partition, vp) {
            var deferred = DeferredInterrupts()
            let completion = withUnsafeMutablePointer(to: &deferred) {
                enteredHypercall(partition: partition, vp: vp, input: input, rdx: rdx, r8: r8, deferred: $0)
            }
            readers.leave(slot)
            deferred.raise(on: host)
            return completion
        }
        lockEntry()
        defer { unlockEntry() }
        return enteredHypercall(partition: partition, vp: vp, input: input, rdx: rdx, r8: r8, deferred: nil)
    }

    /// The hypercall, once entered as a reader or a writer.
    @inlinable func enteredHypercall(partition: PartitionID, vp: VPIndex, input: HVHypercallInput, rdx: UInt64, r8: UInt64,
                          deferred: UnsafeMutablePointer<DeferredInterrupts>?) -> HypercallCompletion {
        guard let p = index(of: partition) else { return .completed(.invalidPartitionId) }
        guard let v = vpIndex(p, vp) else { return .completed(.invalidVpIndex) }
        guard partitions[p].hypercallsEnabled else {
            return HypercallCompletion(result: HVHypercallResult(rawValue: 0), raisesInvalidOpcode: true)
        }
        let code = HVCallCode(rawValue: UInt16(truncatingIfNeeded: input.callCode))
        let claimed = ReferenceHypercall(code)
        let privileges = partitions[p].config.privileges
        if let claimed, !claimed.isPermitted(by: privileges) { return .completed(.accessDenied) }
        if input.hasReservedBitsSet { return .completed(.invalidHypercallInput) }
        guard let call = claimed else { return .completed(.invalidHypercallCode) }
        if input.fast && !code.hasFastForm {
            if !privileges.edx.contains(.hypercallXMMInput) {
                return HypercallCompletion(result: HVHypercallResult(rawValue: 0), raisesInvalidOpcode: true)
            }
            return .completed(.invalidHypercallInput)
        }
        let repCount = Int(input.repCount), repStart = Int(input.repStartIndex)
        if code.callClass == .rep {
            guard repCount > 0, repStart < repCount else { return .completed(.invalidHypercallInput) }
        } else if repCount != 0 || repStart != 0 {
            return .completed(.invalidHypercallInput)
        }
        if input.variableHeaderSize != 0 && !Self.takesVariableHeader(call) { return .completed(.invalidHypercallInput) }

        // Reps this invocation does: all, or up to the configured budget.
        let budget = partitions[p].config.repsPerInvocation
        let repEnd = budget > 0 ? min(repCount, repStart + budget) : repCount

        var outcome: HandlerResult
        let length = input.fast ? 16 : Self.fixedInputSize(call) + Int(input.variableHeaderSize) * 8 + repCount * Self.repElementSize(call)
        if !input.fast && length > 0 {
            guard rdx & 7 == 0, let block = hostAddress(p, gpa: rdx, length: UInt64(length), write: false) else {
                return .completed(.invalidAlignment)
            }
            outcome = dispatch(HypercallArguments(p: p, v: v, call: call, input: input, block: UnsafeRawPointer(block), blockLength: length,
                                                  outputGPA: r8, repStart: repStart, repEnd: repEnd, deferred: deferred))
        } else {
            // Register input (RDX then R8, read like a memory block), or a call with no input.
            var registers = (rdx.littleEndian, r8.littleEndian)
            outcome = withUnsafeBytes(of: &registers) { raw in
                dispatch(HypercallArguments(p: p, v: v, call: call, input: input, block: raw.baseAddress!, blockLength: length,
                                            outputGPA: input.fast ? 0 : r8, repStart: repStart, repEnd: repEnd, deferred: deferred))
            }
        }
        var completion = HypercallCompletion.completed(outcome.status, reps: UInt64(outcome.repsCompleted))
        if code.callClass == .rep && outcome.status == .success && outcome.repsCompleted < repCount {
            var next = input
            next.repStartIndex = UInt64(outcome.repsCompleted)
            completion.continuation = next
        }
        return completion
    }

    /// Calls whose input has a variable header (the banks of an HV_VP_SET).
    @inlinable static func takesVariableHeader(_ call: ReferenceHypercall) -> Bool {
        switch call {
        case .sendIpiEx, .flushVirtualAddressSpaceEx, .flushVirtualAddressListEx: return true
        case .flushVirtualAddressSpace, .flushVirtualAddressList, .notifyLongSpinWait, .sendIpi,
             .getPartitionId, .mapGpaPages, .unmapGpaPages, .postMessage, .signalEvent: return false
        }
    }

    /// Size of the fixed input header of each call (Specs/viridian/structs.tbl layouts).
    @inlinable static func fixedInputSize(_ call: ReferenceHypercall) -> Int {
        switch call {
        case .flushVirtualAddressSpace, .flushVirtualAddressList: return HvTlbFlushLayout.size
        case .flushVirtualAddressSpaceEx, .flushVirtualAddressListEx: return HvTlbFlushExLayout.size
        case .sendIpi: return HvSendIpiLayout.size
        case .sendIpiEx: return HvSendIpiExLayout.size
        case .notifyLongSpinWait: return HvInputNotifyLongSpinWaitLayout.size
        case .getPartitionId: return 0
        case .mapGpaPages: return HvInputMapGpaPagesLayout.size
        case .unmapGpaPages: return HvInputUnmapGpaPagesLayout.size
        case .postMessage: return HvInputPostMessageLayout.size
        case .signalEvent: return HvInputSignalEventLayout.size
        }
    }

    /// Size of one rep list element (0 for simple calls and for HvCallUnmapGpaPages, whose
    /// reps are pages counted from the base, not list entries).
    @inlinable static func repElementSize(_ call: ReferenceHypercall) -> Int {
        switch call {
        case .flushVirtualAddressList, .flushVirtualAddressListEx, .mapGpaPages: return 8
        case .flushVirtualAddressSpace, .flushVirtualAddressSpaceEx, .sendIpi, .sendIpiEx, .notifyLongSpinWait,
             .getPartitionId, .unmapGpaPages, .postMessage, .signalEvent: return 0
        }
    }

    @inlinable func dispatch(_ a: HypercallArguments) -> HandlerResult {
        switch a.call {
        case .postMessage: return .status(postMessage(a))
        case .signalEvent: return .status(signalEvent(a))
        case .sendIpi: return .status(sendIPI(a))
        case .sendIpiEx: return .status(sendIPIEx(a))
        case .flushVirtualAddressSpace, .flushVirtualAddressList, .flushVirtualAddressSpaceEx, .flushVirtualAddressListEx:
            return flush(a)
        case .notifyLongSpinWait:
            // TLFS: the call has no error status. The spin count is the low 32 bits.
            host.longSpinWait(partition: partitions[a.p].id, vp: VPIndex(UInt32(a.v)), spinCount: a.blockLength >= 4 ? a.u32(0) : 0)
            return .status(.success)
        case .getPartitionId: return .status(getPartitionID(a))
        case .mapGpaPages: return mapGPAPages(a)
        case .unmapGpaPages: return unmapGPAPages(a)
        }
    }
}
