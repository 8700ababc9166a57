import CGuestAtomics
import CXenViridian
import GuestABI
import XenABI
import XenCore
import XenNative

/// The embedder's C callbacks (`xv_callbacks` in include/xen_viridian.h), kept as a copy for
/// the system's life, with the defaults the header names for the NULL entries.
public struct EmbedderCallbacks {
    /// The copy of the embedder's table.
    public let table: xv_callbacks

    /// Checks the table: `upcall` is required and the reserved entries must be NULL (a later
    /// ABI version gives them meaning). Nil otherwise.
    public init?(_ table: xv_callbacks) {
        guard table.upcall != nil else { return nil }
        guard reservedFieldsClear(table.reserved) else { return nil }
        self.table = table
    }
}

/// Whether every byte of a C ABI struct's reserved fields is zero (a later ABI version gives
/// them meaning, so this one refuses anything else).
func reservedFieldsClear<T>(_ fields: T) -> Bool {
    withUnsafeBytes(of: fields) { $0.allSatisfy { $0 == 0 } }
}

/// The embedder as the core's sink: upcalls, NMIs, shutdown, vCPU state, and on the native
/// side the TLB flushes, yields, the guests' TSC and the Xen timers. Thread-safe: every
/// callback goes straight to the embedder; the TSC and the timers are atomic words.
public final class EmbedderSink: XenNativeSink {
    let callbacks: xv_callbacks
    /// The guests' TSC, set by `xv_set_guest_tsc` (a release store; read with acquire).
    let tsc: UnsafeMutablePointer<UInt64>
    /// The guests' TSC frequency.
    public let guestTSCHz: UInt64
    /// Where the native side's armed timers live (the system sets it): per domain, one word
    /// per vCPU, deadline + 1 in Xen system time ns, 0 while disarmed. Unowned: the system owns
    /// the directory, whose records own the layers, which own this sink (a strong reference
    /// here was a cycle that leaked every translated domain at xv_system_destroy).
    @exclusivity(unchecked) unowned(unsafe) var timers: DomainDirectory?
    /// The native system whose timers fire (the system sets it), unowned: the system owns
    /// the sink.
    @exclusivity(unchecked) unowned(unsafe) var native: NativeSystem?

    init(callbacks: xv_callbacks, tscHz: UInt64) {
        self.callbacks = callbacks
        guestTSCHz = tscHz
        tsc = .allocate(capacity: 1)
        tsc.initialize(to: 0)
    }

    deinit { tsc.deallocate() }

    /// Calls the embedder's `upcall` callback with the vector (a null callback drops it).
    public func upcall(domain: DomainID, vcpu: Int, vector: UInt8) {
        callbacks.upcall?(callbacks.context, domain.rawValue, UInt32(truncatingIfNeeded: vcpu), vector)
    }
    /// Calls the embedder's `nmi` callback (null: dropped).
    public func nmi(domain: DomainID, vcpu: Int) {
        callbacks.nmi?(callbacks.context, domain.rawValue, UInt32(truncatingIfNeeded: vcpu))
    }
    /// Calls the embedder's `shutdown` callback with the SHUTDOWN_* reason (null: ignored).
    public func shutdown(domain: DomainID, reason: UInt8) {
        callbacks.shutdown?(callbacks.context, domain.rawValue, reason)
    }
    /// Hands the state to the embedder's `initialise_vcpu` callback as an `xv_vcpu_context` (borrowed for the call); its non-zero answer accepts, and a null callback refuses (the guest gets -EINVAL).
    public func initialiseVCPU(domain: DomainID, vcpu: Int, _ context: XenVCPUContext) -> Bool {
        guard let initialise = callbacks.initialise_vcpu else { return false }
        var state = xv_vcpu_context()
        state.rax = context.rax; state.rcx = context.rcx; state.rdx = context.rdx; state.rbx = context.rbx
        state.rsp = context.rsp; state.rbp = context.rbp; state.rsi = context.rsi; state.rdi = context.rdi
        state.rip = context.rip; state.rflags = context.rflags
        state.cr0 = context.cr0; state.cr3 = context.cr3; state.cr4 = context.cr4; state.efer = context.efer
        state.cs = Self.segment(context.cs); state.ds = Self.segment(context.ds); state.ss = Self.segment(context.ss)
        state.es = Self.segment(context.es); state.tr = Self.segment(context.tr)
        return withUnsafePointer(to: &state) { initialise(callbacks.context, domain.rawValue, UInt32(truncatingIfNeeded: vcpu), $0) } != 0
    }
    /// Calls the embedder's `vcpu_power` callback (`up` 1 or 0; null: ignored).
    public func vcpuPowerChanged(domain: DomainID, vcpu: Int, up: Bool) {
        callbacks.vcpu_power?(callbacks.context, domain.rawValue, UInt32(truncatingIfNeeded: vcpu), up ? 1 : 0)
    }
    /// Native HVMOP_flush_tlbs: calls the embedder's `flush_tlbs` callback (null: nothing to flush).
    public func flushTLBs(domain: DomainID) { callbacks.flush_tlbs?(callbacks.context, domain.rawValue) }
    /// Native SCHEDOP_yield: calls the embedder's `yield` callback (null: ignored).
    public func yieldVCPU(domain: DomainID, vcpu: Int) {
        callbacks.yield?(callbacks.context, domain.rawValue, UInt32(truncatingIfNeeded: vcpu))
    }
    /// The guests' TSC as `xv_set_guest_tsc` last set it (an acquire load).
    public func guestTSC() -> UInt64 { xv_load_acquire_u64(tsc) }

