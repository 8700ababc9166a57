import CKVM
import CXenViridian
import Foundation
import Glibc
import XenViridianC

/// One vCPU of a host domain and the thread that runs it. Only this thread calls the library
/// for the vCPU (xv_hypercall, xv_rdmsr, xv_wrmsr, xv_park_request, xv_resume), as the
/// threading contract asks; other threads only wake it (`wake`) or stop it (`stop`).
final class XenHostVCPU: @unchecked Sendable {
    let index: UInt32
    let kvm: KVMVCPU
    unowned(unsafe) var domain: XenHostDomain!
    unowned(unsafe) var host: XenHost!

    /// What the thread counted; read after `join`.
    private(set) var exits = XenHostExits()
    private(set) var log: [XenHostHypercall] = []

    /// Wakes for SCHEDOP_block and poll, counted so one that comes first is not lost.
    private let wakeCondition = NSCondition()
    private var wakes = 0
    private var stopRequested = false
    private var thread: pthread_t?
    private var started = false
    private let finished = DispatchSemaphore(value: 0)
    private var consoleBytes: [UInt8] = []
    /// VCPUOP_initialise's state, loaded when VCPUOP_up starts the vCPU.
    private var pendingContext: xv_vcpu_context?
    /// VCPUOP_down: the thread waits until VCPUOP_up (or the end of the run).
    private var down = false
    /// Registers through kvm_run (KVM_CAP_SYNC_REGS) instead of two ioctls per hypercall.
    private let syncRegisters: Bool

    init(index: UInt32, kvm: KVMVCPU) {
        self.index = index
        self.kvm = kvm
        syncRegisters = kvm.vm.device.capability(xv_kvm_cap_sync_regs) & Int32(xv_kvm_sync_x86_regs | xv_kvm_sync_x86_sregs) == Int32(xv_kvm_sync_x86_regs | xv_kvm_sync_x86_sregs)
    }

    /// Starts the vCPU's thread (once).
    func start() {
        let go: Bool = wakeCondition.withLock {
            guard !started, !stopRequested else { return false }
            started = true
            return true
        }
        guard go else { return }
        let t = Thread { [self] in
            wakeCondition.withLock { thread = pthread_self() }
            KVMWatchdog.installSignalHandler()
            runLoop()
            wakeCondition.withLock { thread = nil }
            finished.signal()
        }
        t.stackSize = 1 << 20
        t.name = "xv d\(domain.id)v\(index)"
        t.start()
    }

    /// Asks the thread to stop: out of a park, and out of KVM_RUN (immediate_exit and a signal).
    func stop() {
        wakeCondition.withLock {
            stopRequested = true
            wakeCondition.broadcast()
            kvm.requestExit()
            if let thread { pthread_kill(thread, SIGUSR1) }
        }
    }

    /// Waits for the thread to end (at once if it never started).
    func join() {
        let running: Bool = wakeCondition.withLock { started }
        if running { finished.wait() }
    }

    /// VCPUOP_initialise (the library's initialise_vcpu callback, under the domain's event
    /// lock): keeps the state for VCPUOP_up. Refused (false) for vCPU 0, which the PVH entry
    /// starts; the library has already checked the state as Xen checks it.
    func initialise(_ context: xv_vcpu_context) -> Bool {
        guard index != 0 else { return false }
        wakeCondition.withLock { pendingContext = context }
        return true
    }

    /// VCPUOP_up and down (the vcpu_power callback): up loads the state VCPUOP_initialise gave
    /// and starts (or resumes) the thread; down stops running the vCPU until it is up again.
    func power(up: Bool) {
        if up {
            let running: Bool = wakeCondition.withLock {
                down = false
                wakeCondition.broadcast()
                // A thread waiting in KVM_RUN for INIT/SIPI comes out to load the new state.
                if started, pendingContext != nil {
                    kvm.requestExit()
                    if let thread, pthread_equal(thread, pthread_self()) == 0 { pthread_kill(thread, SIGUSR1) }
                }
                return started
            }
            if !running { start() }
        } else {
            wakeCondition.withLock {
                down = true
                kvm.requestExit()
                if let thread, pthread_equal(thread, pthread_self()) == 0 { pthread_kill(thread, SIGUSR1) }
            }
        }
    }

