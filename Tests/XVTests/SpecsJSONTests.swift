import Foundation
import Testing
import XVSpecCatalog
@testable import xv

/// `xv specs --json` prints valid JSON with the documented keys, one object per spec row.
@Suite("xv specs --json")
struct SpecsJSONTests {
    static func rows() throws -> [[String: Any]] {
        var text = ""
        JSONValue.array(SpecRows.all()).write(into: &text, indent: 1)
        let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8))
        return try #require(parsed as? [[String: Any]])
    }

    @Test("one object per row of the catalog")
    func everyRow() throws {
        let rows = try Self.rows()
        let expected = SpecCatalog.constants.count + SpecCatalog.structs.count + SpecCatalog.bitfields.count
            + SpecCatalog.dispositions.count + SpecCatalog.errnoMappings.count
        #expect(rows.count == expected)
    }

    @Test("constants carry interface, kind, family, name and an exact integer value")
    func constants() throws {
        let rows = try Self.rows()
        let allowedKinds: Set = ["hypercall", "subop", "errno", "msr", "status", "message", "constant"]
        let constants = rows.filter { ($0["kind"] as? String).map(allowedKinds.contains) ?? false }
        #expect(constants.count == SpecCatalog.constants.count)
        func row(_ name: String) -> [String: Any]? { constants.first { $0["name"] as? String == name } }
        #expect(row("__HYPERVISOR_event_channel_op")?["value"] as? Int == 32)
        #expect(row("__HYPERVISOR_event_channel_op")?["kind"] as? String == "hypercall")
        #expect(row("EVTCHNOP_send")?["kind"] as? String == "subop")
        #expect(row("GNTST_bad_domain")?["value"] as? Int == -2)
        #expect(row("HV_X64_MSR_SINT0")?["value"] as? Int == 0x4000_0090)
        #expect(row("HV_STATUS_INSUFFICIENT_BUFFERS")?["value"] as? Int == 0x13)
        #expect(row("HVCALL_SIGNAL_EVENT")?["interface"] as? String == "viridian")
        // 0xFF00000000000000 does not fit Int64: it must still be printed exactly.
        let mask = try #require(row("HVM_PARAM_CALLBACK_IRQ_TYPE_MASK")?["value"] as? NSNumber)
        #expect(mask.uint64Value == 0xFF00_0000_0000_0000)
        #expect(row("GTF_readonly")?["kind"] as? String == "constant")
        for c in constants {
            #expect(["xen", "viridian", "translation"].contains(c["interface"] as? String ?? ""))
            #expect(c["family"] is String && c["name"] is String && c["value"] is NSNumber)
        }
    }

    @Test("structs list every field with offset and size")
    func structs() throws {
        let rows = try Self.rows().filter { $0["kind"] as? String == "struct" }
        let shared = try #require(rows.first { $0["name"] as? String == "shared_info" })
        #expect(shared["size"] as? Int == 3136)
        let fields = try #require(shared["fields"] as? [[String: Any]])
        let pending = try #require(fields.first { $0["name"] as? String == "evtchn_pending" })
        #expect(pending["offset"] as? Int == 2048 && pending["size"] as? Int == 512)
        let vcpuInfo = try #require(rows.first { $0["name"] as? String == "vcpu_info" })
        let nested = (vcpuInfo["fields"] as? [[String: Any]])?.first { $0["name"] as? String == "time.tsc_timestamp" }
        #expect(nested?["offset"] as? Int == 40)
    }

    @Test("translation rows carry disposition, Viridian names and errno")
    func translation() throws {
        let rows = try Self.rows().filter { $0["interface"] as? String == "translation" && $0["kind"] as? String == "disposition" }
        let send = try #require(rows.first { $0["xen"] as? String == "EVTCHNOP_send" })
        #expect(send["disposition"] as? String == "translated")
        #expect((send["viridian"] as? [String])?.contains("HVCALL_SIGNAL_EVENT") == true)
        #expect(send["errno"] is NSNull)
        let trap = try #require(rows.first { $0["xen"] as? String == "__HYPERVISOR_set_trap_table" })
        #expect(trap["disposition"] as? String == "rejected" && trap["errno"] as? String == "XEN_ENOSYS")
    }

    @Test("--interface keeps exactly that interface's rows, and the three partition the whole")
    func interfaceFilter() throws {
        var total = 0
        for interface in ["xen", "viridian", "translation"] {
            var text = ""
            JSONValue.array(SpecRows.all(interface: interface)).write(into: &text)
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])
            #expect(!rows.isEmpty)
            #expect(rows.allSatisfy { $0["interface"] as? String == interface }, "\(interface)")
            total += rows.count
        }
        #expect(total == SpecRows.all().count)
    }
}
