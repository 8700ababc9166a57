/// Guest-visible Xen integers as newtypes, so a port is never passed where a grant reference is
/// expected. All are guest-controlled values: validate before use. Named constants (DOMID_SELF,
/// ...) are generated into extensions from `Specs/xen/`.

/// `domid_t` (uint16_t): a Xen domain id. `xen/xen.h`.
@frozen
public struct DomainID: RawRepresentable, Hashable, Comparable, Sendable {
    public var rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt16) { self.rawValue = rawValue }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// A vCPU index as Xen guests pass it (`uint32_t vcpu` in the evtchn and vcpu_op structs).
@frozen
public struct VCPUIndex: RawRepresentable, Hashable, Comparable, Sendable {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// `evtchn_port_t` (uint32_t): an event channel port. `xen/event_channel.h`.
@frozen
public struct EventChannelPort: RawRepresentable, Hashable, Comparable, Sendable {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// `grant_ref_t` (uint32_t): an index into a domain's grant table. `xen/grant_table.h`.
@frozen
public struct GrantRef: RawRepresentable, Hashable, Comparable, Sendable {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// `grant_handle_t` (uint32_t): the handle a grant map returns. `xen/grant_table.h`.
@frozen
public struct GrantHandle: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
}
