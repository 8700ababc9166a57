import GuestABI
import XenABI

/// Why an image cannot be booted, with the offending part named.
public struct PVHImageError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What is wrong with the image, in one line.
    public let description: String
    init(_ d: String) { description = d }
}

/// An unmodified PVH-entry ELF kernel as Xen boots it (xen/include/public/elfnote.h
/// XEN_ELFNOTE_PHYS32_ENTRY): every PT_LOAD segment at its physical address with its bss
/// zeroed, entered at the note's 32-bit physical address. ELF32 and ELF64, little-endian x86.
/// The image is the user's file, so every offset and size in it is checked before use.
public struct PVHImage: Sendable {
    /// A PT_LOAD segment: `fileSize` bytes from `fileOffset`, then zeros up to `memorySize`,
    /// at guest-physical `physicalAddress`.
    public struct Segment: Sendable, Equatable {
        /// Where the segment goes in guest-physical memory (p_paddr).
        public let physicalAddress: UInt64
        /// The segment's bytes in the file (p_offset).
        public let fileOffset: Int
        /// Bytes taken from the file (p_filesz).
        public let fileSize: Int
        /// Bytes in memory (p_memsz); the rest after the file bytes is bss, zeroed.
        public let memorySize: UInt64

        /// A segment as its program header gives it.
        public init(physicalAddress: UInt64, fileOffset: Int, fileSize: Int, memorySize: UInt64) {
            self.physicalAddress = physicalAddress
            self.fileOffset = fileOffset
            self.fileSize = fileSize
            self.memorySize = memorySize
        }
    }

    /// The entry point from XEN_ELFNOTE_PHYS32_ENTRY.
    public let entry: UInt32
    /// The PT_LOAD segments, in file order.
    public let segments: [Segment]
    var bytes: [UInt8]

    /// Parses an ELF image; every offset and size is checked against the file, and an error names what is wrong.
    public init(elf bytes: [UInt8]) throws(PVHImageError) {
        self.bytes = bytes
        func u16(_ o: Int) throws(PVHImageError) -> UInt64 { try read(o, 2) }
        func u32(_ o: Int) throws(PVHImageError) -> UInt64 { try read(o, 4) }
        func u64(_ o: Int) throws(PVHImageError) -> UInt64 { try read(o, 8) }
        func read(_ o: Int, _ n: Int) throws(PVHImageError) -> UInt64 {
            guard o >= 0, n <= bytes.count, o <= bytes.count - n else { throw PVHImageError("the ELF file ends at \(bytes.count) bytes, inside a header") }
            var v: UInt64 = 0
            for i in (0..<n).reversed() { v = v << 8 | UInt64(bytes[o + i]) }
            return v
        }
        guard bytes.count >= 16, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 else { throw PVHImageError("not an ELF file") }
        let wide: Bool
        switch bytes[4] {
        case 1: wide = false
        case 2: wide = true
        default: throw PVHImageError("ELF class \(bytes[4]) is neither 32- nor 64-bit")
        }
        guard bytes[5] == 1 else { throw PVHImageError("not a little-endian ELF file") }
        let machine = try u16(18)
        guard machine == 3 || machine == 62 else { throw PVHImageError("ELF machine \(machine) is not x86") }
        let phoff = Int(clamping: wide ? try u64(32) : try u32(28))
        let phentsize = Int(try u16(wide ? 54 : 42)), phnum = Int(try u16(wide ? 56 : 44))
        guard phentsize >= (wide ? 56 : 32), phnum > 0 else { throw PVHImageError("no program headers") }
        var segments: [Segment] = []
        var entry: UInt32?
        for i in 0..<phnum {
            let (product, overflow) = i.multipliedReportingOverflow(by: phentsize)
            guard !overflow, phoff <= Int.max - product else { throw PVHImageError("program header \(i) lies past the file") }
            let h = phoff + product
            let type = try u32(h)
            let offset = Int(clamping: wide ? try u64(h + 8) : try u32(h + 4))
            let paddr = wide ? try u64(h + 24) : try u32(h + 12)
            let filesz = Int(clamping: wide ? try u64(h + 32) : try u32(h + 16))
            let memsz = wide ? try u64(h + 40) : try u32(h + 20)
            guard offset <= bytes.count, filesz <= bytes.count - offset else { throw PVHImageError("segment \(i) lies past the end of the file") }
            switch type {
            case 1:  // PT_LOAD
                guard memsz >= UInt64(filesz) else { throw PVHImageError("segment \(i) is smaller in memory than in the file") }
                segments.append(Segment(physicalAddress: paddr, fileOffset: offset, fileSize: filesz, memorySize: memsz))
            case 4:  // PT_NOTE
                if let e = try Self.phys32Entry(bytes, offset: offset, size: filesz) { entry = e }
            default: break
            }
        }
        guard let entry else { throw PVHImageError("no XEN_ELFNOTE_PHYS32_ENTRY note: not a PVH image") }
        guard !segments.isEmpty else { throw PVHImageError("no PT_LOAD segment") }
        self.entry = entry
        self.segments = segments
    }

