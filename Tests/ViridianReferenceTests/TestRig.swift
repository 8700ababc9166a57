import GuestABI
import ViridianABI
@testable import ViridianReference

/// What the reference asked of its host, in order.
final class RecordingHost: ViridianHost {
    struct Interrupt: Equatable {
        var partition: UInt64
        var vp: UInt32
        var vector: UInt8
        var autoEOI: Bool
    }
    struct Flush {
        var partition: UInt64
        var vp: UInt32
        var call: UInt16
        var addressSpace: UInt64
        var flags: UInt64
        var processors: ProcessorSet
        var ranges: [UInt64]
    }
    var interrupts: [Interrupt] = []
    var flushes: [Flush] = []
    var spins: [(partition: UInt64, vp: UInt32, count: UInt32)] = []
    /// Interrupts counted without recording (for the allocation tests).
    var interruptCount = 0
    var recording = true

    init() {
        interrupts.reserveCapacity(4096)
        flushes.reserveCapacity(64)
    }

    func raiseInterrupt(partition: PartitionID, vp: VPIndex, vector: UInt8, autoEOI: Bool) {
        interruptCount += 1
        if recording { interrupts.append(Interrupt(partition: partition.rawValue, vp: vp.rawValue, vector: vector, autoEOI: autoEOI)) }
    }

    func flushTLB(_ request: TLBFlushRequest) {
        var ranges: [UInt64] = []
        for i in 0..<request.ranges.count { ranges.append(request.ranges[i].rawValue) }
        flushes.append(Flush(partition: request.partition.rawValue, vp: request.vp.rawValue, call: request.call.rawValue,
                             addressSpace: request.addressSpace, flags: request.flags.rawValue, processors: request.processors, ranges: ranges))
    }

    func longSpinWait(partition: PartitionID, vp: VPIndex, spinCount: UInt32) {
        spins.append((partition.rawValue, vp.rawValue, spinCount))
    }

    func take() -> [Interrupt] { defer { interrupts.removeAll(keepingCapacity: true) }; return interrupts }
}

typealias Reference = ViridianReference<GuestRAMRegion, RecordingHost>

/// Frames every test partition uses for its Viridian pages.
enum Frames {
    static let hypercallPage: UInt64 = 1
    static let input: UInt64 = 2
    static let output: UInt64 = 3
    static let tscPage: UInt64 = 4
    /// SIM page of VP v: 16 + 2v; SIEF page: 17 + 2v.
    static func simp(_ v: Int) -> UInt64 { 16 + 2 * UInt64(v) }
    static func siefp(_ v: Int) -> UInt64 { 17 + 2 * UInt64(v) }
    static let total: UInt64 = 512
}

/// A reference hypervisor with partitions backed by their own `GuestRAM`.
final class TestRig {
    let host = RecordingHost()
    let reference: Reference
    private(set) var rams: [GuestRAM] = []
    private(set) var ids: [PartitionID] = []

    init(tscFrequency: UInt64 = 2_500_000_000) {
        reference = ViridianReference(host: host, tscFrequency: tscFrequency)!
    }

    /// Adds a partition; by default with every privilege and the guest OS id set.
    @discardableResult
    func addPartition(_ config: PartitionConfiguration = PartitionConfiguration(vpCount: 2), guestOSID: UInt64 = 0x8100_0000_0000_0000) -> PartitionID {
        let ram = GuestRAM(frameCount: Frames.total)
        rams.append(ram)
        let id = try! reference.createPartition(config, memory: ram.region)
        ids.append(id)
        if guestOSID != 0 && config.privileges.eax.contains(.hypercall) {
            precondition(reference.writeMSR(partition: id, vp: VPIndex(0), msr: .guestOsId, value: guestOSID) == .done)
        }
        return id
    }

    func ram(_ partition: PartitionID) -> GuestRAMRegion { rams[Int(partition.rawValue) - 1].region }

    func rdmsr(_ partition: PartitionID, _ vp: UInt32, _ msr: HVMSR) -> MSRRead {
        reference.readMSR(partition: partition, vp: VPIndex(vp), msr: msr)
    }

    func wrmsr(_ partition: PartitionID, _ vp: UInt32, _ msr: HVMSR, _ value: UInt64) -> MSRWrite {
        reference.writeMSR(partition: partition, vp: VPIndex(vp), msr: msr, value: value)
    }

    func rdmsr(_ partition: PartitionID, _ msr: HVMSR) -> MSRRead { rdmsr(partition, 0, msr) }
    func wrmsr(_ partition: PartitionID, _ msr: HVMSR, _ value: UInt64) -> MSRWrite { wrmsr(partition, 0, msr, value) }

    func value(_ read: MSRRead) -> UInt64? {
        if case .value(let v) = read { return v }
        return nil
    }

