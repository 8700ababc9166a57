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
struct EventFlagSlots {
    static var firstEventSINT: Int { 1 }
    static var eventSINTCount: Int { 15 }
    static var flagsPerSINT: Int { 2048 }
    static var capacity: Int { eventSINTCount * flagsPerSINT }
    static var none: UInt16 { 0xFFFF }

    /// Port of each slot; 0 when the slot is free (port 0 is reserved, never bindable).
    let portOfSlot: UnsafeMutablePointer<UInt32>
    /// Slot of each port, `none` when it has no slot.
    let slotOfPort: UnsafeMutablePointer<UInt16>
    let portCount: Int
    /// One past the highest slot ever used: the interrupt handler scans flags below it.
    private(set) var highWater = 0
    /// Slots in use.
    private(set) var used = 0
    /// No slot below this is free.
    private var searchStart = 0

    init(maxPort: UInt32) {
        portCount = Int(maxPort) + 1
        portOfSlot = .allocate(capacity: Self.capacity)
        portOfSlot.initialize(repeating: 0, count: Self.capacity)
        slotOfPort = .allocate(capacity: portCount)
        slotOfPort.initialize(repeating: Self.none, count: portCount)
    }

    func deallocate() {
        portOfSlot.deallocate()
        slotOfPort.deallocate()
    }

    @inline(__always)
    static func sint(of slot: Int) -> UInt8 { UInt8(firstEventSINT + slot / flagsPerSINT) }
    @inline(__always)
    static func flag(of slot: Int) -> UInt16 { UInt16(slot % flagsPerSINT) }

    @inline(__always)
    func slot(of port: UInt32) -> Int? {
        let s = slotOfPort[Int(port)]
        return s == Self.none ? nil : Int(s)
    }

    /// The lowest free slot, now assigned to `port`; nil when all are used.
    mutating func assign(_ port: UInt32) -> Int? {
        guard used < Self.capacity else { return nil }
        var k = searchStart
        while portOfSlot[k] != 0 { k += 1 }
        searchStart = k + 1
        portOfSlot[k] = port
        slotOfPort[Int(port)] = UInt16(k)
        used += 1
        highWater = max(highWater, k + 1)
        return k
    }

    mutating func release(_ port: UInt32) {
        guard let k = slot(of: port) else { return }
        portOfSlot[k] = 0
        slotOfPort[Int(port)] = Self.none
        used -= 1
        searchStart = min(searchStart, k)
    }
}
