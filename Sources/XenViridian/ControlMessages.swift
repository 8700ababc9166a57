import CGuestAtomics
import GuestABI
import XenABI
import ViridianABI

/// Receiving a control message (Specs/translation/control.tbl). A receiving layer believes
/// only what the hypervisor vouches for:
///
/// - the SINT the message is in (control messages belong to `ControlIDs.sint`);
/// - the origination field of its header, which for a posted message is the id of the port it
///   arrived on (TLFS "SynIC Messages", HV_MESSAGE). Port BASE | S of this partition is the
///   one only S's partition is connected to, so it names the sender.
///
/// Everything in the payload is the sender's claim. It is checked against this domain's port
/// table and the root's link records, and applied only when it moves this domain's record to
/// what the root holds:
///
/// - "bound" for `port` from S: `port` is unbound for S here, and the root linked it to S's
///   `fromPort`;
/// - "closed" for `port` from S: `port` is interdomain with S's `fromPort` here, and the root
///   holds that link no more (a replayed or overtaken notice finds it still there).
extension XenViridianDomain {
    /// Judges the message in the control SINT's slot and applies it when it passes.
    @inlinable func applyControlMessage(_ slot: UnsafeRawPointer) -> ControlVerdict {
        let origin = UInt32(littleEndian: slot.load(fromByteOffset: HvMessageLayout.headerUPort.offset, as: UInt32.self))
        let originHigh = UInt32(littleEndian: slot.load(fromByteOffset: HvMessageLayout.headerUPort.offset + 4, as: UInt32.self))
        guard originHigh == 0, let sender = root.sender(ofControlPort: origin) else { return .unauthenticated }
        let size = slot.load(fromByteOffset: HvMessageLayout.headerPayloadSize.offset, as: UInt8.self)
        let payload = slot + HvMessageLayout.payload.offset
        let reserved = UInt16(littleEndian: payload.loadUnaligned(fromByteOffset: XvControlMessageLayout.reserved.offset, as: UInt16.self))
        guard UInt32(size) == ControlIDs.payloadSize, reserved == 0 else { return .malformed }
        let type = ControlMessageType(rawValue: UInt32(littleEndian: slot.load(fromByteOffset: HvMessageLayout.headerMessageType.offset, as: UInt32.self)))
        guard type == .bound || type == .closed else { return .unknownType }
        let claimed = DomainID(UInt16(littleEndian: payload.loadUnaligned(fromByteOffset: XvControlMessageLayout.fromDomain.offset, as: UInt16.self)))
        guard claimed == sender else { return .domainMismatch }
        let port = UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: XvControlMessageLayout.port.offset, as: UInt32.self))
        let fromPort = UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: XvControlMessageLayout.fromPort.offset, as: UInt32.self))
        let held = root.link(of: domain.id, port: port)
        let rootLinksThem = held.map { $0.domain == sender && $0.port == fromPort } ?? false
        if type == .bound {
            guard domain.isUnbound(port, for: sender), rootLinksThem else { return .notOffered }
            return domain.peerBound(port, to: sender, remotePort: fromPort) ? .applied : .notOffered
        }
        guard domain.isInterdomain(port, with: sender, remotePort: fromPort) else { return .notInterdomain }
        guard !rootLinksThem else { return .stale }
        domain.peerClosed(port, by: sender, remotePort: fromPort)
        return .applied
    }
}

/// How many messages a layer took from its SIM pages, by verdict: what an embedder reads to
/// see forged, replayed or misdirected control messages (every verdict but `.applied` is a
/// message that changed nothing). A snapshot of the layer's counters.
public struct ControlMessageCounts: Sendable, Equatable {
    /// Counters kept, one per XV_CONTROL_VERDICT row.
    @inlinable static var verdicts: Int { 9 }
    @usableFromInline var counts = InlineArray<9, UInt64>(repeating: 0)

    /// All counters zero.
    @inlinable public init() {}

    @inlinable init(_ counters: UnsafePointer<UInt64>) {
        for i in 0..<Self.verdicts { counts[i] = xv_load_relaxed_u64(counters + i) }
    }

    /// Messages judged `verdict` so far.
    @inlinable public subscript(_ verdict: ControlVerdict) -> UInt64 {
        Int(verdict.rawValue) < counts.count ? counts[Int(verdict.rawValue)] : 0
    }

    /// Messages dropped so far (every verdict but `.applied`).
    @inlinable public var dropped: UInt64 {
        var n: UInt64 = 0
        for i in 1..<counts.count { n &+= counts[i] }
        return n
    }

    /// Equal when every verdict's count is equal.
    @inlinable public static func == (a: ControlMessageCounts, b: ControlMessageCounts) -> Bool {
        for i in 0..<a.counts.count where a.counts[i] != b.counts[i] { return false }
        return true
    }
}
