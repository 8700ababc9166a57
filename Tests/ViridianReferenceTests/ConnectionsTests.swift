import GuestABI
import Testing
import ViridianABI
@testable import ViridianReference

/// Ports, connections, HvCallPostMessage and HvCallSignalEvent, following the steps of
/// kvm-unit-tests x86/hyperv_connections.c, but across two partitions: the first posts and
/// signals, the second receives.
@Suite("Connections (hyperv_connections)")
struct ConnectionsTests {
    static let messageSINT = 8, eventSINT = 9
    static let messageVector: UInt8 = 0xB0, eventVector: UInt8 = 0xB1

    /// Partition 1 (sender) and partition 2 (receiver, 2 VPs): message port 0x10 and event port
    /// 0x20 on receiver VP 1; connections 0x110 and 0x120 of the sender lead there.
    static func pair(_ config: PartitionConfiguration = PartitionConfiguration(vpCount: 2)) -> (TestRig, PartitionID, PartitionID) {
        let rig = TestRig()
        let sender = rig.addPartition(config)
        let receiver = rig.addPartition(config)
        rig.enableSynIC(receiver, vp: 1, sints: [(messageSINT, messageVector), (eventSINT, eventVector)], autoEOI: true)
        #expect(rig.reference.createPort(in: receiver, port: PortID(0x10), kind: .message(vp: VPIndex(1), sint: UInt8(messageSINT))) == .success)
        #expect(rig.reference.createPort(in: receiver, port: PortID(0x20), kind: .event(vp: VPIndex(1), sint: UInt8(eventSINT), baseFlag: 100, flagCount: 8)) == .success)
        #expect(rig.reference.connectPort(from: sender, connection: ConnectionID(0x110), to: receiver, port: PortID(0x10)) == .success)
        #expect(rig.reference.connectPort(from: sender, connection: ConnectionID(0x120), to: receiver, port: PortID(0x20)) == .success)
        return (rig, sender, receiver)
    }

    static func post(_ rig: TestRig, _ from: PartitionID, connection: UInt32 = 0x110, type: UInt32 = 0x1234_5678, size: UInt32 = 8, payload: UInt64 = 0xDEAD_BEEF_0000_0001, reserved: UInt32 = 0) -> HVStatus {
        rig.call(from, TestRig.input(.postMessage), qwords: [UInt64(connection) | UInt64(reserved) << 32, UInt64(type) | UInt64(size) << 32, payload]).status
    }

    static func signal(_ rig: TestRig, _ from: PartitionID, connection: UInt32 = 0x120, flag: UInt16 = 0) -> HVStatus {
        rig.fast(from, TestRig.input(.signalEvent, fast: true), UInt64(connection) | UInt64(flag) << 32).status
    }

    @Test("HVCALL_POST_MESSAGE reaches the other partition's SIM slot with HV_STATUS_SUCCESS; a slot not HVMSG_NONE is busy: the message queues with MessagePending until EOM")
    func postMessage() {
        let (rig, sender, receiver) = Self.pair()
        // Step 1: the message lands in the receiver's slot with one interrupt.
        #expect(Self.post(rig, sender) == .success)
        var slot = rig.slot(receiver, vp: 1, sint: Self.messageSINT)
        #expect(slot.type == 0x1234_5678 && slot.size == 8 && slot.flags == 0 && slot.port == 0x10 && slot.payload0 == 0xDEAD_BEEF_0000_0001)
        #expect(rig.host.take() == [.init(partition: receiver.rawValue, vp: 1, vector: Self.messageVector, autoEOI: true)])
        // Step 4: posting again to the busy slot succeeds; the slot keeps the first message and
        // gets MessagePending; no interrupt.
        #expect(Self.post(rig, sender, payload: 2) == .success)
        slot = rig.slot(receiver, vp: 1, sint: Self.messageSINT)
        #expect(slot.payload0 == 0xDEAD_BEEF_0000_0001 && slot.flags == 1)
        #expect(rig.host.take().isEmpty)
        // Step 5: the guest frees the slot and writes EOM; the second message arrives.
        rig.clearSlot(receiver, vp: 1, sint: Self.messageSINT)
        #expect(rig.wrmsr(receiver, 1, .eom, 0) == .done)
        slot = rig.slot(receiver, vp: 1, sint: Self.messageSINT)
        #expect(slot.type == 0x1234_5678 && slot.payload0 == 2 && slot.flags == 0)
        #expect(rig.host.take().count == 1)
        // EOM with nothing waiting delivers nothing.
        rig.clearSlot(receiver, vp: 1, sint: Self.messageSINT)
        #expect(rig.wrmsr(receiver, 1, .eom, 0) == .done)
        #expect(rig.slot(receiver, vp: 1, sint: Self.messageSINT).type == 0)
        #expect(rig.host.take().isEmpty)
    }

