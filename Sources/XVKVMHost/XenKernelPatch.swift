/// Sends a kernel's inline hypercalls to the hypercall port (`XenHypercallPort`) before it
/// boots, for a KVM that does not deliver VMCALL to userspace.
///
/// Current Linux no longer calls through Xen's hypercall page: it picks VMCALL or VMMCALL by
/// CPU vendor and issues them from three functions of arch/x86/xen/xen-head.S
/// (torvalds/linux: xen_hypercall_hvm, which finds the vendor on its first use, and
/// xen_hypercall_intel and xen_hypercall_amd). The host finds those functions in the ELF
/// symbol table (.symtab) and rewrites each VMCALL or VMMCALL inside them, as it rewrites
/// the hypercall page's. An image without the symbols (stripped) is left as it is.
public enum XenKernelPatch {
    /// Linux's Xen hypercall entry points.
    public static let linuxHypercallFunctions = ["xen_hypercall_hvm", "xen_hypercall_intel", "xen_hypercall_amd"]

    /// Rewrites the VMCALL/VMMCALL instructions inside the named functions of a 64-bit ELF
    /// image's symbol table; returns how many it rewrote. Every offset read is checked.
    public static func patch(_ image: inout PVHImage, functions: [String]) -> Int {
        let b = image.bytes
        func u(_ o: Int, _ n: Int) -> UInt64? {
            guard o >= 0, n <= b.count, o <= b.count - n else { return nil }
            var v: UInt64 = 0
            for i in (0..<n).reversed() { v = v << 8 | UInt64(b[o + i]) }
            return v
        }
        guard b.count > 64, b[4] == 2, let shoff = u(40, 8), let shentsize = u(58, 2), let shnum = u(60, 2), shentsize >= 64,
              let phoff = u(32, 8), let phentsize = u(54, 2), let phnum = u(56, 2), phentsize >= 56 else { return 0 }
        // Virtual address to file offset, through the PT_LOAD segments.
        var loads: [(vaddr: UInt64, offset: UInt64, size: UInt64)] = []
        for i in 0..<Int(phnum) {
            let h = Int(clamping: phoff) &+ i * Int(phentsize)
            guard let type = u(h, 4), let offset = u(h + 8, 8), let vaddr = u(h + 16, 8), let filesz = u(h + 32, 8) else { return 0 }
            if type == 1 { loads.append((vaddr, offset, filesz)) }
        }
        func fileOffset(_ vaddr: UInt64) -> Int? {
            for l in loads where vaddr >= l.vaddr && vaddr - l.vaddr < l.size { return Int(clamping: l.offset + (vaddr - l.vaddr)) }
            return nil
        }
        var patched = 0
        for s in 0..<Int(shnum) {
            let h = Int(clamping: shoff) &+ s * Int(shentsize)
            guard let type = u(h + 4, 4), type == 2,   // SHT_SYMTAB
                  let symoff = u(h + 24, 8), let symsize = u(h + 32, 8), let link = u(h + 40, 4), let entsize = u(h + 56, 8), entsize >= 24 else { continue }
            let strh = Int(clamping: shoff) &+ Int(link) * Int(shentsize)
            guard let stroff = u(strh + 24, 8), let strsize = u(strh + 32, 8) else { continue }
            let count = Int(clamping: symsize / entsize)
            for i in 0..<count {
                let e = Int(clamping: symoff) &+ i * Int(entsize)
                guard let name = u(e, 4), let value = u(e + 8, 8), let size = u(e + 16, 8), name < strsize else { continue }
                let start = Int(clamping: stroff + name)
                guard start < b.count, let end = b[start...].firstIndex(of: 0) else { continue }
                let symbol = String(decoding: b[start..<end], as: UTF8.self)
                guard functions.contains(symbol), let from = fileOffset(value) else { continue }
                let length = Int(min(size == 0 ? 32 : size, 4096))
                var o = from
                while o + 3 <= min(from + length, image.bytes.count) {
                    let isCall = image.bytes[o] == 0x0F && image.bytes[o + 1] == 0x01 && (image.bytes[o + 2] == 0xC1 || image.bytes[o + 2] == 0xD9)
                    if isCall {
                        for (k, byte) in XenHypercallPort.replacement.enumerated() { image.bytes[o + k] = byte }
                        patched += 1
                        o += 3
                    } else {
                        o += 1
                    }
                }
            }
        }
        return patched
    }
}
