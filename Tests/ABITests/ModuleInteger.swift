/// An integer from a generated module, as (magnitude, sign), comparable with catalog rows
/// whatever the raw type.
struct ModuleInteger: Equatable {
    let magnitude: UInt64
    let isNegative: Bool
    init(magnitude: UInt64, isNegative: Bool) {
        self.magnitude = magnitude
        self.isNegative = isNegative
    }
    init<T: BinaryInteger>(_ value: T) {
        isNegative = value < 0
        magnitude = UInt64(value.magnitude)
    }
}
