import CGuestAtomics
import Foundation
import Testing
import GuestABI
import XenABI
import XenCore
import XenViridian
import XVScenarios
import XVTestSupport

/// The threading contract (Docs/Threading.md) on real threads: each vCPU on a thread of its
/// own, every domain's vCPUs at once, guest-side consumers clearing bits beside them. Runs are
/// bounded in iterations, so they end by themselves; `.ci/tsan` runs this suite under
/// ThreadSanitizer.
@Suite("Threads: every vCPU on its own thread")
struct ThreadStressTests {
    static let domains = 3, vcpus = 4
    /// The vCPU of domain 2 that only the wake-up handshake's port notifies.
    static let handshakeVCPU = 3

    // MARK: - Checks

    @Test("2-level, native: sends, unmasks, binds, closes, vCPU moves and a reset on five threads; no lost wake-up, no event on a freed port, both ends of every channel agree, selectors cover pending words")
    func twoLevelNative() {
        let w = NativeWorld(domains: Self.domains, vcpus: Self.vcpus)
        Self.stress(w, switchToFIFO: false, seed: 0x5854_0001)
    }

    @Test("2-level to FIFO, native: domain 3 switches ABI and adds event-array pages while the others send to it; FIFO queues well-formed afterwards")
    func fifoSwitchNative() {
        let w = NativeWorld(domains: Self.domains, vcpus: Self.vcpus)
        Self.stress(w, switchToFIFO: true, seed: 0x5854_0002)
    }

    @Test("2-level, translated: the same run on XenViridian over the reference hypervisor")
    func twoLevelTranslated() {
        let w = TranslatedWorld(domains: Self.domains, vcpus: Self.vcpus)
        Self.stress(w, switchToFIFO: false, seed: 0x5854_0003)
        Self.checkLayer(w)
    }

    @Test("2-level to FIFO, translated: the same ABI switch on XenViridian over the reference hypervisor")
    func fifoSwitchTranslated() {
        let w = TranslatedWorld(domains: Self.domains, vcpus: Self.vcpus)
        Self.stress(w, switchToFIFO: true, seed: 0x5854_0004)
        Self.checkLayer(w)
    }

    /// The layer's own records after a translated run: every honest control message was
    /// applied or found stale (none forged), and the root's links match the channels.
    static func checkLayer(_ w: TranslatedWorld) {
        for d in 0..<domains {
            let id = w.domainID(d)
            let counts = w.layer(id).controlMessages
            #expect(counts[.unauthenticated] == 0 && counts[.domainMismatch] == 0 && counts[.malformed] == 0 && counts[.unknownType] == 0
                    && counts[.wrongSint] == 0, "d\(id.rawValue): \(counts)")
            let domain = w.xenDomain(id)
            var port: UInt32 = 1
            while domain.isValid(port) {
                let c = domain.channel(port)
                if c.state == .interdomain, let link = w.root.link(of: id, port: port) {
                    #expect(link.domain == c.remoteDomain && link.port == c.remotePort, "d\(id.rawValue):\(port): root \(link), record \(c.remoteDomain.rawValue):\(c.remotePort)")
                }
                if c.state == .interdomain { #expect(w.root.link(of: id, port: port) != nil, "d\(id.rawValue):\(port) is interdomain without a root link") }
                port += 1
            }
        }
    }

    // MARK: - The run

