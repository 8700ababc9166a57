import Testing
import XenABI
import XenCore
import XVScenarios

/// Runs a check on a native and a translated world built alike, so every behaviour test holds
/// for both sides.
func onBothWorlds(domains: Int = 2, vcpus: Int = 2, maxPort: UInt32 = 1023, identity: XenGuestIdentity = XenGuestIdentity(),
                  _ body: (any XenWorld, String) throws -> Void) rethrows {
    try body(NativeWorld(domains: domains, vcpus: vcpus, maxPort: maxPort, identity: identity), "native")
    try body(TranslatedWorld(domains: domains, vcpus: vcpus, maxPort: maxPort, identity: identity), "translated")
}

let dom1 = DomainID(1)
let dom2 = DomainID(2)
let errEINVAL = XenErrno.einval.hypercallReturnValue
let errENOENT = XenErrno.enoent.hypercallReturnValue
let errESRCH = XenErrno.esrch.hypercallReturnValue
let errEPERM = XenErrno.eperm.hypercallReturnValue
let errENOSPC = XenErrno.enospc.hypercallReturnValue
let errEEXIST = XenErrno.eexist.hypercallReturnValue
let errEFAULT = XenErrno.efault.hypercallReturnValue
let errENOSYS = XenErrno.enosys.hypercallReturnValue
let errEOPNOTSUPP = XenErrno.eopnotsupp.hypercallReturnValue
