import GuestABI
import Testing
import ViridianABI
@testable import ViridianReference

/// Synthetic timers, in the manner of kvm-unit-tests x86/hyperv_stimer.c, on the exact virtual
/// clock: periodic, one-shot, auto-enable, a busy slot, direct mode.
@Suite("Synthetic timers (hyperv_stimer)")
struct TimerTests {
    static func config(enable: Bool = true, periodic: Bool = false, autoEnable: Bool = false, sint: UInt64 = 2,
                       direct: Bool = false, vector: UInt64 = 0) -> UInt64 {
        var c = HVSTimerConfigMSR(rawValue: 0)
        c.enable = enable
        c.periodic = periodic
        c.autoEnable = autoEnable
        c.sintx = sint
        c.directMode = direct
        c.apicVector = vector
        return c.rawValue
    }

    static func rig() -> (TestRig, PartitionID) {
        let rig = TestRig()
        let p = rig.addPartition()
        rig.enableSynIC(p, vp: 0, sints: [(2, 0xF1), (3, 0xF2)])
        return (rig, p)
    }

    /// Timer message fields in SINT `sint`'s slot: (type, payload size, timer index, expiration, delivery).
    static func timerMessage(_ rig: TestRig, _ p: PartitionID, sint: Int) -> (UInt32, UInt8, UInt64, UInt64, UInt64) {
        let s = rig.slot(p, vp: 0, sint: sint)
        return (s.type, s.size, rig.payload(p, vp: 0, sint: sint, qword: 0) & 0xFFFF_FFFF,
                rig.payload(p, vp: 0, sint: sint, qword: 1), rig.payload(p, vp: 0, sint: sint, qword: 2))
    }

    @Test("HV_X64_MSR_STIMER0_CONFIG periodic: one HVMSG_TIMER_EXPIRED per period, on time, while the guest frees the slot")
    func periodic() {
        let (rig, p) = Self.rig()
        #expect(rig.wrmsr(p, .stimer0Count, 10_000) == .done)  // 1 ms
        #expect(rig.wrmsr(p, .stimer0Config, Self.config(periodic: true)) == .done)
        var fires = 0
        for period in 1...100 {
            rig.reference.advance(byReferenceTicks: 10_000)
            let (type, size, index, expiration, delivery) = Self.timerMessage(rig, p, sint: 2)
            #expect(type == HVMessageType.timerExpired.rawValue && size == 24 && index == 0)
            #expect(expiration == UInt64(period) * 10_000 && delivery == expiration, "period \(period)")
            fires += rig.host.take().filter { $0.vector == 0xF1 }.count
            rig.clearSlot(p, vp: 0, sint: 2)
        }
        #expect(fires == 100)
        #expect(rig.rdmsr(p, .stimer0Config) == .value(Self.config(periodic: true)), "periodic timers stay enabled")
    }

    @Test("HV_X64_MSR_STIMER1_COUNT one-shot: fires once at the absolute count, then is disabled")
    func oneShot() {
        let (rig, p) = Self.rig()
        #expect(rig.wrmsr(p, .stimer1Count, 5_000) == .done)
        #expect(rig.wrmsr(p, .stimer1Config, Self.config(sint: 3)) == .done)
        rig.reference.advance(byReferenceTicks: 4_999)
        #expect(rig.host.take().isEmpty)
        rig.reference.advance(byReferenceTicks: 10)
        #expect(rig.host.take().map(\.vector) == [0xF2])
        let (type, _, index, expiration, delivery) = Self.timerMessage(rig, p, sint: 3)
        #expect(type == HVMessageType.timerExpired.rawValue && index == 1 && expiration == 5_000 && delivery == 5_000)
        #expect(rig.rdmsr(p, .stimer1Config) == .value(Self.config(enable: false, sint: 3)))
        rig.clearSlot(p, vp: 0, sint: 3)
        rig.reference.advance(byReferenceTicks: 100_000)
        #expect(rig.host.take().isEmpty)
    }

