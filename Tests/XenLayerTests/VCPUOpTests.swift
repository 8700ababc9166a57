import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// __HYPERVISOR_vcpu_op rows of Specs/translation/vcpu.tbl (`translation.vcpuop`) that do not
/// need the time base: VCPUOP_is_up, VCPUOP_register_vcpu_info, VCPUOP_send_nmi and
/// VCPUOP_get_physid, on both sides.
@Suite("vcpu_op: is_up, register_vcpu_info, send_nmi, get_physid")
struct VCPUOpTests {
    func vcpuOp(_ w: any XenWorld, _ op: VCPUOp, target: UInt64, arg: UInt64 = 0, domain d: DomainID = dom1, from vcpu: Int = 0) -> Int64 {
        w.hypercall(domain: d, vcpu: vcpu, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(op.rawValue), rsi: target, rdx: arg))
    }

    func register(_ w: any XenWorld, target: UInt64, frame: UInt64, offset: UInt64, domain d: DomainID = dom1, from vcpu: Int = 0) -> Int64 {
        w.writeArguments(d, size: 16, [(VcpuRegisterVcpuInfoLayout.mfn, frame), (VcpuRegisterVcpuInfoLayout.offset, offset)])
        return vcpuOp(w, .registerVcpuInfo, target: target, arg: w.argumentAddress, domain: d, from: vcpu)
    }

    @Test("the named vCPU is looked up first: one the domain lacks is -ENOENT whatever the command; the upper half of RSI is ignored")
    func unknownVCPU() {
        onBothWorlds { w, side in
            for target: UInt64 in [2, 31, 0xFFFF_FFFF] {
                #expect(vcpuOp(w, .isUp, target: target) == errENOENT, "\(side) vCPU \(target)")
                #expect(vcpuOp(w, VCPUOp(rawValue: 99), target: target) == errENOENT, "\(side)")
                #expect(vcpuOp(w, .registerVcpuInfo, target: target, arg: UInt64.max) == errENOENT, "\(side): before the argument")
            }
            #expect(vcpuOp(w, VCPUOp(rawValue: 99), target: 0) == errENOSYS, "\(side)")
            #expect(vcpuOp(w, .isUp, target: 1 << 32) == 1, "\(side): unsigned int vcpuid")
        }
    }

    @Test("VCPUOP_is_up: vCPU 0 is up from the start, the others once the embedder starts them")
    func isUp() {
        onBothWorlds { w, side in
            #expect(vcpuOp(w, .isUp, target: 0) == 1 && vcpuOp(w, .isUp, target: 1) == 0, "\(side)")
            w.setVCPUUp(dom1, vcpu: 1, true)
            #expect(vcpuOp(w, .isUp, target: 1) == 1, "\(side)")
            w.setVCPUUp(dom1, vcpu: 0, false)
            #expect(vcpuOp(w, .isUp, target: 0, from: 1) == 0, "\(side)")
        }
    }

    @Test("VCPUOP_register_vcpu_info: the contents move, everything is marked pending with one upcall, and events land in the new place on both sides")
    func registerMoves() {
        onBothWorlds { w, side in
            #expect(w.setCallbackVector(dom2, 0x50) == 0)
            let frame = WorldLayout.firstFreeFrame + 10, offset: UInt64 = 128
            let old = w.xenDomain(dom2).vcpuInfoPointer(0)!
            old.storeBytes(of: 0x11, toByteOffset: VcpuInfoLayout.evtchnUpcallMask.offset, as: UInt8.self)
            let upcalls = w.recorder.count(domain: dom2, vcpu: 0)
            #expect(register(w, target: 0, frame: frame, offset: offset, domain: dom2) == 0, "\(side)")
            let new = w.ram(dom2).region.hostAddress(of: GuestFrameNumber(frame))! + Int(offset)
            #expect(w.xenDomain(dom2).vcpuInfoPointer(0) == new, "\(side)")
            #expect(w.xenDomain(dom2).registeredVCPUInfo(0) == GuestPhysicalAddress(frame << 12 | offset), "\(side)")
            #expect(new.load(fromByteOffset: VcpuInfoLayout.evtchnUpcallMask.offset, as: UInt8.self) == 0x11, "\(side): copied")
            #expect(new.load(fromByteOffset: VcpuInfoLayout.evtchnPendingSel.offset, as: UInt64.self) == UInt64.max, "\(side)")
            #expect(new.load(fromByteOffset: VcpuInfoLayout.evtchnUpcallPending.offset, as: UInt8.self) == 1, "\(side)")
            #expect(w.recorder.count(domain: dom2, vcpu: 0) == upcalls + 1, "\(side): one upcall for the newly pending flag")
            // The guest takes everything, then an interdomain event arrives: in the new place.
            w.acknowledgeEvents(dom2, vcpu: 0)
            old.storeBytes(of: 0, toByteOffset: VcpuInfoLayout.evtchnPendingSel.offset, as: UInt64.self)
            let remote = UInt32(w.allocUnbound(dom2, remote: dom1))
            let local = UInt32(w.bindInterdomain(dom1, remote: dom2, remotePort: remote))
            #expect(w.send(dom1, port: local) == 0, "\(side)")
            #expect(w.isPending(dom2, port: remote), "\(side)")
            #expect(new.load(fromByteOffset: VcpuInfoLayout.evtchnPendingSel.offset, as: UInt64.self) == 1 << UInt64(remote / 64), "\(side)")
            #expect(old.load(fromByteOffset: VcpuInfoLayout.evtchnPendingSel.offset, as: UInt64.self) == 0, "\(side): not the old slot")
            #expect(w.upcallPending(dom2, vcpu: 0), "\(side)")
        }
    }

    @Test("VCPUOP_register_vcpu_info is refused (-EINVAL) for an area crossing its page, misaligned, twice, on an up vCPU other than the caller, or off guest RAM; -EFAULT for an unreadable argument")
    func registerRefusals() {
        onBothWorlds { w, side in
            let frame = WorldLayout.firstFreeFrame + 11
            for offset: UInt64 in [4033, 4040, 4095, 4096, 4, 0xFFFF_FFFF, 1 << 32 | 4040] {
                #expect(register(w, target: 0, frame: frame, offset: offset) == errEINVAL, "\(side) offset \(offset)")
            }
            for bad: UInt64 in [WorldLayout.frames, WorldLayout.frames + 3, 1 << 40, UInt64.max] {
                #expect(register(w, target: 0, frame: bad, offset: 0) == errEINVAL, "\(side) frame \(bad): not guest RAM (the layer's frames included)")
            }
            let edge = WorldLayout.frames << guestPageShift - 8
            #expect(vcpuOp(w, .registerVcpuInfo, target: 0, arg: edge) == errEFAULT, "\(side)")
            #expect(w.xenDomain(dom1).registeredVCPUInfo(0) == nil, "\(side): nothing registered by a refusal")
            // vCPU 1 is down: vCPU 0 may register it. Then it is registered: never again.
            #expect(register(w, target: 1, frame: frame, offset: 4032) == 0, "\(side): the last offset that fits")
            #expect(register(w, target: 1, frame: frame, offset: 0) == errEINVAL, "\(side): once only")
            #expect(register(w, target: 1, frame: frame, offset: 0, from: 1) == errEINVAL, "\(side)")
            // An up vCPU only for itself.
            w.setVCPUUp(dom2, vcpu: 1, true)
            #expect(register(w, target: 1, frame: frame, offset: 0, domain: dom2, from: 0) == errEINVAL, "\(side)")
            #expect(register(w, target: 1, frame: frame, offset: 0, domain: dom2, from: 1) == 0, "\(side)")
        }
    }

    @Test("VCPUOP_send_nmi with a null argument reaches the embedder's NMI injection; any other argument -EINVAL; VCPUOP_get_physid -EINVAL")
    func nmiAndPhysid() {
        onBothWorlds { w, side in
            #expect(vcpuOp(w, .sendNmi, target: 1) == 0 && w.recorder.nmiCount(domain: dom1) == 1, "\(side)")
            #expect(vcpuOp(w, .sendNmi, target: 1, arg: w.argumentAddress) == errEINVAL, "\(side)")
            #expect(w.recorder.nmiCount(domain: dom1) == 1, "\(side)")
            #expect(vcpuOp(w, .getPhysid, target: 0, arg: w.argumentAddress) == errEINVAL, "\(side)")
        }
    }
}
