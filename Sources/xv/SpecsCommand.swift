import ArgumentParser
import XVSpecCatalog

/// `xv specs`: the spec tables as data.
struct SpecsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "specs",
        abstract: "List every spec row (Xen, Viridian and translation tables).",
        discussion: "With --json, prints one JSON array with an object per row; the format is in README.md."
    )

    @Flag(help: "Print every row as one JSON array.")
    var json = false

    @Option(help: "Only rows of this interface: xen, viridian or translation.")
    var interface: String?

    func run() throws {
        if let interface, !["xen", "viridian", "translation"].contains(interface) {
            throw ValidationError("--interface takes xen, viridian or translation")
        }
        let rows = SpecRows.all(interface: interface)
        if json {
            var out = ""
            JSONValue.array(rows).write(into: &out, indent: 1)
            print(out)
            return
        }
        for row in rows {
            guard case .object(let pairs) = row else { continue }
            print(pairs.filter { $0.0 != "fields" && $0.0 != "note" }.map { key, value in
                var s = ""
                value.write(into: &s)
                return "\(key)=\(s)"
            }.joined(separator: " "))
        }
        print("\(rows.count) rows from \(SpecCatalog.tables.count) tables")
    }
}
