/// The vectors that are known to fail, on which side and why (Specs/conformance/
/// known-deviations.txt): one line each, `NAME SIDE REASON`, SIDE one of native, translated or
/// both. A listed vector must fail where listed and pass elsewhere; one that passes where it
/// is listed fails the run, so the list never outlives the deviation.
public struct KnownDeviations: Sendable {
    /// One listed vector.
    public struct Entry: Sendable {
        /// The vector's name.
        public let name: String
        /// Where it is known to fail.
        public let sides: Set<ConformanceSide>
        /// Why: the deviation from Xen and where it is documented.
        public let reason: String
        /// `file:line` of the entry.
        public let location: String
    }
    /// The entries by vector name.
    public private(set) var entries: [String: Entry] = [:]

    /// An empty list: every vector must pass on both sides.
    public init() {}

    /// Parses a list (`NAME SIDE REASON` lines, `#` comments); a malformed or repeated entry throws with its `file:line`.
    public init(parsing text: String, file: String) throws(VectorSyntaxError) {
        var n = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            n += 1
            let line = VectorParser.stripComment(raw).trimmed
            guard !line.isEmpty else { continue }
            let words = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true).map(String.init)
            let location = "\(file):\(n)"
            guard words.count == 3, !words[2].trimmed.isEmpty else {
                throw VectorSyntaxError(location: location, message: "a deviation is `NAME native|translated|both REASON`")
            }
            let sides: Set<ConformanceSide>
            switch words[1] {
            case "native": sides = [.native]
            case "translated": sides = [.translated]
            case "both": sides = [.native, .translated]
            default: throw VectorSyntaxError(location: location, message: "`\(words[1])`: the side is native, translated or both")
            }
            guard entries[words[0]] == nil else { throw VectorSyntaxError(location: location, message: "`\(words[0])` is listed twice") }
            entries[words[0]] = Entry(name: words[0], sides: sides, reason: words[2].trimmed, location: location)
        }
    }
}

/// One vector's verdict.
public struct VectorVerdict: Sendable {
    /// The verdict.
    public enum Kind: Sendable, Equatable {
        /// Every step matched on both sides.
        case passed
        /// Failed where the list says it does, with its reason.
        case knownDeviation(String)
        /// A step did not match where no entry allows it, or a listed vector passes.
        case failed
    }
    /// The vector's name.
    public let name: String
    /// `file:line` where the vector starts.
    public let location: String
    /// The verdict.
    public let kind: Kind
    /// Per side, the first step that did not match (nil: every step did).
    public let failures: [ConformanceSide: VectorFailure]
    /// Why the verdict is `failed` when no step explains it (a listed vector that passes).
    public let note: String?

    /// The one-line report `xv conformance` prints.
    public var line: String {
        switch kind {
        case .passed: return "PASS \(name)"
        case .knownDeviation(let reason): return "DEVIATION \(name) (known: \(reason))"
        case .failed:
            var parts = [String]()
            if let note { parts.append(note) }
            for side in ConformanceSide.allCases { if let f = failures[side] { parts.append("\(side.rawValue): \(f)") } }
            return "FAIL \(name): " + parts.joined(separator: "; ")
        }
    }
}

extension KnownDeviations {
    /// Judges a vector's per-side results against the list.
    public func verdict(for vector: ConformanceVector, failures: [ConformanceSide: VectorFailure]) -> VectorVerdict {
        let failing = Set(failures.keys)
        guard let entry = entries[vector.name] else {
            return VectorVerdict(name: vector.name, location: vector.location, kind: failing.isEmpty ? .passed : .failed, failures: failures, note: nil)
        }
        if failing == entry.sides {
            return VectorVerdict(name: vector.name, location: vector.location, kind: .knownDeviation(entry.reason), failures: failures, note: nil)
        }
        let passing = entry.sides.subtracting(failing).map(\.rawValue).sorted().joined(separator: " and ")
        let note = passing.isEmpty ? "fails on a side \(entry.location) does not list"
                                   : "listed as a known deviation (\(entry.location)) but passes on \(passing): remove or correct the entry"
        return VectorVerdict(name: vector.name, location: vector.location, kind: .failed, failures: failures, note: note)
    }
}

/// A file's vectors run on both sides and judged.
public enum ConformanceSuite {
    /// Parses `text` (a vector file) and runs every vector on both sides; `progress` is called
    /// after each vector with its verdict.
    public static func run(_ text: String, file: String, deviations: KnownDeviations,
                           progress: (VectorVerdict) -> Void = { _ in }) throws(VectorSyntaxError) -> [VectorVerdict] {
        let vectors = try VectorParser.parse(text, file: file)
        var verdicts: [VectorVerdict] = []
        for v in vectors {
            var failures: [ConformanceSide: VectorFailure] = [:]
            for side in ConformanceSide.allCases {
                if let f = VectorRunner.run(v, file: file, on: side) { failures[side] = f }
            }
            let verdict = deviations.verdict(for: v, failures: failures)
            verdicts.append(verdict)
            progress(verdict)
        }
        return verdicts
    }
}

extension KnownDeviations {
    /// Adds another list's entries (names must not repeat; the caller checks).
    public mutating func merge(_ other: KnownDeviations) {
        for (k, v) in other.entries { entries[k] = v }
    }
}
