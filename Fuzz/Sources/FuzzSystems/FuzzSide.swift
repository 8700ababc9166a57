import CXenViridian
import XenViridianC

/// One side of a differential fuzz target: a system of `side` through the C ABI with domains 1
/// and 2 of one vCPU each, on page tables of `frames` zeroed frames (and the layer's frames
/// past them on the translated side), and a count of the upcalls each domain was given.
public final class FuzzSide {
    /// Guest frames per domain.
    public static let frames: UInt64 = 32
    /// The system (`xv_system_create`).
    public var system: OpaquePointer?
    /// Each domain's page table, domain 1 first.
    public var tables: [UnsafeMutablePointer<UInt64>] = []
    var pages: [UnsafeMutableRawPointer] = []
    /// Upcalls given to domain n at index n.
    public var upcalls: [Int] = [0, 0, 0]

    /// The system of `side` with its two domains; traps if the library refuses either.
    public init(_ side: UInt32) {
        var config = xv_system_config()
        config.side = side
        var callbacks = xv_callbacks()
        callbacks.context = Unmanaged.passUnretained(self).toOpaque()
        callbacks.upcall = { context, domain, _, _ in
            let s = Unmanaged<FuzzSide>.fromOpaque(context!).takeUnretainedValue()
            if Int(domain) < s.upcalls.count { s.upcalls[Int(domain)] += 1 }
        }
        let created = xv_system_create(&config, &callbacks, &system)
        precondition(created == XV_OK, "xv_system_create: \(created)")
        let layer = side == XV_SIDE_TRANSLATED ? xv_layer_frame_count(1) : 0
        for d in UInt16(1)...2 {
            let count = Int(Self.frames + layer)
            let table = UnsafeMutablePointer<UInt64>.allocate(capacity: count)
            for f in 0..<count {
                let p = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
                p.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
                pages.append(p)
                table[f] = UInt64(UInt(bitPattern: p))
            }
            tables.append(table)
            var c = xv_domain_config()
            c.domain = d
            c.vcpu_count = 1
            c.page_table = table
            c.frames = Self.frames
            precondition(xv_domain_create(system, &c) == XV_OK)
        }
    }

    deinit {
        xv_system_destroy(system)
        for p in pages { p.deallocate() }
        for t in tables { t.deallocate() }
    }

    /// A guest frame of a domain (0 ..< frames), as the guest sees it now.
    public func frame(_ domain: Int, _ gfn: Int) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: UInt(tables[domain - 1][gfn]))
    }
}
