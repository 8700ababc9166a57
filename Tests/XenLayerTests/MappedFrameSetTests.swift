import Testing
import GuestABI
import XenABI
@testable import XenCore
import XVScenarios
import XVTestSupport

/// The set of frames a domain's grant mappings occupy (`XenDomain.mapsGrant`): open addressing
/// with backward-shift deletion, grown with the maptrack. Checked against a Swift Set under
/// random inserts and removals, through growth.
@Suite("The grant mapping frame set")
struct MappedFrameSetTests {
    @Test("random inserts and removals, colliding frames and growth from 1 to 8 maptrack pages agree with a Set", arguments: [UInt64(1), 7, 99])
    func agreesWithASet(_ seed: UInt64) {
        let w = NativeWorld(domains: 1, vcpus: 1)
        let d = w.xenDomain(dom1)
        var r = SplitMix(seed: seed)
        var model = Set<UInt64>()
        d.growMappedFrames(pages: 1)
        for step in 0..<20_000 {
            if step % 2_500 == 0 { d.growMappedFrames(pages: 1 + step / 2_500) }
            // Frames from a small range (many collide) and a few huge ones.
            let frame = r.below(8) == 0 ? UInt64.max - 1 - UInt64(r.below(4)) : UInt64(r.below(600))
            if model.contains(frame) {
                d.removeMappedFrame(frame)
                model.remove(frame)
            } else if model.count < d.mappedFrameCapacity / 2 {
                d.insertMappedFrame(frame)
                model.insert(frame)
            }
            let probe = UInt64(r.below(600))
            #expect(d.mapsGrant(at: probe) == model.contains(probe), "seed \(seed) step \(step) frame \(probe)")
            if d.mapsGrant(at: probe) != model.contains(probe) { return }
        }
        for f in model { #expect(d.mapsGrant(at: f)) }
    }
}
