/// Checks the tables against each other and against themselves. The generator refuses to write
/// anything while a single diagnostic stands. Every check reports `file:line: message`.
public struct SpecValidator {
    public private(set) var diagnostics: [SpecDiagnostic] = []
    public init() {}

    public mutating func validate(_ set: SpecSet) {
        let tables = set.tables
        var tablesByID: [String: SpecTable] = [:]
        for table in tables {
            if let first = tablesByID[table.id] {
                error(table.location, "duplicate table id '\(table.id)' (first at \(first.location))")
            } else {
                tablesByID[table.id] = table
            }
        }
        for file in set.files {
            let interfaces = Set(file.tables.compactMap(\.interface))
            if interfaces.count > 1, let t = file.tables.first {
                error(t.location, "one file, one interface: \(file.path) mixes \(interfaces.map(\.rawValue).sorted().joined(separator: ", "))")
            }
        }
        for table in tables { validateHeader(table) }

        // Names are unique within an interface across every code table.
        var codeNames: [SpecInterface: [String: CodeRow]] = [:]
        for table in tables where table.kind?.isCode == true {
            guard let interface = table.interface else { continue }
            for row in table.codes {
                if let first = codeNames[interface]?[row.name] {
                    error(row.location, "duplicate name '\(row.name)' (first at \(first.location))")
                } else {
                    codeNames[interface, default: [:]][row.name] = row
                }
            }
        }
        // Swift type names are unique across the whole package, except `extend` tables which add
        // members to a hand-written type.
        var swiftTypes: [String: SpecTable] = [:]
        for table in tables {
            guard let type = swiftTypeName(of: table), table.representation != .extend else { continue }
            if let first = swiftTypes[type] {
                error(table.location, "Swift type '\(type)' is generated twice (first by table '\(first.id)' at \(first.location))")
            } else {
                swiftTypes[type] = table
            }
        }

        var structsByTag: [String: SpecTable] = [:]
        for table in tables where table.kind == .struct {
            guard let tag = table.cTag else { continue }
            if let first = structsByTag[tag] {
                error(table.location, "duplicate struct '\(tag)' (first at \(first.location))")
            } else {
                structsByTag[tag] = table
            }
        }

        for table in tables {
            switch table.kind {
            case .some(let k) where k.isCode: validateCodes(table)
            case .struct: validateStruct(table, structsByTag: structsByTag)
            case .bitfield: validateBits(table)
            default: break
            }
            if let parent = table.subopsOf {
                let hypercalls = tables.filter { $0.kind == .hypercall && $0.interface == table.interface }
                if !hypercalls.contains(where: { $0.codes.contains { $0.name == parent } }) {
                    error(table.location, "@subops names '\(parent)', which is no hypercall row")
                }
            }
        }

        validateGates(tables)

        let viridianNames = Set(tables.filter { $0.interface == .viridian }.flatMap { t in
            t.codes.map(\.name) + (t.cTag.map { [$0] } ?? []) + (t.kind == .bitfield ? [t.id] : [])
        })
        let errnoNames = Set(tables.filter { $0.interface == .xen && $0.kind == .errno }.flatMap { $0.codes.map(\.name) })
        for table in tables where table.kind == .disposition {
            validateDispositions(table, tablesByID: tablesByID, allTables: tables, viridianNames: viridianNames, errnoNames: errnoNames)
        }
        for table in tables where table.kind == .errnoMap {
            validateErrnoMap(table, tablesByID: tablesByID, errnoNames: errnoNames)
        }
    }

    /// The Swift type a table generates (or extends), if any.
    public func swiftTypeName(of table: SpecTable) -> String? {
        if table.kind == .struct { return table.swiftType ?? table.cTag.map { SwiftNaming.upperCamel($0) + "Layout" } }
        return table.swiftType
    }

    // MARK: - Per table

