import GuestABI
import Testing
import ViridianABI
@testable import ViridianReference

/// SINT delivery on every SINT of every VP, in the manner of kvm-unit-tests x86/hyperv_synic.c,
/// and the SynIC MSRs' own rules.
@Suite("SynIC (hyperv_synic)")
struct SynICTests {
    @Test("every SINT of every VP delivers on its own vector; AutoEOI is passed on; masked and polling SINTs stay silent")
    func allSINTs() {
        let rig = TestRig()
        let p = rig.addPartition(PartitionConfiguration(vpCount: 4, maxPorts: 64, maxConnections: 64))
        let autoEOI: Set = [3, 8, 10, 14]
        for vp in 0..<4 {
            #expect(rig.wrmsr(p, UInt32(vp), .simp, Frames.simp(vp) << 12 | 1) == .done)
            #expect(rig.wrmsr(p, UInt32(vp), .siefp, Frames.siefp(vp) << 12 | 1) == .done)
            #expect(rig.wrmsr(p, UInt32(vp), .scontrol, 1) == .done)
            for sint in 0..<16 {
                var s = HVSINTMSR(rawValue: 0)
                s.vector = UInt64(0xB0 + sint)
                s.autoEoi = autoEOI.contains(sint)
                #expect(rig.wrmsr(p, UInt32(vp), HVMSR(rawValue: HVMSR.sint0.rawValue + UInt32(sint)), s.rawValue) == .done)
                let id = UInt32(vp * 16 + sint)
                #expect(rig.reference.createPort(in: p, port: PortID(id), kind: .event(vp: VPIndex(UInt32(vp)), sint: UInt8(sint), baseFlag: UInt16(sint), flagCount: 1)) == .success)
                #expect(rig.reference.connectPort(from: p, connection: ConnectionID(id), to: p, port: PortID(id)) == .success)
            }
        }
        // VP i asserts all 16 SINTs of VP 3-i.
        for vp in 0..<4 {
            let target = 3 - vp
            for sint in 0..<16 {
                #expect(rig.fast(p, vp: UInt32(vp), TestRig.input(.signalEvent, fast: true), UInt64(target * 16 + sint)).status == .success)
            }
            let got = rig.host.take()
            #expect(got.count == 16)
            #expect(got.map(\.vector) == (0..<16).map { UInt8(0xB0 + $0) })
            #expect(got.allSatisfy { $0.vp == UInt32(target) })
            #expect(got.filter(\.autoEOI).map { Int($0.vector) - 0xB0 } == autoEOI.sorted())
        }
        // Masked: the flag is refused (TLFS); polling: the flag is set but no interrupt.
        #expect(rig.wrmsr(p, 0, .sint5, 0x10000 | 0xB5) == .done)
        #expect(rig.fast(p, TestRig.input(.signalEvent, fast: true), 5).status == .invalidSynicState)
        var polling = HVSINTMSR(rawValue: 0xB6)
        polling.polling = true
        #expect(rig.wrmsr(p, 0, .sint6, polling.rawValue) == .done)
        rig.clearEventFlag(p, vp: 0, sint: 6, flag: 6)
        #expect(rig.fast(p, TestRig.input(.signalEvent, fast: true), 6).status == .success)
        #expect(rig.eventFlag(p, vp: 0, sint: 6, flag: 6))
        #expect(rig.host.take().isEmpty)
    }

    @Test("HV_X64_MSR_SINT0-15: reset value masked; vectors below 16 raise #GP unless masked; RsvdP bits keep their value")
    func sintRegisters() {
        let rig = TestRig()
        let p = rig.addPartition()
        for i in 0..<16 {
            let msr = HVMSR(rawValue: HVMSR.sint0.rawValue + UInt32(i))
            #expect(rig.rdmsr(p, msr) == .value(0x10000))
            #expect(rig.wrmsr(p, msr, 0x0F) == .generalProtection)
            #expect(rig.wrmsr(p, msr, 0x1000F) == .done, "masked with a low vector: KVM allows it")
            #expect(rig.wrmsr(p, msr, 0xFFFF_FFFF_FFFE_FF10) == .done)
            // RsvdP bits (15:8, 63:19) kept from before (zero); polling, AutoEOI, vector written.
            #expect(rig.rdmsr(p, msr) == .value(0x6_0010))
        }
    }

    @Test("HV_X64_MSR_SVERSION reads 1 and is read-only; HV_X64_MSR_EOM reads 0; HV_X64_MSR_SCONTROL keeps RsvdP bits")
    func synicRegisters() {
        let rig = TestRig()
        let p = rig.addPartition()
        #expect(rig.rdmsr(p, .sversion) == .value(1))
        #expect(rig.wrmsr(p, .sversion, 1) == .generalProtection)
        #expect(rig.wrmsr(p, .eom, 0xFFFF) == .done)
        #expect(rig.rdmsr(p, .eom) == .value(0))
        #expect(rig.rdmsr(p, .scontrol) == .value(0), "TLFS: SCONTROL is 0 at creation")
        #expect(rig.wrmsr(p, .scontrol, 0xFFFF_FFFF_FFFF_FFFF) == .done)
        #expect(rig.rdmsr(p, .scontrol) == .value(1))
    }

