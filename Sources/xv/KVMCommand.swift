import ArgumentParser
import XVKVMHost

/// `xv kvm`: what this machine's KVM offers the KVM host, or, in one line, why there is none.
struct KVMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvm",
        abstract: "Report what /dev/kvm offers the KVM host (API version, Xen and debug capabilities), or why it cannot be used."
    )

    @Option(help: "The KVM device.")
    var device = "/dev/kvm"

    func run() throws {
        do {
            let kvm = try KVMDevice(path: device)
            print(kvm.summary)
        } catch {
            print("no KVM here: \(error)")
            throw ExitCode(2)
        }
    }
}