    private mutating func validateHeader(_ t: SpecTable) {
        if t.interface == nil { error(t.location, "table '\(t.id)' has no @interface") }
        guard let kind = t.kind else { return error(t.location, "table '\(t.id)' has no @kind") }
        if t.source == nil { error(t.location, "table '\(t.id)' has no @source (provenance is required)") }
        if kind.isCode {
            if t.swiftType == nil || t.rawType == nil { error(t.location, "code table '\(t.id)' needs @swift TYPE RAW") }
            if t.family == nil { error(t.location, "code table '\(t.id)' needs @family") }
            if t.codes.isEmpty { error(t.location, "table '\(t.id)' has no rows") }
        }
        switch kind {
        case .struct:
            if t.cSpelling == nil { error(t.location, "struct table '\(t.id)' needs @c struct|union TAG") }
            if t.size == nil { error(t.location, "struct table '\(t.id)' needs @size") }
            if t.fields.isEmpty { error(t.location, "table '\(t.id)' has no fields") }
        case .bitfield:
            if t.swiftType == nil { error(t.location, "bitfield table '\(t.id)' needs @swift TYPE") }
            if t.width == nil { error(t.location, "bitfield table '\(t.id)' needs @width") }
        case .disposition:
            if t.covers.isEmpty { error(t.location, "disposition table '\(t.id)' needs @covers") }
            if t.defaultDisposition == nil { error(t.location, "disposition table '\(t.id)' needs @default (the answer for unlisted numbers)") }
        case .errnoMap:
            if t.covers.isEmpty { error(t.location, "errno-map table '\(t.id)' needs @covers") }
            if t.defaultErrno == nil { error(t.location, "errno-map table '\(t.id)' needs @default ERRNO (the answer for unlisted values)") }
        default: break
        }
    }

    /// The bare attribute words a code row of this table may carry (Specs/README.md).
    static func allowedAttributes(_ t: SpecTable) -> Set<String> {
        var allowed: Set<String> = ["nolinux"]
        if t.interface == .viridian, t.kind == .hypercall || t.kind == .msr || t.kind == .status
            || t.kind == .message || t.kind == .flag {
            allowed.insert("ref")
        }
        switch t.kind {
        case .hypercall: allowed.formUnion(["simple", "rep", "fast"])
        case .msr: allowed.formUnion(["ro", "rw", "wo"])
        default: break
        }
        return allowed
    }

    /// `gate=ROW` must name a row of a Viridian flag table (a CPUID privilege, feature or
    /// recommendation bit).
    private mutating func validateGates(_ tables: [SpecTable]) {
        var flagRows: Set<String> = []
        for t in tables where t.interface == .viridian && t.kind == .flag && ReferenceEmitter.gateMembers[t.id] != nil {
            for r in t.codes { flagRows.insert(r.name) }
        }
        for t in tables where t.kind?.isCode == true {
            for row in t.codes {
                for gate in row.gates where !flagRows.contains(gate) {
                    error(row.location, "\(row.name): gate '\(gate)' is no row of a CPUID privilege, feature or recommendation table (\(ReferenceEmitter.gateMembers.keys.sorted().joined(separator: ", ")))")
                }
            }
        }
    }

    private mutating func validateCodes(_ t: SpecTable) {
        guard let raw = t.rawType, let info = SpecParser.rawTypes[raw] else { return }
        var byValue: [SpecValue: CodeRow] = [:]
        var byName: [String: CodeRow] = [:]
        var bySwift: [String: CodeRow] = [:]
        for row in t.codes { byName[row.name] = row }
        for row in t.codes {
            // Range of the raw type.
            if row.value.isNegative {
                if !info.signed { error(row.location, "\(row.name): negative value in unsigned \(raw)") }
                else if row.value.magnitude > (UInt64(1) << UInt64(info.bits - 1)) { error(row.location, "\(row.name): \(row.value) does not fit \(raw)") }
            } else {
                let limit: UInt64 = info.bits == 64 ? (info.signed ? UInt64(Int64.max) : UInt64.max)
                    : (UInt64(1) << UInt64(info.signed ? info.bits - 1 : info.bits)) - 1
                if row.value.magnitude > limit { error(row.location, "\(row.name): \(row.value) does not fit \(raw)") }
            }
            // Aliased numbers must be declared.
            if let alias = row.alias {
                guard let target = byName[alias] else {
                    error(row.location, "\(row.name): alias '\(alias)' is no row of table '\(t.id)'")
                    continue
                }
                if target.value != row.value { error(row.location, "\(row.name): alias of \(alias) but \(row.value) != \(target.value)") }
            } else if t.representation == .namespace {
                // A namespace is a bag of limits and sizes, not a code space: shared values are normal.
            } else if let first = byValue[row.value] {
                error(row.location, "\(row.name) aliases the number \(row.value) of \(first.name) (\(first.location)); declare alias=\(first.name) if intended")
            } else {
                byValue[row.value] = row
            }
            // Bare attributes are data the emitters read: a misspelt one would be silently lost.
            let allowed = Self.allowedAttributes(t)
            for flag in row.flags where !allowed.contains(flag) {
                error(row.location, "\(row.name): unknown attribute '\(flag)' (a \(t.kind?.rawValue ?? "?") row takes \(allowed.sorted().joined(separator: ", ")))")
            }
            if row.flags.contains("simple") && row.flags.contains("rep") {
                error(row.location, "\(row.name): a call is `simple` or `rep`, not both")
            }
            if ["ro", "rw", "wo"].filter(row.flags.contains).count > 1 {
                error(row.location, "\(row.name): an MSR has one access: ro, rw or wo")
            }
            if !row.gates.isEmpty && !row.isImplementedByReference {
                error(row.location, "\(row.name): gate= only means something on a `ref` row")
            }
            // Swift names.
            let member = SwiftNaming.memberName(for: row.name, prefix: t.prefix, override: row.swiftName)
            if SwiftNaming.forbidden.contains(member) || !SwiftNaming.isValidIdentifier(member) {
                error(row.location, "\(row.name): Swift name '\(member)' is not usable; give swift=NAME")
            } else if let first = bySwift[member] {
                error(row.location, "\(row.name): Swift name '\(member)' collides with \(first.name) (\(first.location)); give swift=NAME")
            } else {
                bySwift[member] = row
            }
        }
    }

