import ViridianABI

/// Messages waiting for their SIM slot, one FIFO per (VP, SINT), each message a whole 256-byte
/// HV_MESSAGE ready to copy into the slot. Storage is allocated at partition creation.
///
/// The TLFS gives each message port its own buffers (16 per port); the reference counts them per
/// target (VP, SINT) instead, so that delivery order across ports is simply arrival order. A
/// full queue answers HvCallPostMessage with HV_STATUS_INSUFFICIENT_BUFFERS either way.
@usableFromInline struct MessageQueues {
    @inlinable static var messageSize: Int { Int(SynICLimits.messageSize) }
    @usableFromInline let depth: Int
    @usableFromInline var storage: [UInt8]
    @usableFromInline var head: [Int]
    @usableFromInline var counts: [Int]

    @inlinable init(vpCount: Int, depth: Int) {
        self.depth = max(depth, 0)
        let queues = vpCount * Int(SynICLimits.sintCount)
        storage = Array(repeating: 0, count: queues * self.depth * Self.messageSize)
        head = Array(repeating: 0, count: queues)
        counts = Array(repeating: 0, count: queues)
    }

    @inline(__always)
    @inlinable static func index(vp: Int, sint: Int) -> Int { vp * Int(SynICLimits.sintCount) + sint }

    @inlinable func isEmpty(_ q: Int) -> Bool { counts[q] == 0 }

    /// Appends a copy of `message` (256 bytes); false when the queue is full.
    @inlinable mutating func push(_ q: Int, message: UnsafeRawPointer) -> Bool {
        guard counts[q] < depth else { return false }
        let position = (head[q] + counts[q]) % depth
        let offset = (q * depth + position) * Self.messageSize
        storage.withUnsafeMutableBytes { ($0.baseAddress! + offset).copyMemory(from: message, byteCount: Self.messageSize) }
        counts[q] += 1
        return true
    }

    /// Moves the oldest message to `destination` (256 bytes); false when empty.
    @inlinable mutating func pop(_ q: Int, into destination: UnsafeMutableRawPointer) -> Bool {
        guard counts[q] > 0 else { return false }
        let offset = (q * depth + head[q]) * Self.messageSize
        head[q] = (head[q] + 1) % depth
        counts[q] -= 1
        // Into a SIM slot: published type last, MessagePending set when more wait behind it.
        let more = counts[q] > 0
        storage.withUnsafeBytes { SIMSlot.publishMessage(destination, from: $0.baseAddress! + offset, pending: more) }
        return true
    }

    /// The queued messages of `q`, oldest first (for save).
    @inlinable func forEachMessage(_ q: Int, _ body: (UnsafeRawBufferPointer) -> Void) {
        storage.withUnsafeBytes { all in
            for i in 0..<counts[q] {
                let offset = (q * depth + (head[q] + i) % depth) * Self.messageSize
                body(UnsafeRawBufferPointer(rebasing: all[offset..<offset + Self.messageSize]))
            }
        }
    }

    /// Empties every queue.
    @inlinable mutating func removeAll() {
        for q in 0..<counts.count { head[q] = 0; counts[q] = 0 }
    }
}
