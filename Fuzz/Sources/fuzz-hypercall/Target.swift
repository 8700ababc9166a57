import CFuzzDriver
import CXenViridian
import Glibc
import FuzzSystems
import XenViridianC

// libFuzzer's entry: the hypercall entry of both sides through the C ABI, differentially.
// The input is a little program: each 64-byte record is one hypercall from domain 1 or 2 —
// the registers (RAX and the five arguments, bounded to the guest's frames or left wild) and
// 16 bytes stored first into the domain's argument page at an offset. Native and translated
// run the same program from the same state; every return value, every guest frame and every
// upcall count must agree (or the process aborts, which libFuzzer reports as a crash).
// Calls that park the vCPU (SCHEDOP_block, poll) or shut the domain down are part of it.

/// The executable's entry (SwiftPM names it `fuzz_hypercall_main`): libFuzzer's driver over `fuzzHypercall`.
@_cdecl("fuzz_hypercall_main")
public func main(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector) { data, size in fuzzHypercall(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHypercall(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let native = FuzzSide(XV_SIDE_NATIVE), translated = FuzzSide(XV_SIDE_TRANSLATED)
    func word(_ o: Int) -> UInt64 { UnsafeRawPointer(data + o).loadUnaligned(as: UInt64.self) }
    var at = 0
    var step = 0
    while at + 64 <= size, step < 32 {
        let domain = UInt16(data[at] & 1) + 1
        let control = data[at + 1]
        // RAX: the hypercall number (0 ... 63, or wild with control bit 7).
        let rax = control & 0x80 != 0 ? word(at + 8) : word(at + 8) & 63
        var args = (0..<5).map { word(at + 16 + 8 * $0) }
        // Bounded arguments name the argument frame (16) most of the time, so structures are read.
        for i in 0..<5 where control & (1 << UInt8(i)) != 0 { args[i] = 16 << 12 | (args[i] & 0xFF8) }
        let offset = Int(word(at + 2) & 0xFF0)
        let bytes = (0..<16).map { data[at + 48 + $0] }
        var results: [Int64] = []
        for side in [native, translated] {
            if let page = side.frame(Int(domain), 16) {
                for (i, b) in bytes.enumerated() { page.storeBytes(of: b, toByteOffset: offset + i, as: UInt8.self) }
            }
            var regs = xv_hypercall_regs()
            regs.rax = rax; regs.rdi = args[0]; regs.rsi = args[1]; regs.rdx = args[2]; regs.r10 = args[3]; regs.r8 = args[4]
            results.append(xv_hypercall(side.system, domain, 0, &regs))
            var deadline: UInt64 = 0
            if xv_park_request(side.system, domain, 0, &deadline) != XV_PARK_NONE { _ = xv_resume(side.system, domain, 0) }
        }
        precondition(results[0] == results[1], "step \(step): hypercall \(rax) \(args) returned \(results[0]) native, \(results[1]) translated")
        precondition(native.upcalls == translated.upcalls, "step \(step): upcalls \(native.upcalls) native, \(translated.upcalls) translated")
        at += 64
        step += 1
    }
    // Every guest-visible frame alike (a hole on one side only is a difference too).
    for d in 1...2 {
        for f in 0..<Int(FuzzSide.frames) {
            let a = native.frame(d, f), b = translated.frame(d, f)
            precondition((a == nil) == (b == nil), "domain \(d) frame \(f): a hole on one side only")
            if let a, let b { precondition(memcmp(a, b, 4096) == 0, "domain \(d) frame \(f) differs after \(step) steps") }
        }
    }
    return 0
}
