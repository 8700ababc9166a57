import CGuestAtomics
import GuestABI
import XenABI

/// The shared_info wall clock (xen-project/xen xen/common/time.c update_domain_wallclock_time):
/// wc_sec, wc_nsec and wc_sec_hi hold the wall-clock time at Xen system time 0, rewritten with
/// the version protocol (wc_version odd while the fields change, even after), so a guest
/// adds its system time (pvclock) to it for the time of day.
extension XenDomain {
    /// Sets the wall-clock time at system time 0 (what XENPF_settime does on Xen), once at
    /// creation from `DomainConfiguration.wallclockAtBoot` and again whenever the embedder
    /// calls it. Writes nothing while shared_info is not backed.
    @inlinable public func setWallclock(seconds: UInt64, nanoseconds: UInt32) {
        guard let si = sharedInfo else { return }
        withEventLock {
            let version = si + SharedInfoLayout.wcVersion.offset
            let v = UInt32(littleEndian: xv_load_acquire_u32(version))
            xv_store_release_u32(version, ((v &+ 1) | 1).littleEndian)
            xv_store_release_u32(si + SharedInfoLayout.wcSec.offset, UInt32(truncatingIfNeeded: seconds).littleEndian)
            xv_store_release_u32(si + SharedInfoLayout.wcNsec.offset, nanoseconds.littleEndian)
            xv_store_release_u32(si + SharedInfoLayout.wcSecHi.offset, UInt32(truncatingIfNeeded: seconds >> 32).littleEndian)
            xv_store_release_u32(version, ((v &+ 2) & ~1).littleEndian)
        }
    }
}
