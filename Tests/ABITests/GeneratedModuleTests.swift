import GuestABI
import Testing
import ViridianABI
import XVSpecCatalog
import XenABI
import XenCore

/// The generated ABI modules hold what the spec tables say: every constant, every layout, every
/// bit-field accessor, every disposition and errno mapping, read back through the modules' own
/// public API (ABIModuleValues is generated alongside, from the same tables).
@Suite("Generated ABI modules agree with the spec catalog")
struct GeneratedModuleTests {
    @Test("every code row's value, as the module holds it")
    func constants() {
        let module = Dictionary(ABIModuleValues.constants, uniquingKeysWith: { a, _ in a })
        #expect(module.count == SpecCatalog.constants.count)
        for row in SpecCatalog.constants {
            guard let value = module[row.name] else { Issue.record("\(row.name) (\(row.location)) missing from the module"); continue }
            #expect(value == ModuleInteger(magnitude: row.magnitude, isNegative: row.isNegative), "\(row.name) at \(row.location)")
        }
    }

    @Test("every struct layout: catalog numbers, fields inside the struct, arrays divide evenly")
    func layouts() {
        let module = Dictionary(ABIModuleValues.structs.map { ($0.0, ($0.1, $0.2)) }, uniquingKeysWith: { a, _ in a })
        #expect(module.count == SpecCatalog.structs.count)
        for row in SpecCatalog.structs {
            guard let (size, fields) = module[row.name] else { Issue.record("\(row.name) missing"); continue }
            #expect(size == row.size, "\(row.cSpelling)")
            #expect(fields.count == row.fields.count, "\(row.cSpelling)")
            for (spec, (name, field)) in zip(row.fields, fields) {
                #expect(spec.name == name)
                #expect(field == ABIField(offset: spec.offset, size: spec.size, count: spec.count), "\(row.name).\(name)")
                #expect(field.offset >= 0 && field.end <= size, "\(row.name).\(name) runs outside the struct")
                #expect(field.count >= 1 && field.size % field.count == 0, "\(row.name).\(name) count")
            }
        }
    }

    @Test("every bit-field accessor sets exactly its bits; RsvdZ and RsvdP masks are the reserved and preserved rows")
    func bitfields() {
        let module = Dictionary(ABIModuleValues.bitfields.map { ($0.0, ($0.1, $0.2, $0.3)) }, uniquingKeysWith: { a, _ in a })
        #expect(module.count == SpecCatalog.bitfields.count)
        for row in SpecCatalog.bitfields {
            guard let (reservedMask, preservedMask, accessors) = module[row.name] else { Issue.record("\(row.name) missing"); continue }
            func mask(_ b: SpecBit) -> UInt64 {
                let width = b.high - b.low + 1
                return (width == 64 ? UInt64.max : (UInt64(1) << UInt64(width)) - 1) << UInt64(b.low)
            }
            let reserved = row.fields.filter { $0.name == "reserved" }.reduce(UInt64(0)) { $0 | mask($1) }
            let preserved = row.fields.filter { $0.name == "preserved" }.reduce(UInt64(0)) { $0 | mask($1) }
            #expect(reservedMask == reserved, "\(row.name) reserved (RsvdZ) mask")
            #expect(preservedMask == preserved, "\(row.name) preserved (RsvdP) mask")
            #expect(reservedMask & preservedMask == 0)
            let named = row.fields.filter { $0.name != "reserved" && $0.name != "preserved" }
            #expect(accessors.count == named.count)
            var seen: UInt64 = 0
            for (spec, (name, setMask)) in zip(named, accessors) {
                #expect(spec.name == name)
                #expect(setMask == mask(spec), "\(row.name).\(name): accessor sets \(setMask), spec bits \(spec.low):\(spec.high)")
                #expect(setMask & (reservedMask | preservedMask) == 0 && setMask & seen == 0, "\(row.name).\(name) overlaps")
                seen |= setMask
            }
        }
    }

    @Test("every disposition the generated switches return is the row's")
    func dispositions() {
        let module = Dictionary(ABIModuleValues.dispositions, uniquingKeysWith: { a, _ in a })
        let errnos = Dictionary(ABIModuleValues.constants, uniquingKeysWith: { a, _ in a })
        #expect(!SpecCatalog.dispositions.isEmpty)
        for row in SpecCatalog.dispositions {
            guard let got = module[row.xen] else { Issue.record("\(row.xen) has no generated disposition"); continue }
            switch (row.disposition, got) {
            case ("translated", .translated), ("layer", .layer), ("subops", .subops): break
            case ("rejected", .rejected(let e)):
                #expect(errnos[row.errno ?? ""] == ModuleInteger(e.rawValue), "\(row.xen): errno")
            default:
                Issue.record("\(row.xen) (\(row.location)): spec says \(row.disposition), module says \(got)")
            }
        }
        // Numbers no row lists get the table's default.
        for (table, _, got) in ABIModuleValues.defaultDispositions {
            guard let spec = SpecCatalog.defaultDispositions.first(where: { $0.xen == table }) else {
                Issue.record("\(table) has no @default"); continue
            }
            if case .rejected(let e) = got {
                #expect(spec.disposition == "rejected" && errnos[spec.errno ?? ""] == ModuleInteger(e.rawValue), "\(table)")
            } else {
                Issue.record("\(table): default answer \(got) is not a rejection")
            }
        }
    }

    @Test("every errno mapping the generated switches return is the row's")
    func errnoMappings() {
        let module = Dictionary(ABIModuleValues.errnoMappings, uniquingKeysWith: { a, _ in a })
        let errnos = Dictionary(ABIModuleValues.constants, uniquingKeysWith: { a, _ in a })
        #expect(!SpecCatalog.errnoMappings.isEmpty)
        for row in SpecCatalog.errnoMappings {
            guard let got = module[row.from] else { Issue.record("\(row.from) has no generated mapping"); continue }
            if let name = row.errno {
                #expect(got.map { ModuleInteger($0.rawValue) } == errnos[name], "\(row.from) -> \(name)")
            } else {
                #expect(got == nil, "\(row.from) means success")
            }
        }
        #expect(ABIModuleValues.defaultErrnoMappings.allSatisfy { $0.1 != nil })
    }
}
