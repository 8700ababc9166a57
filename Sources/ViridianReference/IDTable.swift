/// A fixed-capacity map from 24-bit ids (HV_PORT_ID, HV_CONNECTION_ID) to values: open
/// addressing with linear probing, storage allocated once at creation. Lookups on the
/// SignalEvent and PostMessage paths allocate nothing.
@usableFromInline struct IDTable<Value> {
    @inlinable static var emptyKey: UInt32 { .max }
    @usableFromInline var keys: [UInt32]
    @usableFromInline var values: [Value?]
    @usableFromInline let mask: Int
    /// Most entries the table accepts.
    @usableFromInline let capacity: Int
    @usableFromInline var count = 0

    @inlinable init(capacity: Int) {
        self.capacity = max(capacity, 0)
        var size = 8
        while size < self.capacity * 2 { size <<= 1 }
        keys = Array(repeating: Self.emptyKey, count: size)
        values = Array(repeating: nil, count: size)
        mask = size - 1
    }

    @inline(__always)
    @inlinable func home(_ key: UInt32) -> Int { Int((key &* 0x9E37_79B1) >> 8) & mask }

    @inlinable func slot(of key: UInt32) -> Int? {
        var i = home(key)
        while keys[i] != Self.emptyKey {
            if keys[i] == key { return i }
            i = (i + 1) & mask
        }
        return nil
    }

    @inlinable subscript(key: UInt32) -> Value? {
        guard key != Self.emptyKey, let i = slot(of: key) else { return nil }
        return values[i]
    }

    /// Adds `value` under `key`; false when the key is present, reserved or the table is full.
    @inlinable mutating func insert(_ value: Value, for key: UInt32) -> Bool {
        guard key != Self.emptyKey, count < capacity, slot(of: key) == nil else { return false }
        var i = home(key)
        while keys[i] != Self.emptyKey { i = (i + 1) & mask }
        keys[i] = key
        values[i] = value
        count += 1
        return true
    }

    /// Replaces the value of an existing key; false when absent.
    @inlinable mutating func update(_ value: Value, for key: UInt32) -> Bool {
        guard key != Self.emptyKey, let i = slot(of: key) else { return false }
        values[i] = value
        return true
    }

    /// Removes `key` (backward-shift deletion keeps probe chains intact without tombstones).
    @discardableResult
    @inlinable mutating func remove(_ key: UInt32) -> Value? {
        guard key != Self.emptyKey, var hole = slot(of: key) else { return nil }
        let removed = values[hole]
        keys[hole] = Self.emptyKey
        values[hole] = nil
        count -= 1
        var i = (hole + 1) & mask
        while keys[i] != Self.emptyKey {
            let h = home(keys[i])
            // Move the entry back into the hole when its home is not in (hole, i].
            let inRange = hole <= i ? (h > hole && h <= i) : (h > hole || h <= i)
            if !inRange {
                keys[hole] = keys[i]
                values[hole] = values[i]
                keys[i] = Self.emptyKey
                values[i] = nil
                hole = i
            }
            i = (i + 1) & mask
        }
        return removed
    }

    /// Every (key, value), in slot order.
    @inlinable func forEach(_ body: (UInt32, Value) -> Void) {
        for i in 0..<keys.count where keys[i] != Self.emptyKey {
            if let v = values[i] { body(keys[i], v) }
        }
    }
}
