import CMallocCounter
import CXenViridian
import Testing
import XenViridianC

/// The C ABI (include/xen_viridian.h) through its own entry points: what an embedder sees, on
/// both sides, including every refusal a bad argument gets. The C and C++ consumers of
/// .ci/c-abi and .ci/embedded-build run the end-to-end scenario from C.
@Suite struct CABITests {
    static let sides: [UInt32] = [XV_SIDE_NATIVE, XV_SIDE_TRANSLATED]

    @Test func versionAndLayerFrames() {
        #expect(xv_abi_version() == XV_ABI_VERSION)
        #expect(xv_layer_frame_count(1) == 6)
        #expect(xv_layer_frame_count(32) == 161)
        #expect(xv_layer_frame_count(0) == 0)
        #expect(xv_layer_frame_count(33) == 0)
    }

    @Test func refusesBadSystems() {
        var config = xv_system_config()
        var callbacks = CEmbedder.callbacks(for: nil)
        var out: OpaquePointer?
        #expect(xv_system_create(nil, &callbacks, &out) == XV_EINVAL)
        #expect(xv_system_create(&config, nil, &out) == XV_EINVAL)
        #expect(xv_system_create(&config, &callbacks, nil) == XV_EINVAL)
        config.side = 7
        #expect(xv_system_create(&config, &callbacks, &out) == XV_EINVAL)
        config.side = XV_SIDE_NATIVE
        config.reserved.4 = 1
        #expect(xv_system_create(&config, &callbacks, &out) == XV_EINVAL)
        config.reserved.4 = 0
        config.reserved0 = 1
        #expect(xv_system_create(&config, &callbacks, &out) == XV_EINVAL)
        config.reserved0 = 0
        callbacks.reserved.3 = UnsafeMutableRawPointer(bitPattern: 8)
        #expect(xv_system_create(&config, &callbacks, &out) == XV_EINVAL)
        callbacks.reserved.3 = nil
        callbacks.upcall = nil
        #expect(xv_system_create(&config, &callbacks, &out) == XV_EINVAL)
        #expect(out == nil)
        xv_system_destroy(nil)
    }

    @Test(arguments: sides) func refusesBadDomains(side: UInt32) {
        let e = CEmbedder(side: side)
        let table = e.makeTable(vcpus: 1)
        defer { table.deallocate() }
        func create(_ change: (inout xv_domain_config) -> Void) -> Int32 {
            var c = e.config(3, table: table)
            change(&c)
            return xv_domain_create(e.system, &c)
        }
        #expect(xv_domain_create(e.system, nil) == XV_EINVAL)
        #expect(create { $0.page_table = nil } == XV_EINVAL)
        #expect(create { $0.vcpu_count = 0 } == XV_EINVAL)
        #expect(create { $0.vcpu_count = 33 } == XV_EINVAL)
        #expect(create { $0.frames = 0 } == XV_EINVAL)
        #expect(create { $0.domain = 0 } == XV_EINVAL)
        #expect(create { $0.domain = 0x7FF0 } == XV_EINVAL)
        #expect(create { $0.domain = 0xFFFF } == XV_EINVAL)
        #expect(create { $0.max_port = 131_072 } == XV_EINVAL)
        #expect(create { $0.flags = 2 } == XV_EINVAL)
        #expect(create { $0.max_pages = 10 } == XV_EINVAL)
        #expect(create { $0.shared_info_gfn = CEmbedder.frames } == XV_EINVAL)
        #expect(create { $0.reserved.0 = 1 } == XV_EINVAL)
        #expect(create { $0.reserved0 = 1 } == XV_EINVAL)
        #expect(xv_domain_create(nil, nil) == XV_EINVAL)
        #expect(create { _ in } == XV_OK)
        #expect(create { _ in } == XV_EEXIST)
        if side == XV_SIDE_TRANSLATED {
            // The layer's frames must be backed: a table whose extra entries are holes is refused.
            let holes = e.makeTable(vcpus: 1, backLayer: false)
            defer { holes.deallocate() }
            var c = e.config(4, table: holes)
            #expect(xv_domain_create(e.system, &c) == XV_ENODEV)
        }
    }

