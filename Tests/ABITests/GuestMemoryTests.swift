import GuestABI
import Testing

/// Guest memory access through `GuestMemory`: page-local loads and stores, and copies that
/// cross pages.
@Suite struct GuestMemoryTests {
    @Test("read and write copy across a page boundary and stop at unbacked frames or a wrapping range")
    func crossPageCopies() {
        let ram = GuestRAM(frameCount: 2)
        let m = ram.region
        let bytes: [UInt8] = (0..<32).map { UInt8($0 + 1) }
        let start = GuestPhysicalAddress(4096 - 10)
        #expect(bytes.withUnsafeBytes { m.write(at: start, from: $0) })
        #expect(m.load(UInt8.self, at: GuestPhysicalAddress(4095)) == 10)
        #expect(m.load(UInt8.self, at: GuestPhysicalAddress(4096)) == 11)
        var back = [UInt8](repeating: 0, count: 32)
        #expect(back.withUnsafeMutableBytes { m.read(at: start, into: $0) })
        #expect(back == bytes)
        // A page-local load refuses to cross.
        #expect(m.load(UInt64.self, at: GuestPhysicalAddress(4092)) == nil)
        // Into frame 2, which is not backed.
        #expect(!bytes.withUnsafeBytes { m.write(at: GuestPhysicalAddress(2 * 4096 - 8), from: $0) })
        #expect(!back.withUnsafeMutableBytes { m.read(at: GuestPhysicalAddress(2 * 4096 - 8), into: $0) })
        // An address at the top of the space fails; the copy never wraps to frame 0.
        #expect(!back.withUnsafeMutableBytes { m.read(at: GuestPhysicalAddress(.max - 3), into: $0) })
        #expect(bytes.withUnsafeBytes { m.write(at: start, from: UnsafeRawBufferPointer(rebasing: $0[0..<0])) })
    }
}