    /// Loads VCPUOP_initialise's state into KVM (on this vCPU's thread, before it runs): the
    /// general registers, the control registers and the segments (Xen's attribute form
    /// unpacked into kvm_segment). Segments carry no selector in the state: they are 0, as
    /// after Xen's hvm_set_segment_register, and the guest loads its own.
    private func loadPendingContext() {
        guard let c = wakeCondition.withLock({ () -> xv_vcpu_context? in defer { pendingContext = nil }; return pendingContext }) else { return }
        do {
            var sregs = try kvm.specialRegisters()
            func segment(_ s: xv_segment, system: Bool = false) -> kvm_segment {
                let a = s.attributes
                return kvm_segment(base: s.base, limit: s.limit, selector: 0, type: UInt8(a & 0xF), present: UInt8(a >> 7 & 1), dpl: UInt8(a >> 5 & 3),
                                   db: UInt8(a >> 10 & 1), s: UInt8(a >> 4 & 1), l: UInt8(a >> 9 & 1), g: UInt8(a >> 11 & 1), avl: UInt8(a >> 8 & 1),
                                   unusable: a & 0x80 == 0 && !system ? 1 : 0, padding: 0)
            }
            sregs.cs = segment(c.cs); sregs.ds = segment(c.ds); sregs.ss = segment(c.ss); sregs.es = segment(c.es)
            sregs.fs = segment(c.ds); sregs.gs = segment(c.ds)
            sregs.tr = segment(c.tr, system: true)
            if sregs.tr.present == 0 { sregs.tr = kvm_segment(base: 0, limit: 0xFFFF, selector: 0, type: 11, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0, padding: 0) }
            sregs.cr0 = c.cr0; sregs.cr3 = c.cr3; sregs.cr4 = c.cr4; sregs.efer = c.efer
            try kvm.setSpecialRegisters(sregs)
            var regs = kvm_regs()
            regs.rax = c.rax; regs.rcx = c.rcx; regs.rdx = c.rdx; regs.rbx = c.rbx; regs.rsp = c.rsp; regs.rbp = c.rbp
            regs.rsi = c.rsi; regs.rdi = c.rdi; regs.rip = c.rip; regs.rflags = c.rflags | 2
            try kvm.setRegisters(regs)
            // An application processor waits for INIT/SIPI in the in-kernel APIC; VCPUOP_up runs it now.
            var mp = kvm_mp_state(mp_state: UInt32(KVM_MP_STATE_RUNNABLE))
            _ = ioctl(kvm.fd, xv_kvm_set_mp_state, &mp)
        } catch {
            domain.faulted("VCPUOP_up of vCPU \(index): \(error)")
        }
    }

    /// Waits while the vCPU is down (VCPUOP_down); false when the run is stopping.
    private func waitWhileDown() -> Bool {
        wakeCondition.withLock {
            while down, !stopRequested { wakeCondition.wait() }
            return !stopRequested
        }
    }

    /// The library's wake callback: counts it and signals the parked thread.
    func wake() {
        wakeCondition.withLock {
            wakes += 1
            wakeCondition.signal()
        }
    }

    private var shouldStop: Bool { wakeCondition.withLock { stopRequested } }

    /// The vCPU whose thread this is (set when the thread starts), for `translate_linear`,
    /// which the library calls on the thread of the vCPU whose hypercall is running.
    static let current: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// translate_linear: the guest frame linear page `page` maps to in this vCPU's page tables
    /// now (KVM_TRANSLATE walks them as the vCPU's MMU would), or nil when it is not mapped.
    func translateLinear(_ page: UInt64) -> UInt64? {
        var t = kvm_translation()
        t.linear_address = page << 12
        guard ioctl(kvm.fd, xv_kvm_translate, &t) == 0, t.valid != 0 else { return nil }
        return t.physical_address >> 12
    }

    /// When this thread last re-anchored the vCPU's vcpu_time_info (host TSC).
    private var lastTimeRefresh: UInt64 = 0

    /// Re-anchors the vCPU's pvclock (xv_refresh_time), as Xen does each time it schedules a
    /// vCPU in: on the thread's first run, after the calls that place shared_info, vcpu_info
    /// or time areas, after a park, and at least every 100 ms of the vCPU's exits.
    private func refreshTime(force: Bool) {
        let now = xv_kvm_rdtsc()
        guard force || now &- lastTimeRefresh > host.tscHz / 10 else { return }
        lastTimeRefresh = now
        _ = xv_refresh_time(host.system, domain.id, index)
    }

