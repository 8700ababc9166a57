extension XenErrno {
    /// The value a guest sees in rax for this error: `-errno` (Xen returns negative errno values;
    /// `xen/errno.h`).
    @inlinable
    public var hypercallReturnValue: Int64 { -Int64(rawValue) }
}
