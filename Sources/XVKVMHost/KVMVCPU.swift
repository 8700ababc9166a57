import CKVM
import Glibc

/// One vCPU of a `KVMVirtualMachine` and its kvm_run mapping.
public final class KVMVCPU {
    /// The VM the vCPU belongs to.
    public let vm: KVMVirtualMachine
    /// The vCPU's file descriptor.
    public let fd: Int32
    let run: UnsafeMutablePointer<kvm_run>
    let runSize: Int

    /// KVM_CREATE_VCPU `index`, and the mapping of its kvm_run.
    public init(vm: KVMVirtualMachine, index: Int32 = 0) throws(KVMError) {
        self.vm = vm
        let fd = ioctl(vm.fd, xv_kvm_create_vcpu, index)
        guard fd >= 0 else { throw KVMError("KVM_CREATE_VCPU") }
        let size = vm.device.runMappingSize
        guard size >= MemoryLayout<kvm_run>.size, let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            close(fd)
            throw KVMError("mmap of the vCPU's kvm_run")
        }
        self.fd = fd
        run = p.assumingMemoryBound(to: kvm_run.self)
        runSize = size
    }

    deinit {
        munmap(run, runSize)
        close(fd)
    }

    /// The state Xen enters a PVH guest in (xen/include/public/arch-x86/hvm/start_info.h): 32-bit
    /// flat protected mode, paging off, CS a 4 GiB execute/read segment, the data segments 4 GiB
    /// read/write, `%ebx` the guest-physical address of the hvm_start_info, EIP the entry.
    public func enterFlatProtectedMode(entry: UInt32, ebx: UInt32) throws(KVMError) {
        var sregs = kvm_sregs()
        guard ioctl(fd, xv_kvm_get_sregs, &sregs) == 0 else { throw KVMError("KVM_GET_SREGS") }
        func flat(_ selector: UInt16, type: UInt8) -> kvm_segment {
            kvm_segment(base: 0, limit: 0xFFFF_FFFF, selector: selector, type: type, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0,
                        unusable: 0, padding: 0)
        }
        sregs.cs = flat(0x10, type: 0xB)
        sregs.ds = flat(0x18, type: 0x3); sregs.es = sregs.ds; sregs.fs = sregs.ds; sregs.gs = sregs.ds; sregs.ss = sregs.ds
        sregs.cr0 = 0x11   // PE, ET: protected mode, no paging
        sregs.cr4 = 0
        sregs.efer = 0
        guard ioctl(fd, xv_kvm_set_sregs, &sregs) == 0 else { throw KVMError("KVM_SET_SREGS") }
        var regs = kvm_regs()
        regs.rip = UInt64(entry)
        regs.rbx = UInt64(ebx)
        regs.rflags = 2
        guard ioctl(fd, xv_kvm_set_regs, &regs) == 0 else { throw KVMError("KVM_SET_REGS") }
    }

    /// Why KVM_RUN returned, as far as the host handles it.
    public enum Exit: Equatable, Sendable {
        /// The guest wrote `bytes` to I/O `port`.
        case portOut(port: UInt16, bytes: [UInt8])
        /// The guest read `size` bytes from `port`; the host answers with `answerPortIn`.
        case portIn(port: UInt16, size: Int)
        /// HLT.
        case halt
        /// The run was interrupted (the host's watchdog): check the deadline.
        case interrupted
        /// Any other exit reason (KVM_EXIT_*), not handled yet.
        case other(UInt32)
    }

    /// One KVM_RUN.
    public func runOnce() throws(KVMError) -> Exit {
        if ioctl(fd, xv_kvm_run, 0) != 0 {
            if errno == EINTR || errno == EAGAIN { xv_kvm_set_immediate_exit(run, 0); return .interrupted }
            throw KVMError("KVM_RUN")
        }
        switch Int32(run.pointee.exit_reason) {
        case KVM_EXIT_IO:
            let io = run.pointee.io
            let data = xv_kvm_io_data(run)!
            let length = Int(io.size) * Int(io.count)
            if io.direction == UInt8(KVM_EXIT_IO_OUT) {
                return .portOut(port: io.port, bytes: Array(UnsafeBufferPointer(start: data, count: length)))
            }
            return .portIn(port: io.port, size: length)
        case KVM_EXIT_HLT: return .halt
        case KVM_EXIT_INTR: return .interrupted
        default: return .other(run.pointee.exit_reason)
        }
    }

    /// The bytes a port read returns (after `.portIn`, before the next run).
    public func answerPortIn(_ bytes: [UInt8]) {
        let io = run.pointee.io
        let data = xv_kvm_io_data(run)!
        for i in 0..<min(bytes.count, Int(io.size) * Int(io.count)) { data[i] = bytes[i] }
    }

    /// Asks a KVM_RUN in progress (or the next) to return: immediate_exit, then a signal to the
    /// thread in KVM_RUN (`KVMWatchdog`).
    func requestExit() { xv_kvm_set_immediate_exit(run, 1) }

    /// The vCPU's general registers.
    public func registers() throws(KVMError) -> kvm_regs {
        var regs = kvm_regs()
        guard ioctl(fd, xv_kvm_get_regs, &regs) == 0 else { throw KVMError("KVM_GET_REGS") }
        return regs
    }
}