    private mutating func validateStruct(_ t: SpecTable, structsByTag: [String: SpecTable]) {
        guard let size = t.size else { return }
        var byName: [String: FieldRow] = [:]
        var bySwift: [String: FieldRow] = [:]
        for field in t.fields {
            if byName[field.name] != nil {
                error(field.location, "duplicate field '\(field.name)'"); continue
            }
            if field.offset < 0 || field.size <= 0 { error(field.location, "\(field.name): offset and size must be positive") }
            if field.offset + field.size > size {
                error(field.location, "\(field.name): bytes \(field.offset)..<\(field.offset + field.size) run past the struct's size \(size)")
            }
            if field.size % field.count != 0 { error(field.location, "\(field.name): size \(field.size) is not a multiple of count \(field.count)") }
            // A dotted field lives inside its parent.
            if let dot = field.name.lastIndex(of: ".") {
                let parentName = String(field.name[..<dot])
                if let parent = byName[parentName] {
                    if field.offset < parent.offset || field.offset + field.size > parent.offset + parent.size {
                        error(field.location, "\(field.name) lies outside its parent \(parentName)")
                    }
                    if parent.typeRef != nil { error(field.location, "\(field.name): parent \(parentName) has type=, whose fields are expanded from its table") }
                } else {
                    error(field.location, "\(field.name): parent field '\(parentName)' is not declared before it")
                }
            }
            if let ref = field.typeRef {
                if let target = structsByTag[ref], let targetSize = target.size {
                    if targetSize * field.count != field.size {
                        error(field.location, "\(field.name): type \(ref) is \(targetSize) bytes, × \(field.count) != \(field.size)")
                    }
                } else {
                    error(field.location, "\(field.name): type '\(ref)' is no struct table")
                }
            }
            let swift = field.swiftName ?? SwiftNaming.lowerCamel(field.name)
            if SwiftNaming.forbidden.contains(swift) || swift == "size" || !SwiftNaming.isValidIdentifier(swift) {
                error(field.location, "\(field.name): Swift name '\(swift)' is not usable; give swift=NAME")
            } else if let first = bySwift[swift] {
                error(field.location, "\(field.name): Swift name '\(swift)' collides with \(first.name) (\(first.location)); give swift=NAME")
            } else {
                bySwift[swift] = field
            }
            byName[field.name] = field
        }
        // Expanded members (from type= references) must not collide with declared ones.
        var expandedNames: [String: ExpandedField] = [:]
        for f in StructExpansion.expand(t, structsByTag: structsByTag) {
            if let first = expandedNames[f.swiftName], first.name != f.name {
                error(f.location, "\(f.name): Swift name '\(f.swiftName)' collides with \(first.name) after expansion; give swift=NAME")
            }
            expandedNames[f.swiftName] = f
        }
        // Siblings must not overlap unless their parent is a union.
        var siblings: [String: [FieldRow]] = [:]
        for field in t.fields {
            let parent = field.name.lastIndex(of: ".").map { String(field.name[..<$0]) } ?? ""
            siblings[parent, default: []].append(field)
        }
        for (parent, group) in siblings {
            let parentIsUnion = parent.isEmpty ? t.isUnion : (byName[parent]?.isUnion ?? false)
            if parentIsUnion { continue }
            let sorted = group.sorted { $0.offset < $1.offset }
            for (a, b) in zip(sorted, sorted.dropFirst()) where a.offset + a.size > b.offset {
                error(b.location, "\(b.name) overlaps \(a.name) (\(a.location)); mark the parent 'union' if they share storage")
            }
        }
    }