    @Test("HV_X64_MSR_STIMER2_CONFIG auto-enable: writing the count enables; writing 0 disables")
    func autoEnable() {
        let (rig, p) = Self.rig()
        #expect(rig.wrmsr(p, .stimer2Config, Self.config(enable: false, periodic: true, autoEnable: true)) == .done)
        #expect(rig.wrmsr(p, .stimer2Count, 1_000) == .done)
        #expect(rig.rdmsr(p, .stimer2Config) == .value(Self.config(periodic: true, autoEnable: true)))
        rig.reference.advance(byReferenceTicks: 1_000)
        #expect(rig.host.take().count == 1)
        #expect(rig.wrmsr(p, .stimer2Count, 0) == .done)
        #expect(rig.rdmsr(p, .stimer2Config) == .value(Self.config(enable: false, periodic: true, autoEnable: true)))
        rig.clearSlot(p, vp: 0, sint: 2)
        rig.reference.advance(byReferenceTicks: 10_000)
        #expect(rig.host.take().isEmpty)
    }

    @Test("HV_X64_MSR_STIMER3_COUNT with a busy slot: MessagePending, no fire, then exactly one fire after EOM")
    func busySlot() {
        let (rig, p) = Self.rig()
        // The guest pre-fills the slot.
        rig.ram(p).store(UInt32(0x1234), at: GuestPhysicalAddress(Frames.simp(0) << 12 + 2 * 256))
        #expect(rig.wrmsr(p, .stimer3Count, 100) == .done)
        #expect(rig.wrmsr(p, .stimer3Config, Self.config()) == .done)
        rig.reference.advance(byReferenceTicks: 1_000)
        #expect(rig.host.take().isEmpty)
        #expect(rig.slot(p, vp: 0, sint: 2).flags == 1 && rig.slot(p, vp: 0, sint: 2).type == 0x1234)
        rig.clearSlot(p, vp: 0, sint: 2)
        #expect(rig.wrmsr(p, .eom, 0) == .done)
        #expect(rig.host.take().count == 1)
        let (type, _, index, expiration, delivery) = Self.timerMessage(rig, p, sint: 2)
        #expect(type == HVMessageType.timerExpired.rawValue && index == 3 && expiration == 100 && delivery == 1_000)
        rig.clearSlot(p, vp: 0, sint: 2)
        #expect(rig.wrmsr(p, .eom, 0) == .done)
        #expect(rig.host.take().isEmpty, "exactly one")
    }

    @Test("direct mode (HV_STIMER_DIRECT_MODE_AVAILABLE): the APIC vector is raised, no message")
    func directMode() {
        let (rig, p) = Self.rig()
        #expect(rig.wrmsr(p, .stimer0Count, 2_000) == .done)
        #expect(rig.wrmsr(p, .stimer0Config, Self.config(periodic: true, sint: 0, direct: true, vector: 0xF3)) == .done)
        for _ in 0..<3 { rig.reference.advance(byReferenceTicks: 2_000) }
        #expect(rig.host.take().map(\.vector) == [0xF3, 0xF3, 0xF3])
        #expect(rig.slot(p, vp: 0, sint: 0).type == 0)
    }

    @Test("timer configuration rules: RsvdZ bits #GP, SINTx 0 in message mode disables, a past one-shot fires at once")
    func configRules() {
        let (rig, p) = Self.rig()
        #expect(rig.wrmsr(p, .stimer0Config, 1 << 13) == .generalProtection)
        #expect(rig.wrmsr(p, .stimer0Config, 1 << 20) == .generalProtection)
        #expect(rig.wrmsr(p, .stimer0Count, 50) == .done)
        #expect(rig.wrmsr(p, .stimer0Config, Self.config(sint: 0)) == .done)
        #expect(rig.rdmsr(p, .stimer0Config) == .value(Self.config(enable: false, sint: 0)))
        rig.reference.advance(byReferenceTicks: 100)
        #expect(rig.host.take().isEmpty)
        #expect(rig.wrmsr(p, .stimer0Config, Self.config()) == .done)  // count 50 is in the past
        #expect(rig.host.take().count == 1)
        #expect(Self.timerMessage(rig, p, sint: 2).3 == 50)
    }

    @Test("a periodic timer skips the periods a long clock jump passed over")
    func longJump() {
        let (rig, p) = Self.rig()
        #expect(rig.wrmsr(p, .stimer0Count, 1_000) == .done)
        #expect(rig.wrmsr(p, .stimer0Config, Self.config(periodic: true)) == .done)
        rig.reference.advance(byReferenceTicks: 1_000_000_000)
        #expect(rig.host.take().count == 1)
        rig.clearSlot(p, vp: 0, sint: 2)
        rig.reference.advance(byReferenceTicks: 1_000)
        #expect(rig.host.take().count == 1)
    }
}
