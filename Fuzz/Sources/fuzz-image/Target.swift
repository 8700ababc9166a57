import CFuzzDriver
import CXenViridian
import Glibc
import FuzzSystems
import GuestABI
import XenViridianC

// libFuzzer's entry: the domain-image decoder (`xv_domain_restore`) of both sides,
// differentially. The first input byte chooses the mode: bit 0 reseals the image's checksum
// (so the decoder's field checks are reached, not only the checksum), bit 1 takes the rest of
// the input as (offset: u16, xor: u8) edits of a real image (a domain with a channel, a VIRQ,
// a timer and a callback vector) rather than as the image itself. The bytes are restored into
// a fresh domain of a native and of a translated system: both must refuse them for the same
// reason or accept them both; accepted, both must save the same image again and answer
// EVTCHNOP_status alike on the first ports.

extension FuzzSide {
    /// The argument page (frame 16) of `domain`.
    func argument(_ domain: UInt16) -> UnsafeMutableRawPointer { frame(Int(domain), 16)! }

    func call(_ domain: UInt16, _ rax: UInt64, _ rdi: UInt64, _ rsi: UInt64) -> Int64 {
        var regs = xv_hypercall_regs()
        regs.rax = rax; regs.rdi = rdi; regs.rsi = rsi
        return xv_hypercall(system, domain, 0, &regs)
    }

    /// EVTCHNOP_status of `port` of `domain`: the return, then the status, vCPU and u words.
    func status(_ domain: UInt16, _ port: UInt32) -> [UInt64] {
        let a = argument(domain)
        a.storeBytes(of: 0x7FF0, as: UInt16.self)
        a.storeBytes(of: port, toByteOffset: 4, as: UInt32.self)
        let rc = call(domain, 32, 5, 16 << 12)
        return [UInt64(bitPattern: rc), UInt64(a.load(fromByteOffset: 8, as: UInt32.self)), UInt64(a.load(fromByteOffset: 12, as: UInt32.self)),
                a.load(fromByteOffset: 16, as: UInt64.self)]
    }

    func save(_ domain: UInt16) -> [UInt8] {
        var size: UInt64 = 0
        precondition(xv_domain_save(system, domain, nil, 0, &size) == XV_ENOSPC)
        var image = [UInt8](repeating: 0, count: Int(size))
        precondition(image.withUnsafeMutableBufferPointer { xv_domain_save(system, domain, $0.baseAddress, size, &size) } == XV_OK)
        return image
    }

    func restore(_ domain: UInt16, _ image: [UInt8]) -> (Int32, UInt32) {
        var refusal: UInt32 = 0
        let rc = image.withUnsafeBufferPointer { xv_domain_restore(system, domain, $0.baseAddress, UInt64(image.count), &refusal) }
        return (rc, rc == XV_OK ? 0 : refusal)
    }
}

/// Domain 1's image after a channel to domain 2, a VIRQ_TIMER binding, a one-shot timer and a
/// callback vector: the base the edit mode mutates.
let baseImage: [UInt8] = {
    let s = FuzzSide(XV_SIDE_NATIVE)
    let a1 = s.argument(1), a2 = s.argument(2)
    a1.storeBytes(of: 0x7FF0, as: UInt16.self); a1.storeBytes(of: 2, toByteOffset: 2, as: UInt16.self)
    precondition(s.call(1, 32, 6, 16 << 12) == 0)  // alloc_unbound for domain 2
    let port = a1.load(fromByteOffset: 4, as: UInt32.self)
    a2.storeBytes(of: 1, as: UInt16.self); a2.storeBytes(of: port, toByteOffset: 4, as: UInt32.self)
    precondition(s.call(2, 32, 0, 16 << 12) == 0)  // bind_interdomain
    a1.storeBytes(of: 0, as: UInt64.self)
    precondition(s.call(1, 32, 1, 16 << 12) == 0)  // bind_virq VIRQ_TIMER
    precondition(s.call(1, 15, 5_000_000, 0) == 0)  // set_timer_op
    a1.storeBytes(of: 0x7FF0, as: UInt16.self); a1.storeBytes(of: 0, toByteOffset: 4, as: UInt32.self)
    a1.storeBytes(of: 2 << 56 | 0x41, toByteOffset: 8, as: UInt64.self)
    precondition(s.call(1, 34, 0, 16 << 12) == 0)  // HVM_PARAM_CALLBACK_IRQ
    return s.save(1)
}()

/// The image's FNV-1a 64 trailer recomputed (`SaveImageChecksum`, as the library writes it).
func reseal(_ image: inout [UInt8]) {
    guard image.count >= 8 else { return }
    let h = SaveImageChecksum.fnv1a(image, 0..<image.count - 8)
    for i in 0..<8 { image[image.count - 8 + i] = UInt8(truncatingIfNeeded: h >> (8 * UInt64(i))) }
}

/// The executable's entry (SwiftPM names it `fuzz_image_main`): libFuzzer's driver over `fuzzImage`.
@_cdecl("fuzz_image_main")
public func main(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector) { data, size in fuzzImage(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    let mode = data[0]
    var image: [UInt8]
    if mode & 2 != 0 {
        image = baseImage
        var at = 1
        while at + 3 <= size {
            let offset = Int(UInt16(data[at]) | UInt16(data[at + 1]) << 8) % image.count
            image[offset] ^= data[at + 2]
            at += 3
        }
    } else {
        image = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    }
    if mode & 1 != 0 { reseal(&image) }
    let native = FuzzSide(XV_SIDE_NATIVE), translated = FuzzSide(XV_SIDE_TRANSLATED)
    let a = native.restore(1, image), b = translated.restore(1, image)
    precondition(a == b, "restore: \(a) native, \(b) translated")
    guard a.0 == XV_OK else { return 0 }
    precondition(xv_domain_finish_restore(native.system, 1) == XV_OK && xv_domain_finish_restore(translated.system, 1) == XV_OK)
    precondition(native.save(1) == translated.save(1), "the restored domains save different images")
    for port in UInt32(0)..<8 {
        let s = native.status(1, port), t = translated.status(1, port)
        precondition(s == t, "port \(port): status \(s) native, \(t) translated")
    }
    return 0
}