    /// Native timers: recorded, told to the embedder, and fired at once when already due
    /// (as a host timer armed in the past fires).
    public func armTimer(domain: DomainID, vcpu: Int, deadline: UInt64?) {
        guard let word = timers?.timerWord(domain, vcpu: vcpu) else { return }
        xv_store_release_u64(word, deadline.map { $0 &+ 1 } ?? 0)
        callbacks.timer_changed?(callbacks.context, domain.rawValue, UInt32(truncatingIfNeeded: vcpu), deadline ?? 0, deadline == nil ? 0 : 1)
        if let deadline, deadline <= systemTimeNow(), xv_cas_u64(word, deadline &+ 1, 0) {
            native?.timerExpired(domain: domain, vcpu: vcpu)
        }
    }

    /// Xen system time now on the native side: the guests' TSC scaled as the core scales it.
    func systemTimeNow() -> UInt64 {
        guard let page = ReferenceTSCParameters(tscHz: guestTSCHz) else { return 0 }
        return page.nanoseconds(atTSC: page.tsc(atReferenceTime: page.referenceTime(atTSC: guestTSC())))
    }

    static func segment(_ s: XenVCPUSegment) -> xv_segment {
        var out = xv_segment()
        out.base = s.base; out.limit = s.limit; out.attributes = s.attributes
        return out
    }
}

/// CONSOLEIO_write lines to the embedder's console callback.
final class EmbedderConsole: XenConsoleSink {
    let callbacks: xv_callbacks
    init(_ callbacks: xv_callbacks) { self.callbacks = callbacks }
    func consoleLine(domain: DomainID, _ line: UnsafeRawBufferPointer) {
        callbacks.console?(callbacks.context, domain.rawValue, line.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(line.count))
    }
}

/// SCHEDOP_block and poll wakes to the embedder's wake callback.
final class EmbedderWaker: XenVCPUWaker {
    let callbacks: xv_callbacks
    init(_ callbacks: xv_callbacks) { self.callbacks = callbacks }
    func wake(domain: DomainID, vcpu: Int) {
        callbacks.wake?(callbacks.context, domain.rawValue, UInt32(truncatingIfNeeded: vcpu))
    }
}

/// A domain's guest-physical map: the embedder's physmap callbacks, or, where they are NULL,
/// the domain's page table written directly (release stores; the core reads with acquire).
final class EmbedderPhysmap: XenPhysmap {
    let callbacks: xv_callbacks
    let domain: UInt16
    let table: UnsafeMutablePointer<UInt64>
    let frames: UInt64

    init(_ callbacks: xv_callbacks, domain: UInt16, table: UnsafeMutablePointer<UInt64>, frames: UInt64) {
        self.callbacks = callbacks
        self.domain = domain
        self.table = table
        self.frames = frames
    }

    func map(_ page: UnsafeMutableRawPointer, at frame: GuestFrameNumber, writable: Bool) -> Bool {
        guard frame.rawValue < frames else { return false }
        if let map = callbacks.physmap_map { return map(callbacks.context, domain, frame.rawValue, page, writable ? 1 : 0) != 0 }
        xv_store_release_u64(table + Int(frame.rawValue), UInt64(UInt(bitPattern: page)))
        return true
    }
    func unmap(_ frame: GuestFrameNumber, releasing: Bool) {
        guard frame.rawValue < frames else { return }
        if let unmap = callbacks.physmap_unmap { unmap(callbacks.context, domain, frame.rawValue, releasing ? 1 : 0); return }
        xv_store_release_u64(table + Int(frame.rawValue), 0)
    }
    func populate(_ frame: GuestFrameNumber) -> Bool {
        guard frame.rawValue < frames, let populate = callbacks.physmap_populate else { return false }
        return populate(callbacks.context, domain, frame.rawValue) != 0
    }
}