    @Test(arguments: sides) func unknownDomainsAndVCPUs(side: UInt32) {
        let e = CEmbedder(side: side)
        #expect(e.addDomain(1) == XV_OK)
        #expect(e.call(9, 17) == -3)                       // -ESRCH
        #expect(e.call(1, vcpu: 1, 17) == -22)             // a vCPU the domain does not have
        #expect(e.call(1, vcpu: UInt32.max, 17) == -22)
        #expect(xv_hypercall(e.system, 1, 0, nil) == Int64(XV_EINVAL))
        var r = xv_hypercall_regs()
        #expect(xv_hypercall(nil, 1, 0, &r) == Int64(XV_ESRCH))
        #expect(xv_park_request(e.system, 9, 0, nil) == XV_ESRCH)
        #expect(xv_park_request(e.system, 1, 4, nil) == XV_ESRCH)
        #expect(xv_resume(e.system, 9, 0) == XV_ESRCH)
        #expect(xv_system_time(e.system, 9) == UInt64.max)
        #expect(xv_refresh_time(e.system, 1, 3) == XV_ESRCH)
        #expect(xv_set_vcpu_up(e.system, 9, 0, 1) == XV_ESRCH)
        var result = xv_cpuid_result()
        #expect(xv_cpuid(e.system, 9, 0, 0x4000_0000, 0, &result) == XV_ESRCH)
        #expect(xv_classify_hypercall(e.system, 9, 32, 0, nil) == XV_ESRCH)
        #expect(e.call(1, 17) == (4 << 16 | 17))           // XENVER_version still answers
    }

    /// The toolstack's HVM parameters: what xv_set_hvm_param sets, HVMOP_get_param returns to
    /// the guest and xv_get_hvm_param to the embedder; bad indexes, domains and pointers refused.
    @Test(arguments: sides) func toolstackParameters(side: UInt32) {
        let e = CEmbedder(side: side)
        #expect(e.addDomain(1) == XV_OK)
        #expect(xv_set_hvm_param(e.system, 1, 1, 0x1234) == XV_OK)        // HVM_PARAM_STORE_PFN
        #expect(xv_set_hvm_param(e.system, 1, 2, 7) == XV_OK)             // HVM_PARAM_STORE_EVTCHN
        var value: UInt64 = 0
        #expect(xv_get_hvm_param(e.system, 1, 1, &value) == XV_OK && value == 0x1234)
        // The guest's HVMOP_get_param (xen_hvm_param at the argument page) sees the same value.
        let p = e.page(1, CEmbedder.argGFN)
        p.storeBytes(of: UInt16(0x7FF0), toByteOffset: 0, as: UInt16.self)
        p.storeBytes(of: UInt32(2), toByteOffset: 4, as: UInt32.self)
        p.storeBytes(of: UInt64(0), toByteOffset: 8, as: UInt64.self)
        #expect(e.call(1, 34, 1, e.arg) == 0)
        #expect(p.load(fromByteOffset: 8, as: UInt64.self) == 7)
        #expect(xv_set_hvm_param(e.system, 1, 39, 1) == XV_EINVAL)        // HVM_NR_PARAMS and past
        #expect(xv_set_hvm_param(e.system, 1, UInt32.max, 1) == XV_EINVAL)
        #expect(xv_get_hvm_param(e.system, 1, 39, &value) == XV_EINVAL)
        #expect(xv_get_hvm_param(e.system, 1, 1, nil) == XV_EINVAL)
        #expect(xv_set_hvm_param(e.system, 9, 1, 1) == XV_ESRCH)
        #expect(xv_get_hvm_param(e.system, 9, 1, &value) == XV_ESRCH)
        #expect(xv_set_hvm_param(nil, 1, 1, 1) == XV_ESRCH)
    }

