import Testing
import XVKVMHost

/// The PVH boot path: an ELF image built here byte by byte (ELF64, a PT_NOTE with Xen's
/// PHYS32_ENTRY and a PT_LOAD with a bss), parsed, loaded and entered with an hvm_start_info at
/// %ebx; and the parser's refusals of hostile files.
@Suite("PVH images")
struct PVHImageTests {
    static let entry: UInt32 = 0x10_0000
    static let bss: UInt32 = 0x10_0040

    /// 32-bit code: check hvm_start_info.magic at [%ebx] and that a bss word is zero; print
    /// "PO" on port 0xE9 when both hold, "X" otherwise; halt.
    static var code: [UInt8] {
        let b = withUnsafeBytes(of: bss.littleEndian) { Array($0) }
        return [0x8B, 0x03,                                // mov (%ebx), %eax
                0x3D, 0x78, 0xC5, 0x6E, 0x33,              // cmp $0x336ec578, %eax
                0x75, 0x14,                                // jne fail
                0x66, 0xBA, 0xE9, 0x00,                    // mov $0xe9, %dx
                0xB0, 0x50, 0xEE,                          // mov $'P', %al; out
                0xA1] + b + [                              // mov bss, %eax
                0x85, 0xC0,                                // test %eax, %eax
                0x75, 0x04,                                // jnz fail
                0xB0, 0x4F, 0xEE,                          // mov $'O', %al; out
                0xF4,                                      // hlt
                0x66, 0xBA, 0xE9, 0x00, 0xB0, 0x58, 0xEE, 0xF4]   // fail: 'X'; hlt
    }

    /// An ELF64 PVH image: header, two program headers, the note at 176, the code at 200.
    static func image(entryNote: UInt32 = entry, noteName: [UInt8] = Array("Xen\0".utf8), memorySize: UInt64 = 0x1000, code body: [UInt8] = PVHImageTests.code) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 200)
        func put(_ v: UInt64, at o: Int, _ n: Int) { for i in 0..<n { f[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
        f[0] = 0x7F; f[1] = 0x45; f[2] = 0x4C; f[3] = 0x46; f[4] = 2; f[5] = 1; f[6] = 1
        put(2, at: 16, 2); put(62, at: 18, 2); put(1, at: 20, 4); put(64, at: 32, 8); put(64, at: 52, 2); put(56, at: 54, 2); put(2, at: 56, 2)
        // PT_LOAD: the code at file offset 200, physical `entry`, a bss after it.
        put(1, at: 64, 4); put(5, at: 68, 4); put(200, at: 72, 8); put(0xFFFF_FFFF_8100_0000, at: 80, 8); put(UInt64(entry), at: 88, 8)
        put(UInt64(body.count), at: 96, 8); put(memorySize, at: 104, 8)
        // PT_NOTE at 176: namesz 4, descsz 4, type XEN_ELFNOTE_PHYS32_ENTRY, "Xen\0", the entry.
        put(4, at: 120, 4); put(176, at: 128, 8); put(20, at: 152, 8); put(20, at: 160, 8)
        put(UInt64(noteName.count), at: 176, 4); put(4, at: 180, 4); put(18, at: 184, 4)
        for (i, c) in noteName.prefix(4).enumerated() { f[188 + i] = c }
        put(UInt64(entryNote), at: 192, 4)
        return f + body
    }

    @Test("parsed: the note's entry and the PT_LOAD segment with its bss")
    func parse() throws {
        let pvh = try PVHImage(elf: Self.image())
        #expect(pvh.entry == Self.entry)
        #expect(pvh.segments == [PVHImage.Segment(physicalAddress: UInt64(Self.entry), fileOffset: 200, fileSize: Self.code.count, memorySize: 0x1000)])
    }

    @Test("booted on KVM: the guest finds hvm_start_info's magic at %ebx and its bss zeroed")
    func boot() throws {
        guard let kvm = KVMHostTests.device() else { return }
        let vm = try KVMVirtualMachine(device: kvm, memoryBytes: 4 << 20)
        vm.memory.initializeMemory(as: UInt8.self, repeating: 0xFF, count: vm.size)   // so a bss left unzeroed shows
        let pvh = try PVHImage(elf: Self.image())
        try pvh.load(into: vm)
        #expect(PVHStartInfo.write(into: vm, at: 0x6000, commandLine: "console=hvc0", memoryMap: [(0, UInt64(vm.size), 1)]))
        let vcpu = try KVMVCPU(vm: vm)
        try vcpu.enterFlatProtectedMode(entry: pvh.entry, ebx: 0x6000)
        let (console, outcome) = try KVMConsoleRun(vcpu: vcpu, timeout: .seconds(20)).run()
        #expect(outcome == .halted)
        #expect(String(decoding: console, as: UTF8.self) == "PO")
    }

    @Test(arguments: [
        ([UInt8](), "not an ELF file"),
        (Array(PVHImageTests.image().prefix(40)), "the ELF file ends"),
        (PVHImageTests.image(noteName: Array("Xxx\0".utf8)), "no XEN_ELFNOTE_PHYS32_ENTRY"),
        (PVHImageTests.image(memorySize: 1), "segment 0 is smaller in memory than in the file"),
    ])
    func refusals(file: [UInt8], message: String) {
        #expect(throws: PVHImageError.self) { try PVHImage(elf: file) }
        do { _ = try PVHImage(elf: file) } catch { #expect(error.description.hasPrefix(message), "\(error)") }
    }

    @Test("a segment outside the guest's RAM is refused when loading, never written")
    func segmentOutsideRAM() throws {
        guard let kvm = KVMHostTests.device() else { return }
        let vm = try KVMVirtualMachine(device: kvm, memoryBytes: 1 << 20)   // the image loads at 1 MiB
        let pvh = try PVHImage(elf: Self.image())
        #expect(throws: PVHImageError.self) { try pvh.load(into: vm) }
    }
}
