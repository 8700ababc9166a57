import ArgumentParser

@main
struct XV: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xv",
        abstract: "XenViridian: Xen hypercalls translated onto the Viridian (Hyper-V) synthetic interface.",
        subcommands: [SpecsCommand.self, BenchCommand.self, ClockCommand.self, ConformanceCommand.self, KVMCommand.self, RunCommand.self]
    )
}