    /// ABI 2's translate_linear: an argument address past the guest's frames is a linear one,
    /// walked by the embedder; an unmapped page, or one that maps past the guest's frames (the
    /// translated side's layer frames), gets -EFAULT; frame numbers passed as values are never
    /// translated.
    @Test(arguments: sides) func linearArguments(side: UInt32) {
        let e = CEmbedder(side: side, translating: true)
        #expect(e.addDomain(1) == XV_OK && e.addDomain(2) == XV_OK)
        let kernel: UInt64 = 0xFFFF_FFFF_82A0_3   // a kernel stack page, as Linux passes it
        e.linearPages[kernel] = CEmbedder.argGFN
        // XENVER_extraversion writes 16 bytes through the linear address.
        #expect(e.call(1, 17, 1, kernel << 12 | 0x40) == 0)
        #expect(e.page(1, CEmbedder.argGFN).load(fromByteOffset: 0x40, as: UInt8.self) != 0)
        #expect(e.linearAsks.contains { $0 == (1, kernel) })
        // HVMOP_get_param through the linear address reads and writes frame 16.
        let p = e.page(1, CEmbedder.argGFN)
        p.storeBytes(of: UInt16(0x7FF0), toByteOffset: 0x100, as: UInt16.self)
        p.storeBytes(of: UInt32(0), toByteOffset: 0x104, as: UInt32.self)
        #expect(e.call(1, 34, 1, kernel << 12 | 0x100) == 0)
        // Unmapped: -EFAULT.
        #expect(e.call(1, 17, 1, (kernel + 1) << 12) == -14)
        // A linear page that maps past the guest's frames (onto the layer's, translated) is refused.
        e.linearPages[kernel + 2] = CEmbedder.frames + 1
        #expect(e.call(1, 17, 1, (kernel + 2) << 12) == -14)
        if side == XV_SIDE_TRANSLATED { #expect(e.page(1, CEmbedder.frames + 1).load(fromByteOffset: 0, as: UInt64.self) == 0) }
        // A frame number passed as a value (XENMEM_add_to_physmap's gpfn far past memory) is
        // refused as a frame, not walked.
        e.linearAsks.removeAll()
        p.storeBytes(of: UInt16(0x7FF0), toByteOffset: 0x200, as: UInt16.self)           // domid
        p.storeBytes(of: UInt16(0), toByteOffset: 0x202, as: UInt16.self)                // size
        p.storeBytes(of: UInt32(0), toByteOffset: 0x204, as: UInt32.self)                // space: shared_info
        p.storeBytes(of: UInt64(0), toByteOffset: 0x208, as: UInt64.self)                // idx
        p.storeBytes(of: kernel, toByteOffset: 0x210, as: UInt64.self)                   // gpfn
        #expect(e.call(1, 12, 7, e.arg + 0x200) == -22)
        #expect(!e.linearAsks.contains { $0.1 == kernel }, "the gpfn was not walked")
    }

    @Test(arguments: sides) func identity(side: UInt32) {
        let e = CEmbedder(side: side)
        #expect(e.addDomain(1) == XV_OK)
        #expect(e.addDomain(2, flags: XV_DOMAIN_VIRIDIAN_DUAL) == XV_OK)
        var r = xv_cpuid_result()
        #expect(xv_cpuid(e.system, 1, 0, 0x4000_0000, 0, &r) == XV_IDENTITY_XEN)
        #expect(r.eax == 0x4000_0005 && r.ebx == 0x566e_6558)   // "XenV"
        #expect(xv_cpuid(e.system, 1, 0, 0, 0, &r) == XV_IDENTITY_NOT_XEN)
        #expect(xv_cpuid(e.system, 2, 0, 0x4000_0000, 0, &r) == XV_IDENTITY_VIRIDIAN)
        #expect(xv_cpuid(e.system, 2, 0, 0x4000_0100, 0, &r) == XV_IDENTITY_XEN && r.ebx == 0x566e_6558)
        // The hypercall page through its MSR: `mov $n, %eax; vmcall; ret` per entry.
        #expect(xv_wrmsr(e.system, 1, 0, 0x4000_0000, 5 << 12) == XV_IDENTITY_XEN)
        #expect(e.page(1, 5).load(fromByteOffset: 32 * 32, as: UInt8.self) == 0xB8)
        var value: UInt64 = 0
        #expect(xv_rdmsr(e.system, 1, 0, 0x1B, &value) == XV_IDENTITY_NOT_XEN)
        var refused: Int64 = 0
        #expect(xv_classify_hypercall(e.system, 1, 32, 3, &refused) == XV_CALL_REFUSED && refused == -1)
        #expect(xv_classify_hypercall(e.system, 1, 32, 0, &refused) == XV_CALL_XEN)
        #expect(xv_classify_hypercall(e.system, 2, 0x8000_0001, 0, nil) == XV_CALL_VIRIDIAN)
    }

    /// EVTCHNOP_send through xv_hypercall allocates nothing, on either side (counted on this
    /// thread only, so other tests' allocations do not count).
    @Test(arguments: sides) func sendAllocatesNothing(side: UInt32) throws {
        try #require(xv_malloc_counter_is_active() != 0, "malloc interposition is not active on this platform")
        let e = CEmbedder(side: side)
        #expect(e.addDomain(1) == XV_OK && e.addDomain(2) == XV_OK)
        #expect(e.setCallbackVector(1) == 0 && e.setCallbackVector(2) == 0)
        let (local, _) = try #require(e.connect(1, 2))
        e.acknowledge(1); e.acknowledge(2)
        e.resetUpcalls()
        e.page(1, CEmbedder.argGFN).storeBytes(of: local, toByteOffset: 512, as: UInt32.self)
        var r = xv_hypercall_regs()
        r.rax = 32; r.rdi = 4; r.rsi = e.arg + 512
        _ = xv_hypercall(e.system, 1, 0, &r)
        e.acknowledge(2)
        let before = e.upcalls(2)
        var failures = 0
        var allocations: UInt64 = 0
        let shared = e.page(2, 0)
        for _ in 0..<100 {
            xv_malloc_counter_begin()
            let rc = xv_hypercall(e.system, 1, 0, &r)
            allocations += xv_malloc_counter_end()
            if rc != 0 { failures += 1 }
            // The receiving guest's upcall handler, outside the count.
            shared.storeBytes(of: UInt8(0), as: UInt8.self)
            shared.storeBytes(of: UInt64(0), toByteOffset: 8, as: UInt64.self)
            (shared + 2048).initializeMemory(as: UInt8.self, repeating: 0, count: 512)
        }
        #expect(allocations == 0)
        #expect(failures == 0)
        #expect(e.upcalls(2) - before == 100)
        if side == XV_SIDE_TRANSLATED { #expect(xv_viridian_hypercalls(e.system) > 100) }
        else { #expect(xv_viridian_hypercalls(e.system) == 0) }
    }

    /// SCHEDOP_block parks the vCPU; an event for it calls the wake callback once and clears
    /// the request. SCHEDOP_poll with a timeout reports its deadline.
    @Test(arguments: sides) func parkAndWake(side: UInt32) throws {
        let e = CEmbedder(side: side)
        #expect(e.addDomain(1) == XV_OK && e.addDomain(2) == XV_OK)
        #expect(e.setCallbackVector(1) == 0 && e.setCallbackVector(2) == 0)
        let (local, remote) = try #require(e.connect(1, 2))
        e.acknowledge(1); e.acknowledge(2)
        #expect(e.call(2, 29, 1) == 0)                             // SCHEDOP_block
        #expect(xv_park_request(e.system, 2, 0, nil) == XV_PARK_BLOCK)
        e.page(1, CEmbedder.argGFN).storeBytes(of: local, toByteOffset: 512, as: UInt32.self)
        #expect(e.call(1, 32, 4, e.arg + 512) == 0)
        #expect(e.wakes == 1)
        #expect(xv_park_request(e.system, 2, 0, nil) == XV_PARK_NONE)
        e.acknowledge(2)
        // SCHEDOP_poll on the remote port with a timeout.
        let p = e.page(2, CEmbedder.argGFN)
        p.storeBytes(of: UInt32(remote), toByteOffset: 256, as: UInt32.self)
        p.storeBytes(of: e.arg + 256, toByteOffset: 0, as: UInt64.self)
        p.storeBytes(of: UInt32(1), toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: UInt64(5_000_000), toByteOffset: 16, as: UInt64.self)
        #expect(e.call(2, 29, 3, e.arg) == 0)                      // SCHEDOP_poll
        var deadline: UInt64 = 0
        #expect(xv_park_request(e.system, 2, 0, &deadline) == XV_PARK_POLL)
        #expect(deadline == 5_000_000)
        #expect(xv_resume(e.system, 2, 0) == XV_OK)
        #expect(xv_park_request(e.system, 2, 0, &deadline) == XV_PARK_NONE)
        // The shutdown callback, once, with the reason.
        e.page(2, CEmbedder.argGFN).storeBytes(of: UInt32(1), toByteOffset: 0, as: UInt32.self)   // SHUTDOWN_reboot
        #expect(e.call(2, 29, 2, e.arg) == 0)
        #expect(e.shutdowns == [1])
    }

    /// A read-only grant map reaches the embedder's physmap as read-only (its second-level
    /// entry must refuse the guest's writes), a writable one as writable, on both sides.
    @Test(arguments: sides) func grantMapRightsReachThePhysmap(side: UInt32) {
        let e = CEmbedder(side: side)
        #expect(e.addDomain(1) == XV_OK && e.addDomain(2) == XV_OK)
        // Domain 2: grant-table frame 0 at gfn 40 (XENMEM_add_to_physmap, XENMAPSPACE_grant_table).
        let a2 = e.page(2, CEmbedder.argGFN)
        a2.storeBytes(of: UInt16(0x7FF0), toByteOffset: 0, as: UInt16.self)
        a2.storeBytes(of: UInt32(1), toByteOffset: 4, as: UInt32.self)
        a2.storeBytes(of: UInt64(0), toByteOffset: 8, as: UInt64.self)
        a2.storeBytes(of: UInt64(40), toByteOffset: 16, as: UInt64.self)
        #expect(e.call(2, 12, 7, e.arg) == 0)
        // Ref 8: frame 41 to domain 1, read-only (GTF_permit_access | GTF_readonly); ref 9: frame 42, writable.
        let table = e.page(2, 40)
        for (ref, frame, flags) in [(8, UInt32(41), UInt16(1 | 4)), (9, UInt32(42), UInt16(1))] {
            table.storeBytes(of: UInt16(1), toByteOffset: ref * 8 + 2, as: UInt16.self)
            table.storeBytes(of: frame, toByteOffset: ref * 8 + 4, as: UInt32.self)
            table.storeBytes(of: flags, toByteOffset: ref * 8, as: UInt16.self)
        }
        e.mappings = []
        // Domain 1 maps ref 8 read-only at gfn 50 and ref 9 writable at gfn 51 (GNTMAP_host_map = 2, GNTMAP_readonly = 4).
        let a1 = e.page(1, CEmbedder.argGFN)
        for (slot, ref, gfn, flags) in [(0, UInt32(8), UInt64(50), UInt32(2 | 4)), (1, UInt32(9), UInt64(51), UInt32(2))] {
            a1.storeBytes(of: gfn << 12, toByteOffset: slot * 32, as: UInt64.self)
            a1.storeBytes(of: flags, toByteOffset: slot * 32 + 8, as: UInt32.self)
            a1.storeBytes(of: ref, toByteOffset: slot * 32 + 12, as: UInt32.self)
            a1.storeBytes(of: UInt16(2), toByteOffset: slot * 32 + 16, as: UInt16.self)
        }
        #expect(e.call(1, 20, 0, e.arg, 2) == 0)
        #expect(a1.load(fromByteOffset: 18, as: Int16.self) == 0 && a1.load(fromByteOffset: 32 + 18, as: Int16.self) == 0)
        let mine = e.mappings.filter { $0.0 == 1 && ($0.1 == 50 || $0.1 == 51) }
        #expect(mine.count == 2)
        #expect(mine.first { $0.1 == 50 }?.2 == false)
        #expect(mine.first { $0.1 == 51 }?.2 == true)
        #expect(e.tables[1]![50] == e.tables[2]![41] && e.tables[1]![51] == e.tables[2]![42])
    }

    /// XV_SIDE_TARGET: the layer over an embedder's own Viridian hypervisor, reached only
    /// through `xv_viridian_target` and answering with `xv_deliver_interrupt`. The same guest
    /// steps give the same results as over the bundled reference: an interdomain send raises
    /// the peer's upcall, and a grant map shows the granter's page.
    @Test func embedderTargetGivesTheSameResults() throws {
        let foreign = ForeignTarget()
        var table = foreign.table
        var config = xv_system_config()
        config.side = XV_SIDE_TARGET
        var results: [[Int64]] = []
        for side in [XV_SIDE_TRANSLATED, XV_SIDE_TARGET] {
            let e = CEmbedder(side: side, target: side == XV_SIDE_TARGET ? withUnsafePointer(to: &table) { $0 } : nil)
            foreign.system = e.system
            for d in UInt16(1)...2 {
                if side == XV_SIDE_TARGET {
                    let t = e.makeTable(vcpus: 1)
                    e.tables[d] = t
                    var c = e.config(d, table: t)
                    c.partition = foreign.createPartition(domain: d, vcpus: 1, table: t, frames: CEmbedder.frames + xv_layer_frame_count(1))
                    #expect(xv_domain_create(e.system, &c) == XV_OK)
                } else {
                    #expect(e.addDomain(d) == XV_OK)
                }
            }
            var r: [Int64] = [e.setCallbackVector(1), e.setCallbackVector(2)]
            let (local, _) = try #require(e.connect(1, 2))
            e.acknowledge(1); e.acknowledge(2)
            e.resetUpcalls()
            e.page(1, CEmbedder.argGFN).storeBytes(of: local, toByteOffset: 512, as: UInt32.self)
            r.append(e.call(1, 32, 4, e.arg + 512))
            r.append(Int64(e.upcalls(2)))
            // A grant of domain 2's frame 41, mapped by domain 1 at frame 42.
            let a2 = e.page(2, CEmbedder.argGFN)
            a2.storeBytes(of: UInt16(0x7FF0), toByteOffset: 0, as: UInt16.self)
            a2.storeBytes(of: UInt32(1), toByteOffset: 4, as: UInt32.self)
            a2.storeBytes(of: UInt64(0), toByteOffset: 8, as: UInt64.self)
            a2.storeBytes(of: UInt64(40), toByteOffset: 16, as: UInt64.self)
            r.append(e.call(2, 12, 7, e.arg))
            let grants = e.page(2, 40)
            grants.storeBytes(of: UInt16(1), toByteOffset: 8 * 8 + 2, as: UInt16.self)
            grants.storeBytes(of: UInt32(41), toByteOffset: 8 * 8 + 4, as: UInt32.self)
            grants.storeBytes(of: UInt16(1), toByteOffset: 8 * 8, as: UInt16.self)
            e.page(2, 41).storeBytes(of: UInt64(0x5566), as: UInt64.self)
            let a1 = e.page(1, CEmbedder.argGFN)
            a1.storeBytes(of: UInt64(42) << 12, toByteOffset: 0, as: UInt64.self)
            a1.storeBytes(of: UInt32(2), toByteOffset: 8, as: UInt32.self)
            a1.storeBytes(of: UInt32(8), toByteOffset: 12, as: UInt32.self)
            a1.storeBytes(of: UInt16(2), toByteOffset: 16, as: UInt16.self)
            r.append(e.call(1, 20, 0, e.arg, 1))
            r.append(Int64(a1.load(fromByteOffset: 18, as: Int16.self)))
            r.append(Int64(e.page(1, 42).load(as: UInt64.self)))
            r.append(xv_viridian_hypercalls(e.system) > 0 ? 1 : 0)
            results.append(r)
        }
        #expect(results[0] == results[1])
        #expect(results[1] == [0, 0, 0, 1, 0, 0, 0, 0x5566, 1])
        #expect(foreign.calls > 0)
        // The other sides refuse xv_deliver_interrupt, and a target system needs its table.
        let bundled = CEmbedder(side: XV_SIDE_TRANSLATED)
        #expect(bundled.addDomain(1) == XV_OK)
        #expect(xv_deliver_interrupt(bundled.system, 1, 0, 0x40) == XV_EINVAL)
        var callbacks = CEmbedder.callbacks(for: nil)
        var out: OpaquePointer?
        #expect(xv_system_create(&config, &callbacks, &out) == XV_EINVAL)
        var incomplete = table
        incomplete.host_address = nil
        config.target = withUnsafePointer(to: &incomplete) { $0 }
        #expect(xv_system_create(&config, &callbacks, &out) == XV_EINVAL)
    }
}
