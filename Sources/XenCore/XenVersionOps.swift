import GuestABI
import XenABI

/// __HYPERVISOR_xen_version as Xen 4.17 answers an hvm64 domU (xen-project/xen
/// xen/common/kernel.c do_xen_version, with the default XSM policy of xen/include/xsm/dummy.h:
/// a domU is denied only the command line, which reads "<denied>", and the build id, -EPERM).
/// Every string is copied out whole, zero-padded to its field; a copy that does not fit in
/// the guest's memory is -EFAULT, and what fitted before the fault stays written, as Xen's
/// page-by-page copy leaves it.
extension XenDomain {
    /// `cmd` is Xen's `int cmd` (RDI, low 32 bits); `arg` the guest's pointer (RSI).
    @inline(never)
    @inlinable public func xenVersion(_ cmd: UInt64, arg: UInt64) -> Int64 {
        let op = XenVersionOp(rawValue: UInt32(truncatingIfNeeded: cmd))
        if case .rejected(let errno) = op.disposition { return errno.hypercallReturnValue }
        switch op {
        case .version:
            return Int64(XenVersionAnswers.major << 16 | XenVersionAnswers.minor)
        case .extraversion:
            return copyOutString(version.extraversion, field: Int(XenVersionLengths.extraversion), to: arg)
        case .compileInfo:
            return withZeroedBytes(XenCompileInfoLayout.size) { out in
                Self.place(version.compiler, in: out, XenCompileInfoLayout.compiler)
                Self.place(version.compileBy, in: out, XenCompileInfoLayout.compileBy)
                Self.place(version.compileDomain, in: out, XenCompileInfoLayout.compileDomain)
                Self.place(version.compileDate, in: out, XenCompileInfoLayout.compileDate)
                return copyOut(out, to: arg)
            }
        case .capabilities:
            return copyOutString(XenVersionIdentity.capabilities, field: Int(XenVersionLengths.capabilities), to: arg)
        case .changeset:
            return copyOutString(version.changeset, field: Int(XenVersionLengths.changeset), to: arg)
        case .platformParameters:
            return withZeroedBytes(XenPlatformParametersLayout.size) { out in
                out.storeBytes(of: XenVersionAnswers.virtStart.littleEndian, toByteOffset: XenPlatformParametersLayout.virtStart.offset, as: UInt64.self)
                return copyOut(out, to: arg)
            }
        case .getFeatures:
            return getFeatures(arg)
        case .pagesize:
            // A non-null handle is refused (Xen: "arg == NULL").
            return arg != 0 ? XenErrno.einval.hypercallReturnValue : Int64(XenVersionAnswers.pageSize)
        case .guestHandle:
            return copyOutString(version.handle, field: 16, to: arg, terminated: false)
        case .commandline:
            // Denied: the string and its NUL only, not the whole xen_commandline_t.
            return copyOutString(XenVersionIdentity.denied, field: Int(XenVersionAnswers.deniedLen), to: arg)
        default:
            return XenErrno.enosys.hypercallReturnValue
        }
    }

    /// XENVER_get_features: the whole xen_feature_info is read first (-EFAULT), submap 0 is the
    /// only one (-EINVAL otherwise), and the whole structure is written back.
    @inlinable func getFeatures(_ arg: UInt64) -> Int64 {
        guard memory.argumentReadable(at: arg, size: XenFeatureInfoLayout.size),
              let index = memory.argument(UInt32.self, at: arg, XenFeatureInfoLayout.submapIdx) else {
            return XenErrno.efault.hypercallReturnValue
        }
        guard index == 0 else { return XenErrno.einval.hypercallReturnValue }
        return withZeroedBytes(XenFeatureInfoLayout.size) { out in
            out.storeBytes(of: index.littleEndian, toByteOffset: XenFeatureInfoLayout.submapIdx.offset, as: UInt32.self)
            out.storeBytes(of: UInt32(XenVersionAnswers.hvmFeatures).littleEndian, toByteOffset: XenFeatureInfoLayout.submap.offset, as: UInt32.self)
            return copyOut(out, to: arg)
        }
    }

    /// `bytes` cut to `field` less one (less none when not `terminated`), zero-padded to
    /// `field`, copied to `arg`.
    @inlinable func copyOutString(_ bytes: [UInt8], field: Int, to arg: UInt64, terminated: Bool = true) -> Int64 {
        withZeroedBytes(field) { out in
            let n = min(bytes.count, terminated ? field - 1 : field)
            for i in 0..<n { out.storeBytes(of: bytes[i], toByteOffset: i, as: UInt8.self) }
            return copyOut(out, to: arg)
        }
    }

    @inlinable static func place(_ bytes: [UInt8], in out: UnsafeMutableRawBufferPointer, _ field: ABIField) {
        let n = min(bytes.count, field.size - 1)
        for i in 0..<n { out.storeBytes(of: bytes[i], toByteOffset: field.offset + i, as: UInt8.self) }
    }

    @inlinable func copyOut(_ bytes: UnsafeMutableRawBufferPointer, to arg: UInt64) -> Int64 {
        memory.write(at: GuestPhysicalAddress(arg), from: UnsafeRawBufferPointer(bytes)) ? 0 : XenErrno.efault.hypercallReturnValue
    }

    /// A zeroed scratch buffer on the stack, for a structure being put together.
    @inlinable func withZeroedBytes<R>(_ count: Int, _ body: (UnsafeMutableRawBufferPointer) -> R) -> R {
        withUnsafeTemporaryAllocation(byteCount: count, alignment: 8) { out in
            out.initializeMemory(as: UInt8.self, repeating: 0)
            return body(out)
        }
    }
}
