import ArgumentParser
import XVSpecCatalog

struct SpecsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "specs", abstract: "List every spec row.")
    func run() throws {}
}
