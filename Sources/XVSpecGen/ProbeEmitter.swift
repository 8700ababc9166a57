/// Writes the C side of the libxen-dev conformance suite: a table the C compiler fills with the
/// value of every Xen macro and enum the spec rows name, and the size, offset and element count
/// of every struct field. A row that names something the headers lack fails to compile, which
/// is the loudest form of "the table is wrong".
struct ProbeEmitter {
    let set: SpecSet

    func emit() -> String {
        let structs = StructExpansion.structsByTag(set)
        let xenTables = set.tables.filter { $0.interface == .xen && $0.isCheckedAgainstC }
        var out = Banner.c(sources: xenTables.map(\.location.file).uniqued())
        out += "#include \"../xen_headers.h\"\n#include \"xen_probe.h\"\n\n#if XV_HAVE_XEN_HEADERS\n\n"
        out += "#define XV_CONSTANT(name) { #name, (unsigned long long)(name), (name) < 0 }\n"
        out += "#define XV_FIELD(type, tag, member, count) { tag, #member, offsetof(type, member), sizeof(((type *)0)->member), count }\n"
        out += "#define XV_COUNT(type, member) (sizeof(((type *)0)->member) / sizeof(((type *)0)->member[0]))\n\n"
        out += "const struct xv_probe_constant xv_probe_constants[] = {\n"
        for t in xenTables where t.kind?.isCode == true {
            for r in t.codes { out += "    XV_CONSTANT(\(r.name)),\n" }
        }
        out += "};\nconst size_t xv_probe_constant_count = sizeof(xv_probe_constants) / sizeof(xv_probe_constants[0]);\n\n"
        out += "const struct xv_probe_struct xv_probe_structs[] = {\n"
        for t in xenTables where t.kind == .struct {
            guard let c = t.cSpelling, let tag = t.cTag else { continue }
            out += "    { \"\(tag)\", sizeof(\(c)) },\n"
        }
        out += "};\nconst size_t xv_probe_struct_count = sizeof(xv_probe_structs) / sizeof(xv_probe_structs[0]);\n\n"
        out += "const struct xv_probe_field xv_probe_fields[] = {\n"
        for t in xenTables where t.kind == .struct {
            guard let c = t.cSpelling, let tag = t.cTag else { continue }
            for f in StructExpansion.expand(t, structsByTag: structs) {
                let count = f.count > 1 ? "XV_COUNT(\(c), \(f.name))" : "1"
                out += "    XV_FIELD(\(c), \"\(tag)\", \(f.name), \(count)),\n"
            }
        }
        out += "};\nconst size_t xv_probe_field_count = sizeof(xv_probe_fields) / sizeof(xv_probe_fields[0]);\n\n"
        out += "#else /* no libxen-dev: empty tables */\n\n"
        out += "const struct xv_probe_constant xv_probe_constants[1];\nconst size_t xv_probe_constant_count = 0;\n"
        out += "const struct xv_probe_struct xv_probe_structs[1];\nconst size_t xv_probe_struct_count = 0;\n"
        out += "const struct xv_probe_field xv_probe_fields[1];\nconst size_t xv_probe_field_count = 0;\n\n"
        out += "#endif\n"
        return out
    }
}

extension Array where Element: Hashable {
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
