import Foundation
import Testing
@testable import xv

/// `xv clock`: the JSON's keys and values, both ways.
@Suite("xv clock")
struct ClockJSONTests {
    func json(_ args: [String]) throws -> [String: Any] {
        let command = try ClockCommand.parse(args)
        var text = ""
        try (command.fromPvclock ? command.reverse() : command.forward()).write(into: &text)
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test("forward: the vcpu_time_info the layer writes, the guest's read and the reference time at --tsc, within 100 ns")
    func forward() throws {
        let o = try json(["--tsc-hz", "2999999999", "--tsc", "123456789012345", "--anchor-tsc", "123450000000000"])
        let input = try #require(o["input"] as? [String: Any])
        #expect(input["scale"] as? UInt64 == 61_489_146_932_861_554 && input["anchor_tsc"] as? UInt64 == 123_450_000_000_000)
        let info = try #require(o["vcpu_time_info"] as? [String: Any])
        #expect(info["tsc_timestamp"] as? UInt64 == 123_450_000_000_000)
        #expect(info["tsc_shift"] as? Int == -1 && info["flags"] as? Int == 1)
        #expect(o["reference_time_100ns"] as? UInt64 == 411_522_630_178)
        #expect(o["within_100ns"] as? Bool == true)
        let guest = try #require(o["guest_time_ns"] as? UInt64), exact = try #require(o["exact_ns"] as? UInt64)
        #expect(guest <= exact && exact - guest < 3)
        // The anchor defaults to --tsc: the guest reads system_time itself.
        let same = try json(["--scale", "61489146932861554", "--offset", "-5", "--tsc", "77"])
        #expect((same["vcpu_time_info"] as? [String: Any])?["system_time"] as? UInt64 == same["guest_time_ns"] as? UInt64)
    }

    @Test("reverse: from pvclock fields to a reference TSC page that agrees at the anchor")
    func reverse() throws {
        let o = try json(["--from-pvclock", "--mul", "2863311530", "--shift", "-1", "--tsc-timestamp", "1000", "--system-time", "5000", "--tsc", "3000001000"])
        let page = try #require(o["reference_tsc_page"] as? [String: Any])
        #expect(page["offset"] as? Int == 47)
        #expect(o["within_100ns"] as? Bool == true)
        #expect(throws: (any Error).self) { try json(["--from-pvclock", "--mul", "1", "--tsc", "1"]) }
        #expect(throws: (any Error).self) { try json(["--tsc", "1"]) }
    }
}
