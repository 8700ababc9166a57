import Foundation
import XVSpecGen

/// Writes a line to standard error.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

// xv-specgen: Specs/**/*.tbl -> generated Swift and C.
//   xv-specgen [--root DIR]          write the generated files
//   xv-specgen [--root DIR] --check  exit 1 when a committed generated file is stale
// Errors in the tables are printed as `file:line: message`, and nothing is written.

var arguments = CommandLine.arguments.dropFirst()
var check = false
var root = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
while let arg = arguments.popFirst() {
    switch arg {
    case "--check": check = true
    case "--root":
        guard let dir = arguments.popFirst() else { printError("xv-specgen: --root needs a directory"); exit(2) }
        root = URL(fileURLWithPath: dir)
    case "-h", "--help":
        print("usage: xv-specgen [--root DIR] [--check]")
        exit(0)
    default:
        printError("xv-specgen: unknown argument '\(arg)'"); exit(2)
    }
}

let repository = SpecRepository(root: root)
let inputs: [(path: String, text: String)]
do { inputs = try repository.readSpecs() } catch {
    printError("xv-specgen: cannot read \(root.path)/Specs: \(error)"); exit(2)
}
let output = SpecGenerator.generate(inputs)
if !output.diagnostics.isEmpty {
    for d in output.diagnostics { printError("\(d)") }
    printError("xv-specgen: \(output.diagnostics.count) error(s); nothing written")
    exit(1)
}
if check {
    let stale = repository.stalePaths(output.files)
    if stale.isEmpty {
        print("xv-specgen: \(output.files.count) generated files are up to date (\(inputs.count) table files)")
        exit(0)
    }
    for path in stale { printError("stale: \(path)") }
    printError("xv-specgen: generated files are stale; run `swift run xv-specgen` and commit the result")
    exit(1)
}
do {
    let changed = try repository.write(output.files)
    for path in changed { print("wrote \(path)") }
    print("xv-specgen: \(output.files.count) files, \(changed.count) changed")
} catch {
    printError("xv-specgen: \(error)"); exit(2)
}
