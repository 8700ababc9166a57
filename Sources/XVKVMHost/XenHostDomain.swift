import CKVM
import Foundation
import Glibc
import XenABI

/// One guest of a `XenHost`: its KVM VM and physical map, its vCPUs, its console and how it ended.
final class XenHostDomain: @unchecked Sendable {
    let id: UInt16
    let guest: XenHostConfiguration.Guest
    let vm: KVMVirtualMachine
    let physmap: KVMPhysicalMap
    private(set) var vcpus: [XenHostVCPU] = []
    unowned(unsafe) var host: XenHost!

    private let lock = NSLock()
    private var console: [String] = []
    private var shutdownReason: UInt8?
    private var fault: String?

    init(id: UInt16, guest: XenHostConfiguration.Guest, vm: KVMVirtualMachine, physmap: KVMPhysicalMap, vcpus: [KVMVCPU]) {
        self.id = id
        self.guest = guest
        self.vm = vm
        self.physmap = physmap
        self.vcpus = vcpus.enumerated().map { XenHostVCPU(index: UInt32($0.offset), kvm: $0.element) }
        for v in self.vcpus { v.domain = self }
    }

    /// The guest frame `XenHost.reservedFrames` keeps for `what`.
    func reservedFrame(_ what: XenHost.ReservedFrame) -> UInt64 { UInt64(physmap.frames - what.rawValue) }

    /// The host address of a reserved frame (always RAM: the guest's memory map reserves it).
    func reservedPage(_ what: XenHost.ReservedFrame) -> UnsafeMutableRawPointer { vm.memory + Int(reservedFrame(what)) * 4096 }

    /// Loads the image, writes the start info (command line, memory map: RAM up to the
    /// reserved frames) and puts vCPU 0 at the PVH entry; the others wait for VCPUOP_up or
    /// the guest's INIT/SIPI.
    func boot() throws(KVMError) {
        do { try guest.image.load(into: vm) } catch { throw KVMError("domain \(id): \(error)", errno: 0) }
        let ramEnd = UInt64(physmap.frames - XenHost.reservedFrames) * 4096
        let map: [(address: UInt64, size: UInt64, type: UInt32)] = [
            (0, ramEnd, XenHVMMemmapType.ram),
            (ramEnd, UInt64(XenHost.reservedFrames) * 4096, XenHVMMemmapType.reserved),
        ]
        let at = Int(reservedFrame(.startInfo)) * 4096
        guard PVHStartInfo.write(into: vm, at: at, commandLine: guest.commandLine, memoryMap: map) else {
            throw KVMError("domain \(id): the command line does not fit the start-info page", errno: 0)
        }
        try vcpus[0].kvm.enterFlatProtectedMode(entry: guest.image.entry, ebx: UInt32(at))
    }

    /// A console line (CONSOLEIO_write's, or the debug port's up to its newline).
    func consoleLine(_ line: String) {
        lock.withLock { console.append(line) }
        host.echo(self, line)
    }

    /// SCHEDOP_shutdown: the first reason counts; the domain's vCPUs stop.
    func shutDown(_ reason: UInt8) {
        let first: Bool = lock.withLock {
            guard shutdownReason == nil, fault == nil else { return false }
            shutdownReason = reason
            return true
        }
        guard first else { return }
        for v in vcpus { v.stop() }
        host.domainChanged()
    }

    /// The host stopped the domain: a triple fault, an exit it cannot complete.
    func faulted(_ why: String) {
        let first: Bool = lock.withLock {
            guard shutdownReason == nil, fault == nil else { return false }
            fault = why
            return true
        }
        guard first else { return }
        host.echo(self, "xv: domain \(id) stopped: \(why)")
        for v in vcpus { v.stop() }
        host.domainChanged()
    }

    var finished: Bool { lock.withLock { shutdownReason != nil || fault != nil } }

    func report() -> XenHostResult.Domain {
        var exits = XenHostExits()
        var calls: [XenHostHypercall] = []
        for v in vcpus { exits.add(v.exits); calls += v.log }
        return lock.withLock {
            XenHostResult.Domain(id: id, name: guest.name, console: console, shutdownReason: shutdownReason, fault: fault, exits: exits, hypercalls: calls)
        }
    }
}

