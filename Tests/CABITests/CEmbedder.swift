import CGuestAtomics
import Foundation
import CXenViridian
import XenViridianC

/// A Swift stand-in for a C embedder: page tables and pages per domain, and the callbacks the
/// C ABI calls, recording what they were told. Everything crosses through include/xen_viridian.h
/// alone, as a C program's calls would.
final class CEmbedder: @unchecked Sendable {
    static let frames: UInt64 = 64
    let side: UInt32
    var system: OpaquePointer?
    var tables: [UInt16: UnsafeMutablePointer<UInt64>] = [:]
    var pages: [UnsafeMutableRawPointer] = []
    /// Upcalls per domain id (0 ..< 16), in fixed storage so the callback allocates nothing.
    let upcallCounts = UnsafeMutablePointer<UInt64>.allocate(capacity: 16)
    func upcalls(_ domain: UInt16) -> Int { Int(xv_atomic_load_u64(upcallCounts + Int(domain))) }
    func resetUpcalls() { upcallCounts.initialize(repeating: 0, count: 16) }
    var wakes = 0
    var shutdowns: [UInt8] = []
    /// Every physmap_map call: (domain, gfn, writable).
    var mappings: [(UInt16, UInt64, Bool)] = []

    /// Serialises `addDomainConcurrently`'s changes to the embedder's own dictionaries.
    let lock = NSLock()

    /// translate_linear's answers: linear page -> guest frame (with `translating`), and every page asked.
    var linearPages: [UInt64: UInt64] = [:]
    var linearAsks: [(UInt16, UInt64)] = []

    init(side: UInt32, target: UnsafePointer<xv_viridian_target>? = nil, translating: Bool = false) {
        self.side = side
        upcallCounts.initialize(repeating: 0, count: 16)
        var config = xv_system_config()
        config.side = side
        config.target = target
        var callbacks = Self.callbacks(for: self)
        if translating {
            callbacks.translate_linear = { context, domain, page in
                let e = Unmanaged<CEmbedder>.fromOpaque(context!).takeUnretainedValue()
                e.linearAsks.append((domain, page))
                return e.linearPages[page] ?? UInt64.max
            }
        }
        let rc = xv_system_create(&config, &callbacks, &system)
        precondition(rc == XV_OK, "xv_system_create: \(rc)")
    }

    deinit {
        xv_system_destroy(system)
        for t in tables.values { t.deallocate() }
        for p in pages { p.deallocate() }
        upcallCounts.deallocate()
    }

    static func callbacks(for embedder: CEmbedder?) -> xv_callbacks {
        var c = xv_callbacks()
        c.context = embedder.map { Unmanaged.passUnretained($0).toOpaque() }
        c.upcall = { context, domain, _, _ in
            let e = Unmanaged<CEmbedder>.fromOpaque(context!).takeUnretainedValue()
            // Atomic: upcalls come from any vCPU's thread.
            if domain < 16 { _ = xv_atomic_fetch_add_u64(e.upcallCounts + Int(domain), 1) }
        }
        c.wake = { context, _, _ in Unmanaged<CEmbedder>.fromOpaque(context!).takeUnretainedValue().wakes += 1 }
        c.shutdown = { context, _, reason in Unmanaged<CEmbedder>.fromOpaque(context!).takeUnretainedValue().shutdowns.append(reason) }
        c.physmap_map = { context, domain, gfn, page, writable in
            let e = Unmanaged<CEmbedder>.fromOpaque(context!).takeUnretainedValue()
            guard let table = e.tables[domain] else { return 0 }
            table[Int(gfn)] = UInt64(UInt(bitPattern: page))
            e.mappings.append((domain, gfn, writable != 0))
            return 1
        }
        c.physmap_unmap = { context, domain, gfn, _ in
            Unmanaged<CEmbedder>.fromOpaque(context!).takeUnretainedValue().tables[domain]?[Int(gfn)] = 0
        }
        return c
    }

