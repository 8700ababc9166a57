import Foundation
import Testing
import GuestABI
import XenABI
import XenCore
import XVScenarios

/// GNTTABOP_map_grant_ref, unmap_grant_ref and copy between domains (Specs/translation/
/// grant-tables.tbl), on both sides: the translated side through the root and the target's GPA
/// mapping. Regression tests for the advisories a translation layer can meet (XTF's xsa-224,
/// xsa-234, xsa-316) in this project's own terms.
@Suite("grant_table_op: map, unmap and copy between domains")
struct GrantMapTests {
    static let granter = DomainID(2), grantee = dom1
    /// The granter's frame that carries the granted page.
    static let frame: UInt64 = 40

    static func writeEntry(_ w: any XenWorld, _ d: DomainID, ref: Int, flags: UInt16, domid: UInt16, frame: UInt64) {
        w.writeGrantEntry(d, ref: ref, flags: flags, domid: domid, frame: frame)
    }

    static func entryFlags(_ w: any XenWorld, _ d: DomainID, ref: Int) -> UInt16 {
        w.xenDomain(d).grantFramePage(ref / 512)!.load(fromByteOffset: (ref % 512) * 8, as: UInt16.self)
    }

    static let permit = GrantEntryFlags.permitAccess.rawValue, readonly = GrantEntryFlags.readonly.rawValue
    static let reading = GrantEntryFlags.reading.rawValue, writing = GrantEntryFlags.writing.rawValue
    static let hostMap = UInt64(GrantMapFlags.hostMap.rawValue), readonlyMap = UInt64(GrantMapFlags.readonly.rawValue)

