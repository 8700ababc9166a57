import CXenViridian
import Testing
@testable import XVEmbedding
import XenViridianC

/// xv_system_destroy frees what the system made. The hypercall fuzzer's LeakSanitizer found
/// that it did not on the translated side: the directory's records own the layers, the layers
/// own the sink and the reference's host adapter, and both held the directory strongly, so the
/// cycle kept every translated domain alive (1.2 MB for two domains).
@Suite struct TeardownTests {
    @Test(arguments: [XV_SIDE_NATIVE, XV_SIDE_TRANSLATED])
    func destroyFreesTheDomains(side: UInt32) {
        weak var directory: DomainDirectory?
        weak var system: EmbeddedSystem?
        do {
            let e = CEmbedder(side: side)
            #expect(e.addDomain(1) == XV_OK && e.addDomain(2) == XV_OK)
            #expect(e.setCallbackVector(1) == 0 && e.setCallbackVector(2) == 0)
            #expect(e.connect(1, 2) != nil)
            let s = Unmanaged<EmbeddedSystem>.fromOpaque(UnsafeRawPointer(e.system!)).takeUnretainedValue()
            system = s
            directory = s.directory
            #expect(directory != nil)
        }
        #expect(system == nil, "the system outlived xv_system_destroy")
        #expect(directory == nil, "the domain directory (and with it the domains) outlived xv_system_destroy")
    }
}
