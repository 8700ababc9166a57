import CFuzzDriver
import XVConformance

/// libFuzzer's entry: any bytes as a conformance-vector file (Specs/README.md). The parser
/// must return vectors or a `file:line` syntax error, never trap, and a vector it accepts must
/// parse again from the same text to the same names.
/// The executable's entry (SwiftPM names it `fuzz_vector_parser_main`): libFuzzer's driver over `fuzzVectorParser`.
@_cdecl("fuzz_vector_parser_main")
public func main(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector) { data, size in fuzzVectorParser(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVectorParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let vectors = try VectorParser.parse(text, file: "fuzz.vec")
        let again = try VectorParser.parse(text, file: "fuzz.vec")
        precondition(vectors.map(\.name) == again.map(\.name), "the parser is not deterministic")
    } catch {
        precondition(error.description.hasPrefix("fuzz.vec:"), "a syntax error without its file:line: \(error)")
    }
    return 0
}