    private mutating func validateBits(_ t: SpecTable) {
        guard let width = t.width else { return }
        var seen: [String: BitRow] = [:]
        let sorted = t.bits.sorted { $0.low < $1.low }
        for row in t.bits {
            if row.low > row.high { error(row.location, "\(row.name): low bit \(row.low) above high bit \(row.high)") }
            if row.high >= width { error(row.location, "\(row.name): bit \(row.high) is outside a \(width)-bit register") }
            if !row.isNamed { continue }
            if let first = seen[row.name] { error(row.location, "duplicate bit field '\(row.name)' (first at \(first.location))") }
            seen[row.name] = row
        }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.high >= b.low {
            error(b.location, "bit field \(b.name) (\(b.low):\(b.high)) overlaps \(a.name) (\(a.low):\(a.high)) at \(a.location)")
        }
    }

    private mutating func validateDispositions(
        _ t: SpecTable, tablesByID: [String: SpecTable], allTables: [SpecTable],
        viridianNames: Set<String>, errnoNames: Set<String>
    ) {
        let covered = coveredRows(of: t, tablesByID: tablesByID)
        var seen: [String: DispositionRow] = [:]
        var rows = t.dispositions
        if let d = t.defaultDisposition { rows.append(d) }
        for row in rows {
            if row.xen != "*" {
                if covered[row.xen] == nil { error(row.location, "'\(row.xen)' is no row of the covered tables (\(t.covers.joined(separator: ", ")))") }
                if let first = seen[row.xen] { error(row.location, "second disposition for \(row.xen) (first at \(first.location))") }
                seen[row.xen] = row
            }
            switch row.disposition {
            case .translated:
                if row.viridian.isEmpty { error(row.location, "\(row.xen): 'translated' needs the Viridian calls, MSRs or pages it uses") }
                if row.errno != nil { error(row.location, "\(row.xen): 'translated' takes no errno (use -)") }
            case .layer:
                if !row.viridian.isEmpty { error(row.location, "\(row.xen): 'layer' means no Viridian call (use -)") }
                if row.errno != nil { error(row.location, "\(row.xen): 'layer' takes no errno (use -)") }
            case .rejected:
                if row.errno == nil { error(row.location, "\(row.xen): 'rejected' needs the XEN_E* it answers") }
                if !row.viridian.isEmpty { error(row.location, "\(row.xen): 'rejected' means no Viridian call (use -)") }
            case .subops:
                if !allTables.contains(where: { $0.subopsOf == row.xen }) {
                    error(row.location, "\(row.xen): 'subops' but no table declares @subops \(row.xen)")
                }
            }
            for v in row.viridian where !viridianNames.contains(v) {
                error(row.location, "\(row.xen): '\(v)' is no Viridian row")
            }
            if let e = row.errno, !errnoNames.contains(e) { error(row.location, "\(row.xen): '\(e)' is no XEN_E* row") }
        }
        // Every covered row needs a disposition.
        for (name, row) in covered where seen[name] == nil {
            error(row.location, "\(name) has no disposition in table '\(t.id)' (\(t.location))")
        }
    }

    private mutating func validateErrnoMap(_ t: SpecTable, tablesByID: [String: SpecTable], errnoNames: Set<String>) {
        let covered = coveredRows(of: t, tablesByID: tablesByID)
        if let d = t.defaultErrno, !errnoNames.contains(d) { error(t.location, "@default '\(d)' is no XEN_E* row") }
        var seen: [String: ErrnoMapRow] = [:]
        for row in t.errnoMaps {
            if covered[row.from] == nil { error(row.location, "'\(row.from)' is no row of the covered tables") }
            if let first = seen[row.from] { error(row.location, "second mapping for \(row.from) (first at \(first.location))") }
            seen[row.from] = row
            if let e = row.errno, !errnoNames.contains(e) { error(row.location, "\(row.from): '\(e)' is no XEN_E* row") }
        }
        for (name, row) in covered where seen[name] == nil {
            error(row.location, "\(name) has no errno mapping in table '\(t.id)' (\(t.location))")
        }
    }

    /// The rows a disposition or errno-map table must cover, by name. An alias shares its
    /// target's number, so it shares its answer too and needs no row of its own.
    private mutating func coveredRows(of t: SpecTable, tablesByID: [String: SpecTable]) -> [String: CodeRow] {
        var covered: [String: CodeRow] = [:]
        for id in t.covers {
            guard let target = tablesByID[id] else { error(t.location, "@covers names table '\(id)', which does not exist"); continue }
            for row in target.codes where row.alias == nil { covered[row.name] = row }
        }
        return covered
    }

    private mutating func error(_ location: SpecLocation, _ message: String) {
        diagnostics.append(SpecDiagnostic(location, message))
    }
}
