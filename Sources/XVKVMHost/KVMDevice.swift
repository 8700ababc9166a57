import CKVM
import Glibc

/// Why the host cannot run here, or what failed: one line for `xv run` and the tests' skips.
public struct KVMError: Error, CustomStringConvertible, Sendable {
    /// The reason, in one line.
    public let description: String
    init(_ what: String, errno code: Int32 = errno) {
        description = code == 0 ? what : "\(what): \(String(cString: strerror(code)))"
    }
}

/// `/dev/kvm`: the KVM API (Documentation/virt/kvm/api.rst in Linux), version 12.
public final class KVMDevice {
    /// The device's file descriptor.
    public let fd: Int32

    /// Opens `/dev/kvm` and checks the API version (12, the only one there has been).
    public init(path: String = "/dev/kvm") throws(KVMError) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw KVMError("cannot open \(path)") }
        let version = ioctl(fd, xv_kvm_get_api_version)
        guard version == 12 else {
            close(fd)
            throw KVMError("\(path) speaks KVM API \(version), not 12", errno: 0)
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// KVM_CHECK_EXTENSION: 0 when the capability is absent, else its value.
    public func capability(_ cap: Int32) -> Int32 { max(ioctl(fd, xv_kvm_check_extension, cap), 0) }

    /// What this KVM offers the host, for `xv run --probe`.
    public var summary: String {
        "KVM API 12; KVM_CAP_XEN_HVM \(capability(xv_kvm_cap_xen_hvm)) (vmcall reaches userspace only when set), "
            + "KVM_CAP_IMMEDIATE_EXIT \(capability(xv_kvm_cap_immediate_exit)), "
            + "KVM_CAP_SET_GUEST_DEBUG \(capability(xv_kvm_cap_set_guest_debug))"
    }

    /// The size of a vCPU's kvm_run mapping.
    var runMappingSize: Int { Int(ioctl(fd, xv_kvm_get_vcpu_mmap_size)) }
}

/// A VM with one slot of guest RAM at guest-physical 0.
public final class KVMVirtualMachine {
    /// The device the VM was created on.
    public let device: KVMDevice
    /// The VM's file descriptor.
    public let fd: Int32
    /// The guest's RAM, `size` bytes at guest-physical 0, mapped in the host.
    public let memory: UnsafeMutableRawPointer
    /// The RAM's size in bytes.
    public let size: Int

    /// KVM_CREATE_VM, then KVM_SET_USER_MEMORY_REGION for `size` bytes of anonymous memory.
    public init(device: KVMDevice, memoryBytes size: Int) throws(KVMError) {
        self.device = device
        let fd = ioctl(device.fd, xv_kvm_create_vm, 0)
        guard fd >= 0 else { throw KVMError("KVM_CREATE_VM") }
        guard let memory = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              memory != MAP_FAILED else {
            close(fd)
            throw KVMError("mmap of \(size) bytes of guest RAM")
        }
        var region = kvm_userspace_memory_region(slot: 0, flags: 0, guest_phys_addr: 0, memory_size: UInt64(size),
                                                 userspace_addr: UInt64(UInt(bitPattern: memory)))
        guard ioctl(fd, xv_kvm_set_user_memory_region, &region) == 0 else {
            let e = KVMError("KVM_SET_USER_MEMORY_REGION")
            munmap(memory, size)
            close(fd)
            throw e
        }
        self.fd = fd
        self.memory = memory
        self.size = size
    }

    deinit {
        munmap(memory, size)
        close(fd)
    }

    /// Copies `bytes` into guest RAM at `address`; false when they do not fit.
    public func load(_ bytes: [UInt8], at address: Int) -> Bool {
        guard address >= 0, address <= size, bytes.count <= size - address else { return false }
        bytes.withUnsafeBytes { (memory + address).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return true
    }
}
