import Foundation
import Testing
import GuestABI
import ViridianABI
import XenABI
import XenCore
import XVScenarios

/// The guest-visible identity (Specs/xen/cpuid.tbl, Specs/translation/identity.tbl): Xen's
/// CPUID leaves, the hypercall-page MSR and page, and how a hypercall instruction is
/// classified, in both layouts and on both sides. Expected values are written out from Xen
/// 4.17's cpuid_hypervisor_leaves and guest_{rd,wr}msr_xen (xen/arch/x86/traps.c), not
/// recomputed from the code under test.
@Suite struct IdentityTests {
    static let time = XenTimeLeaf(features: 0b101, tscMode: 2, tscKHz: 2_995_200, incarnation: 7,
                                  offset: 0x1234_5678_9ABC_DEF0, mulFrac: 0xAABB_CCDD, shift: -3, hostKHz: 3_000_000)

    func leaf(_ world: any XenWorld, _ leaf: UInt32, subleaf: UInt32 = 0, domain: DomainID = dom2, vcpu: Int = 1) -> XenIdentityAnswer<CPUIDResult> {
        world.xenDomain(domain).cpuid(leaf: leaf, subleaf: subleaf, vcpu: vcpu)
    }

    static func ascii(_ words: UInt32...) -> String {
        String(decoding: words.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }, as: UTF8.self)
    }

    @Test func xenOnlyLeaves() {
        onBothWorlds(identity: XenGuestIdentity(time: Self.time)) { world, side in
            guard case .xen(let l0) = leaf(world, 0x4000_0000) else { Issue.record("\(side): leaf 0 not Xen's"); return }
            #expect(l0.eax == 0x4000_0005, "\(side)")
            #expect(Self.ascii(l0.ebx, l0.ecx, l0.edx) == "XenVMMXenVMM", "\(side)")
            #expect(leaf(world, 0x4000_0001) == .xen(CPUIDResult(eax: 0x0004_0011)), "\(side): 4.17")
            #expect(leaf(world, 0x4000_0002) == .xen(CPUIDResult(eax: 1, ebx: 0x4000_0000)), "\(side): one page, MSR base, no PV features")
            #expect(leaf(world, 0x4000_0003, subleaf: 0) == .xen(CPUIDResult(eax: 0b101, ebx: 2, ecx: 2_995_200, edx: 7)), "\(side)")
            #expect(leaf(world, 0x4000_0003, subleaf: 1) == .xen(CPUIDResult(eax: 0x9ABC_DEF0, ebx: 0x1234_5678, ecx: 0xAABB_CCDD, edx: 0xFFFF_FFFD)),
                    "\(side): the shift is sign-extended")
            #expect(leaf(world, 0x4000_0003, subleaf: 2) == .xen(CPUIDResult(eax: 3_000_000)), "\(side)")
            #expect(leaf(world, 0x4000_0003, subleaf: 3) == .xen(CPUIDResult()), "\(side)")
            #expect(leaf(world, 0x4000_0003, subleaf: 0xFFFF_FFFF) == .xen(CPUIDResult()), "\(side)")
            // IOMMU_MAPPINGS (default) | VCPU_ID_PRESENT | DOMID_PRESENT | UPCALL_VECTOR.
            #expect(leaf(world, 0x4000_0004, domain: dom2, vcpu: 1) == .xen(CPUIDResult(eax: 0x5C, ebx: 1, ecx: 2)), "\(side)")
            #expect(leaf(world, 0x4000_0004, domain: dom1, vcpu: 0) == .xen(CPUIDResult(eax: 0x5C, ebx: 0, ecx: 1)), "\(side)")
            #expect(leaf(world, 0x4000_0004, subleaf: 1) == .xen(CPUIDResult()), "\(side)")
            #expect(leaf(world, 0x4000_0005) == .xen(CPUIDResult()), "\(side): PV leaf is empty for HVM")
            for past in [UInt32(0x4000_0006), 0x4000_00FF, 0x4000_0100, 0x4000_0105, 0x4000_01FF] {
                #expect(leaf(world, past) == .xen(CPUIDResult()), "\(side): \(past) is past the limit")
            }
            for other in [UInt32(0), 1, 0x3FFF_FFFF, 0x4000_0200, 0x4FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF] {
                #expect(leaf(world, other) == .notHypervisor, "\(side): \(other)")
            }
        }
    }

    @Test func embedderFeatureBitsAreKeptAndLayerBitsAlwaysSet() {
        onBothWorlds(identity: XenGuestIdentity(hvmFeatures: [.apicAccessVirt, .x2apicVirt])) { world, side in
            #expect(leaf(world, 0x4000_0004) == .xen(CPUIDResult(eax: 0x5B, ebx: 1, ecx: 2)), "\(side)")
        }
        onBothWorlds(identity: XenGuestIdentity(hvmFeatures: [])) { world, side in
            #expect(leaf(world, 0x4000_0004) == .xen(CPUIDResult(eax: 0x58, ebx: 1, ecx: 2)), "\(side)")
        }
    }

    @Test(arguments: [(UInt32(0), UInt32(5)), (1, 2), (2, 2), (3, 3), (4, 4), (5, 5), (6, 5), (0xFFFF_FFFF, 5)])
    func leafLimitIsClamped(configured: UInt32, effective: UInt32) {
        onBothWorlds(identity: XenGuestIdentity(leafLimit: configured, time: Self.time)) { world, side in
            guard case .xen(let l0) = leaf(world, 0x4000_0000) else { Issue.record("\(side)"); return }
            #expect(l0.eax == 0x4000_0000 + effective, "\(side): limit \(configured)")
            #expect(leaf(world, 0x4000_0002) == .xen(CPUIDResult(eax: 1, ebx: 0x4000_0000)), "\(side): leaf 2 is always there")
            #expect(leaf(world, 0x4000_0001 + effective) == .xen(CPUIDResult()), "\(side): past the limit")
            let lastHasTime = effective >= 3
            #expect((leaf(world, 0x4000_0003) == .xen(CPUIDResult())) == !lastHasTime, "\(side): time leaf within limit \(effective)")
        }
    }

    @Test func viridianAlsoOfferedMovesXenUp() throws {
        let identity = XenGuestIdentity(layout: .xenWithViridian)
        onBothWorlds(identity: identity) { world, side in
            for v in [UInt32(0x4000_0000), 0x4000_0001, 0x4000_0080, 0x4000_00FF] {
                #expect(leaf(world, v) == .viridian, "\(side): \(v)")
            }
            guard case .xen(let l0) = leaf(world, 0x4000_0100) else { Issue.record("\(side)"); return }
            #expect(l0.eax == 0x4000_0105 && Self.ascii(l0.ebx, l0.ecx, l0.edx) == "XenVMMXenVMM", "\(side)")
            #expect(leaf(world, 0x4000_0102) == .xen(CPUIDResult(eax: 1, ebx: 0x4000_0200)), "\(side): MSR moves to 0x40000200")
            #expect(leaf(world, 0x4000_0104) == .xen(CPUIDResult(eax: 0x5C, ebx: 1, ecx: 2)), "\(side)")
            #expect(leaf(world, 0x4000_0106) == .xen(CPUIDResult()), "\(side)")
            #expect(leaf(world, 0x4000_0200) == .notHypervisor, "\(side)")

            let d = world.xenDomain(dom1)
            #expect(d.readMSR(0x4000_0000, vcpu: 0) == .viridian, "\(side): HV_X64_MSR_GUEST_OS_ID stays Viridian's")
            #expect(d.writeMSR(0x4000_0001, value: 0, vcpu: 0) == .viridian, "\(side)")
            #expect(d.readMSR(0x4000_01FF, vcpu: 0) == .viridian, "\(side)")
            #expect(d.readMSR(0x4000_0200, vcpu: 0) == .xen(.value(0)), "\(side)")
            #expect(d.readMSR(0x4000_0201, vcpu: 0) == .xen(.generalProtection), "\(side)")
            #expect(d.readMSR(0x4000_0300, vcpu: 0) == .notHypervisor, "\(side)")

            #expect(d.classifyHypercall(rax: 0x8000_0000 | 0x0001_0008, cpl: 0) == .viridian, "\(side): bit 31 is Viridian's")
            #expect(d.classifyHypercall(rax: XenHypercall.eventChannelOp.rawValue, cpl: 0) == .xen, "\(side)")
            #expect(d.classifyHypercall(rax: 0x8000_0000, cpl: 3) == .refused(errEPERM), "\(side): CPL is checked first")
        }
        // On the translated side the embedder hands Viridian's leaves to its target, which
        // answers as Hyper-V: the guest sees both hypervisors, each where it looks.
        let world = TranslatedWorld(domains: 1, vcpus: 1, identity: identity)
        let vendor = world.reference.cpuid(partition: world.layer(dom1).partition, leaf: 0x4000_0000)
        #expect(Self.ascii(vendor.ebx, vendor.ecx, vendor.edx) == "Microsoft Hv")
    }

    @Test func hypercallClassesWithXenAlone() {
        onBothWorlds { world, side in
            let d = world.xenDomain(dom1)
            #expect(d.classifyHypercall(rax: 0x8000_0001, cpl: 0) == .xen, "\(side): bit 31 is just a number")
            #expect(world.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: 0x8000_0001)) == errENOSYS, "\(side)")
            for cpl in [UInt8(1), 2, 3, 0xFF] {
                #expect(d.classifyHypercall(rax: XenHypercall.eventChannelOp.rawValue, cpl: cpl) == .refused(errEPERM), "\(side): CPL \(cpl)")
            }
            #expect(d.readMSR(0x4000_0000, vcpu: 0) == .xen(.value(0)), "\(side): reads as zero")
            for msr in [UInt32(0x4000_0001), 0x4000_0073, 0x4000_0100, 0x4000_0200, 0x4000_02FF] {
                #expect(d.readMSR(msr, vcpu: 0) == .xen(.generalProtection), "\(side): \(msr)")
                #expect(d.writeMSR(msr, value: 20 << 12, vcpu: 0) == .xen(.generalProtection), "\(side): \(msr)")
            }
            for msr in [UInt32(0x3FFF_FFFF), 0x4000_0300, 0xC000_0080] {
                #expect(d.readMSR(msr, vcpu: 0) == .notHypervisor, "\(side): \(msr)")
                #expect(d.writeMSR(msr, value: 0, vcpu: 0) == .notHypervisor, "\(side): \(msr)")
            }
        }
    }

    /// The bytes of one stub as Xen writes them: `mov $n,%eax; vmcall|vmmcall; ret`.
    static func expectedStub(_ n: Int, _ v: HardwareVirtualization) -> [UInt8] {
        if n == 23 { return [0x0F, 0x0B] + [UInt8](repeating: 0xCC, count: 30) }
        return [0xB8, UInt8(n), 0, 0, 0, 0x0F, 0x01, v == .vmx ? 0xC1 : 0xD9, 0xC3] + [UInt8](repeating: 0xCC, count: 23)
    }

    static func page(_ world: any XenWorld, _ domain: DomainID, frame: UInt64) -> [UInt8] {
        let p = world.ram(domain).region.hostAddress(of: GuestFrameNumber(frame))!
        return [UInt8](UnsafeRawBufferPointer(start: p, count: 4096))
    }

    @Test(arguments: [HardwareVirtualization.vmx, .svm])
    func hypercallPageIsWrittenAsXenWritesIt(virtualization: HardwareVirtualization) {
        var pages: [[UInt8]] = []
        onBothWorlds(identity: XenGuestIdentity(virtualization: virtualization)) { world, side in
            let d = world.xenDomain(dom1)
            let frame: UInt64 = 21
            #expect(d.writeMSR(0x4000_0000, value: frame << 12, vcpu: 0) == .xen(.done), "\(side)")
            let bytes = Self.page(world, dom1, frame: frame)
            for n in 0..<128 {
                #expect(Array(bytes[(32 * n)..<(32 * n + 32)]) == Self.expectedStub(n, virtualization), "\(side): stub \(n)")
            }
            #expect(d.readMSR(0x4000_0000, vcpu: 0) == .xen(.value(0)), "\(side): still reads as zero")
            pages.append(bytes)
        }
        let same = pages.count == 2 && pages[0] == pages[1]
        #expect(same, "native and translated pages are byte-identical")
    }

    @Test func hostileHypercallPageWritesFaultAndWriteNothing() {
        onBothWorlds(domains: 1) { world, side in
            let d = world.xenDomain(dom1)
            let frame: UInt64 = 22
            let p = world.ram(dom1).region.hostAddress(of: GuestFrameNumber(frame))!
            p.initializeMemory(as: UInt8.self, repeating: 0x5A, count: 4096)
            let hostile: [UInt64] = [
                frame << 12 | 1,                    // page index 1: only one page exists
                frame << 12 | 0xFFF,
                WorldLayout.frames << 12,            // first frame past the guest's memory
                0xFFFF_FFFF_FFFF_F000,               // the last frame number there is
                UInt64.max,
            ]
            for value in hostile {
                #expect(d.writeMSR(0x4000_0000, value: value, vcpu: 0) == .xen(.generalProtection), "\(side): \(value)")
            }
            let untouched = Self.page(world, dom1, frame: frame) == [UInt8](repeating: 0x5A, count: 4096)
            #expect(untouched, "\(side): nothing written")
            // A later good write over the same frame replaces every byte.
            #expect(d.writeMSR(0x4000_0000, value: frame << 12, vcpu: 0) == .xen(.done), "\(side)")
            let replaced = Self.page(world, dom1, frame: frame) == (0..<128).flatMap { Self.expectedStub($0, .vmx) }
            #expect(replaced, "\(side)")
        }
    }

    /// The number stub `n` loads into EAX, when it is `mov $imm32,%eax; vmcall; ret`.
    static func vmcallStubNumber(_ page: [UInt8], _ n: Int) -> UInt64? {
        let s = Array(page[(32 * n)..<(32 * n + 9)])
        guard s[0] == 0xB8, s[5...7] == [0x0F, 0x01, 0xC1], s[8] == 0xC3 else { return nil }
        return UInt64(s[1]) | UInt64(s[2]) << 8 | UInt64(s[3]) << 16 | UInt64(s[4]) << 24
    }

    /// Decodes a stub as the CPU would (only the three instructions Xen writes) and issues the
    /// call it makes: the page is only right if every stub reaches its own hypercall.
    @Test func everyStubIssuesItsOwnHypercall() {
        onBothWorlds(domains: 2) { world, side in
            let d = world.xenDomain(dom1)
            #expect(d.writeMSR(0x4000_0000, value: 23 << 12, vcpu: 0) == .xen(.done))
            let bytes = Self.page(world, dom1, frame: 23)
            for n in 0..<128 where n != 23 {
                guard let rax = Self.vmcallStubNumber(bytes, n) else { Issue.record("\(side): stub \(n) is not mov/vmcall/ret"); continue }
                #expect(rax == UInt64(n) && d.classifyHypercall(rax: rax, cpl: 0) == .xen, "\(side): stub \(n)")
            }
            // Stub 32 (event_channel_op) with EVTCHNOP_alloc_unbound gives a port, as a direct call does.
            guard let rax = Self.vmcallStubNumber(bytes, 32) else { Issue.record("\(side): stub 32"); return }
            world.writeArguments(dom1, size: 32, [(EvtchnAllocUnboundLayout.dom, UInt64(DomainID.selfDomain.rawValue)),
                                                  (EvtchnAllocUnboundLayout.remoteDom, UInt64(dom2.rawValue))])
            let r = world.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: rax, rdi: UInt64(EventChannelOp.allocUnbound.rawValue),
                                                                                 rsi: world.argumentAddress))
            #expect(r == 0 && world.readArgument(dom1, EvtchnAllocUnboundLayout.port) == 1, "\(side)")
        }
    }

    static let objdump = ["/usr/bin/objdump", "/usr/bin/x86_64-linux-gnu-objdump"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// An independent decoder: binutils disassembles the page, and every stub must read as
    /// Xen's stub does. Skipped (and reported as skipped) where binutils is absent.
    @Test(.enabled(if: objdump != nil, "binutils objdump is not installed"), arguments: [HardwareVirtualization.vmx, .svm])
    func hypercallPageDisassemblesToXenStubs(virtualization: HardwareVirtualization) throws {
        let world = NativeWorld(domains: 1, vcpus: 1, identity: XenGuestIdentity(virtualization: virtualization))
        #expect(world.xenDomain(dom1).writeMSR(0x4000_0000, value: 24 << 12, vcpu: 0) == .xen(.done))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("xv-hypercall-page-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(Self.page(world, dom1, frame: 24)).write(to: file)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.objdump!)
        process.arguments = ["-D", "-b", "binary", "-m", "i386:x86-64", file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        // "  405:\t0f 01 c1             \tvmcall" -> offset 0x405: "vmcall".
        var instructions: [Int: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard parts.count >= 3, let offset = Int(parts[0].trimmingCharacters(in: .whitespaces).dropLast(), radix: 16) else { continue }
            instructions[offset] = parts[2].split(whereSeparator: { $0 == " " }).joined(separator: " ")
        }
        let call = virtualization == .vmx ? "vmcall" : "vmmcall"
        for n in 0..<128 {
            let at = 32 * n
            if n == 23 {
                #expect(instructions[at] == "ud2", "stub 23")
                continue
            }
            #expect(instructions[at] == "mov $0x\(String(n, radix: 16)),%eax", "stub \(n)")
            #expect(instructions[at + 5] == call, "stub \(n)")
            #expect(instructions[at + 8] == "ret", "stub \(n)")
            #expect(instructions[at + 9] == "int3" && instructions[at + 31] == "int3", "stub \(n)")
        }
        #expect(instructions.count == 128 * 3 - 2 + 127 * 23 + 30, "every other byte is int3")
    }
}