    /// SCONTROL, SIMP and SIEFP enabled on `vp`, with SINT `sint` unmasked on `vector`.
    func enableSynIC(_ partition: PartitionID, vp: UInt32, sints: [(Int, UInt8)] = [], autoEOI: Bool = false) {
        precondition(wrmsr(partition, vp, .simp, Frames.simp(Int(vp)) << 12 | 1) == .done)
        precondition(wrmsr(partition, vp, .siefp, Frames.siefp(Int(vp)) << 12 | 1) == .done)
        precondition(wrmsr(partition, vp, .scontrol, 1) == .done)
        for (sint, vector) in sints {
            var s = HVSINTMSR(rawValue: 0)
            s.vector = UInt64(vector)
            s.autoEoi = autoEOI
            precondition(wrmsr(partition, vp, HVMSR(rawValue: HVMSR.sint0.rawValue + UInt32(sint)), s.rawValue) == .done)
        }
    }

    /// The input value for `code` with the given rep count, start and variable header size.
    static func input(_ code: HVCallCode, fast: Bool = false, reps: UInt64 = 0, start: UInt64 = 0, varHeader: UInt64 = 0) -> HVHypercallInput {
        var i = HVHypercallInput(rawValue: 0)
        i.callCode = UInt64(code.rawValue)
        i.fast = fast
        i.repCount = reps
        i.repStartIndex = start
        i.variableHeaderSize = varHeader
        return i
    }

    /// Writes `qwords` at the start of the input page and issues a memory-form call.
    func call(_ partition: PartitionID, vp: UInt32 = 0, _ input: HVHypercallInput, qwords: [UInt64] = [], at gpa: UInt64? = nil, output: UInt64? = nil) -> HypercallCompletion {
        let address = gpa ?? Frames.input << 12
        for (i, q) in qwords.enumerated() { _ = ram(partition).store(q, at: GuestPhysicalAddress(address + UInt64(i * 8))) }
        return reference.hypercall(partition: partition, vp: VPIndex(vp), input: input, rdx: address, r8: output ?? Frames.output << 12)
    }

    func fast(_ partition: PartitionID, vp: UInt32 = 0, _ input: HVHypercallInput, _ rdx: UInt64, _ r8: UInt64 = 0) -> HypercallCompletion {
        reference.hypercall(partition: partition, vp: VPIndex(vp), input: input, rdx: rdx, r8: r8)
    }

    /// The SIM slot of `sint` on `vp` as (type, payload size, flags, port, first payload qword).
    func slot(_ partition: PartitionID, vp: Int, sint: Int) -> (type: UInt32, size: UInt8, flags: UInt8, port: UInt32, payload0: UInt64) {
        let base = GuestPhysicalAddress(Frames.simp(vp) << 12 + UInt64(sint * 256))
        let m = ram(partition)
        return (m.load(UInt32.self, at: base)!, m.load(UInt8.self, at: GuestPhysicalAddress(base.rawValue + 4))!,
                m.load(UInt8.self, at: GuestPhysicalAddress(base.rawValue + 5))!, m.load(UInt32.self, at: GuestPhysicalAddress(base.rawValue + 8))!,
                m.load(UInt64.self, at: GuestPhysicalAddress(base.rawValue + 16))!)
    }

    func payload(_ partition: PartitionID, vp: Int, sint: Int, qword: Int) -> UInt64 {
        ram(partition).load(UInt64.self, at: GuestPhysicalAddress(Frames.simp(vp) << 12 + UInt64(sint * 256 + 16 + qword * 8)))!
    }

    /// Frees a slot as a guest does: message type back to HVMSG_NONE.
    func clearSlot(_ partition: PartitionID, vp: Int, sint: Int) {
        ram(partition).store(UInt32(0), at: GuestPhysicalAddress(Frames.simp(vp) << 12 + UInt64(sint * 256)))
    }

    func eventFlag(_ partition: PartitionID, vp: Int, sint: Int, flag: Int) -> Bool {
        let byte = ram(partition).load(UInt8.self, at: GuestPhysicalAddress(Frames.siefp(vp) << 12 + UInt64(sint * 256 + flag / 8)))!
        return byte & (1 << UInt8(flag % 8)) != 0
    }

    func clearEventFlag(_ partition: PartitionID, vp: Int, sint: Int, flag: Int) {
        let gpa = GuestPhysicalAddress(Frames.siefp(vp) << 12 + UInt64(sint * 256 + flag / 8))
        let byte = ram(partition).load(UInt8.self, at: gpa)!
        ram(partition).store(byte & ~(1 << UInt8(flag % 8)), at: gpa)
    }
}

extension HypercallCompletion {
    var reps: UInt64 { result.repsCompleted }
}