    /// map_grant_ref of one entry: (rc, status, handle).
    func map(_ w: any XenWorld, ref: UInt64, dom: UInt64 = 2, at frame: UInt64, flags: UInt64 = hostMap) -> (Int64, Int16, UInt32) {
        w.writeArguments(Self.grantee, size: 32, [(GnttabMapGrantRefLayout.hostAddr, frame << guestPageShift), (GnttabMapGrantRefLayout.flags, flags),
                                                  (GnttabMapGrantRefLayout.ref, ref), (GnttabMapGrantRefLayout.dom, dom), (GnttabMapGrantRefLayout.handle, 0xDEAD)])
        let rc = w.hypercall(domain: Self.grantee, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.mapGrantRef.rawValue),
                                                                                 rsi: w.argumentAddress, rdx: 1))
        return (rc, Int16(truncatingIfNeeded: w.readArgument(Self.grantee, GnttabMapGrantRefLayout.status)), UInt32(w.readArgument(Self.grantee, GnttabMapGrantRefLayout.handle)))
    }

    func unmap(_ w: any XenWorld, handle: UInt32, at frame: UInt64) -> (Int64, Int16) {
        w.writeArguments(Self.grantee, size: 24, [(GnttabUnmapGrantRefLayout.hostAddr, frame << guestPageShift), (GnttabUnmapGrantRefLayout.handle, UInt64(handle))])
        let rc = w.hypercall(domain: Self.grantee, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.unmapGrantRef.rawValue),
                                                                                 rsi: w.argumentAddress, rdx: 1))
        return (rc, Int16(truncatingIfNeeded: w.readArgument(Self.grantee, GnttabUnmapGrantRefLayout.status)))
    }

    /// One gnttab_copy: source and destination (ref or gmfn, domid, offset, is a grant).
    func copy(_ w: any XenWorld, from s: (UInt64, UInt64, UInt64, Bool), to d: (UInt64, UInt64, UInt64, Bool), length: UInt64) -> (Int64, Int16) {
        let flags = (s.3 ? UInt64(GrantCopyFlags.sourceGref.rawValue) : 0) | (d.3 ? UInt64(GrantCopyFlags.destGref.rawValue) : 0)
        w.writeArguments(Self.grantee, size: 40, [(GnttabCopyLayout.sourceUGmfn, s.0), (GnttabCopyLayout.sourceDomid, s.1), (GnttabCopyLayout.sourceOffset, s.2),
                                                  (GnttabCopyLayout.destUGmfn, d.0), (GnttabCopyLayout.destDomid, d.1), (GnttabCopyLayout.destOffset, d.2),
                                                  (GnttabCopyLayout.len, length), (GnttabCopyLayout.flags, flags)])
        let rc = w.hypercall(domain: Self.grantee, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.copy.rawValue),
                                                                                 rsi: w.argumentAddress, rdx: 1))
        return (rc, Int16(truncatingIfNeeded: w.readArgument(Self.grantee, GnttabCopyLayout.status)))
    }

    static let selfDom = UInt64(DomainID.selfDomain.rawValue)

    @Test("a writable map shows the granter's page at the grantee's frame (GTF_reading|GTF_writing set, one write pin), the two see each other's writes, unmap leaves a hole and clears everything, a second unmap is bad_handle (XTF xsa-224's double unmap)")
    func mapAndUnmap() {
        onBothWorlds(domains: 3) { w, side in
            Self.writeEntry(w, Self.granter, ref: 8, flags: Self.permit, domid: 1, frame: Self.frame)
            w.page(Self.granter, frame: Self.frame)!.storeBytes(of: 0xFEED_FACE, as: UInt64.self)
            let viridianBefore = (w as? TranslatedWorld)?.viridianHypercalls ?? 0
            let (rc, status, handle) = map(w, ref: 8, at: 30)
            #expect(rc == 0 && status == GrantStatus.okay.rawValue, "\(side): \(status)")
            #expect(w.page(Self.grantee, frame: 30)!.load(as: UInt64.self) == 0xFEED_FACE, "\(side): the granter's page")
            #expect(Self.entryFlags(w, Self.granter, ref: 8) == Self.permit | Self.reading | Self.writing, "\(side)")
            #expect(w.xenDomain(Self.granter).grantPins(8) == (0, 1) && w.xenDomain(Self.grantee).grantMappingCount == 1, "\(side)")
            if let t = w as? TranslatedWorld { #expect(t.viridianHypercalls - viridianBefore == 1, "one HvCallMapGpaPages") }
            w.page(Self.grantee, frame: 30)!.storeBytes(of: 0xB0B, toByteOffset: 8, as: UInt64.self)
            #expect(w.page(Self.granter, frame: Self.frame)!.load(fromByteOffset: 8, as: UInt64.self) == 0xB0B, "\(side): one page")
            #expect(w.xenDomain(Self.grantee).reservation.pages == 48, "\(side): the RAM page at 30 stays the grantee's")
            #expect(unmap(w, handle: handle, at: 30) == (0, GrantStatus.okay.rawValue), "\(side)")
            #expect(w.page(Self.grantee, frame: 30) == nil, "\(side): a hole")
            #expect(Self.entryFlags(w, Self.granter, ref: 8) == Self.permit && w.xenDomain(Self.granter).grantPins(8) == (0, 0), "\(side)")
            #expect(unmap(w, handle: handle, at: 30) == (0, GrantStatus.badHandle.rawValue), "\(side): twice")
            #expect(unmap(w, handle: 9999, at: 30) == (0, GrantStatus.badHandle.rawValue), "\(side)")
            #expect(w.xenDomain(Self.grantee).grantMappingCount == 0, "\(side)")
        }
    }

    @Test("read-only maps: GTF_reading only; a writable map of a GTF_readonly grant is general_error with nothing left behind; unmapping the read-only one of two maps keeps the writable pin (XTF xsa-234)")
    func readOnly() {
        onBothWorlds(domains: 3) { w, side in
            Self.writeEntry(w, Self.granter, ref: 9, flags: Self.permit | Self.readonly, domid: 1, frame: Self.frame)
            #expect(map(w, ref: 9, at: 30).1 == GrantStatus.generalError.rawValue, "\(side): writable map of a read-only grant")
            #expect(Self.entryFlags(w, Self.granter, ref: 9) == Self.permit | Self.readonly && w.xenDomain(Self.grantee).grantMappingCount == 0, "\(side)")
            let (_, s1, h1) = map(w, ref: 9, at: 30, flags: Self.hostMap | Self.readonlyMap)
            #expect(s1 == GrantStatus.okay.rawValue && Self.entryFlags(w, Self.granter, ref: 9) == Self.permit | Self.readonly | Self.reading, "\(side)")
            #expect(unmap(w, handle: h1, at: 30).1 == GrantStatus.okay.rawValue && Self.entryFlags(w, Self.granter, ref: 9) == Self.permit | Self.readonly, "\(side)")
            // xsa-234: a writable and a read-only map of one grant; the read-only unmap drops a read pin only.
            Self.writeEntry(w, Self.granter, ref: 10, flags: Self.permit, domid: 1, frame: Self.frame)
            let (_, sw, hw) = map(w, ref: 10, at: 31)
            let (_, sr, hr) = map(w, ref: 10, at: 32, flags: Self.hostMap | Self.readonlyMap)
            #expect(sw == 0 && sr == 0 && w.xenDomain(Self.granter).grantPins(10) == (1, 1), "\(side)")
            #expect(unmap(w, handle: hr, at: 32).1 == 0, "\(side)")
            #expect(w.xenDomain(Self.granter).grantPins(10) == (0, 1) && Self.entryFlags(w, Self.granter, ref: 10) == Self.permit | Self.reading | Self.writing, "\(side): still writable")
            #expect(unmap(w, handle: hw, at: 32).1 == GrantStatus.generalError.rawValue, "\(side): the other mapping's frame")
            #expect(unmap(w, handle: hw, at: 31).1 == 0 && Self.entryFlags(w, Self.granter, ref: 10) == Self.permit, "\(side)")
        }
    }

    @Test("map refusals, each with its GNTST and nothing left behind: flags, domains (XTF xsa-316's wrong domain included), refs, entries, frames not owned, the layer's pages, target frames, a second mapping on one frame (Xen crashes the domain)")
    func mapRefusals() {
        onBothWorlds(domains: 3) { w, side in
            Self.writeEntry(w, Self.granter, ref: 8, flags: Self.permit, domid: 1, frame: Self.frame)
            Self.writeEntry(w, Self.granter, ref: 11, flags: Self.permit, domid: 3, frame: Self.frame)
            Self.writeEntry(w, Self.granter, ref: 12, flags: Self.permit, domid: 1, frame: 60)
            Self.writeEntry(w, Self.granter, ref: 13, flags: Self.permit, domid: 1, frame: 0)
            Self.writeEntry(w, Self.granter, ref: 14, flags: GrantEntryFlags.acceptTransfer.rawValue, domid: 1, frame: Self.frame)
            let cases: [(String, (Int64, Int16, UInt32), GrantStatus)] = [
                ("no host_map", map(w, ref: 8, at: 30, flags: 0), .badGntref),
                ("device_map", map(w, ref: 8, at: 30, flags: Self.hostMap | UInt64(GrantMapFlags.deviceMap.rawValue)), .generalError),
                ("application_map", map(w, ref: 8, at: 30, flags: Self.hostMap | UInt64(GrantMapFlags.applicationMap.rawValue)), .generalError),
                ("a guest-available bit", map(w, ref: 8, at: 30, flags: Self.hostMap | 1 << 16), .generalError),
                ("DOMID_SELF", map(w, ref: 8, dom: Self.selfDom, at: 30), .badDomain),
                ("a missing domain", map(w, ref: 8, dom: 9, at: 30), .badDomain),
                ("DOMID_IO", map(w, ref: 8, dom: 0x7FF1, at: 30), .badDomain),
                ("xsa-316: a domain that granted nothing", map(w, ref: 8, dom: 3, at: 30), .generalError),
                ("a ref past the table", map(w, ref: 512, at: 30), .badGntref),
                ("a huge ref", map(w, ref: 0xFFFF_FFFF, at: 30), .badGntref),
                ("granted to another domain", map(w, ref: 11, at: 30), .generalError),
                ("not a permit_access entry", map(w, ref: 14, at: 30), .generalError),
                ("an invalid entry", map(w, ref: 20, at: 30), .generalError),
                ("a frame the granter does not have", map(w, ref: 12, at: 30), .badPage),
                ("the granter's shared_info", map(w, ref: 13, at: 30), .badPage),
                ("a target frame past the guest's map", map(w, ref: 8, at: WorldLayout.frames), .generalError),
                ("a target beyond the p2m", map(w, ref: 8, at: 1 << 36), .generalError),
            ]
            for (what, result, expected) in cases {
                #expect(result.0 == 0 && result.1 == expected.rawValue, "\(side): \(what): \(result.1)")
                #expect(result.1 <= 0, "\(side): \(what): never a positive status (xsa-316)")
                #expect(result.2 == 0xDEAD, "\(side): \(what): the handle as the guest passed it")
            }
            for ref in [8, 11, 12, 13, 14, 20] {
                #expect(w.xenDomain(Self.granter).grantPins(UInt32(ref)) == (0, 0), "\(side): no pin left on \(ref)")
                #expect(Self.entryFlags(w, Self.granter, ref: ref) & (Self.reading | Self.writing) == 0, "\(side): no GTF_reading/writing left on \(ref)")
            }
            #expect(w.xenDomain(Self.grantee).grantMappingCount == 0 && w.page(Self.grantee, frame: 30) != nil, "\(side): no mapping, frame 30 untouched")
            // A second mapping on a frame that already shows one: Xen crashes the domain.
            let (_, s1, _) = map(w, ref: 8, at: 30)
            #expect(s1 == 0 && w.recorder.shutdowns(domain: Self.grantee).count == 0, "\(side)")
            Self.writeEntry(w, Self.granter, ref: 15, flags: Self.permit, domid: 1, frame: Self.frame + 1)
            #expect(map(w, ref: 15, at: 30).1 == GrantStatus.generalError.rawValue, "\(side)")
            #expect(w.recorder.shutdowns(domain: Self.grantee) == (1, UInt8(ShutdownReason.crash.rawValue)), "\(side): crashed, as Xen's p2m_add_page does")
            #expect(w.xenDomain(Self.granter).grantPins(15) == (0, 0), "\(side)")
        }
    }

    @Test("gnttab_copy: from a grant into an own frame and back into a writable grant, GTF_reading/writing held only during the copy; read-only destination, offsets, domains, holes and windows refused with their GNTST")
    func copies() {
        onBothWorlds(domains: 3) { w, side in
            Self.writeEntry(w, Self.granter, ref: 8, flags: Self.permit | Self.readonly, domid: 1, frame: Self.frame)
            Self.writeEntry(w, Self.granter, ref: 9, flags: Self.permit, domid: 1, frame: Self.frame + 1)
            let src = w.page(Self.granter, frame: Self.frame)!
            for i in 0..<512 { src.storeBytes(of: UInt64(i) &* 0x9E37_79B9, toByteOffset: 8 * i, as: UInt64.self) }
            let before = (w as? TranslatedWorld)?.viridianHypercalls ?? 0
            #expect(copy(w, from: (8, 2, 0, true), to: (25, Self.selfDom, 0, false), length: 4096) == (0, GrantStatus.okay.rawValue), "\(side)")
            #expect(memcmp(w.page(Self.grantee, frame: 25)!, src, 4096) == 0, "\(side): the page arrived")
            if let t = w as? TranslatedWorld { #expect(t.viridianHypercalls - before == 2, "the copy window mapped and unmapped") }
            #expect(Self.entryFlags(w, Self.granter, ref: 8) == Self.permit | Self.readonly && w.xenDomain(Self.granter).grantPins(8) == (0, 0), "\(side): released")
            // Own frame into the writable grant, at an offset.
            w.page(Self.grantee, frame: 26)!.storeBytes(of: 0xABCD, toByteOffset: 100, as: UInt64.self)
            #expect(copy(w, from: (26, Self.selfDom, 100, false), to: (9, 2, 200, true), length: 8) == (0, 0), "\(side)")
            #expect(w.page(Self.granter, frame: Self.frame + 1)!.load(fromByteOffset: 200, as: UInt64.self) == 0xABCD, "\(side)")
            #expect(Self.entryFlags(w, Self.granter, ref: 9) == Self.permit, "\(side)")
            let refusals: [(String, (Int64, Int16), GrantStatus)] = [
                ("into a read-only grant", copy(w, from: (26, Self.selfDom, 0, false), to: (8, 2, 0, true), length: 8), .generalError),
                ("past the page", copy(w, from: (8, 2, 4000, true), to: (25, Self.selfDom, 0, false), length: 200), .badCopyArg),
                ("destination past the page", copy(w, from: (8, 2, 0, true), to: (25, Self.selfDom, 4095, false), length: 2), .badCopyArg),
                ("a frame side by numeric id", copy(w, from: (26, 1, 0, false), to: (25, Self.selfDom, 0, false), length: 8), .permissionDenied),
                ("a missing domain", copy(w, from: (8, 9, 0, true), to: (25, Self.selfDom, 0, false), length: 8), .badDomain),
                ("a hole", copy(w, from: (8, 2, 0, true), to: (WorldLayout.frames, Self.selfDom, 0, false), length: 8), .badPage),
                ("a bad ref", copy(w, from: (600, 2, 0, true), to: (25, Self.selfDom, 0, false), length: 8), .badGntref),
                ("not granted to the caller", copy(w, from: (8, 3, 0, true), to: (25, Self.selfDom, 0, false), length: 8), .generalError),
            ]
            for (what, r, expected) in refusals { #expect(r == (0, expected.rawValue), "\(side): \(what): \(r.1)") }
            #expect(copy(w, from: (8, 2, 0, true), to: (25, Self.selfDom, 0, false), length: 0) == (0, 0), "\(side): nothing to copy")
            for ref in [8, 9] {
                #expect(w.xenDomain(Self.granter).grantPins(UInt32(ref)) == (0, 0) && Self.entryFlags(w, Self.granter, ref: ref) & (Self.reading | Self.writing) == 0, "\(side): \(ref) clean")
            }
        }
    }

    @Test("v2 sub-page grants: a copy inside the window works, outside it is general_error, and a map is general_error")
    func subPage() {
        onBothWorlds(domains: 3) { w, side in
            w.writeArguments(Self.granter, size: 4, [(GnttabSetVersionLayout.version, 2)])
            #expect(w.hypercall(domain: Self.granter, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.setVersion.rawValue),
                                                                                   rsi: w.argumentAddress, rdx: 1)) == 0, "\(side)")
            let e = w.xenDomain(Self.granter).grantFramePage(0)! + 8 * 16
            e.storeBytes(of: Self.permit | GrantEntryFlags.subPage.rawValue, as: UInt16.self)
            e.storeBytes(of: UInt16(1), toByteOffset: 2, as: UInt16.self)
            e.storeBytes(of: UInt16(100), toByteOffset: GrantEntryV2Layout.subPagePageOff.offset, as: UInt16.self)
            e.storeBytes(of: UInt16(50), toByteOffset: GrantEntryV2Layout.subPageLength.offset, as: UInt16.self)
            e.storeBytes(of: Self.frame, toByteOffset: GrantEntryV2Layout.subPageFrame.offset, as: UInt64.self)
            w.page(Self.granter, frame: Self.frame)!.storeBytes(of: 0x5117, toByteOffset: 120, as: UInt64.self)
            #expect(copy(w, from: (8, 2, 120, true), to: (25, Self.selfDom, 0, false), length: 8) == (0, 0), "\(side)")
            #expect(w.page(Self.grantee, frame: 25)!.load(as: UInt64.self) == 0x5117, "\(side)")
            #expect(copy(w, from: (8, 2, 140, true), to: (25, Self.selfDom, 0, false), length: 20) == (0, GrantStatus.generalError.rawValue), "\(side): past the window")
            #expect(copy(w, from: (8, 2, 90, true), to: (25, Self.selfDom, 0, false), length: 8) == (0, GrantStatus.generalError.rawValue), "\(side): before it")
            #expect(map(w, ref: 8, at: 30).1 == GrantStatus.generalError.rawValue, "\(side): a sub-page grant cannot be mapped")
            #expect(w.xenDomain(Self.granter).grantPins(8) == (0, 0), "\(side)")
        }
    }

    @Test("v2 transitive grants: a copy follows one step to the domain the grant names, which sees the granter as its grantee; self-reference, a missing domain, a second step, a map, and a grant not made to the middle domain are general_error; no pin is left anywhere")
    func transitive() {
        onBothWorlds(domains: 3) { w, side in
            let middle = Self.granter, last = DomainID(3)
            w.writeArguments(middle, size: 4, [(GnttabSetVersionLayout.version, 2)])
            #expect(w.hypercall(domain: middle, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.setVersion.rawValue),
                                                                                rsi: w.argumentAddress, rdx: 1)) == 0, "\(side)")
            // Domain 3 grants its frame 42 to domain 2 (ref 20, v1), and frame 43 read-only (ref 21).
            Self.writeEntry(w, last, ref: 20, flags: Self.permit, domid: 2, frame: 42)
            Self.writeEntry(w, last, ref: 21, flags: Self.permit | Self.readonly, domid: 2, frame: 43)
            Self.writeEntry(w, last, ref: 22, flags: Self.permit, domid: 1, frame: 42)
            w.page(last, frame: 42)!.storeBytes(of: 0x7A7A, as: UInt64.self)
            func transitiveEntry(ref: Int, to dom: UInt16, gref: UInt32) {
                let e = w.xenDomain(middle).grantFramePage(0)! + ref * 16
                e.storeBytes(of: GrantEntryFlags.transitive.rawValue, as: UInt16.self)
                e.storeBytes(of: UInt16(1), toByteOffset: 2, as: UInt16.self)
                e.storeBytes(of: dom, toByteOffset: GrantEntryV2Layout.transitiveTransDomid.offset, as: UInt16.self)
                e.storeBytes(of: gref, toByteOffset: GrantEntryV2Layout.transitiveGref.offset, as: UInt32.self)
            }
            transitiveEntry(ref: 8, to: 3, gref: 20)
            #expect(copy(w, from: (8, 2, 0, true), to: (25, Self.selfDom, 0, false), length: 8) == (0, 0), "\(side)")
            #expect(w.page(Self.grantee, frame: 25)!.load(as: UInt64.self) == 0x7A7A, "\(side): domain 3's page, through domain 2's grant")
            // Writing through it reaches domain 3's page too.
            w.page(Self.grantee, frame: 26)!.storeBytes(of: 0x1234, as: UInt64.self)
            #expect(copy(w, from: (26, Self.selfDom, 0, false), to: (8, 2, 8, true), length: 8) == (0, 0), "\(side)")
            #expect(w.page(last, frame: 42)!.load(fromByteOffset: 8, as: UInt64.self) == 0x1234, "\(side)")
            transitiveEntry(ref: 9, to: 2, gref: 20)
            transitiveEntry(ref: 10, to: 9, gref: 20)
            transitiveEntry(ref: 11, to: 3, gref: 22)
            transitiveEntry(ref: 12, to: 3, gref: 21)
            for (ref, what) in [(9, "itself"), (10, "a missing domain"), (11, "a grant made to domain 1, not 2")] {
                #expect(copy(w, from: (UInt64(ref), 2, 0, true), to: (25, Self.selfDom, 0, false), length: 8) == (0, GrantStatus.generalError.rawValue), "\(side): \(what)")
            }
            #expect(copy(w, from: (26, Self.selfDom, 0, false), to: (12, 2, 0, true), length: 8) == (0, GrantStatus.generalError.rawValue), "\(side): writing through to a read-only grant")
            #expect(copy(w, from: (12, 2, 0, true), to: (25, Self.selfDom, 0, false), length: 8) == (0, 0), "\(side): reading through it is fine")
            #expect(map(w, ref: 8, at: 30).1 == GrantStatus.generalError.rawValue, "\(side): a transitive grant cannot be mapped")
            for ref in UInt32(8)...12 { #expect(w.xenDomain(middle).grantPins(ref) == (0, 0), "\(side): middle ref \(ref)") }
            for ref in UInt32(20)...22 {
                #expect(w.xenDomain(last).grantPins(ref) == (0, 0) && Self.entryFlags(w, last, ref: Int(ref)) & (Self.reading | Self.writing) == 0, "\(side): last ref \(ref)")
            }
        }
    }

    @Test("batches: each entry gets its own status; a list that runs off guest memory ends the call with -EFAULT after the entries before it took effect; a count negative as an int is -EINVAL with nothing done")
    func batches() {
        onBothWorlds(domains: 3) { w, side in
            Self.writeEntry(w, Self.granter, ref: 8, flags: Self.permit, domid: 1, frame: Self.frame)
            Self.writeEntry(w, Self.granter, ref: 9, flags: Self.permit, domid: 1, frame: Self.frame + 1)
            let size = GnttabMapGrantRefLayout.size
            func at(_ i: Int, _ f: ABIField) -> ABIField { ABIField(offset: i * size + f.offset, size: f.size) }
            func entry(_ i: Int, ref: UInt64, frame: UInt64) -> [(ABIField, UInt64)] {
                [(at(i, GnttabMapGrantRefLayout.hostAddr), frame << 12), (at(i, GnttabMapGrantRefLayout.flags), Self.hostMap),
                 (at(i, GnttabMapGrantRefLayout.ref), ref), (at(i, GnttabMapGrantRefLayout.dom), 2)]
            }
            w.writeArguments(Self.grantee, size: 3 * size, entry(0, ref: 8, frame: 30) + entry(1, ref: 600, frame: 31) + entry(2, ref: 9, frame: 32))
            let rc = w.hypercall(domain: Self.grantee, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.mapGrantRef.rawValue),
                                                                                     rsi: w.argumentAddress, rdx: 3))
            #expect(rc == 0, "\(side)")
            #expect((0..<3).map { Int16(truncatingIfNeeded: w.readArgument(Self.grantee, at($0, GnttabMapGrantRefLayout.status))) } == [0, GrantStatus.badGntref.rawValue, 0], "\(side)")
            #expect(w.xenDomain(Self.grantee).grantMappingCount == 2, "\(side)")
            // A batch whose second entry lies past the guest's memory: the first is done, then -EFAULT.
            Self.writeEntry(w, Self.granter, ref: 10, flags: Self.permit, domid: 1, frame: Self.frame + 2)
            let last = WorldLayout.frames << guestPageShift - UInt64(size)
            let page = w.page(Self.grantee, frame: WorldLayout.frames - 1)!
            page.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
            page.storeBytes(of: UInt64(33 << 12), toByteOffset: 4096 - size, as: UInt64.self)
            page.storeBytes(of: UInt32(GrantMapFlags.hostMap.rawValue), toByteOffset: 4096 - size + 8, as: UInt32.self)
            page.storeBytes(of: UInt32(10), toByteOffset: 4096 - size + 12, as: UInt32.self)
            page.storeBytes(of: UInt16(2), toByteOffset: 4096 - size + 16, as: UInt16.self)
            let r2 = w.hypercall(domain: Self.grantee, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.mapGrantRef.rawValue),
                                                                                     rsi: last, rdx: 2))
            #expect(r2 == errEFAULT && w.xenDomain(Self.grantee).grantMappingCount == 3 && w.xenDomain(Self.granter).grantPins(10) == (0, 1), "\(side): the first entry took effect")
            for op in [GrantTableOp.mapGrantRef, .unmapGrantRef, .copy] {
                #expect(w.hypercall(domain: Self.grantee, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(op.rawValue), rsi: w.argumentAddress,
                                                                                        rdx: 0xFFFF_FFFF)) == errEINVAL, "\(side): GNTTABOP \(op.rawValue)")
            }
            #expect(w.xenDomain(Self.grantee).grantMappingCount == 3, "\(side): nothing done")
        }
    }

    @Test("a domain may map its own grant by its numeric id; a grant pinned by a mapping blocks set_version (-EBUSY) until it is unmapped")
    func selfGrantAndVersion() {
        onBothWorlds(domains: 2) { w, side in
            Self.writeEntry(w, dom1, ref: 8, flags: Self.permit, domid: 1, frame: 41)
            w.page(dom1, frame: 41)!.storeBytes(of: 77, as: UInt64.self)
            let (_, status, handle) = map(w, ref: 8, dom: 1, at: 30)
            #expect(status == 0 && w.page(dom1, frame: 30)!.load(as: UInt64.self) == 77, "\(side)")
            w.writeArguments(dom1, size: 4, [(GnttabSetVersionLayout.version, 2)], slot: 1)
            func setVersion() -> Int64 {
                w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(GrantTableOp.setVersion.rawValue), rsi: w.argumentAddress(slot: 1), rdx: 1))
            }
            #expect(setVersion() == XenErrno.ebusy.hypercallReturnValue, "\(side): ref 8 is pinned")
            #expect(unmap(w, handle: handle, at: 30).1 == 0 && setVersion() == 0, "\(side)")
        }
    }
}