    /// A page table of `frames` guest frames plus the layer's, every entry backed (or the
    /// layer's left as holes with `backLayer` false).
    func makeTable(vcpus: UInt32, backLayer: Bool = true) -> UnsafeMutablePointer<UInt64> {
        let layer = xv_layer_frame_count(vcpus)
        let count = Int(Self.frames + layer)
        let table = UnsafeMutablePointer<UInt64>.allocate(capacity: count)
        for f in 0..<count {
            if f >= Int(Self.frames) && !backLayer { table[f] = 0; continue }
            let page = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
            page.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
            pages.append(page)
            table[f] = UInt64(UInt(bitPattern: page))
        }
        return table
    }

    func config(_ domain: UInt16, vcpus: UInt32 = 1, table: UnsafeMutablePointer<UInt64>?) -> xv_domain_config {
        var c = xv_domain_config()
        c.domain = domain
        c.vcpu_count = vcpus
        c.page_table = table
        c.frames = Self.frames
        return c
    }

    @discardableResult
    func addDomain(_ domain: UInt16, vcpus: UInt32 = 1, flags: UInt32 = 0) -> Int32 {
        let table = makeTable(vcpus: vcpus)
        tables[domain] = table
        var c = config(domain, vcpus: vcpus, table: table)
        c.flags = flags
        return xv_domain_create(system, &c)
    }

    /// `addDomain` from another thread while vCPUs run: the table is made and recorded under
    /// the embedder's lock; the creation itself is the library's to serialise.
    func addDomainConcurrently(_ domain: UInt16) -> Int32 {
        lock.lock()
        let table = makeTable(vcpus: 1)
        tables[domain] = table
        var c = config(domain, vcpus: 1, table: table)
        lock.unlock()
        return xv_domain_create(system, &c)
    }

    func page(_ domain: UInt16, _ gfn: UInt64) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: UInt(tables[domain]![Int(gfn)]))!
    }

    func call(_ domain: UInt16, vcpu: UInt32 = 0, _ rax: UInt64, _ rdi: UInt64 = 0, _ rsi: UInt64 = 0, _ rdx: UInt64 = 0) -> Int64 {
        var r = xv_hypercall_regs()
        r.rax = rax; r.rdi = rdi; r.rsi = rsi; r.rdx = rdx
        return xv_hypercall(system, domain, vcpu, &r)
    }

    static let argGFN: UInt64 = 16
    var arg: UInt64 { Self.argGFN << 12 }

    /// HVM_PARAM_CALLBACK_IRQ (vector type, 0x40 + id) for the domain.
    func setCallbackVector(_ domain: UInt16) -> Int64 {
        let p = page(domain, Self.argGFN)
        p.storeBytes(of: UInt16(0x7FF0), toByteOffset: 0, as: UInt16.self)
        p.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)
        p.storeBytes(of: UInt64(2) << 56 | UInt64(0x40 + domain), toByteOffset: 8, as: UInt64.self)
        return call(domain, 34, 0, arg)
    }

    /// An interdomain channel from `a` to `b`: a's local port (b's is returned second).
    func connect(_ a: UInt16, _ b: UInt16) -> (UInt32, UInt32)? {
        let pb = page(b, Self.argGFN), pa = page(a, Self.argGFN)
        pb.storeBytes(of: UInt16(0x7FF0), toByteOffset: 0, as: UInt16.self)
        pb.storeBytes(of: a, toByteOffset: 2, as: UInt16.self)
        guard call(b, 32, 6, arg) == 0 else { return nil }
        let remote = pb.load(fromByteOffset: 4, as: UInt32.self)
        pa.storeBytes(of: b, toByteOffset: 0, as: UInt16.self)
        pa.storeBytes(of: remote, toByteOffset: 4, as: UInt32.self)
        guard call(a, 32, 0, arg) == 0 else { return nil }
        return (pa.load(fromByteOffset: 8, as: UInt32.self), remote)
    }

    /// A guest's upcall handler: vcpu_info[0]'s pending flag and selector, and the pending words.
    func acknowledge(_ domain: UInt16) {
        let shared = page(domain, 0)
        shared.storeBytes(of: UInt8(0), as: UInt8.self)
        shared.storeBytes(of: UInt64(0), toByteOffset: 8, as: UInt64.self)
        (shared + 2048).initializeMemory(as: UInt8.self, repeating: 0, count: 512)
    }
}
