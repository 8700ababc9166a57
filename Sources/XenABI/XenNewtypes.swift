/// Guest-visible Xen integers as newtypes, so a port is never passed where a grant reference is
/// expected. All are guest-controlled values: validate before use. Named constants (DOMID_SELF,
/// ...) are generated into extensions from `Specs/xen/`.

/// `domid_t` (uint16_t): a Xen domain id. `xen/xen.h`.
@frozen
public struct DomainID: RawRepresentable, Hashable, Comparable, Sendable {
    /// The domain id as the 16-bit number the guest passes (DOMID_SELF and the other reserved ids included).
    public var rawValue: UInt16
    /// Wraps a raw 16-bit domain id; no check that such a domain exists.
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// Wraps a raw 16-bit domain id (unlabelled form of `init(rawValue:)`).
    @inlinable public init(_ rawValue: UInt16) { self.rawValue = rawValue }
    /// Orders domain ids numerically.
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// A vCPU index as Xen guests pass it (`uint32_t vcpu` in the evtchn and vcpu_op structs).
@frozen
public struct VCPUIndex: RawRepresentable, Hashable, Comparable, Sendable {
    /// The vCPU index as the 32-bit number the guest passes; may be past the domain's vCPU count.
    public var rawValue: UInt32
    /// Wraps a raw 32-bit vCPU index; no range check.
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Wraps a raw 32-bit vCPU index (unlabelled form of `init(rawValue:)`).
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    /// Orders vCPU indices numerically.
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// `evtchn_port_t` (uint32_t): an event channel port. `xen/event_channel.h`.
@frozen
public struct EventChannelPort: RawRepresentable, Hashable, Comparable, Sendable {
    /// The port number as the 32-bit number the guest passes; may be past the domain's port limit.
    public var rawValue: UInt32
    /// Wraps a raw 32-bit port number; no range check.
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Wraps a raw 32-bit port number (unlabelled form of `init(rawValue:)`).
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    /// Orders ports numerically.
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// `grant_ref_t` (uint32_t): an index into a domain's grant table. `xen/grant_table.h`.
@frozen
public struct GrantRef: RawRepresentable, Hashable, Comparable, Sendable {
    /// The grant reference as the 32-bit number the guest passes; may be past the table's end.
    public var rawValue: UInt32
    /// Wraps a raw 32-bit grant reference; no range check.
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Wraps a raw 32-bit grant reference (unlabelled form of `init(rawValue:)`).
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    /// Orders grant references numerically.
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// `grant_handle_t` (uint32_t): the handle a grant map returns. `xen/grant_table.h`.
@frozen
public struct GrantHandle: RawRepresentable, Hashable, Sendable {
    /// The handle as the 32-bit number Xen returned and the guest passes back to unmap.
    public var rawValue: UInt32
    /// Wraps a raw 32-bit grant handle; no check that it names a mapping.
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Wraps a raw 32-bit grant handle (unlabelled form of `init(rawValue:)`).
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
}
