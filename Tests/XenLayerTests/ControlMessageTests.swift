import Testing
import GuestABI
import ViridianABI
import XenABI
import XenCore
import XenViridian
import XVScenarios
import XVSpecCatalog

/// Control messages are authenticated by the port they arrive on and checked against the
/// root's records (Specs/translation/control.tbl, Docs/Layer.md). The forger here is what a
/// guest offered Viridian could be: code in a domain's own partition issuing HvCallPostMessage
/// on the connections that partition has, with any type and payload. Every forged, replayed or
/// misdirected message is dropped, counted under its verdict, and changes no domain's channels.
@Suite("Control messages: authenticated, validated, counted")
struct ControlMessageTests {
    static let d1 = DomainID(1), d2 = DomainID(2), d3 = DomainID(3)

    /// Three domains; d2's port `p2` is interdomain with d3's port `p3`. Every pair's control
    /// channel is made up front, so a forger can post to a domain it never bound with (the
    /// root otherwise makes a pair's channel at its first bind).
    static func world() -> (TranslatedWorld, p2: UInt32, p3: UInt32) {
        let w = TranslatedWorld(domains: 3, vcpus: 2)
        for a in 1...3 { for b in a...3 { #expect(w.root.linkControlChannel(DomainID(UInt16(a)), DomainID(UInt16(b)))) } }
        for d in 0..<3 { #expect(w.setCallbackVector(w.domainID(d), 0x40 + UInt8(d)) == 0) }
        let p3 = w.allocUnbound(d3, remote: d2)
        let p2 = w.bindInterdomain(d2, remote: d3, remotePort: UInt32(p3))
        #expect(p3 > 0 && p2 > 0)
        return (w, UInt32(p2), UInt32(p3))
    }

    /// HvCallPostMessage from `poster`'s partition, VP 0, with the input block in the poster's
    /// own guest memory.
    @discardableResult
    static func post(_ w: TranslatedWorld, from poster: DomainID, connection: UInt32, type: UInt32, port: UInt32, fromDomain: UInt16,
                     fromPort: UInt32, size: UInt32 = 12, reserved: UInt16 = 0) -> HVStatus {
        let frame = GuestFrameNumber(30)
        let page = w.ram(poster).region.hostAddress(of: frame)!
        page.initializeMemory(as: UInt8.self, repeating: 0, count: 256)
        page.storeBytes(of: connection, toByteOffset: HvInputPostMessageLayout.connectionid.offset, as: UInt32.self)
        page.storeBytes(of: type, toByteOffset: HvInputPostMessageLayout.messageType.offset, as: UInt32.self)
        page.storeBytes(of: size, toByteOffset: HvInputPostMessageLayout.payloadSize.offset, as: UInt32.self)
        let payload = page + HvInputPostMessageLayout.payload.offset
        payload.storeBytes(of: port, toByteOffset: XvControlMessageLayout.port.offset, as: UInt32.self)
        payload.storeBytes(of: fromDomain, toByteOffset: XvControlMessageLayout.fromDomain.offset, as: UInt16.self)
        payload.storeBytes(of: reserved, toByteOffset: XvControlMessageLayout.reserved.offset, as: UInt16.self)
        payload.storeBytes(of: fromPort, toByteOffset: XvControlMessageLayout.fromPort.offset, as: UInt32.self)
        var input = HVHypercallInput(rawValue: 0)
        input.callCode = UInt64(HVCallCode.postMessage.rawValue)
        return w.reference.hypercall(partition: w.root.partition(of: poster)!, vp: VPIndex(0), input: input, rdx: frame.rawValue << 12, r8: 0).status
    }

    /// The control connection of `poster`'s partition into `receiver`'s control port.
    static func control(to receiver: DomainID) -> UInt32 { ControlIDs.idBase | UInt32(receiver.rawValue) }

    /// EVTCHNOP_status of ports 1 ..< 16 of every domain.
    static func channels(_ w: any XenWorld) -> [String] {
        (0..<w.domainCount).flatMap { d in (1..<16).map { p in "d\(d + 1):\(p) \(w.status(w.domainID(d), port: UInt32(p)))" } }
    }

    /// d2's send on `p2` still reaches d3's `p3`.
    static func channelWorks(_ w: TranslatedWorld, _ p2: UInt32, _ p3: UInt32) -> Bool {
        w.acknowledgeEvents(d3, vcpu: 0)
        return w.send(d2, port: p2) == 0 && w.isPending(d3, port: p3)
    }

    @Test("a pair's control channel is made at its first bind: none when domains are created, so a domain that never bound with another cannot post to it at all; the bind makes it, loopback included")
    func controlChannelsFollowBinds() {
        let w = TranslatedWorld(domains: 3, vcpus: 1)
        for a in 1...3 { for b in 1...3 { #expect(!w.root.hasControlChannel(DomainID(UInt16(a)), DomainID(UInt16(b)))) } }
        #expect(Self.post(w, from: Self.d1, connection: Self.control(to: Self.d2), type: ControlMessageType.closed.rawValue,
                          port: 1, fromDomain: 1, fromPort: 1) == .invalidConnectionId)
        let p3 = w.allocUnbound(Self.d3, remote: Self.d2)
        #expect(w.bindInterdomain(Self.d2, remote: Self.d3, remotePort: UInt32(p3)) > 0)
        #expect(w.root.hasControlChannel(Self.d2, Self.d3) && w.root.hasControlChannel(Self.d3, Self.d2))
        #expect(!w.root.hasControlChannel(Self.d1, Self.d2) && !w.root.hasControlChannel(Self.d1, Self.d3))
        let loop = w.allocUnbound(Self.d1, remote: Self.d1)
        #expect(w.bindInterdomain(Self.d1, remote: Self.d1, remotePort: UInt32(loop)) > 0)
        #expect(w.root.hasControlChannel(Self.d1, Self.d1))
        // A second bind between the same pair reuses the channel.
        let again = w.allocUnbound(Self.d3, remote: Self.d2)
        #expect(w.bindInterdomain(Self.d2, remote: Self.d3, remotePort: UInt32(again)) > 0)
        #expect(w.send(Self.d2, port: UInt32(w.bindInterdomain(Self.d2, remote: Self.d3, remotePort: UInt32(w.allocUnbound(Self.d3, remote: Self.d2))))) == 0)
    }

    @Test("the layer's reproducer 2: no write-back reaches the SIM page, a forged 'bound' is dropped, closing it takes nothing of d2's, d2's channel to d3 stays")
    func reproducer() {
        let (w, p2, p3) = Self.world()
        let n = NativeWorld(domains: 3, vcpus: 2)
        for d in 0..<3 { #expect(n.setCallbackVector(n.domainID(d), 0x40 + UInt8(d)) == 0) }
        #expect(n.bindInterdomain(Self.d2, remote: Self.d3, remotePort: UInt32(n.allocUnbound(Self.d3, remote: Self.d2))) == Int64(p2))
        // HVMOP_set_param/get_param of HVM_PARAM_STORE_EVTCHN with the value written back into
        // the SIM page, or straddling into it: -EFAULT on both sides, nothing written.
        let sim = WorldLayout.layerFrames().rawValue << 12
        for world in [n as any XenWorld, w] {
            for at in [sim, sim + 16, sim - 8, sim - 4] {
                for op in [HVMOp.setParam, .getParam] {
                    let r = world.hypercall(domain: Self.d1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.hvmOp.rawValue, rdi: UInt64(op.rawValue), rsi: at))
                    #expect(r == errEFAULT, "\(op) at \(String(UInt64(at), radix: 16)): \(r)")
                }
            }
        }
        // The forgery d1 can still attempt: a "bound" naming d2 as the sender, for d1's own port,
        // posted on its loopback control connection; and one into d2 claiming to come from d3.
        let x = UInt32(w.allocUnbound(Self.d1, remote: Self.d2))
        _ = n.allocUnbound(Self.d1, remote: Self.d2)
        #expect(Self.post(w, from: Self.d1, connection: Self.control(to: Self.d1), type: ControlMessageType.bound.rawValue, port: x,
                          fromDomain: Self.d2.rawValue, fromPort: p2) == .success)
        #expect(Self.post(w, from: Self.d1, connection: Self.control(to: Self.d2), type: ControlMessageType.closed.rawValue, port: p2,
                          fromDomain: Self.d3.rawValue, fromPort: p3) == .success)
        #expect(w.layer(Self.d1).controlMessages[.domainMismatch] == 1 && w.layer(Self.d2).controlMessages[.domainMismatch] == 1)
        #expect(Self.channels(w) == Self.channels(n), "the translated channels are the native ones")
        // d1 closes the port it tried to forge; d2's send still works; d1 cannot bind d2's port.
        for world in [n as any XenWorld, w] {
            #expect(world.close(Self.d1, port: x) == 0)
            #expect(world.send(Self.d2, port: p2) == 0, "d2's send")
            #expect(world.bindInterdomain(Self.d1, remote: Self.d2, remotePort: p2) == errEINVAL, "d1 binding d2's port")
            #expect(world.status(Self.d2, port: p2) == (Int64(EventChannelStatus.interdomain.rawValue), 0, UInt64(p3) << 32 | 3))
        }
        #expect(Self.channels(w) == Self.channels(n))
        #expect(Self.channelWorks(w, p2, p3))
    }

    @Test("a forged 'bound' from a truthful sender, for a port offered to it but never bound, or offered to another domain: dropped (not offered)")
    func forgedBound() {
        let (w, p2, p3) = Self.world()
        let q = UInt32(w.allocUnbound(Self.d2, remote: Self.d1))
        let r = UInt32(w.allocUnbound(Self.d2, remote: Self.d3))
        let before = Self.channels(w)
        let applied = w.layer(Self.d2).controlMessages[.applied]
        for port in [q, r, p2, 0, 1023, 1024, 0xFFFF_FFFF] {
            #expect(Self.post(w, from: Self.d1, connection: Self.control(to: Self.d2), type: ControlMessageType.bound.rawValue, port: port,
                              fromDomain: Self.d1.rawValue, fromPort: 7) == .success)
        }
        #expect(w.layer(Self.d2).controlMessages[.notOffered] == 7)
        #expect(w.layer(Self.d2).controlMessages[.applied] == applied)
        #expect(Self.channels(w) == before)
        // The real bind of the offered port still works.
        let l = w.bindInterdomain(Self.d1, remote: Self.d2, remotePort: q)
        #expect(l > 0 && w.layer(Self.d2).controlMessages[.applied] == applied + 1)
        w.acknowledgeEvents(Self.d2, vcpu: 0)
        #expect(w.send(Self.d1, port: UInt32(l)) == 0 && w.isPending(Self.d2, port: q))
        #expect(Self.channelWorks(w, p2, p3))
    }

    @Test("a forged 'closed', and payloads naming a domain other than the sender's: dropped, d2's channel to d3 stays")
    func forgedClosedAndOtherDomain() {
        let (w, p2, p3) = Self.world()
        let before = Self.channels(w)
        // From d1, truthfully, about d2's channel with d3: d2's port is not interdomain with d1.
        Self.post(w, from: Self.d1, connection: Self.control(to: Self.d2), type: ControlMessageType.closed.rawValue, port: p2,
                  fromDomain: Self.d1.rawValue, fromPort: p3)
        #expect(w.layer(Self.d2).controlMessages[.notInterdomain] == 1)
        // From d1, claiming to be d3, d2, DOMID_SELF or an absent domain.
        for claimed: UInt16 in [3, 2, 0x7FF0, 9, 0xFFFF] {
            Self.post(w, from: Self.d1, connection: Self.control(to: Self.d2), type: ControlMessageType.closed.rawValue, port: p2,
                      fromDomain: claimed, fromPort: p3)
        }
        #expect(w.layer(Self.d2).controlMessages[.domainMismatch] == 5)
        // d3, the real peer, about a link the root still holds: stale.
        Self.post(w, from: Self.d3, connection: Self.control(to: Self.d2), type: ControlMessageType.closed.rawValue, port: p2,
                  fromDomain: Self.d3.rawValue, fromPort: p3)
        #expect(w.layer(Self.d2).controlMessages[.stale] == 1)
        #expect(Self.channels(w) == before)
        #expect(Self.channelWorks(w, p2, p3))
    }

    @Test("replayed messages: 'bound' after the bind, 'closed' after the close and after a new bind of the same ports, are dropped")
    func replayed() {
        let (w, p2, p3) = Self.world()
        let q = UInt32(w.allocUnbound(Self.d2, remote: Self.d1))
        let l = UInt32(w.bindInterdomain(Self.d1, remote: Self.d2, remotePort: q))
        let counts = { w.layer(Self.d2).controlMessages }
        let applied = counts()[.applied]
        func replay(_ type: ControlMessageType) {
            Self.post(w, from: Self.d1, connection: Self.control(to: Self.d2), type: type.rawValue, port: q, fromDomain: Self.d1.rawValue, fromPort: l)
        }
        replay(.bound)
        #expect(counts()[.notOffered] == 1, "q is interdomain already")
        #expect(w.close(Self.d1, port: l) == 0)
        #expect(counts()[.applied] == applied + 1, "the real 'closed'")
        #expect(w.status(Self.d2, port: q).0 == Int64(EventChannelStatus.unbound.rawValue))
        replay(.closed)
        #expect(counts()[.notInterdomain] == 1, "q is unbound already")
        replay(.bound)
        #expect(counts()[.notOffered] == 2, "the root holds no link: a replayed 'bound' cannot rebind q")
        #expect(w.status(Self.d2, port: q).0 == Int64(EventChannelStatus.unbound.rawValue))
        // A new bind of the same two ports, then the old 'closed' again: the root still holds it.
        #expect(w.bindInterdomain(Self.d1, remote: Self.d2, remotePort: q) == Int64(l))
        replay(.closed)
        #expect(counts()[.stale] == 1)
        w.acknowledgeEvents(Self.d1, vcpu: 0)
        #expect(w.send(Self.d2, port: q) == 0 && w.isPending(Self.d1, port: l), "the rebound channel works")
        #expect(Self.channelWorks(w, p2, p3))
    }

    @Test("unknown types, malformed payloads, a message on the wrong SINT and one on a port that is no control port: dropped and counted, slots freed")
    func unknownMalformedMisdirected() {
        let (w, p2, p3) = Self.world()
        let before = Self.channels(w)
        let c = Self.control(to: Self.d2)
        for type: UInt32 in [0x5856_0003, 0x5856_0000, 1, 0x7FFF_FFFF] {
            #expect(Self.post(w, from: Self.d1, connection: c, type: type, port: p2, fromDomain: 1, fromPort: p3) == .success)
        }
        #expect(w.layer(Self.d2).controlMessages[.unknownType] == 4)
        for size: UInt32 in [0, 4, 11, 13, 240] {
            Self.post(w, from: Self.d3, connection: c, type: ControlMessageType.closed.rawValue, port: p2, fromDomain: 3, fromPort: p3, size: size)
        }
        Self.post(w, from: Self.d3, connection: c, type: ControlMessageType.closed.rawValue, port: p2, fromDomain: 3, fromPort: p3, reserved: 1)
        #expect(w.layer(Self.d2).controlMessages[.malformed] == 6)
        // The root (or an embedder) gave d2's partition a message port on SINT 3 of VP 1, and one
        // on SINT 0 that is not a control port, with connections from d1's partition.
        let p = w.root.partition(of: Self.d2)!, from = w.root.partition(of: Self.d1)!
        #expect(w.reference.createPort(in: p, port: PortID(0x4242), kind: .message(vp: VPIndex(1), sint: 3)) == .success)
        #expect(w.reference.connectPort(from: from, connection: ConnectionID(0x4243), to: p, port: PortID(0x4242)) == .success)
        #expect(w.reference.createPort(in: p, port: PortID(0x4244), kind: .message(vp: VPIndex(0), sint: 0)) == .success)
        #expect(w.reference.connectPort(from: from, connection: ConnectionID(0x4245), to: p, port: PortID(0x4244)) == .success)
        for _ in 0..<12 {  // more than the target queues, so every slot must be freed each time
            #expect(Self.post(w, from: Self.d1, connection: 0x4243, type: ControlMessageType.closed.rawValue, port: p2, fromDomain: 3, fromPort: p3) == .success)
            #expect(Self.post(w, from: Self.d1, connection: 0x4245, type: ControlMessageType.closed.rawValue, port: p2, fromDomain: 3, fromPort: p3) == .success)
        }
        #expect(w.layer(Self.d2).controlMessages[.wrongSint] == 12)
        #expect(w.layer(Self.d2).controlMessages[.unauthenticated] == 12)
        let sim = w.ram(Self.d2).region.hostAddress(of: GuestFrameNumber(WorldLayout.layerFrames().rawValue + 3))!  // VP 1's SIM page
        #expect(sim.load(fromByteOffset: HvMessagePageLayout.sintMessage.offset(ofElement: 3), as: UInt32.self) == 0, "the SINT 3 slot is free")
        #expect(w.layer(Self.d2).controlMessages.dropped == 4 + 6 + 24)
        #expect(Self.channels(w) == before)
        #expect(Self.channelWorks(w, p2, p3))
    }

    @Test("closing removes only what the root linked: a stale record of a channel whose far port was reused closes nothing of the new channel")
    func closeFollowsTheRootsRecords() {
        let (w, p2, p3) = Self.world()
        // d3's vCPUs are not running: the 'closed' d2 sends stays in d3's SIM page.
        w.router.hold(w.root.partition(of: Self.d3)!)
        #expect(w.close(Self.d2, port: p2) == 0)
        #expect(w.status(Self.d3, port: p3).0 == Int64(EventChannelStatus.interdomain.rawValue), "d3 has not heard yet")
        // d2's port number is reused for a channel with d1.
        #expect(w.allocUnbound(Self.d2, remote: Self.d1) == Int64(p2))
        let l = w.bindInterdomain(Self.d1, remote: Self.d2, remotePort: p2)
        #expect(l > 0)
        // d3 closes its stale end: the root holds no link for it, so nothing of d2's goes.
        #expect(w.close(Self.d3, port: p3) == 0)
        w.acknowledgeEvents(Self.d1, vcpu: 0)
        #expect(w.send(Self.d2, port: p2) == 0 && w.isPending(Self.d1, port: UInt32(l)), "d2's new channel to d1 works")
        w.acknowledgeEvents(Self.d2, vcpu: 0)
        #expect(w.send(Self.d1, port: UInt32(l)) == 0 && w.isPending(Self.d2, port: p2))
        // d3 runs again and takes the old notice: its port is free now, so it changes nothing.
        w.router.release(w.root.partition(of: Self.d3)!)
        #expect(w.layer(Self.d3).controlMessages[.notInterdomain] == 1)
        #expect(w.status(Self.d2, port: p2) == (Int64(EventChannelStatus.interdomain.rawValue), 0, UInt64(l) << 32 | 1))
    }

    @Test("closing an unbound port that a peer has just bound closes the channel: the peer's end is unbound again, the root keeps no link (found by ThreadStressTests)")
    func closeRacingAPeersBind() {
        let (w, p2, p3) = Self.world()
        let u = UInt32(w.allocUnbound(Self.d2, remote: Self.d1))
        // d2's vCPUs are not running: d1's "bound" notice waits in d2's SIM page.
        w.router.hold(w.root.partition(of: Self.d2)!)
        let l = w.bindInterdomain(Self.d1, remote: Self.d2, remotePort: u)
        #expect(l > 0)
        #expect(w.status(Self.d2, port: u).0 == Int64(EventChannelStatus.unbound.rawValue), "d2 has not heard yet")
        #expect(w.close(Self.d2, port: u) == 0)
        #expect(w.root.link(of: Self.d2, port: u) == nil && w.root.link(of: Self.d1, port: UInt32(l)) == nil, "no link left behind")
        #expect(w.status(Self.d1, port: UInt32(l)) == (Int64(EventChannelStatus.unbound.rawValue), 0, 2), "d1's end waits for d2 again")
        w.router.release(w.root.partition(of: Self.d2)!)
        #expect(w.layer(Self.d2).controlMessages[.notOffered] == 1, "the late 'bound' finds the port closed")
        // The port number is used again, cleanly: a loopback channel on it.
        let again = w.allocUnbound(Self.d2, remote: Self.d2)
        #expect(again == Int64(u))
        #expect(w.bindInterdomain(Self.d2, remote: Self.d2, remotePort: UInt32(again)) > 0)
        #expect(Self.channelWorks(w, p2, p3))
    }

    @Test("every XV_CONTROL_VERDICT row is reached and counted, in one world")
    func everyVerdictIsReached() {
        let (w, p2, p3) = Self.world()
        let c = Self.control(to: Self.d2)
        let closed = ControlMessageType.closed.rawValue
        let p = w.root.partition(of: Self.d2)!, from = w.root.partition(of: Self.d1)!
        #expect(w.reference.createPort(in: p, port: PortID(0x4242), kind: .message(vp: VPIndex(0), sint: 5)) == .success)
        #expect(w.reference.connectPort(from: from, connection: ConnectionID(0x4243), to: p, port: PortID(0x4242)) == .success)
        #expect(w.reference.createPort(in: p, port: PortID(0x4244), kind: .message(vp: VPIndex(0), sint: 0)) == .success)
        #expect(w.reference.connectPort(from: from, connection: ConnectionID(0x4245), to: p, port: PortID(0x4244)) == .success)
        Self.post(w, from: Self.d1, connection: 0x4243, type: closed, port: p2, fromDomain: 1, fromPort: p3)           // wrong SINT
        Self.post(w, from: Self.d1, connection: 0x4245, type: closed, port: p2, fromDomain: 1, fromPort: p3)           // unauthenticated
        Self.post(w, from: Self.d3, connection: c, type: closed, port: p2, fromDomain: 3, fromPort: p3, size: 8)        // malformed
        Self.post(w, from: Self.d3, connection: c, type: 0x77, port: p2, fromDomain: 3, fromPort: p3)                  // unknown type
        Self.post(w, from: Self.d1, connection: c, type: closed, port: p2, fromDomain: 3, fromPort: p3)                // domain mismatch
        Self.post(w, from: Self.d3, connection: c, type: ControlMessageType.bound.rawValue, port: p2, fromDomain: 3, fromPort: p3)  // not offered
        Self.post(w, from: Self.d3, connection: c, type: closed, port: p2, fromDomain: 3, fromPort: p3 + 1)            // not interdomain
        Self.post(w, from: Self.d3, connection: c, type: closed, port: p2, fromDomain: 3, fromPort: p3)                // stale
        #expect(w.close(Self.d3, port: p3) == 0)                                                                       // applied
        let rows = SpecCatalog.constants.filter { $0.family == "XV_CONTROL_VERDICT" }
        #expect(rows.count == 9)
        for row in rows {
            let verdict = ControlVerdict(rawValue: UInt8(row.magnitude))
            #expect(w.layer(Self.d2).controlMessages[verdict] == 1, "\(row.name): \(w.layer(Self.d2).controlMessages[verdict])")
        }
        #expect(w.layer(Self.d2).controlMessages.dropped == 8)
    }
}
