import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// xen_version (Specs/translation/misc.tbl `translation.xenver`, Specs/translation/version.tbl
/// `translation.xenver_answers`), vm_assist (`translation.vmassist_answers`) and console_io
/// (`translation.consoleio`, `translation.consoleio_limits`), on both sides.
@Suite("xen_version, vm_assist and console_io")
struct VersionConsoleAssistTests {
    static let page = WorldLayout.argumentPage.rawValue << guestPageShift
    /// The last byte of guest memory: a structure written here runs off the guest's RAM.
    static let lastByte = WorldLayout.frames << guestPageShift - 1

    func version(_ w: any XenWorld, _ op: XenVersionOp, arg: UInt64 = page, rdiHigh: UInt64 = 0) -> Int64 {
        w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.xenVersion.rawValue, rdi: rdiHigh | UInt64(op.rawValue), rsi: arg))
    }

    func bytes(_ w: any XenWorld, at address: UInt64, _ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        _ = out.withUnsafeMutableBytes { w.ram(dom1).region.read(at: GuestPhysicalAddress(address), into: $0) }
        return out
    }

    func fill(_ w: any XenWorld, at address: UInt64, _ count: Int, with byte: UInt8 = 0xAA) {
        let b = [UInt8](repeating: byte, count: count)
        _ = b.withUnsafeBytes { w.ram(dom1).region.write(at: GuestPhysicalAddress(address), from: $0) }
    }

    func padded(_ s: String, _ n: Int) -> [UInt8] { Array(s.utf8) + [UInt8](repeating: 0, count: n - s.utf8.count) }

    @Test("XENVER_version is 4.17 as major << 16 | minor, and Xen's int cmd ignores RDI's upper half")
    func versionNumber() {
        onBothWorlds { w, side in
            #expect(version(w, .version) == 0x0004_0011, "\(side)")
            #expect(version(w, .version, rdiHigh: 1 << 32) == 0x0004_0011, "\(side)")
        }
    }

    @Test("XENVER_extraversion, XENVER_changeset and XENVER_capabilities copy their whole fixed-length arrays, zero-padded")
    func strings() {
        onBothWorlds { w, side in
            fill(w, at: Self.page, 1100)
            #expect(version(w, .extraversion) == 0)
            #expect(bytes(w, at: Self.page, 17) == padded("-xenviridian", 16) + [0xAA], "\(side)")
            fill(w, at: Self.page, 1100)
            #expect(version(w, .changeset) == 0)
            #expect(bytes(w, at: Self.page, 65) == padded("unavailable", 64) + [0xAA], "\(side)")
            fill(w, at: Self.page, 1100)
            #expect(version(w, .capabilities) == 0)
            #expect(bytes(w, at: Self.page, 1025) == padded("hvm-3.0-x86_64 ", 1024) + [0xAA], "\(side)")
        }
    }

    @Test("XENVER_compile_info: four NUL-terminated fields in 144 bytes")
    func compileInfo() {
        onBothWorlds { w, side in
            fill(w, at: Self.page, 200)
            #expect(version(w, .compileInfo) == 0)
            let b = bytes(w, at: Self.page, 145)
            #expect(Array(b[0..<64]) == padded("swift", 64), "\(side)")
            #expect(Array(b[64..<80]) == padded("xenviridian", 16), "\(side)")
            #expect(Array(b[80..<144]) == [UInt8](repeating: 0, count: 64), "\(side)")
            #expect(b[144] == 0xAA, "\(side)")
        }
    }

    @Test("an identity string longer than its field is cut to the field less its NUL; the domain handle fills all 16 bytes")
    func longStrings() throws {
        let long = XenVersionIdentity(extraversion: Array("-a-very-long-extraversion".utf8), handle: Array(1...20))
        let backing = GuestRAM(frameCount: 4)
        let d = try XenDomain(DomainConfiguration(id: DomainID(9), vcpuCount: 1, sharedInfoFrame: GuestFrameNumber(0), version: long),
                              memory: backing.region)
        let ram = d.memory
        _ = [UInt8](repeating: 0xAA, count: 32).withUnsafeBytes { ram.write(at: GuestPhysicalAddress(4096), from: $0) }
        #expect(d.xenVersion(UInt64(XenVersionOp.extraversion.rawValue), arg: 4096) == 0)
        var out = [UInt8](repeating: 0xAA, count: 17)
        _ = out.withUnsafeMutableBytes { ram.read(at: GuestPhysicalAddress(4096), into: $0) }
        #expect(out == Array("-a-very-long-ex".utf8) + [0, 0xAA])
        #expect(d.xenVersion(UInt64(XenVersionOp.guestHandle.rawValue), arg: 4096) == 0)
        _ = out.withUnsafeMutableBytes { ram.read(at: GuestPhysicalAddress(4096), into: $0) }
        #expect(Array(out[0..<16]) == Array(1...16))
        withExtendedLifetime(backing) {}
    }

    @Test("XENVER_platform_parameters: HYPERVISOR_VIRT_START; XENVER_guest_handle: 16 zero bytes by default")
    func platformAndHandle() {
        onBothWorlds { w, side in
            fill(w, at: Self.page, 32)
            #expect(version(w, .platformParameters) == 0)
            #expect(w.ram(dom1).region.load(UInt64.self, at: GuestPhysicalAddress(Self.page)) == 0xFFFF_8000_0000_0000, "\(side)")
            #expect(bytes(w, at: Self.page + 8, 1) == [0xAA])
            fill(w, at: Self.page, 32)
            #expect(version(w, .guestHandle) == 0)
            #expect(bytes(w, at: Self.page, 17) == [UInt8](repeating: 0, count: 16) + [0xAA], "\(side)")
        }
    }

    @Test("XENVER_get_features: Xen's submap 0 for an hvm64 domU; other submaps -EINVAL; an unreadable structure -EFAULT")
    func features() {
        // Xen 4.17 do_xen_version for a translated-paging HVM domU without PIRQs.
        let expected: UInt32 = [XenFeature.writablePageTables, .autoTranslatedPhysmap, .hvmCallbackVector, .hvmSafePvclock,
                                .memoryOpVnodeSupported, .notDirectMapped].reduce(0) { $0 | 1 << $1.rawValue }
        #expect(UInt64(expected) == XenVersionAnswers.hvmFeatures)
        onBothWorlds { w, side in
            w.writeArguments(dom1, size: 8, [(XenFeatureInfoLayout.submapIdx, 0), (XenFeatureInfoLayout.submap, 0xFFFF_FFFF)])
            #expect(version(w, .getFeatures) == 0, "\(side)")
            #expect(w.readArgument(dom1, XenFeatureInfoLayout.submap) == UInt64(expected), "\(side)")
            w.writeArguments(dom1, size: 8, [(XenFeatureInfoLayout.submapIdx, 1), (XenFeatureInfoLayout.submap, 7)])
            #expect(version(w, .getFeatures) == errEINVAL, "\(side)")
            #expect(w.readArgument(dom1, XenFeatureInfoLayout.submap) == 7, "\(side): nothing written on -EINVAL")
            // The structure straddles the end of guest memory: nothing is read or written.
            #expect(version(w, .getFeatures, arg: Self.lastByte - 3) == errEFAULT, "\(side)")
            #expect(version(w, .getFeatures, arg: UInt64.max - 2) == errEFAULT, "\(side)")
        }
    }

    @Test("XENVER_pagesize: 4096 with a null handle, -EINVAL with any other")
    func pagesize() {
        onBothWorlds { w, side in
            #expect(version(w, .pagesize, arg: 0) == 4096, "\(side)")
            #expect(version(w, .pagesize, arg: Self.page) == errEINVAL, "\(side)")
        }
    }

    @Test("XENVER_commandline is denied: the 9 bytes \"<denied>\\0\" and 0; XENVER_build_id -EPERM; unknown commands -ENOSYS")
    func deniedAndUnknown() {
        onBothWorlds { w, side in
            fill(w, at: Self.page, 16)
            #expect(version(w, .commandline) == 0, "\(side)")
            #expect(bytes(w, at: Self.page, 10) == Array("<denied>".utf8) + [0, 0xAA], "\(side)")
            #expect(version(w, .buildId) == errEPERM, "\(side)")
            #expect(version(w, .buildId, arg: 0) == errEPERM, "\(side)")
            for cmd: UInt32 in [11, 12, 0x7FFF_FFFF, 0xFFFF_FFFF] {
                #expect(version(w, XenVersionOp(rawValue: cmd)) == errENOSYS, "\(side) cmd \(cmd)")
            }
        }
    }

    @Test("a string copied to memory that ends part-way is -EFAULT, with the backed part written (Xen's page-by-page copy)")
    func partialCopies() {
        onBothWorlds { w, side in
            for op in [XenVersionOp.extraversion, .compileInfo, .capabilities, .changeset, .platformParameters, .guestHandle, .commandline] {
                fill(w, at: Self.lastByte - 3, 4)
                #expect(version(w, op, arg: Self.lastByte - 3) == errEFAULT, "\(side) \(op.rawValue)")
                #expect(version(w, op, arg: 0x7FFF_FFFF_F000) == errEFAULT, "\(side) \(op.rawValue)")
                #expect(version(w, op, arg: UInt64.max) == errEFAULT, "\(side) \(op.rawValue)")
            }
            #expect(bytes(w, at: Self.lastByte - 3, 4) == [0x3C, 0x64, 0x65, 0x6E], "\(side): \"<den\" reached the last backed bytes")
        }
    }

    // MARK: vm_assist

    func assist(_ w: any XenWorld, _ cmd: UInt64, _ type: UInt64) -> Int64 {
        w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.vmAssist.rawValue, rdi: cmd, rsi: type))
    }

    @Test("vm_assist: VMASST_TYPE_runstate_update_flag enables and disables; every other type -EINVAL before the command; unknown commands -ENOSYS")
    func vmAssist() {
        onBothWorlds { w, side in
            let d = w.xenDomain(dom1)
            #expect(!d.vmAssistEnabled(.runstateUpdateFlag))
            #expect(assist(w, 0, 5) == 0, "\(side)")
            #expect(d.vmAssistEnabled(.runstateUpdateFlag), "\(side)")
            #expect(assist(w, 0, 5) == 0, "\(side): enabling twice is fine")
            #expect(assist(w, 1, 5) == 0, "\(side)")
            #expect(!d.vmAssistEnabled(.runstateUpdateFlag), "\(side)")
            for type: UInt64 in [0, 1, 2, 3, 4, 6, 31, 32, 63, 64, 65, 0xFFFF_FFFF] {
                #expect(assist(w, 0, type) == errEINVAL, "\(side) type \(type)")
                #expect(assist(w, 7, type) == errEINVAL, "\(side) type \(type), unknown command")
            }
            #expect(assist(w, 2, 5) == errENOSYS, "\(side)")
            #expect(assist(w, 0xFFFF_FFFF, 5) == errENOSYS, "\(side)")
            // unsigned int arguments: the upper halves of RDI and RSI are not looked at.
            #expect(assist(w, 1 << 32, 1 << 32 | 5) == 0, "\(side)")
            #expect(d.vmAssistEnabled(.runstateUpdateFlag), "\(side)")
        }
    }

    // MARK: console_io

    func console(_ w: any XenWorld, _ cmd: UInt64, count: UInt64, buffer: UInt64 = page) -> Int64 {
        w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.consoleIo.rawValue, rdi: cmd, rsi: count, rdx: buffer))
    }

    func write(_ w: any XenWorld, _ bytes: [UInt8], at address: UInt64 = page) -> Int64 {
        _ = bytes.withUnsafeBytes { w.ram(dom1).region.write(at: GuestPhysicalAddress(address), from: $0) }
        return console(w, 0, count: UInt64(bytes.count), buffer: address)
    }

    @Test("CONSOLEIO_write: lines at newlines, held across calls until one comes; only printable bytes and tabs kept")
    func consoleLines() {
        onBothWorlds { w, side in
            #expect(write(w, Array("hello\n".utf8)) == 0)
            #expect(write(w, Array("par".utf8)) == 0)
            #expect(w.console.text(of: dom1) == ["hello"], "\(side): a partial line waits")
            #expect(write(w, Array("tial\tline\nsecond\nthi".utf8)) == 0)
            #expect(w.console.text(of: dom1) == ["hello", "partial\tline", "second"], "\(side)")
            #expect(write(w, [0x07, 0x41, 0x1B, 0x80, 0xFF, 0x7F, 0x42, 0x00, 0x43, 0x0D, 0x0A]) == 0)
            #expect(w.console.text(of: dom1).last == "thiABC", "\(side): control bytes, DEL, NUL and bytes of 0x80 and up are dropped")
            #expect(write(w, []) == 0, "\(side): count 0")
            #expect(w.console.lines.allSatisfy { $0.0 == dom1 })
        }
    }

    @Test("CONSOLEIO_write: a line that would overflow the 200-byte buffer is passed on with the chunk that overflowed it")
    func consoleOverflow() {
        onBothWorlds { w, side in
            // 127-byte chunks with no newline: the first is buffered; the second would take the
            // buffer past 199, so both go out as one 254-byte line; then 46 bytes wait.
            #expect(write(w, [UInt8](repeating: 0x61, count: 300)) == 0)
            #expect(w.console.lines.map { $0.1.count } == [254], "\(side)")
            #expect(write(w, Array("\n".utf8)) == 0)
            #expect(w.console.lines.map { $0.1.count } == [254, 46], "\(side)")
        }
    }

    @Test("CONSOLEIO_write into unbacked memory: -EFAULT, after the lines read before the fault; counts up to 2^32 - 1 stop there")
    func consoleFaults() {
        onBothWorlds { w, side in
            let start = Self.lastByte - 199
            _ = Array(repeating: UInt8(0x62), count: 100).withUnsafeBytes { w.ram(dom1).region.write(at: GuestPhysicalAddress(start), from: $0) }
            _ = Array("\n".utf8).withUnsafeBytes { w.ram(dom1).region.write(at: GuestPhysicalAddress(start + 100), from: $0) }
            #expect(console(w, 0, count: 0xFFFF_FFFF, buffer: start) == errEFAULT, "\(side)")
            #expect(w.console.lines.first?.1 == [UInt8](repeating: 0x62, count: 100), "\(side)")
            #expect(console(w, 0, count: 16, buffer: UInt64.max - 3) == errEFAULT, "\(side)")
            #expect(console(w, 0, count: 1, buffer: 0x7FFF_FFFF_0000) == errEFAULT, "\(side)")
            // The upper half of RSI is not part of the unsigned int count.
            #expect(console(w, 0, count: 1 << 32, buffer: UInt64.max) == 0, "\(side): count 0 reads nothing")
        }
    }

    @Test("CONSOLEIO_read: 0 (nothing buffered), -E2BIG above INT_MAX; unknown commands -ENOSYS; without a console sink every command is -EPERM")
    func consoleReadAndPermission() {
        onBothWorlds { w, side in
            #expect(console(w, 1, count: 64) == 0, "\(side)")
            #expect(console(w, 1, count: 0x8000_0000) == XenErrno.e2big.hypercallReturnValue, "\(side)")
            #expect(console(w, 2, count: 1) == errENOSYS, "\(side)")
            w.xenDomain(dom1).consoleSink = nil
            #expect(write(w, Array("x\n".utf8)) == errEPERM, "\(side)")
            #expect(console(w, 1, count: 1) == errEPERM, "\(side)")
            #expect(console(w, 2, count: 1) == errEPERM, "\(side)")
            #expect(w.console.lines.isEmpty, "\(side)")
        }
    }
}
