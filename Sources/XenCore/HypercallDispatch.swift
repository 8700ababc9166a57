import GuestABI
import XenABI

/// The hypercall entry shared by XenNative and XenViridian: the generated disposition of each
/// number (Specs/translation/hypercalls.tbl) decides between the table's declared refusal and a
/// handler; sub-op families dispatch on their own tables the same way.
extension XenDomain {
    /// Carries out the hypercall `registers` describe, issued by `vcpu`, and returns what the
    /// guest sees in RAX (negative XEN_E* on error). `vcpu` must be below `vcpuCount` (the
    /// embedder names the trapping vCPU; an out-of-range index is -EINVAL, never a trap).
    ///
    /// The slow families' handlers are `@inline(never)`: their stack buffers and bodies stay out
    /// of this frame, which the event-channel fast path runs through.
    @inlinable public func hypercall<F: EventFabric>(_ registers: XenHypercallRegisters, vcpu: Int, fabric: F) -> Int64 where F.Memory == Memory {
        guard vcpu >= 0, vcpu < vcpuCount else { return XenErrno.einval.hypercallReturnValue }
        let call = XenHypercall(rawValue: registers.rax)
        switch call {
        case .eventChannelOp:
            return eventChannelOp(UInt32(truncatingIfNeeded: registers.rdi), arg: registers.rsi, vcpu: vcpu, fabric: fabric)
        case .hvmOp:
            return hvmOp(registers.rdi, arg: registers.rsi, vcpu: vcpu, fabric: fabric) ?? Self.notYetImplemented
        case .xenVersion:
            return xenVersion(registers.rdi, arg: registers.rsi)
        case .vmAssist:
            return vmAssist(registers.rdi, type: registers.rsi)
        case .multicall:
            return multicall(registers.rdi, count: registers.rsi, vcpu: vcpu, fabric: fabric)
        case .setTimerOp:
            return setTimerOp(registers.rdi, vcpu: vcpu, fabric: fabric)
        case .schedOp:
            return schedOp(registers.rdi, arg: registers.rsi, vcpu: vcpu, fabric: fabric)
        case .vcpuOp:
            return vcpuOp(registers.rdi, vcpuid: registers.rsi, arg: registers.rdx, current: vcpu, fabric: fabric)
        case .grantTableOp:
            return grantTableOp(registers.rdi, arg: registers.rsi, count: registers.rdx, vcpu: vcpu, fabric: fabric)
        case .memoryOp:
            return memoryOp(registers.rdi, arg: registers.rsi, vcpu: vcpu, fabric: fabric)
        case .mmuextOp:
            return mmuextOp(registers, fabric: fabric)
        case .consoleIo:
            return consoleIO(registers.rdi, count: registers.rsi, buffer: registers.rdx)
        case .physdevOp:
            if case .rejected(let errno) = PhysdevOp(rawValue: UInt32(truncatingIfNeeded: registers.rdi)).disposition {
                return errno.hypercallReturnValue
            }
            return Self.notYetImplemented
        default:
            if case .rejected(let errno) = call.disposition { return errno.hypercallReturnValue }
            return Self.notYetImplemented
        }
    }

    /// What a hypercall the spec table routes to a handler answers while that handler is not
    /// built yet: -ENOSYS, Xen's answer for a hypercall it does not offer. The list of such
    /// hypercalls is `XenDispatchCoverage.notYetImplemented`, and a test keeps it exact.
    @inlinable static var notYetImplemented: Int64 { XenErrno.enosys.hypercallReturnValue }
}

/// Which hypercalls and sub-ops have handlers so far. Known gaps are data: a test checks that
/// each listed number answers -ENOSYS and each unlisted table row reaches its handler or its
/// declared refusal, so the list must shrink as handlers arrive.
public enum XenDispatchCoverage {
    /// Hypercalls whose table row is not `rejected` and that have no handler yet.
    public static let notYetImplemented: [XenHypercall] = [
    ]
    /// HVMOP rows that are not `rejected` and have no handler yet.
    public static let hvmNotYetImplemented: [HVMOp] = []
    /// SCHEDOP rows that are not `rejected` and have no handler yet (the time base's and the
    /// parking contract's).
    public static let schedNotYetImplemented: [SchedulerOp] = []
    /// VCPUOP rows that are not `rejected` and have no handler yet (the time base's).
    public static let vcpuNotYetImplemented: [VCPUOp] = []
    /// GNTTABOP rows that are not `rejected` and have no handler yet: the ones that reach another
    /// domain's grants.
    public static let grantNotYetImplemented: [GrantTableOp] = []
}
