import Foundation
import Testing
import XVKVMHost

/// The project's tiny guest (Guests/tiny, built from source by its build.sh) booted on KVM
/// through the library's C ABI, over both sides: the same console, the same shutdown reason
/// and the same hypercall results. Skipped, with the reason, where /dev/kvm cannot be opened
/// or the guest cannot be built here (no clang, no libxen-dev headers); a build that fails
/// for any other reason fails the test.
@Suite("Tiny guest on KVM", .serialized)
struct TinyGuestTests {
    /// The guest image, built once per test process into a temporary directory.
    static let image: Result<PVHImage, TinyGuestUnavailable> = build()

    struct TinyGuestUnavailable: Error, CustomStringConvertible {
        let description: String
        let isSkip: Bool
    }

    static func build() -> Result<PVHImage, TinyGuestUnavailable> {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        guard FileManager.default.fileExists(atPath: "/usr/include/xen/xen.h") else {
            return .failure(TinyGuestUnavailable(description: "no Xen public headers (libxen-dev)", isSkip: true))
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("xv-tiny-\(getpid())")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [root.appendingPathComponent("Guests/tiny/build.sh").path, out.path]
        let pipe = Pipe()
        p.standardError = pipe
        p.standardOutput = pipe
        do { try p.run() } catch { return .failure(TinyGuestUnavailable(description: "cannot run build.sh: \(error)", isSkip: false)) }
        let log = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let noCompiler = log.contains("clang: command not found") || log.contains("ld.lld: command not found")
            return .failure(TinyGuestUnavailable(description: "build.sh failed: \(log)", isSkip: noCompiler))
        }
        do {
            return .success(try PVHImage(elf: [UInt8](Data(contentsOf: out.appendingPathComponent("tiny.elf")))))
        } catch {
            return .failure(TinyGuestUnavailable(description: "tiny.elf: \(error)", isSkip: false))
        }
    }

    /// The device and the image, or nil with the skip recorded (or the build failure raised).
    static func prerequisites() throws -> (KVMDevice, PVHImage)? {
        guard let kvm = KVMHostTests.device() else { return nil }
        switch image {
        case .success(let i): return (kvm, i)
        case .failure(let e) where e.isSkip:
            print("tiny guest tests skipped: \(e)")
            return nil
        case .failure(let e): throw e
        }
    }

    static func run(_ kvm: KVMDevice, _ side: XenHostConfiguration.Side, _ guests: [XenHostConfiguration.Guest]) throws -> XenHostResult {
        try XenHost(device: kvm, configuration: XenHostConfiguration(side: side, guests: guests, timeout: .seconds(120), recordHypercalls: true)).run()
    }

    /// Console lines without the guest's timings (the bench lines measure; they are not results).
    static func results(_ d: XenHostResult.Domain) -> [String] { d.console.filter { !$0.hasPrefix("bench:") } }

    @Test("one domain: Xen found, hypercall page, shared_info, vcpu_info, upcalls, timers, block, poll, hostile calls, a second vCPU and shutdown, alike on both sides")
    func oneDomainBothSides() throws {
        guard let (kvm, image) = try Self.prerequisites() else { return }
        let guest = XenHostConfiguration.Guest(image: image, commandLine: "bench=50 smp=1", name: "tiny", vcpus: 2)
        let native = try Self.run(kvm, .native, [guest])
        let translated = try Self.run(kvm, .translated, [guest])
        for r in [native, translated] {
            let d = r.domains[0]
            #expect(!r.timedOut, "\(r.side): timed out; console \(d.console)")
            #expect(d.shutdownReason == 0, "\(r.side): \(d.fault ?? "no fault"); console \(d.console)")
            #expect(d.console.contains("tiny: Xen 4.17"))
            #expect(d.console.contains("tiny: IPI upcall taken on vector 0xf3"))
            #expect(d.console.contains("tiny: one-shot timer fired after its deadline"))
            #expect(d.console.contains("tiny: SCHEDOP_block woke for the timer"))
            #expect(d.console.contains("tiny: SCHEDOP_poll returned after its timeout"))
            #expect(d.console.contains("tiny: hostile calls: unknown -38, unmapped argument -14, bad port -22, far frame -22"))
            #expect(d.console.contains { $0.hasPrefix("tiny: vCPU 1 came up (is_up 1), took its IPI upcall on port") })
            #expect(d.hypercalls.contains { $0.vcpu == 1 }, "vCPU 1's thread made its own calls")
            #expect(d.console.last == "tiny: done")
            #expect(!d.console.contains { $0.contains("FAIL") })
            #expect(d.console.filter { $0.hasPrefix("bench:") }.count == 4)
            #expect(d.exits.msr == 1, "one WRMSR: the hypercall page")
            #expect(r.exitStatus == 0)
        }
        #expect(Self.results(native.domains[0]) == Self.results(translated.domains[0]))
        // The same calls with the same results, in the same order on each vCPU; vCPU 0's
        // VCPUOP_is_up polls while vCPU 1 goes down depend on timing and are left out.
        let calls = { (r: XenHostResult) in
            r.domains[0].hypercalls.filter { !($0.number == 24 && $0.arguments[0] == 3) }.map { "v\($0.vcpu) \($0.number) \($0.arguments[0]) => \($0.result)" }
        }
        #expect(calls(native) == calls(translated))
        #expect(native.domains[0].hypercalls.count > 200, "the bench loops ran through the hypercall port")
    }