    @Test("HV_X64_MSR_SIMP and HV_X64_MSR_SIEFP: enabling an unbacked page raises #GP; disabled registration is kept")
    func pageRegisters() {
        let rig = TestRig()
        let p = rig.addPartition()
        for msr: HVMSR in [.simp, .siefp] {
            #expect(rig.wrmsr(p, msr, Frames.total << 12 | 1) == .generalProtection)
            #expect(rig.wrmsr(p, msr, Frames.total << 12) == .done, "a disabled page may point anywhere")
            #expect(rig.rdmsr(p, msr) == .value(Frames.total << 12))
            #expect(rig.wrmsr(p, msr, 5 << 12 | 0xFFE | 1) == .done)
            #expect(rig.rdmsr(p, msr) == .value(5 << 12 | 1), "RsvdP bits 11:1 keep their value")
        }
    }

    @Test("HV_X64_MSR_VP_ASSIST_PAGE: enabling clears the first u32; an unbacked page raises #GP")
    func vpAssistPage() {
        let rig = TestRig()
        let p = rig.addPartition()
        rig.ram(p).store(UInt64.max, at: GuestPhysicalAddress(7 << 12))
        #expect(rig.wrmsr(p, .vpAssistPage, 7 << 12 | 1) == .done)
        #expect(rig.ram(p).load(UInt64.self, at: GuestPhysicalAddress(7 << 12)) == 0xFFFF_FFFF_0000_0000)
        #expect(rig.rdmsr(p, .vpAssistPage) == .value(7 << 12 | 1))
        #expect(rig.wrmsr(p, .vpAssistPage, Frames.total << 12 | 1) == .generalProtection)
    }

    @Test("HV_X64_MSR_VP_INDEX reads each VP's index; HV_X64_MSR_TSC_FREQUENCY and HV_X64_MSR_APIC_FREQUENCY report the configured clocks")
    func identityRegisters() {
        let rig = TestRig(tscFrequency: 3_000_000_000)
        let p = rig.addPartition(PartitionConfiguration(vpCount: 5))
        for vp in 0..<5 { #expect(rig.rdmsr(p, UInt32(vp), .vpIndex) == .value(UInt64(vp))) }
        #expect(rig.rdmsr(p, 5, .vpIndex) == .generalProtection, "no VP 5")
        #expect(rig.rdmsr(p, .tscFrequency) == .value(3_000_000_000))
        #expect(rig.rdmsr(p, .apicFrequency) == .value(1_000_000_000))
    }

    @Test("HV_X64_MSR_HYPERCALL: dropped while the guest OS id is 0; enabling writes the stub then INT3; Locked freezes it")
    func hypercallMSR() {
        let rig = TestRig()
        let p = rig.addPartition(PartitionConfiguration(vpCount: 1, hypercallStub: .amdVMMCALL), guestOSID: 0)
        #expect(rig.wrmsr(p, .hypercall, Frames.hypercallPage << 12 | 1) == .done)
        #expect(rig.rdmsr(p, .hypercall) == .value(0), "TLFS: the enable bit stays zero without a guest OS id")
        #expect(rig.wrmsr(p, .guestOsId, 0x8100_0000_0000_0000) == .done)
        #expect(rig.wrmsr(p, .hypercall, Frames.total << 12 | 1) == .generalProtection)
        #expect(rig.wrmsr(p, .hypercall, Frames.hypercallPage << 12 | 1) == .done)
        let page = GuestPhysicalAddress(Frames.hypercallPage << 12)
        #expect(rig.ram(p).load(UInt32.self, at: page) == 0xC3D9_010F)  // vmmcall; ret
        #expect(rig.ram(p).load(UInt8.self, at: GuestPhysicalAddress(page.rawValue + 4)) == 0xCC)
        #expect(rig.ram(p).load(UInt8.self, at: GuestPhysicalAddress(page.rawValue + 4095)) == 0xCC)
        // Guest OS id 0 disables the page.
        #expect(rig.wrmsr(p, .guestOsId, 0) == .done)
        #expect(rig.rdmsr(p, .hypercall) == .value(Frames.hypercallPage << 12))
        #expect(rig.wrmsr(p, .guestOsId, 1) == .done)
        #expect(rig.wrmsr(p, .hypercall, Frames.hypercallPage << 12 | 0b11) == .done)
        #expect(rig.wrmsr(p, .hypercall, 0) == .done)
        #expect(rig.rdmsr(p, .hypercall) == .value(Frames.hypercallPage << 12 | 0b11), "locked: writes are ignored")
    }
}