    private func runLoop() {
        pthread_setspecific(Self.current, Unmanaged.passUnretained(self).toOpaque())
        defer { pthread_setspecific(Self.current, nil) }
        let run = kvm.runState
        loadPendingContext()
        refreshTime(force: true)
        while !shouldStop {
            guard waitWhileDown() else { return }
            if wakeCondition.withLock({ pendingContext != nil }) { loadPendingContext() }
            if syncRegisters { run.pointee.kvm_valid_regs = UInt64(xv_kvm_sync_x86_regs | xv_kvm_sync_x86_sregs) }
            if ioctl(kvm.fd, xv_kvm_run, 0) != 0 {
                let e = errno
                if e == EINTR || e == EAGAIN { xv_kvm_set_immediate_exit(run, 0); exits.interrupted += 1; continue }
                domain.faulted("KVM_RUN: \(String(cString: strerror(e)))")
                return
            }
            run.pointee.kvm_dirty_regs = 0
            refreshTime(force: false)
            switch Int32(run.pointee.exit_reason) {
            case KVM_EXIT_IO: portIO(run)
            case KVM_EXIT_MMIO: mmio(run)
            case KVM_EXIT_X86_RDMSR: readMSR(run)
            case KVM_EXIT_X86_WRMSR: writeMSR(run)
            case KVM_EXIT_INTR: exits.interrupted += 1
            case KVM_EXIT_HLT:
                // Only without the in-kernel APIC; this host always has one.
                domain.faulted("HLT reached userspace")
            case KVM_EXIT_SHUTDOWN:
                domain.faulted("triple fault (KVM_EXIT_SHUTDOWN) on vCPU \(index) at rip 0x\(String((try? kvm.registers().rip) ?? 0, radix: 16))")
            case KVM_EXIT_FAIL_ENTRY:
                domain.faulted("VM entry failed (reason 0x\(String(xv_kvm_fail_entry_reason(run), radix: 16)))")
            case KVM_EXIT_INTERNAL_ERROR:
                domain.faulted("KVM internal error \(xv_kvm_internal_suberror(run)) at rip 0x\(String((try? kvm.registers().rip) ?? 0, radix: 16))")
            default:
                domain.faulted("unhandled KVM exit \(run.pointee.exit_reason)")
            }
        }
    }

    // MARK: Exits

    private func portIO(_ run: UnsafeMutablePointer<kvm_run>) {
        let io = run.pointee.io
        let data = xv_kvm_io_data(run)!
        let out = io.direction == UInt8(KVM_EXIT_IO_OUT)
        if io.port == XenHypercallPort.port, out, io.size == 4, io.count == 1 { hypercall(run); return }
        let length = Int(io.size) * Int(io.count)
        if out, io.port == 0xE9 || io.port == 0x12 {
            exits.console += 1
            for i in 0..<length { debugConsole(data[i]) }
            return
        }
        if !out, io.port == 0xE9 {
            // The debug port reads as its own number (Bochs' and QEMU's isa-debugcon).
            exits.console += 1
            data.initialize(repeating: 0xE9, count: length)
            return
        }
        // No device: reads float high, writes go nowhere (a PC's unassigned ports).
        exits.unservedPorts[io.port, default: 0] += 1
        if !out { data.initialize(repeating: 0xFF, count: length) }
    }

    private func debugConsole(_ byte: UInt8) {
        if byte == 0x0A {
            domain.consoleLine(String(decoding: consoleBytes, as: UTF8.self))
            consoleBytes.removeAll(keepingCapacity: true)
        } else if consoleBytes.count < 4096 {
            consoleBytes.append(byte)
        }
    }

    private func mmio(_ run: UnsafeMutablePointer<kvm_run>) {
        exits.mmio += 1
        let address = xv_kvm_mmio_address(run)
        let length = Int(xv_kvm_mmio_length(run))
        let write = xv_kvm_mmio_is_write(run) != 0
        let data = xv_kvm_mmio_data(run)!
        if !domain.physmap.emulate(address: address, length: length, isWrite: write, data: data) {
            // Outside guest RAM and every device: unassigned physical memory.
            if !write { data.initialize(repeating: 0xFF, count: min(length, 8)) }
        }
    }

    private func readMSR(_ run: UnsafeMutablePointer<kvm_run>) {
        exits.msr += 1
        var value: UInt64 = 0
        let answer = xv_rdmsr(host.system, domain.id, index, xv_kvm_msr_index(run), &value)
        xv_kvm_msr_answer(run, answer == XV_IDENTITY_XEN ? 0 : 1, value)
    }

