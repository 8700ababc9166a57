/// The layer's control messages: what one domain's layer tells another's when a binding
/// changes, sent with HvCallPostMessage on a connection into the peer's control port and
/// received in the peer's SINT 0 message slot. Message types are below 0x80000000 (the
/// hypervisor's range, TLFS "SynIC Messages"); payloads are little-endian.
enum ControlMessage {
    /// "Your unbound port `port` is now interdomain with `fromPort` of `fromDomain`."
    static var bound: UInt32 { 0x5856_0001 }
    /// "`fromDomain` closed its end: your interdomain port `port` is unbound, waiting for it."
    static var closed: UInt32 { 0x5856_0002 }

    /// Payload: port (u32) at 0, fromDomain (u16) at 4, 2 bytes zero, fromPort (u32) at 8.
    static var portOffset: Int { 0 }
    static var fromDomainOffset: Int { 4 }
    static var fromPortOffset: Int { 8 }
    static var payloadSize: UInt32 { 12 }
}