    /// One run: a wake-up handshake between domain 1 (vCPU 2) and a guest consumer of domain 2
    /// (vCPU 3), and churn threads on vCPUs 0 and 1 of every domain.
    static func stress(_ w: any XenWorld, switchToFIFO: Bool, seed: UInt64, handshakes: Int = 3000, churn: Int = 6000) {
        for d in 0..<domains { #expect(w.setCallbackVector(w.domainID(d), 0x40 + UInt8(d)) == 0) }
        let d1 = DomainID(1), d2 = DomainID(2)
        let hp = UInt32(w.allocUnbound(d2, remote: d1))
        let hs = UInt32(w.bindInterdomain(d1, remote: d2, remotePort: hp))
        #expect(w.evtchn(d2, .bindVcpu, [(EvtchnBindVcpuLayout.port, UInt64(hp)), (EvtchnBindVcpuLayout.vcpu, UInt64(handshakeVCPU))]) == 0)
        let shared = Shared(w)
        var bodies: [@Sendable () -> Void] = []
        bodies.append { handshakeSender(shared, port: hs, count: handshakes) }
        bodies.append { handshakeConsumer(shared, port: hp, count: handshakes) }
        for d in 0..<domains {
            // In the 2-level runs domain 3 has one churn thread, which resets the domain
            // (EVTCHNOP_reset closes every port, the other domains' ends included) partway.
            for v in 0..<((!switchToFIFO && d == 2) ? 1 : 2) {
                let fifo = switchToFIFO && d == 2 && v == 0
                let reset = !switchToFIFO && d == 2
                bodies.append { churnThread(shared, domain: d, vcpu: v, seed: seed &+ UInt64(d * 8 + v), iterations: churn, switchToFIFO: fifo, reset: reset) }
            }
        }
        runConcurrently(bodies)
        #expect(shared.failures.isEmpty, "\(shared.failures.prefix(12))")
        #expect(shared.handshakesDone.load() == handshakes, "every handshake completed")
        #expect(w.recorder.count(domain: d2, vcpu: handshakeVCPU) == handshakes, "exactly one upcall per handshake on domain 2's vCPU \(handshakeVCPU)")
        for d in 0..<domains { checkConsistency(w, w.domainID(d)) }
        if switchToFIFO { #expect(w.xenDomain(DomainID(3)).usesFIFO) }
    }

    /// Domain 1's vCPU 2: sends on the handshake port each time the consumer has cleared.
    static func handshakeSender(_ s: Shared, port: UInt32, count: Int) {
        for i in 1...count {
            while s.cleared.load() < i { sched_yield() }
            let r = s.call(DomainID(1), vcpu: 2, .send, [(EvtchnSendLayout.port, UInt64(port))])
            if r != 0 { s.fail("handshake send \(i): \(r)") }
            s.sent.store(i)
        }
    }

    /// Domain 2's guest on vCPU 3: clears its upcall flag, selector and the port's pending
    /// bit, lets the sender go, and checks that the send that follows gave the bit and one
    /// upcall (no lost wake-up).
    static func handshakeConsumer(_ s: Shared, port: UInt32, count: Int) {
        let d2 = DomainID(2), v = handshakeVCPU
        let si = s.world.sharedInfo(d2)
        let info = si + SharedInfoLayout.vcpuInfo.offset(ofElement: v)
        let pendingWord = si + SharedInfoLayout.evtchnPending.offset(ofElement: Int(port / 64))
        for i in 1...count {
            xv_store_release_u8(info + VcpuInfoLayout.evtchnUpcallPending.offset, 0)
            _ = xv_atomic_exchange_u64(info + VcpuInfoLayout.evtchnPendingSel.offset, 0)
            _ = xv_atomic_fetch_and_u64(pendingWord, ~(UInt64(1) << UInt64(port % 64)))
            let before = s.world.recorder.count(domain: d2, vcpu: v)
            s.cleared.store(i)
            while s.sent.load() < i { sched_yield() }
            let pending = xv_atomic_load_u64(pendingWord) & (UInt64(1) << UInt64(port % 64)) != 0
            let flagged = xv_load_acquire_u8(info + VcpuInfoLayout.evtchnUpcallPending.offset) == 1
            let upcalls = s.world.recorder.count(domain: d2, vcpu: v) - before
            if !pending || !flagged || upcalls != 1 { s.fail("handshake \(i): pending \(pending), upcall flag \(flagged), upcalls \(upcalls)") }
            s.handshakesDone.store(i)
        }
    }

    /// A vCPU of one domain doing everything a guest does to its ports, at random, on the ports
    /// it made itself (so no two threads close the same port).
    static func churnThread(_ s: Shared, domain d: Int, vcpu v: Int, seed: UInt64, iterations: Int, switchToFIFO: Bool, reset: Bool = false) {
        let me = s.world.domainID(d)
        var r = SplitMix(seed: seed)
        var own: [UInt32] = []
        let switchAt = switchToFIFO ? iterations / 3 : -1
        let resetAt = reset ? 2 * iterations / 3 : -1
        for i in 0..<iterations {
            if i == switchAt { switchABI(s, me, vcpu: v) }
            if i == resetAt {
                let r = s.call(me, vcpu: v, .reset, [(EvtchnResetLayout.dom, 0x7FF0)])
                if r != 0 { s.fail("d\(me.rawValue): reset \(r)") }
                own.removeAll()
            }
            // Keep well below maxPort: a thread closes what it made once it holds many ports.
            let choice = own.count > 48 ? 6 : r.below(10)
            switch choice {
            case 0:
                // A fresh IPI port is not pending: nothing of an earlier port of that number lands on it.
                let p = s.call(me, vcpu: v, .bindIpi, [(EvtchnBindIpiLayout.vcpu, UInt64(r.below(3)))], out: EvtchnBindIpiLayout.port)
                guard p > 0 else { break }
                if s.isPending(me, UInt32(p)) { s.fail("d\(me.rawValue): new IPI port \(p) is pending") }
                _ = s.call(me, vcpu: v, .send, [(EvtchnSendLayout.port, UInt64(p))])
                own.append(UInt32(p))
            case 1:
                // A loopback channel: both ends here.
                let u = s.call(me, vcpu: v, .allocUnbound, [(EvtchnAllocUnboundLayout.dom, 0x7FF0), (EvtchnAllocUnboundLayout.remoteDom, 0x7FF0)],
                               out: EvtchnAllocUnboundLayout.port)
                guard u > 0 else { break }
                if s.isPending(me, UInt32(u)) { s.fail("d\(me.rawValue): new unbound port \(u) is pending") }
                own.append(UInt32(u))
                let l = s.call(me, vcpu: v, .bindInterdomain, [(EvtchnBindInterdomainLayout.remoteDom, 0x7FF0), (EvtchnBindInterdomainLayout.remotePort, UInt64(u))],
                               out: EvtchnBindInterdomainLayout.localPort)
                // -ENOSPC: ports used up; -EAGAIN: the peer's control queue was full (the
                // translated side's documented back-pressure; a guest retries).
                if l > 0 { own.append(UInt32(l)) } else if l != errENOSPC && l != XenErrno.eagain.hypercallReturnValue {
                    let c = s.world.xenDomain(me).channel(UInt32(u))
                    let offered = (s.world as? TranslatedWorld).map { $0.root.isOffered(me, port: UInt32(u), to: me) }
                    s.fail("d\(me.rawValue): loopback bind to \(u): \(l); \(c.state) for \(c.remoteDomain.rawValue), offered \(String(describing: offered))")
                }
            case 2:
                // Offer a port to another domain, whose threads bind it.
                let peer = (d + 1 + r.below(domains - 1)) % domains
                let u = s.call(me, vcpu: v, .allocUnbound, [(EvtchnAllocUnboundLayout.dom, 0x7FF0), (EvtchnAllocUnboundLayout.remoteDom, UInt64(peer + 1))],
                               out: EvtchnAllocUnboundLayout.port)
                guard u > 0 else { break }
                own.append(UInt32(u))
                s.offer(to: peer, from: d, port: UInt32(u))
            case 3:
                guard let (from, u) = s.takeOffer(for: d) else { break }
                let l = s.call(me, vcpu: v, .bindInterdomain, [(EvtchnBindInterdomainLayout.remoteDom, UInt64(from + 1)), (EvtchnBindInterdomainLayout.remotePort, UInt64(u))],
                               out: EvtchnBindInterdomainLayout.localPort)
                if l > 0 { own.append(UInt32(l)) }
            case 4, 5:
                guard !own.isEmpty else { break }
                let r = s.call(me, vcpu: v, .send, [(EvtchnSendLayout.port, UInt64(own[r.below(own.count)]))])
                if r != 0 && r != errEINVAL { s.fail("d\(me.rawValue): send \(r)") }
            case 6:
                guard !own.isEmpty else { break }
                let k = r.below(own.count)
                let c = s.call(me, vcpu: v, .close, [(EvtchnCloseLayout.port, UInt64(own[k]))])
                if c != 0 { s.fail("d\(me.rawValue): close of its own port \(own[k]): \(c)") }
                own.remove(at: k)
            case 7:
                guard !own.isEmpty else { break }
                _ = s.call(me, vcpu: v, .unmask, [(EvtchnUnmaskLayout.port, UInt64(own[r.below(own.count)]))])
            case 8:
                guard !own.isEmpty else { break }
                _ = s.call(me, vcpu: v, .bindVcpu, [(EvtchnBindVcpuLayout.port, UInt64(own[r.below(own.count)])), (EvtchnBindVcpuLayout.vcpu, UInt64(r.below(3)))])
            default:
                _ = s.call(me, vcpu: v, .status, [(EvtchnStatusLayout.dom, 0x7FF0), (EvtchnStatusLayout.port, UInt64(r.below(64)))])
            }
        }
    }

    /// EVTCHNOP_init_control on every vCPU and two event-array pages, from `vcpu`'s thread.
    static func switchABI(_ s: Shared, _ me: DomainID, vcpu: Int) {
        for cb in 0..<vcpus {
            let r = s.call(me, vcpu: vcpu, .initControl, [(EvtchnInitControlLayout.controlGfn, WorldLayout.firstFreeFrame + UInt64(cb)),
                                                          (EvtchnInitControlLayout.offset, 0), (EvtchnInitControlLayout.vcpu, UInt64(cb))])
            if r != 0 { s.fail("d\(me.rawValue): init_control vCPU \(cb): \(r)") }
        }
        for page in 0..<2 {
            let r = s.call(me, vcpu: vcpu, .expandArray, [(EvtchnExpandArrayLayout.arrayGfn, WorldLayout.firstFreeFrame + 8 + UInt64(page))])
            if r != 0 { s.fail("d\(me.rawValue): expand_array: \(r)") }
        }
    }

    /// After the threads joined: a free port is not pending; both ends of every interdomain
    /// channel name each other; FIFO queues are chains from HEAD through LINKED words, without
    /// cycles, covering every LINKED word.
    static func checkConsistency(_ w: any XenWorld, _ d: DomainID) {
        let domain = w.xenDomain(d)
        var port: UInt32 = 1
        var linked = Set<UInt32>()
        while domain.isValid(port) {
            let c = domain.channel(port)
            let pending = domain.usesFIFO ? fifoWord(w, d, port).map { $0 & 1 << EventChannelFIFO.pending != 0 } ?? false : w.isPending(d, port: port)
            if c.state == .free { #expect(!pending, "d\(d.rawValue): free port \(port) is pending") }
            if c.state == .interdomain {
                let peer = w.xenDomain(c.remoteDomain).channel(c.remotePort)
                #expect(peer.isInterdomain(with: d, remotePort: port), "d\(d.rawValue):\(port) names d\(c.remoteDomain.rawValue):\(c.remotePort), which is \(peer.state)")
            }
            if domain.usesFIFO, let word = fifoWord(w, d, port), word & 1 << EventChannelFIFO.linked != 0 { linked.insert(port) }
            port += 1
        }
        guard domain.usesFIFO else {
            // 2-level: every word with a pending, unmasked bit has its selector bit set on some
            // vCPU (the upcall path sets it; only the handshake consumer clears selectors, and
            // only for its own port's word, whose bit it clears too).
            let si = w.sharedInfo(d)
            for word in 0..<64 {
                let pending = xv_atomic_load_u64(si + SharedInfoLayout.evtchnPending.offset(ofElement: word))
                let mask = xv_atomic_load_u64(si + SharedInfoLayout.evtchnMask.offset(ofElement: word))
                guard pending & ~mask != 0 else { continue }
                let selected = (0..<vcpus).contains { v in
                    xv_atomic_load_u64(si + SharedInfoLayout.vcpuInfo.offset(ofElement: v) + VcpuInfoLayout.evtchnPendingSel.offset) & (UInt64(1) << UInt64(word)) != 0
                }
                #expect(selected, "d\(d.rawValue): word \(word) has pending unmasked events and no selector bit")
            }
            return
        }
        var reached = Set<UInt32>()
        for v in 0..<vcpus {
            let cb = w.ram(d).region.hostAddress(of: GuestFrameNumber(WorldLayout.firstFreeFrame + UInt64(v)))!
            for q in 0..<16 {
                var p = cb.load(fromByteOffset: EvtchnFifoControlBlockLayout.head.offset(ofElement: q), as: UInt32.self)
                var steps = 0
                while p != 0, let word = fifoWord(w, d, p), word & 1 << EventChannelFIFO.linked != 0 {
                    #expect(!reached.contains(p), "d\(d.rawValue): port \(p) is on two queues, or a queue has a cycle")
                    guard !reached.contains(p), steps <= Int(domain.maxPort) else { break }
                    reached.insert(p)
                    p = word & EventChannelFIFO.linkMask
                    steps += 1
                }
            }
        }
        #expect(linked.subtracting(reached).isEmpty, "d\(d.rawValue): LINKED words no queue reaches: \(linked.subtracting(reached).sorted().prefix(8))")
    }

    static func fifoWord(_ w: any XenWorld, _ d: DomainID, _ port: UInt32) -> UInt32? {
        let page = Int(port) / 1024
        guard page < 2 else { return nil }
        return w.ram(d).region.hostAddress(of: GuestFrameNumber(WorldLayout.firstFreeFrame + 8 + UInt64(page)))!
            .load(fromByteOffset: Int(port % 1024) * 4, as: UInt32.self)
    }
}

/// What the threads of one run share: the world, the handshake counters, the offers between
/// domains and the failures seen (checked after the threads joined).
final class Shared: @unchecked Sendable {
    let world: any XenWorld
    let cleared = Counter(), sent = Counter(), handshakesDone = Counter()
    private let lock = NSLock()
    private var offers: [[(Int, UInt32)]] = Array(repeating: [], count: ThreadStressTests.domains)
    private var failed: [String] = []

    init(_ world: any XenWorld) { self.world = world }

    var failures: [String] { lock.withLock { failed } }
    func fail(_ what: String) { lock.withLock { failed.append(what) } }
    func offer(to peer: Int, from d: Int, port: UInt32) { lock.withLock { offers[peer].append((d, port)) } }
    func takeOffer(for d: Int) -> (Int, UInt32)? { lock.withLock { offers[d].isEmpty ? nil : offers[d].removeFirst() } }

    /// An EVTCHNOP from `vcpu` with its arguments in that vCPU's own argument slot (vCPUs run
    /// at once); the `out` field when it succeeded, else the errno.
    func call(_ d: DomainID, vcpu: Int, _ op: EventChannelOp, _ fields: [(ABIField, UInt64)], out: ABIField? = nil) -> Int64 {
        let r = world.evtchn(d, vcpu: vcpu, op, size: 64, fields, slot: vcpu)
        guard r == 0, let out else { return r }
        return Int64(world.readArgument(d, out, slot: vcpu))
    }

    /// The 2-level pending bit, read atomically.
    func isPending(_ d: DomainID, _ port: UInt32) -> Bool {
        guard !world.xenDomain(d).usesFIFO else { return false }
        let word = world.sharedInfo(d) + SharedInfoLayout.evtchnPending.offset(ofElement: Int(port / 64))
        return xv_atomic_load_u64(word) & (UInt64(1) << UInt64(port % 64)) != 0
    }
}

/// A counter one thread raises and another waits on.
final class Counter: @unchecked Sendable {
    private let word = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    init() { word.initialize(to: 0) }
    deinit { word.deallocate() }
    func load() -> Int { Int(xv_load_acquire_u64(word)) }
    func store(_ v: Int) { xv_store_release_u64(word, UInt64(v)) }
}
