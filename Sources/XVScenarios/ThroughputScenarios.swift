import CGuestAtomics
import GuestABI
import XenABI
import XenCore
import XenNative
import XenViridian

/// Multi-threaded throughput of interdomain sends (`xv bench`, Docs/Threading.md): each lane is
/// one sender vCPU on a thread of its own, sending on its own channel to a receiver vCPU that
/// no other lane uses, with the receiving guest's acknowledgement after each send (its upcall
/// flag, selector bit and pending bit cleared, as an upcall handler would), so every send takes
/// the whole path up to the upcall.
public enum ThroughputScenario: String, CaseIterable, Sendable {
    /// One sender: domain 1's vCPU 0 to domain 2's vCPU 0.
    case oneSender = "interdomain_1_sender"
    /// Two senders in two domains, to two receivers: domain 1 to domain 2 and domain 3 to domain 4.
    case twoSenders = "interdomain_2_senders"
    /// Two vCPUs of one domain: domain 1's vCPUs 0 and 1, to domain 2's vCPUs 0 and 1.
    case twoVCPUsOneDomain = "interdomain_2_vcpus_same_domain"

    /// A one-line description for `xv bench`'s throughput table and JSON.
    public var summary: String {
        switch self {
        case .oneSender: return "interdomain sends from one sender thread (with the receiver's acknowledgement)"
        case .twoSenders: return "interdomain sends from two sender threads in two domains, to two receiving domains"
        case .twoVCPUsOneDomain: return "interdomain sends from two vCPUs of one domain, to two vCPUs of another"
        }
    }

    /// (sender domain, sender vCPU, receiver domain, receiver vCPU) per lane.
    var lanes: [(DomainID, Int, DomainID, Int)] {
        switch self {
        case .oneSender: return [(DomainID(1), 0, DomainID(2), 0)]
        case .twoSenders: return [(DomainID(1), 0, DomainID(2), 0), (DomainID(3), 0, DomainID(4), 0)]
        case .twoVCPUsOneDomain: return [(DomainID(1), 0, DomainID(2), 0), (DomainID(1), 1, DomainID(2), 1)]
        }
    }
}

/// One sender thread's work, prepared on a world: the registers of its EVTCHNOP_send (the
/// argument in the sender vCPU's own argument slot) and the receiver's words
/// it acknowledges.
public struct ThroughputLane: @unchecked Sendable {
    /// The sending domain.
    public let sender: DomainID
    /// The sending vCPU, which runs on the lane's own thread.
    public let vcpu: Int
    let registers: XenHypercallRegisters
    let pendingWord: UnsafeMutableRawPointer
    let pendingMask: UInt64
    let selectorWord: UnsafeMutableRawPointer
    let selectorMask: UInt64
    let upcallFlag: UnsafeMutableRawPointer
}

/// The lanes of one scenario on one world: channels made as guests make them, every receiving
/// port moved to its lane's receiver vCPU, ports of different lanes in different 64-port words.
public func throughputLanes(_ scenario: ThroughputScenario, on w: any XenWorld) -> [ThroughputLane] {
    for d in 0..<w.domainCount { _ = w.setCallbackVector(w.domainID(d), 0x40 + UInt8(d)) }
    var lanes: [ThroughputLane] = []
    var locals: [(DomainID, Int, UInt32)] = []
    for (i, (sender, vcpu, receiver, rvcpu)) in scenario.lanes.enumerated() {
        // Lanes' receiving ports in different cache lines of the pending bitmap (eight 64-port
        // words a line): fill the ports below with IPI ports. Ports that share a line would
        // measure the 2-level ABI's own false sharing, which guests avoid the same way.
        while true {
            let probe = w.bindIPI(receiver, vcpu: 0)
            if probe < 0 || probe >= Int64(512 * i + 64) { break }
        }
        let remote = UInt32(w.allocUnbound(receiver, remote: sender))
        let local = UInt32(w.bindInterdomain(sender, remote: receiver, remotePort: remote))
        _ = w.evtchn(receiver, .bindVcpu, [(EvtchnBindVcpuLayout.port, UInt64(remote)), (EvtchnBindVcpuLayout.vcpu, UInt64(rvcpu))])
        locals.append((sender, vcpu, local))
        let si = w.sharedInfo(receiver)
        let info = si + SharedInfoLayout.vcpuInfo.offset(ofElement: rvcpu)
        lanes.append(ThroughputLane(sender: sender, vcpu: vcpu,
                                    registers: XenHypercallRegisters(rax: XenHypercall.eventChannelOp.rawValue, rdi: UInt64(EventChannelOp.send.rawValue),
                                                                     rsi: w.argumentAddress(slot: vcpu)),
                                    pendingWord: si + SharedInfoLayout.evtchnPending.offset(ofElement: Int(remote / 64)),
                                    pendingMask: 1 << UInt64(remote % 64),
                                    selectorWord: info + VcpuInfoLayout.evtchnPendingSel.offset,
                                    selectorMask: 1 << UInt64(remote / 64),
                                    upcallFlag: info + VcpuInfoLayout.evtchnUpcallPending.offset))
    }
    // Each sender's argument last: the set-up calls above use the start of the argument page.
    for (sender, vcpu, local) in locals {
        w.writeArguments(sender, size: EvtchnSendLayout.size, [(EvtchnSendLayout.port, UInt64(local))], slot: vcpu)
    }
    for d in 0..<w.domainCount {
        for v in 0..<w.vcpuCount { w.acknowledgeEvents(w.domainID(d), vcpu: v) }
    }
    return lanes
}

extension ThroughputLane {
    /// The receiving guest's acknowledgement of one event (atomic, as a guest's is: other
    /// lanes' events share these words' cache lines only when they share the words).
    @inline(__always)
    func acknowledge() {
        xv_store_release_u8(upcallFlag, 0)
        _ = xv_atomic_fetch_and_u64(selectorWord, ~selectorMask)
        _ = xv_atomic_fetch_and_u64(pendingWord, ~pendingMask)
    }

    /// `count` sends and acknowledgements on the native side; the sends that did not answer 0.
    public func run(native w: NativeWorld, count: Int) -> Int {
        let system = Unmanaged.passUnretained(w.system)
        var failed = 0
        for _ in 0..<count {
            let r = system._withUnsafeGuaranteedRef { $0.hypercall(domain: sender, vcpu: vcpu, registers) }
            if r != 0 { failed &+= 1 }
            acknowledge()
        }
        return failed
    }

    /// The same on the translated side.
    public func run(translated w: TranslatedWorld, count: Int) -> Int {
        let layer = Unmanaged.passUnretained(w.layer(sender))
        var failed = 0
        for _ in 0..<count {
            let r = layer._withUnsafeGuaranteedRef { $0.hypercall(vcpu: vcpu, registers) }
            if r != 0 { failed &+= 1 }
            acknowledge()
        }
        return failed
    }
}