    private func writeMSR(_ run: UnsafeMutablePointer<kvm_run>) {
        exits.msr += 1
        let value = xv_kvm_msr_data(run)
        let answer = xv_wrmsr(host.system, domain.id, index, xv_kvm_msr_index(run), value)
        if answer == XV_IDENTITY_XEN {
            // The library wrote its hypercall page (VMCALL or VMMCALL stubs); point them at the port.
            let gfn = value >> 12
            if gfn < UInt64(domain.physmap.frames), let page = UnsafeMutableRawPointer(bitPattern: UInt(xv_kvm_load_acquire_u64(domain.physmap.pageTable + Int(gfn)))) {
                XenHypercallPort.patchHypercallPage(page)
            }
        }
        xv_kvm_msr_answer(run, answer == XV_IDENTITY_XEN ? 0 : 1, 0)
    }

    /// The hypercall port: the registers as the guest's VMCALL had them, the library's answer in RAX.
    private func hypercall(_ run: UnsafeMutablePointer<kvm_run>) {
        var regs: kvm_regs
        let cpl: UInt8
        if syncRegisters {
            regs = xv_kvm_sync_regs(run)!.pointee
            cpl = xv_kvm_sync_sregs(run)!.pointee.cs.dpl
        } else {
            guard let r = try? kvm.registers(), let s = try? kvm.specialRegisters() else { domain.faulted("KVM_GET_REGS"); return }
            regs = r
            cpl = s.cs.dpl
        }
        let system = host.system
        // A wake counted before this call belongs to an earlier park (the library may wake a
        // vCPU twice for one event, once after its thread has already resumed); only wakes from
        // here on can end a park this call asks for.
        wakeCondition.withLock { wakes = 0 }
        var refused: Int64 = 0
        let result: Int64
        switch xv_classify_hypercall(system, domain.id, regs.rax, cpl, &refused) {
        case XV_CALL_XEN:
            var call = xv_hypercall_regs()
            call.rax = regs.rax; call.rdi = regs.rdi; call.rsi = regs.rsi; call.rdx = regs.rdx; call.r10 = regs.r10; call.r8 = regs.r8
            result = xv_hypercall(system, domain.id, index, &call)
        case XV_CALL_REFUSED: result = refused
        default: result = -38   // -ENOSYS: no Viridian interface here
        }
        exits.hypercalls[regs.rax, default: 0] += 1
        // memory_op, vcpu_op and hvm_op place shared_info, vcpu_info and the time areas.
        if result == 0, regs.rax == 12 || regs.rax == 24 || regs.rax == 34 { refreshTime(force: true) }
        if host.configuration.recordHypercalls {
            log.append(XenHostHypercall(vcpu: index, number: regs.rax, arguments: [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8], result: result))
        }
        regs.rax = UInt64(bitPattern: result)
        if syncRegisters {
            xv_kvm_sync_regs(run)!.pointee = regs
            run.pointee.kvm_dirty_regs = UInt64(xv_kvm_sync_x86_regs)
        } else if (try? kvm.setRegisters(regs)) == nil {
            domain.faulted("KVM_SET_REGS")
            return
        }
        park()
    }

    /// SCHEDOP_block and poll: sleeps until the library's wake, the poll's deadline, or a stop.
    private func park() {
        var deadline: UInt64 = 0
        let kind = xv_park_request(host.system, domain.id, index, &deadline)
        guard kind == XV_PARK_BLOCK || kind == XV_PARK_POLL else { return }
        defer { refreshTime(force: true) }
        wakeCondition.lock()
        defer { wakeCondition.unlock() }
        while wakes == 0, !stopRequested {
            if kind == XV_PARK_POLL, deadline != UInt64.max {
                let now = xv_system_time(host.system, domain.id)
                if now != UInt64.max, now >= deadline {
                    wakeCondition.unlock()
                    _ = xv_resume(host.system, domain.id, index)
                    wakeCondition.lock()
                    return
                }
                let remaining = now == UInt64.max ? 1_000_000 : deadline - now
                _ = wakeCondition.wait(until: Date().addingTimeInterval(Double(min(remaining, 100_000_000)) / 1e9))
            } else {
                wakeCondition.wait()
            }
        }
        wakes = 0
    }
}
