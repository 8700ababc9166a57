import Testing
import XVTestSupport
@testable import ViridianReference

/// The fixed-capacity id map behind ports and connections, against a Dictionary, under seeded
/// random inserts and removals (backward-shift deletion is easy to get wrong).
@Test("IDTable agrees with a Dictionary under random insert, update and remove", arguments: [1 as UInt64, 7, 99])
func idTableMatchesDictionary(seed: UInt64) {
    var g = SplitMix(seed: seed)
    var table = IDTable<UInt64>(capacity: 48)
    var model: [UInt32: UInt64] = [:]
    for _ in 0..<20_000 {
        // Few distinct keys so that probe chains collide and wrap.
        let key = UInt32(g.next() % 96) &* 0x10001 & 0xFF_FFFF
        let value = g.next()
        switch g.next() % 3 {
        case 0:
            let inserted = table.insert(value, for: key)
            let expected = model[key] == nil && model.count < 48
            #expect(inserted == expected)
            if expected { model[key] = value }
        case 1:
            #expect(table.update(value, for: key) == (model[key] != nil))
            if model[key] != nil { model[key] = value }
        default:
            #expect(table.remove(key) == model.removeValue(forKey: key))
        }
        #expect(table.count == model.count)
        #expect(table[key] == model[key])
    }
    for (k, v) in model { #expect(table[k] == v) }
    var seen = 0
    table.forEach { k, v in seen += 1; #expect(model[k] == v) }
    #expect(seen == model.count)
    #expect(table[UInt32.max] == nil && !table.insert(1, for: .max), "the empty marker is never a key")
}

@Test("a periodic timer whose next deadline would pass 2^64 ticks stops instead of wrapping")
func periodicOverflowStops() {
    // At just over 10 MHz, the largest TSC is about 2^64 reference ticks: a period of 2^63 + 1000
    // fires once, and the next deadline would pass 2^64.
    let rig = TestRig(tscFrequency: 10_000_001)
    let p = rig.addPartition()
    rig.enableSynIC(p, vp: 0, sints: [(2, 0xF1)])
    #expect(rig.wrmsr(p, .stimer0Count, (1 << 63) + 1000) == .done)
    #expect(rig.wrmsr(p, .stimer0Config, TimerTests.config(periodic: true)) == .done)
    rig.reference.advance(toTSC: .max)
    #expect(rig.host.take().count == 1)
    #expect(rig.reference.partitions[0].vps[0].timers[0].deadline == nil)
}
