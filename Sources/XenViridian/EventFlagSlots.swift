import CGuestAtomics
import XenABI

/// Where a domain's bindable ports land in its SynIC: the answer to "4096 (2-level) or 2^17
/// (FIFO) Xen ports against 2048 event flags per SINT" (Docs/Layer.md, "Ports onto flags").
///
/// Only a port that another domain can signal needs a flag: an unbound or interdomain port.
/// IPI ports use synthetic IPIs and VIRQ ports are raised inside the domain, so they take none.
/// Each such port gets a *slot*, allocated lowest-first and independent of its port number:
/// slot k is flag k % 2048 of SINT 1 + k / 2048. SINT 0 is the layer's control SINT (its
/// message slot carries control messages; its flags are unused), so 15 SINTs give 30,720
/// slots per domain: every 2-level port can be bindable at once (4096 ≤ 30,720), and a FIFO
/// domain can hold 30,720 bindable ports at once, at any port numbers up to 2^17 - 1. The
/// 30,721st is -ENOSPC (a documented limit where native Xen would go on).
///
/// Threads: slots are assigned and released with the domain's event lock held, a slot's port
/// is published when assigned and withdrawn under that port's lock; the interrupt path reads
/// `port(ofSlot:)` and the high-water mark with acquire loads, and checks the slot again under
/// the port's lock before it takes the flag (`takeEventFlags`).
@usableFromInline struct EventFlagSlots {
    @inlinable static var firstEventSINT: Int { 1 }
    @inlinable static var eventSINTCount: Int { 15 }
    @inlinable static var flagsPerSINT: Int { 2048 }
    @inlinable static var capacity: Int { eventSINTCount * flagsPerSINT }
    @inlinable static var none: UInt16 { 0xFFFF }

    /// Port of each slot; 0 when the slot is free (port 0 is reserved, never bindable).
    @usableFromInline let portOfSlot: UnsafeMutablePointer<UInt32>
    /// Slot of each port, `none` when it has no slot. Under the event lock.
    @usableFromInline let slotOfPort: UnsafeMutablePointer<UInt16>
    /// [0] one past the highest slot ever used (the interrupt handler scans flags below it),
    /// [1] slots in use, [2] no slot below this is free.
    @usableFromInline let counters: UnsafeMutablePointer<UInt32>
    @usableFromInline let portCount: Int

    @inlinable init(maxPort: UInt32) {
        portCount = Int(maxPort) + 1
        portOfSlot = .allocate(capacity: Self.capacity)
        portOfSlot.initialize(repeating: 0, count: Self.capacity)
        slotOfPort = .allocate(capacity: portCount)
        slotOfPort.initialize(repeating: Self.none, count: portCount)
        counters = .allocate(capacity: 3)
        counters.initialize(repeating: 0, count: 3)
    }

    @inlinable func deallocate() {
        portOfSlot.deallocate()
        slotOfPort.deallocate()
        counters.deallocate()
    }

    @inline(__always)
    @inlinable static func sint(of slot: Int) -> UInt8 { UInt8(firstEventSINT + slot / flagsPerSINT) }
    @inline(__always)
    @inlinable static func flag(of slot: Int) -> UInt16 { UInt16(slot % flagsPerSINT) }

    /// One past the highest slot ever used.
    @inline(__always)
    @inlinable var highWater: Int { Int(xv_load_acquire_u32(counters)) }

    /// The port of slot `k` (0: free), as published.
    @inline(__always)
    @inlinable func port(ofSlot k: Int) -> UInt32 { xv_load_acquire_u32(portOfSlot + k) }

    /// The slot of `port`. Under the event lock.
    @inline(__always)
    @inlinable func slot(of port: UInt32) -> Int? {
        let s = slotOfPort[Int(port)]
        return s == Self.none ? nil : Int(s)
    }

    /// The lowest free slot, now assigned to `port`; nil when all are used. Under the event lock.
    @inlinable func assign(_ port: UInt32) -> Int? {
        guard counters[1] < UInt32(Self.capacity) else { return nil }
        var k = Int(counters[2])
        while portOfSlot[k] != 0 { k += 1 }
        counters[2] = UInt32(k + 1)
        xv_store_release_u32(portOfSlot + k, port)
        slotOfPort[Int(port)] = UInt16(k)
        counters[1] += 1
        if k + 1 > highWater { xv_store_release_u32(counters, UInt32(k + 1)) }
        return k
    }

    /// Withdraws the slot's port (the caller holds the port's lock), so the interrupt path
    /// no longer maps the slot to it.
    @inlinable func unpublish(_ port: UInt32) {
        guard let k = slot(of: port) else { return }
        xv_store_release_u32(portOfSlot + k, 0)
    }

    /// Gives the slot back. Under the event lock, after `unpublish`.
    @inlinable func release(_ port: UInt32) {
        guard let k = slot(of: port) else { return }
        xv_store_release_u32(portOfSlot + k, 0)
        slotOfPort[Int(port)] = Self.none
        counters[1] -= 1
        counters[2] = min(counters[2], UInt32(k))
    }
}