    @Test("two domains: xenstore, a grant, an interdomain port and a ring of 24 requests, alike on both sides")
    func twoDomainsRing() throws {
        guard let (kvm, image) = try Self.prerequisites() else { return }
        let guests = [XenHostConfiguration.Guest(image: image, commandLine: "role=front peer=2", name: "front"),
                      XenHostConfiguration.Guest(image: image, commandLine: "role=back peer=1", name: "back")]
        let native = try Self.run(kvm, .native, guests)
        let translated = try Self.run(kvm, .translated, guests)
        for r in [native, translated] {
            #expect(!r.timedOut, "\(r.side): timed out; \(r.domains.map(\.console))")
            for d in r.domains { #expect(d.shutdownReason == 0, "\(r.side) \(d.name): \(d.fault ?? "-"); \(d.console)") }
            #expect(r.domains[0].console.contains("tiny: xenstore says domid 1, name front"))
            #expect(r.domains[1].console.contains("tiny: xenstore says domid 2, name back"))
            #expect(r.domains[0].console.contains("tiny: front got 24 responses, sum 4924"))
            #expect(r.domains[0].console.contains("tiny: front ended the grant (in use: 0)"))
            #expect(r.domains[1].console.contains("tiny: back served 24 requests"))
        }
        for i in 0..<2 { #expect(Self.results(native.domains[i]) == Self.results(translated.domains[i])) }
        // How often each side waited and notified depends on timing; the grant, memory and
        // binding calls and their results do not.
        let setup: Set<UInt64> = [12, 20]   // memory_op, grant_table_op
        let calls = { (r: XenHostResult, i: Int) in r.domains[i].hypercalls.filter { setup.contains($0.number) }.map { "\($0.number) \($0.arguments[0]) => \($0.result)" } }
        for i in 0..<2 { #expect(calls(native, i) == calls(translated, i)) }
        #expect(calls(native, 1).contains("20 0 => 0"), "GNTTABOP_map_grant_ref succeeded")
    }

    @Test("hostile guests: a hypercall-page MSR past memory gets #GP; a store ring index a ring ahead breaks the connection; a guest that never reads its store replies is read no further, on both sides")
    func hostileGuests() throws {
        guard let (kvm, image) = try Self.prerequisites() else { return }
        for side in [XenHostConfiguration.Side.native, .translated] {
            let msr = try Self.run(kvm, side, [.init(image: image, commandLine: "badmsr=1", name: "badmsr")]).domains[0]
            #expect(msr.console.contains { $0.hasPrefix("tiny: FAIL exception 13 at rip") }, "\(side): \(msr.console)")
            #expect(msr.shutdownReason == 3, "the guest's #GP handler crashes the domain")
            #expect(msr.exits.msr == 2, "the good WRMSR, then the refused one")
            let store = try Self.run(kvm, side, [.init(image: image, commandLine: "role=none xshostile=1", name: "xs")]).domains[0]
            #expect(store.console.contains("tiny: hostile store ring: error 2"), "\(side): \(store.console)")   // XENSTORE_ERROR_RINGIDX
            #expect(store.shutdownReason == 0)
            let flood = try Self.run(kvm, side, [.init(image: image, commandLine: "role=none xsflood=1", name: "flood")]).domains[0]
            #expect(flood.console.contains("tiny: store flood: the server stopped reading: yes"), "\(side): \(flood.console)")
        }
    }

    @Test("a guest that never shuts down is stopped at the timeout, with status 124")
    func hangingGuestTimesOut() throws {
        guard let kvm = KVMHostTests.device() else { return }
        // A PVH image whose entry is `cli; hlt` forever (32-bit code at 1 MiB).
        let image = try PVHImage(elf: PVHImageTests.image(code: [0xFA, 0xF4, 0xEB, 0xFC]))
        let r = try XenHost(device: kvm, configuration: XenHostConfiguration(side: .translated, guests: [.init(image: image, name: "hang")], timeout: .milliseconds(500))).run()
        #expect(r.timedOut)
        #expect(r.exitStatus == 124)
        #expect(r.domains[0].shutdownReason == nil)
    }
}
