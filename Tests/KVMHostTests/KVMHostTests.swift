import CKVM
import Foundation
import Testing
import XVKVMHost

/// The KVM host's first layer on a real /dev/kvm: a VM with RAM at 0, a vCPU entered as Xen
/// enters a PVH guest (32-bit flat protected mode, paging off, %ebx the start-info address),
/// the debug-port console and HLT. Skipped, with the reason, where /dev/kvm cannot be opened.
@Suite("KVM host")
struct KVMHostTests {
    /// The device, or nil (and the skip's reason recorded) when there is none here.
    static func device() -> KVMDevice? {
        do { return try KVMDevice() } catch {
            print("KVM host tests skipped: \(error)")
            return nil
        }
    }

    /// A guest of eleven bytes at 0x1000: `mov $0xE9, %dx; mov $'O', %al; out %al, %dx;
    /// mov $'K', %al; out %al, %dx; mov %ebx, %eax; hlt` (32-bit code, assembled by hand).
    static let stub: [UInt8] = [0x66, 0xBA, 0xE9, 0x00, 0xB0, 0x4F, 0xEE, 0xB0, 0x4B, 0xEE, 0x89, 0xD8, 0xF4]

    @Test("a stub entered in flat protected mode writes \"OK\" to port 0xE9 and halts, with %ebx as the entry left it")
    func stubWritesAndHalts() throws {
        guard let kvm = Self.device() else { return }
        let vm = try KVMVirtualMachine(device: kvm, memoryBytes: 2 << 20)
        #expect(vm.load(Self.stub, at: 0x1000))
        let vcpu = try KVMVCPU(vm: vm)
        try vcpu.enterFlatProtectedMode(entry: 0x1000, ebx: 0x2000)
        let (console, outcome) = try KVMConsoleRun(vcpu: vcpu, timeout: .seconds(20)).run()
        #expect(outcome == .halted)
        #expect(String(decoding: console, as: UTF8.self) == "OK")
        #expect(try vcpu.registers().rax & 0xFFFF_FFFF == 0x2000, "the stub copied %ebx to %eax")
    }

    @Test("a guest that spins without an exit is stopped by the watchdog")
    func spinningGuestTimesOut() throws {
        guard let kvm = Self.device() else { return }
        let vm = try KVMVirtualMachine(device: kvm, memoryBytes: 2 << 20)
        #expect(vm.load([0xEB, 0xFE], at: 0x1000))   // jmp .
        let vcpu = try KVMVCPU(vm: vm)
        try vcpu.enterFlatProtectedMode(entry: 0x1000, ebx: 0)
        let (_, outcome) = try KVMConsoleRun(vcpu: vcpu, timeout: .milliseconds(500)).run()
        #expect(outcome == .timedOut)
    }

    @Test("a write to a port the host does not serve ends the run and names the port")
    func unknownPortIsReported() throws {
        guard let kvm = Self.device() else { return }
        let vm = try KVMVirtualMachine(device: kvm, memoryBytes: 2 << 20)
        #expect(vm.load([0x66, 0xBA, 0x80, 0x00, 0xEE, 0xF4], at: 0x1000))   // out %al, $0x80 via %dx
        let vcpu = try KVMVCPU(vm: vm)
        try vcpu.enterFlatProtectedMode(entry: 0x1000, ebx: 0)
        let (_, outcome) = try KVMConsoleRun(vcpu: vcpu, timeout: .seconds(20)).run()
        #expect(outcome == .unhandled("out to port 0x80"))
    }

    @Test("no such device: a one-line reason")
    func missingDevice() {
        #expect(throws: KVMError.self) { try KVMDevice(path: "/nonexistent/kvm") }
        do { _ = try KVMDevice(path: "/nonexistent/kvm") } catch { #expect(error.description.hasPrefix("cannot open /nonexistent/kvm")) }
    }
}