    /// The PHYS32_ENTRY of a note segment, if it has one: notes are namesz, descsz, type, the
    /// name and the descriptor, each padded to 4 bytes; Xen's are named "Xen".
    static func phys32Entry(_ bytes: [UInt8], offset: Int, size: Int) throws(PVHImageError) -> UInt32? {
        func u32(_ o: Int) -> UInt32 { UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24 }
        var at = offset
        let end = offset + size
        while at + 12 <= end {
            let namesz = Int(u32(at)), descsz = Int(u32(at + 4)), type = u32(at + 8)
            let name = at + 12
            let desc = name + (namesz + 3) & ~3
            guard namesz <= end, descsz <= end, desc <= end, descsz <= end - desc else { throw PVHImageError("a note runs past its segment") }
            if namesz == 4, bytes[name] == 0x58, bytes[name + 1] == 0x65, bytes[name + 2] == 0x6E, bytes[name + 3] == 0, type == XenELFNote.phys32Entry {
                switch descsz {
                case 4: return u32(desc)
                case 8:
                    guard u32(desc + 4) == 0 else { throw PVHImageError("XEN_ELFNOTE_PHYS32_ENTRY lies above 4 GiB") }
                    return u32(desc)
                default: throw PVHImageError("XEN_ELFNOTE_PHYS32_ENTRY has \(descsz) bytes")
                }
            }
            at = desc + (descsz + 3) & ~3
        }
        return nil
    }

    /// Loads every segment into the VM's RAM, bss zeroed; an error names a segment that does
    /// not fit.
    public func load(into vm: KVMVirtualMachine) throws(PVHImageError) {
        for (i, s) in segments.enumerated() {
            guard s.physicalAddress <= UInt64(vm.size), s.memorySize <= UInt64(vm.size) - s.physicalAddress else {
                throw PVHImageError("segment \(i) (0x\(String(s.physicalAddress, radix: 16)), \(s.memorySize) bytes) lies outside the guest's \(vm.size) bytes of RAM")
            }
            let at = vm.memory + Int(s.physicalAddress)
            bytes.withUnsafeBytes { at.copyMemory(from: $0.baseAddress! + s.fileOffset, byteCount: s.fileSize) }
            (at + s.fileSize).initializeMemory(as: UInt8.self, repeating: 0, count: Int(s.memorySize) - s.fileSize)
        }
    }
}

/// The hvm_start_info a PVH guest finds at %ebx (xen/include/public/arch-x86/hvm/start_info.h,
/// version 1): the command line and the memory map follow it in guest RAM.
public enum PVHStartInfo {
    /// Writes the start info at `address`, the NUL-terminated command line after it, then the
    /// memory map (8-byte aligned); false when they do not fit in the guest's RAM.
    public static func write(into vm: KVMVirtualMachine, at address: Int, commandLine: String, memoryMap: [(address: UInt64, size: UInt64, type: UInt32)]) -> Bool {
        let cmdline = Array(commandLine.utf8) + [0]
        let cmdlineAt = address + HvmStartInfoLayout.size
        let mapAt = (cmdlineAt + cmdline.count + 7) & ~7
        let end = mapAt + memoryMap.count * HvmMemmapTableEntryLayout.size
        guard address >= 0, end <= vm.size else { return false }
        let base = vm.memory + address
        base.initializeMemory(as: UInt8.self, repeating: 0, count: HvmStartInfoLayout.size)
        func put<T: FixedWidthInteger>(_ p: UnsafeMutableRawPointer, _ f: ABIField, _ v: T) { p.storeBytes(of: v.littleEndian, toByteOffset: f.offset, as: T.self) }
        put(base, HvmStartInfoLayout.magic, XenHVMStart.magic)
        put(base, HvmStartInfoLayout.version, UInt32(1))
        put(base, HvmStartInfoLayout.cmdlinePaddr, UInt64(cmdlineAt))
        put(base, HvmStartInfoLayout.memmapPaddr, UInt64(mapAt))
        put(base, HvmStartInfoLayout.memmapEntries, UInt32(memoryMap.count))
        _ = vm.load(cmdline, at: cmdlineAt)
        for (i, e) in memoryMap.enumerated() {
            let p = vm.memory + mapAt + i * HvmMemmapTableEntryLayout.size
            put(p, HvmMemmapTableEntryLayout.addr, e.address)
            put(p, HvmMemmapTableEntryLayout.length, e.size)
            put(p, HvmMemmapTableEntryLayout.type, e.type)
            put(p, HvmMemmapTableEntryLayout.reserved, UInt32(0))
        }
        return true
    }
}