    @Test("a posted message's origination (HV_MESSAGE_HEADER) is the receiving port's id, all 8 bytes, whatever the sender's input block holds")
    func originationIsThePort() {
        let (rig, sender, receiver) = Self.pair()
        // A second message port on another SINT and a connection of the receiver itself to it:
        // each message names the port it arrived on, never anything the sender wrote.
        rig.enableSynIC(receiver, vp: 1, sints: [(Self.messageSINT, Self.messageVector), (Self.eventSINT, Self.eventVector), (3, 0xB3)], autoEOI: true)
        #expect(rig.reference.createPort(in: receiver, port: PortID(0xAB_CDEF), kind: .message(vp: VPIndex(1), sint: 3)) == .success)
        #expect(rig.reference.connectPort(from: receiver, connection: ConnectionID(0x77), to: receiver, port: PortID(0xAB_CDEF)) == .success)
        // The input block: connection, type and size, then a payload that imitates a header
        // naming port 0x10 and sender 0xFFFF_FFFF; qwords past the payload are garbage.
        let forged: [UInt64] = [0x0000_0010_5856_0001, 0xFFFF_FFFF_0000_0010]
        #expect(rig.call(sender, TestRig.input(.postMessage), qwords: [0x110, 0x1234 | 16 << 32] + forged + Array(repeating: .max, count: 28)).status == .success)
        #expect(rig.call(receiver, vp: 1, TestRig.input(.postMessage), qwords: [0x77, 0x1234 | 16 << 32] + forged).status == .success)
        for (sint, port) in [(Self.messageSINT, UInt64(0x10)), (3, UInt64(0xAB_CDEF))] {
            let origination = rig.ram(receiver).load(UInt64.self, at: GuestPhysicalAddress(Frames.simp(1) << 12 + UInt64(sint * 256 + 8)))!
            #expect(origination == port, "SINT \(sint): origination \(String(origination, radix: 16))")
            #expect(rig.payload(receiver, vp: 1, sint: sint, qword: 0) == forged[0] && rig.payload(receiver, vp: 1, sint: sint, qword: 2) == 0,
                    "the payload is carried as sent, and only PayloadSize bytes of it")
        }
    }

    @Test("HV_STATUS_INSUFFICIENT_BUFFERS: the queue behind a busy slot is full; an EOI of the SINT vector also drains it")
    func insufficientBuffers() {
        let (rig, sender, receiver) = Self.pair(PartitionConfiguration(vpCount: 2, messageQueueDepth: 2))
        #expect(Self.post(rig, sender, payload: 1) == .success)  // in the slot
        #expect(Self.post(rig, sender, payload: 2) == .success)  // queued
        #expect(Self.post(rig, sender, payload: 3) == .success)  // queued
        #expect(Self.post(rig, sender, payload: 4) == .insufficientBuffers)
        rig.clearSlot(receiver, vp: 1, sint: Self.messageSINT)
        rig.reference.notifyEndOfInterrupt(partition: receiver, vp: VPIndex(1), vector: Self.messageVector)
        #expect(rig.slot(receiver, vp: 1, sint: Self.messageSINT).payload0 == 2)
        #expect(rig.slot(receiver, vp: 1, sint: Self.messageSINT).flags == 1, "message 3 still waits behind it")
        rig.clearSlot(receiver, vp: 1, sint: Self.messageSINT)
        #expect(rig.wrmsr(receiver, 1, .eom, 0) == .done)
        #expect(rig.slot(receiver, vp: 1, sint: Self.messageSINT).payload0 == 3)
        #expect(rig.slot(receiver, vp: 1, sint: Self.messageSINT).flags == 0)
    }

    @Test("HVCALL_POST_MESSAGE hostile input: HV_STATUS_INVALID_PARAMETER, HV_STATUS_INVALID_CONNECTION_ID, HV_STATUS_INVALID_PORT_ID, HV_STATUS_INVALID_SYNIC_STATE")
    func postMessageErrors() {
        let (rig, sender, receiver) = Self.pair()
        #expect(Self.post(rig, sender, type: 0) == .invalidParameter)
        #expect(Self.post(rig, sender, type: 0x8000_0010) == .invalidParameter)
        #expect(Self.post(rig, sender, size: 241) == .invalidParameter)
        #expect(Self.post(rig, sender, size: .max) == .invalidParameter)
        #expect(Self.post(rig, sender, size: 240) == .success)
        #expect(Self.post(rig, sender, reserved: 1) == .invalidHypercallInput)
        #expect(Self.post(rig, sender, connection: 0x0100_0110) == .invalidHypercallInput)
        #expect(Self.post(rig, sender, connection: 0x999) == .invalidConnectionId)
        #expect(Self.post(rig, sender, connection: 0x120) == .invalidPortId, "an event port takes no messages")
        #expect(rig.reference.deletePort(in: receiver, port: PortID(0x10)) == .success)
        #expect(Self.post(rig, sender) == .invalidPortId, "the connection outlives its port")
        // The receiver's SIM page disabled.
        let (rig2, sender2, receiver2) = Self.pair()
        #expect(rig2.wrmsr(receiver2, 1, .simp, 0) == .done)
        #expect(Self.post(rig2, sender2) == .invalidSynicState)
        #expect(rig2.wrmsr(receiver2, 1, .simp, Frames.simp(1) << 12 | 1) == .done)
        #expect(rig2.wrmsr(receiver2, 1, .scontrol, 0) == .done)
        #expect(Self.post(rig2, sender2) == .invalidSynicState)
    }

    @Test("HVCALL_SIGNAL_EVENT sets the port's flag in the other partition's SIEF page; a set flag raises nothing")
    func signalEvent() {
        let (rig, sender, receiver) = Self.pair()
        // Step 6: the flag (base 100 + 3) is set with one interrupt.
        #expect(Self.signal(rig, sender, flag: 3) == .success)
        #expect(rig.eventFlag(receiver, vp: 1, sint: Self.eventSINT, flag: 103))
        #expect(rig.host.take() == [.init(partition: receiver.rawValue, vp: 1, vector: Self.eventVector, autoEOI: true)])
        // Step 9: signalling a flag already set succeeds and raises nothing.
        #expect(Self.signal(rig, sender, flag: 3) == .success)
        #expect(rig.host.take().isEmpty)
        // Step 7-8: the guest clears it; the next signal interrupts again.
        rig.clearEventFlag(receiver, vp: 1, sint: Self.eventSINT, flag: 103)
        #expect(Self.signal(rig, sender, flag: 3) == .success)
        #expect(rig.host.take().count == 1)
        // The memory form takes the same qword.
        #expect(rig.call(sender, TestRig.input(.signalEvent), qwords: [0x120 | 7 << 32]).status == .success)
        #expect(rig.eventFlag(receiver, vp: 1, sint: Self.eventSINT, flag: 107))
        #expect(!rig.eventFlag(receiver, vp: 0, sint: Self.eventSINT, flag: 107))
    }

    @Test("HVCALL_SIGNAL_EVENT hostile input: flag number past the port, reserved bits, unknown connection, masked SINT")
    func signalEventErrors() {
        let (rig, sender, receiver) = Self.pair()
        #expect(Self.signal(rig, sender, flag: 8) == .invalidParameter)
        #expect(Self.signal(rig, sender, flag: .max) == .invalidParameter)
        #expect(rig.fast(sender, TestRig.input(.signalEvent, fast: true), 0x120 | 1 << 48).status == .invalidHypercallInput)
        #expect(rig.fast(sender, TestRig.input(.signalEvent, fast: true), 0xFF00_0120).status == .invalidHypercallInput)
        #expect(Self.signal(rig, sender, connection: 0x121) == .invalidConnectionId)
        #expect(Self.signal(rig, sender, connection: 0x110) == .invalidPortId, "a message port takes no events")
        #expect(Self.signal(rig, receiver, connection: 0x120) == .invalidConnectionId, "connections belong to their partition")
        #expect(rig.wrmsr(receiver, 1, .sint9, 0x10000 | UInt64(Self.eventVector)) == .done)
        #expect(Self.signal(rig, sender) == .invalidSynicState, "TLFS: a masked SINT")
        #expect(rig.wrmsr(receiver, 1, .siefp, 0) == .done)
        #expect(rig.wrmsr(receiver, 1, .sint9, UInt64(Self.eventVector)) == .done)
        #expect(Self.signal(rig, sender) == .invalidSynicState, "the SIEF page disabled")
        #expect(rig.host.take().isEmpty)
    }

    @Test("root port API: HV_STATUS_INVALID_PORT_ID, HV_STATUS_INVALID_VP_INDEX, HV_STATUS_INSUFFICIENT_MEMORY, HV_STATUS_INVALID_PARTITION_ID")
    func rootAPI() {
        let rig = TestRig()
        let p = rig.addPartition(PartitionConfiguration(vpCount: 2, maxPorts: 2, maxConnections: 1))
        let r = rig.reference
        #expect(r.createPort(in: p, port: PortID(1), kind: .message(vp: VPIndex(2), sint: 0)) == .invalidVpIndex)
        #expect(r.createPort(in: p, port: PortID(1), kind: .message(vp: VPIndex(0), sint: 16)) == .invalidParameter)
        #expect(r.createPort(in: p, port: PortID(1), kind: .event(vp: VPIndex(0), sint: 0, baseFlag: 2040, flagCount: 9)) == .invalidParameter)
        #expect(r.createPort(in: p, port: PortID(1), kind: .event(vp: VPIndex(0), sint: 0, baseFlag: 0, flagCount: 0)) == .invalidParameter)
        #expect(r.createPort(in: p, port: PortID(0x0100_0000), kind: .message(vp: VPIndex(0), sint: 0)) == .invalidPortId)
        #expect(r.createPort(in: PartitionID(9), port: PortID(1), kind: .message(vp: VPIndex(0), sint: 0)) == .invalidPartitionId)
        #expect(r.createPort(in: p, port: PortID(1), kind: .event(vp: VPIndex(1), sint: 15, baseFlag: 2040, flagCount: 8)) == .success)
        #expect(r.createPort(in: p, port: PortID(1), kind: .message(vp: VPIndex(0), sint: 0)) == .invalidPortId)
        #expect(r.createPort(in: p, port: PortID(2), kind: .message(vp: VPIndex(0), sint: 0)) == .success)
        #expect(r.createPort(in: p, port: PortID(3), kind: .message(vp: VPIndex(0), sint: 0)) == .insufficientMemory)
        #expect(r.connectPort(from: p, connection: ConnectionID(5), to: p, port: PortID(7)) == .invalidPortId)
        #expect(r.connectPort(from: p, connection: ConnectionID(0x0100_0000), to: p, port: PortID(1)) == .invalidConnectionId)
        #expect(r.connectPort(from: p, connection: ConnectionID(5), to: p, port: PortID(1)) == .success)
        #expect(r.connectPort(from: p, connection: ConnectionID(5), to: p, port: PortID(2)) == .invalidConnectionId)
        #expect(r.connectPort(from: p, connection: ConnectionID(6), to: p, port: PortID(2)) == .insufficientMemory)
        #expect(r.disconnectPort(from: p, connection: ConnectionID(5)) == .success)
        #expect(r.disconnectPort(from: p, connection: ConnectionID(5)) == .invalidConnectionId)
        #expect(r.deletePort(in: p, port: PortID(1)) == .success)
        #expect(r.deletePort(in: p, port: PortID(1)) == .invalidPortId)
    }

    @Test("the last flag of a SINT (2047) is reachable and the 2048 flags of one SINT do not spill into the next")
    func eventFlagLimits() {
        let rig = TestRig()
        let p = rig.addPartition()
        rig.enableSynIC(p, vp: 0, sints: [(14, 0x40), (15, 0x41)])
        #expect(rig.reference.createPort(in: p, port: PortID(1), kind: .event(vp: VPIndex(0), sint: 14, baseFlag: 0, flagCount: 2048)) == .success)
        #expect(rig.reference.connectPort(from: p, connection: ConnectionID(1), to: p, port: PortID(1)) == .success)
        #expect(Self.signal(rig, p, connection: 1, flag: 2047) == .success)
        #expect(rig.eventFlag(p, vp: 0, sint: 14, flag: 2047))
        #expect(!rig.eventFlag(p, vp: 0, sint: 15, flag: 0))
        #expect(Self.signal(rig, p, connection: 1, flag: 2048) == .invalidParameter)
    }
}
