import XenABI

/// The strings xen_version hands a guest, which on Xen come from the build and the toolstack:
/// XENVER_extraversion, XENVER_compile_info, XENVER_changeset and the domain handle of
/// XENVER_guest_handle. Each is copied out as Xen copies its own (xen/common/kernel.c
/// safe_strcpy): cut to the field's length less one, NUL-terminated, zero-padded. The numbers
/// beside them (version 4.17, the feature submap, HYPERVISOR_VIRT_START) are the layer's and
/// sit in Specs/translation/version.tbl.
public struct XenVersionIdentity: Sendable, Equatable {
    /// XENVER_extraversion: what follows "major.minor" (xen_extraversion_t, 16 bytes).
    public var extraversion: [UInt8]
    /// XENVER_compile_info fields (64, 16, 32 and 32 bytes).
    public var compiler: [UInt8]
    /// XENVER_compile_info `compile_by` (16 bytes).
    public var compileBy: [UInt8]
    /// XENVER_compile_info `compile_domain` (32 bytes).
    public var compileDomain: [UInt8]
    /// XENVER_compile_info `compile_date` (32 bytes).
    public var compileDate: [UInt8]
    /// XENVER_changeset (64 bytes). Xen says "unavailable" when it was not built from a
    /// repository.
    public var changeset: [UInt8]
    /// XENVER_guest_handle: the domain's 16-byte handle (the toolstack's UUID for it).
    /// Shorter is zero-padded, longer is cut.
    public var handle: [UInt8]

    /// The strings as given (cut and padded when copied out); the defaults name this project, the extraversion "-xenviridian" and the changeset "unavailable".
    @inlinable public init(extraversion: [UInt8] = Array("-xenviridian".utf8), compiler: [UInt8] = Array("swift".utf8),
                compileBy: [UInt8] = Array("xenviridian".utf8), compileDomain: [UInt8] = [], compileDate: [UInt8] = [],
                changeset: [UInt8] = Array("unavailable".utf8), handle: [UInt8] = []) {
        self.extraversion = extraversion
        self.compiler = compiler
        self.compileBy = compileBy
        self.compileDomain = compileDomain
        self.compileDate = compileDate
        self.changeset = changeset
        self.handle = handle
    }

    /// XENVER_capabilities as arch_get_xen_caps (xen/arch/x86/setup.c) writes it for a host
    /// that runs the one guest type the layer serves, hvm64: each entry followed by a space.
    @inlinable public static var capabilities: [UInt8] { Array("hvm-3.0-x86_64 ".utf8) }

    /// What a domain without XSM_PRIV reads instead of a denied string (xen/common/version.c
    /// xen_deny).
    @inlinable public static var denied: [UInt8] { Array("<denied>".utf8) }
}
