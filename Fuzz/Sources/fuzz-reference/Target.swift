import CFuzzDriver
import GuestABI
import ViridianABI
import ViridianReference

/// The reference Viridian hypervisor under hostile partitions: hypercalls with any control
/// word and GPAs (their input pages written from the input first), synthetic MSR reads and
/// writes of any MSR and value, from any VP index, and time moving on (timers and messages
/// fire). Nothing may trap; every call must come back with an HV_STATUS or an MSR answer.
final class QuietHost: ViridianHost {
    var interrupts = 0
    func raiseInterrupt(partition: PartitionID, vp: VPIndex, vector: UInt8, autoEOI: Bool) { interrupts += 1 }
    func flushTLB(_ request: TLBFlushRequest) {}
    func longSpinWait(partition: PartitionID, vp: VPIndex, spinCount: UInt32) {}
}

/// The executable's entry (SwiftPM names it `fuzz_reference_main`): libFuzzer's driver.
@_cdecl("fuzz_reference_main")
public func main(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector) { data, size in fuzzReference(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReference(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let host = QuietHost()
    guard let reference = ViridianReference<GuestRAMRegion, QuietHost>(host: host) else { return 0 }
    let rams = [GuestRAM(frameCount: 32), GuestRAM(frameCount: 32)]
    var partitions: [PartitionID] = []
    for ram in rams {
        guard let p = try? reference.createPartition(PartitionConfiguration(vpCount: 2, maxPorts: 16, maxConnections: 16), memory: ram.region) else { return 0 }
        partitions.append(p)
    }
    func word(_ o: Int) -> UInt64 { UnsafeRawPointer(data + o).loadUnaligned(as: UInt64.self) }
    var at = 0
    var steps = 0
    // 40-byte records: kind, partition, VP, 5 spare, then three words and 8 bytes of page data.
    while at + 40 <= size, steps < 64 {
        let partition = partitions[Int(data[at + 1] & 1)]
        // Mostly real VPs (0, 1), sometimes any index.
        let vp = VPIndex(rawValue: data[at + 2] & 0x80 != 0 ? UInt32(data[at + 2]) : UInt32(data[at + 2] & 1))
        let a = word(at + 8), b = word(at + 16), c = word(at + 24)
        // The page data goes where the first GPA word points, if that is one of the frames.
        let frame = Int(b >> 12) & 31
        rams[Int(data[at + 1] & 1)].region.hostAddress(of: GuestFrameNumber(UInt64(frame)))?
            .storeBytes(of: word(at + 32), toByteOffset: Int(b & 0xFF8), as: UInt64.self)
        switch data[at] % 5 {
        case 0, 1: _ = reference.hypercall(partition: partition, vp: vp, input: HVHypercallInput(rawValue: a), rdx: b, r8: c)
        case 2: _ = reference.writeMSR(partition: partition, vp: vp, msr: HVMSR(rawValue: UInt32(truncatingIfNeeded: a)), value: b)
        case 3: _ = reference.readMSR(partition: partition, vp: vp, msr: HVMSR(rawValue: UInt32(truncatingIfNeeded: a)))
        default: reference.advance(byTSCTicks: a & 0xFFFF_FFFF)
        }
        at += 40
        steps += 1
    }
    return 0
}
