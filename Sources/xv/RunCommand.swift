import ArgumentParser
import Foundation
import XVKVMHost

/// `xv run PATH`: boots an unmodified PVH-entry ELF kernel on KVM, its Xen hypercalls answered
/// by the translated side (the default) or the native one; its console goes to standard
/// output, and its shutdown reason becomes the exit status.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Boot a PVH ELF kernel on KVM with its Xen hypercalls answered by the library (translated by default, or --native).",
        discussion: """
            Exit status: 0 when every domain powered off; 1 when one crashed or the host stopped it \
            (a triple fault, an exit it cannot complete); 3 reboot, 4 suspend, 5 watchdog; 124 when \
            the timeout passed first; 2 when there is no KVM or the image cannot be booted.
            """
    )

    @Argument(help: "The kernel: an ELF image with a XEN_ELFNOTE_PHYS32_ENTRY note.")
    var kernel: String

    @Flag(help: "Answer with the native baseline (Xen's own handling).")
    var native = false

    @Flag(help: "Answer with the translation layer over the reference Viridian hypervisor (the default).")
    var translated = false

    @Option(help: "The kernel command line (hvm_start_info's).")
    var cmdline = ""

    @Option(help: "Guest RAM in MiB.")
    var memory = 64

    @Option(help: "vCPUs per domain (1 ... 32); vCPU 0 starts at the PVH entry, the others at VCPUOP_up or the guest's INIT/SIPI.")
    var vcpus = 1

    @Option(help: "Wall-clock limit in seconds.")
    var timeout = 60.0

    @Option(name: .customLong("peer"), help: "A second domain: another PVH kernel (domain 2), with --peer-cmdline.")
    var peer: String?

    @Option(name: .customLong("peer-cmdline"), help: "The second domain's command line.")
    var peerCmdline = ""

    @Option(help: "Patch the inline VMCALL/VMMCALL of these functions of the kernel's symbol table (comma-separated; default: Linux's Xen hypercall entry points).")
    var patchSymbols = XenKernelPatch.linuxHypercallFunctions.joined(separator: ",")

    @Option(help: "CPU features to hide from the guest's CPUID, comma-separated (\(XenHostCPUFeature.known.map(\.name).joined(separator: ", "))): for a KVM that cannot run them.")
    var hide = ""

    @Flag(help: "Print the exits by kind when the run ends.")
    var exits = false

    @Option(help: "Write the run's hypercalls as a conformance vector (Specs/README.md's format) to this file.")
    var vector: String?

    @Option(help: "The KVM device.")
    var device = "/dev/kvm"

    func validate() throws {
        if native && translated { throw ValidationError("--native and --translated: choose one side") }
    }

    func run() throws {
        let kvm: KVMDevice
        do { kvm = try KVMDevice(path: device) } catch {
            print("xv run: no KVM here: \(error)")
            throw ExitCode(2)
        }
        var guests: [XenHostConfiguration.Guest] = []
        for (path, line, name) in [(kernel, cmdline, "guest")] + (peer.map { [($0, peerCmdline, "peer")] } ?? []) {
            do {
                let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
                var image = try PVHImage(elf: bytes)
                let patched = XenKernelPatch.patch(&image, functions: patchSymbols.split(separator: ",").map(String.init))
                if patched > 0 {
                    FileHandle.standardError.write(Data("xv run: \(path): \(patched) inline VMCALL/VMMCALL sent to the hypercall port\n".utf8))
                } else if !patchSymbols.isEmpty {
                    // A stripped image, or none of the functions: say so, since its inline VMCALLs then never reach the library.
                    FileHandle.standardError.write(Data("xv run: \(path): no inline VMCALL/VMMCALL patched (no symbol table, or none of --patch-symbols in it); inline ones go to KVM, which answers them itself, and only calls through the hypercall page reach the library\n".utf8))
                }
                guests.append(XenHostConfiguration.Guest(image: image, commandLine: line, name: name, memoryMiB: memory, vcpus: vcpus))
            } catch {
                print("xv run: \(path): \(error)")
                throw ExitCode(2)
            }
        }
        var configuration = XenHostConfiguration(side: native ? .native : .translated, guests: guests, timeout: .milliseconds(Int(timeout * 1000)),
                                                 echo: true, recordHypercalls: vector != nil)
        for name in hide.split(separator: ",") {
            guard let f = XenHostCPUFeature.named(String(name)) else { throw ValidationError("--hide: unknown feature \(name)") }
            configuration.hiddenFeatures.append(f)
        }
        let result: XenHostResult
        do { result = try XenHost(device: kvm, configuration: configuration).run() } catch {
            print("xv run: \(error)")
            throw ExitCode(2)
        }
        for d in result.domains {
            let reason = d.shutdownReason.map { "shutdown reason \($0)" } ?? d.fault.map { "stopped: \($0)" } ?? "still running"
            FileHandle.standardError.write(Data("xv run: domain \(d.id) (\(d.name)), \(result.side.rawValue): \(reason); \(d.exits.total) exits\n".utf8))
            if exits { FileHandle.standardError.write(Data(XenHostReport.exits(d.exits).utf8)) }
        }
        if result.timedOut { FileHandle.standardError.write(Data("xv run: timed out after \(timeout) s\n".utf8)) }
        if let vector {
            try XenHostReport.conformanceVector(result, name: URL(fileURLWithPath: kernel).lastPathComponent).write(toFile: vector, atomically: true, encoding: .utf8)
        }
        if result.exitStatus != 0 { throw ExitCode(result.exitStatus) }
    }
}
