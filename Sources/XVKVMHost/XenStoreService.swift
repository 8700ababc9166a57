import CKVM
import CXenViridian
import Foundation
import Glibc
import GuestABI
import XenABI
import XenViridianC

/// The host's minimal xenstore, served as Xen serves one from a stub domain: the service is a
/// domain of the library's own (`domainID`, one vCPU, a few frames of host memory and no VM),
/// so every store event between it and a guest is a real interdomain event channel, on either
/// side. For each guest the toolstack step (`connect`) allocates an unbound port in the
/// service, binds the guest's end before the guest runs, and names the guest's ring page and
/// port in HVM_PARAM_STORE_PFN and HVM_PARAM_STORE_EVTCHN.
///
/// The ring is xen/io/xs_wire.h's xenstore_domain_interface; requests READ, WRITE, MKDIR, RM,
/// DIRECTORY, WATCH, UNWATCH, TRANSACTION_START/END, GET_DOMAIN_PATH, GET_PERMS, SET_PERMS and
/// RESET_WATCHES are served over the tree (`XenStoreTree`, which lists the limits); anything
/// else is answered XS_ERROR "ENOSYS". A guest whose ring indices are impossible (more than a
/// ring's bytes outstanding) has its connection's `error` set to XENSTORE_ERROR_RINGIDX and is
/// served no more, as xenstored does.
final class XenStoreService: @unchecked Sendable {
    /// The service domain's id: the highest a domain may have.
    static let domainID: UInt16 = 0x7FEF
    static let frames = 4
    static let upcallVector: UInt8 = 0xF3

    unowned(unsafe) let host: XenHost
    private let memory: UnsafeMutableRawPointer
    private let pageTable: UnsafeMutablePointer<UInt64>
    private let totalFrames: Int
    private var tree = XenStoreTree()
    private var connections: [Connection] = []
    private var transactions: UInt32 = 0

    private let condition = NSCondition()
    private var signals = 0
    private var stopped = false
    private var running = false
    private let finished = DispatchSemaphore(value: 0)

    /// One guest's store connection.
    final class Connection {
        let domain: UInt16
        let ring: UnsafeMutableRawPointer
        let servicePort: UInt32
        var inbox: [UInt8] = []
        var outbox: [UInt8] = []
        var watches: [(path: String, token: String, relative: Bool)] = []
        var broken = false
        init(domain: UInt16, ring: UnsafeMutableRawPointer, servicePort: UInt32) {
            self.domain = domain
            self.ring = ring
            self.servicePort = servicePort
        }
    }

    /// Creates the service domain and sets its callback vector (HVMOP_set_param as its vCPU).
    init(host: XenHost) throws(KVMError) {
        self.host = host
        let layerFrames = host.configuration.side == .translated ? Int(xv_layer_frame_count(1)) : 0
        totalFrames = Self.frames + layerFrames
        guard let p = mmap(nil, totalFrames * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            throw KVMError("mmap of the xenstore service's memory")
        }
        memory = p
        pageTable = .allocate(capacity: totalFrames)
        for f in 0..<totalFrames { pageTable[f] = UInt64(UInt(bitPattern: p + f * 4096)) }
        var c = xv_domain_config()
        c.domain = Self.domainID
        c.vcpu_count = 1
        c.page_table = pageTable
        c.frames = UInt64(Self.frames)
        c.shared_info_gfn = 0
        let rc = xv_domain_create(host.system, &c)
        guard rc == XV_OK else { throw KVMError("xv_domain_create(xenstore service): \(rc)", errno: 0) }
        let args = memory + 4096
        args.initializeMemory(as: UInt8.self, repeating: 0, count: XenHvmParamLayout.size)
        args.storeBytes(of: UInt16(0x7FF0), toByteOffset: XenHvmParamLayout.domid.offset, as: UInt16.self)   // DOMID_SELF
        args.storeBytes(of: HVMParam.callbackIrq.rawValue, toByteOffset: XenHvmParamLayout.index.offset, as: UInt32.self)
        // HVM_PARAM_CALLBACK_IRQ's vector type (xen/include/public/hvm/params.h): 2 in the top byte.
        args.storeBytes(of: UInt64(2) << 56 | UInt64(Self.upcallVector), toByteOffset: XenHvmParamLayout.value.offset, as: UInt64.self)
        let set = call(XenHypercall.hvmOp.rawValue, UInt64(HVMOp.setParam.rawValue), 1 << 12)
        guard set == 0 else { throw KVMError("xenstore service: HVMOP_set_param(CALLBACK_IRQ) = \(set)", errno: 0) }
    }

    deinit {
        munmap(memory, totalFrames * 4096)
        pageTable.deallocate()
    }

    /// A hypercall as the service's vCPU 0 (the xenstore thread, or the host before the run).
    private func call(_ number: UInt64, _ a1: UInt64, _ a2: UInt64) -> Int64 {
        var regs = xv_hypercall_regs()
        regs.rax = number; regs.rdi = a1; regs.rsi = a2
        return xv_hypercall(host.system, Self.domainID, 0, &regs)
    }

    /// The toolstack step for a guest: the store port pair, the ring page, the HVM parameters
    /// and the guest's nodes (domid, name, vm, and empty device, control and data directories).
    func connect(_ d: XenHostDomain) throws(KVMError) {
        let args = memory + 4096
        args.initializeMemory(as: UInt8.self, repeating: 0, count: EvtchnAllocUnboundLayout.size)
        args.storeBytes(of: UInt16(0x7FF0), toByteOffset: EvtchnAllocUnboundLayout.dom.offset, as: UInt16.self)
        args.storeBytes(of: d.id, toByteOffset: EvtchnAllocUnboundLayout.remoteDom.offset, as: UInt16.self)
        let allocated = call(XenHypercall.eventChannelOp.rawValue, UInt64(EventChannelOp.allocUnbound.rawValue), 1 << 12)
        guard allocated == 0 else { throw KVMError("xenstore: EVTCHNOP_alloc_unbound for domain \(d.id) = \(allocated)", errno: 0) }
        let servicePort = args.load(fromByteOffset: EvtchnAllocUnboundLayout.port.offset, as: UInt32.self)

        // The guest's end, bound as the guest's vCPU 0 before it runs, with the arguments in
        // the guest's scratch frame (Xen's toolstack binds it with its own privilege instead).
        let scratch = d.reservedPage(.scratch)
        scratch.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        scratch.storeBytes(of: Self.domainID, toByteOffset: EvtchnBindInterdomainLayout.remoteDom.offset, as: UInt16.self)
        scratch.storeBytes(of: servicePort, toByteOffset: EvtchnBindInterdomainLayout.remotePort.offset, as: UInt32.self)
        var regs = xv_hypercall_regs()
        regs.rax = XenHypercall.eventChannelOp.rawValue
        regs.rdi = UInt64(EventChannelOp.bindInterdomain.rawValue)
        regs.rsi = d.reservedFrame(.scratch) << 12
        let bound = xv_hypercall(host.system, d.id, 0, &regs)
        guard bound == 0 else { throw KVMError("xenstore: EVTCHNOP_bind_interdomain in domain \(d.id) = \(bound)", errno: 0) }
        let guestPort = scratch.load(fromByteOffset: EvtchnBindInterdomainLayout.localPort.offset, as: UInt32.self)
        scratch.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)

        let ring = d.reservedPage(.store)
        ring.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        guard xv_set_hvm_param(host.system, d.id, HVMParam.storePfn.rawValue, d.reservedFrame(.store)) == XV_OK,
              xv_set_hvm_param(host.system, d.id, HVMParam.storeEvtchn.rawValue, UInt64(guestPort)) == XV_OK else {
            throw KVMError("xenstore: xv_set_hvm_param for domain \(d.id)", errno: 0)
        }
        connections.append(Connection(domain: d.id, ring: ring, servicePort: servicePort))
        let home = "/local/domain/\(d.id)"
        tree.write(home + "/domid", "\(d.id)")
        tree.write(home + "/name", d.guest.name)
        tree.write(home + "/vm", "/vm/\(d.id)")
        tree.write("/vm/\(d.id)/name", d.guest.name)
        for dir in ["device", "control", "data"] { tree.mkdir(home + "/" + dir) }
    }

    // The service domain's physmap: its page table, written directly.
    func map(_ page: UnsafeMutableRawPointer?, at gfn: UInt64) -> Bool {
        guard let page, gfn < UInt64(Self.frames) else { return false }
        xv_kvm_store_release_u64(pageTable + Int(gfn), UInt64(UInt(bitPattern: page)))
        return true
    }
    func unmap(_ gfn: UInt64) {
        guard gfn < UInt64(Self.frames) else { return }
        xv_kvm_store_release_u64(pageTable + Int(gfn), 0)
    }

    // MARK: The xenstore thread

    func start() {
        running = true
        let t = Thread { [self] in
            loop()
            finished.signal()
        }
        t.name = "xv xenstore"
        t.start()
    }

    func stop() {
        condition.withLock { stopped = true; condition.signal() }
        if running { finished.wait() }
    }

    /// The service domain's upcall (any thread): wake the xenstore thread.
    func signal() {
        condition.withLock { signals += 1; condition.signal() }
    }

    private func loop() {
        while true {
            let go: Bool = condition.withLock {
                while signals == 0, !stopped { condition.wait() }
                signals = 0
                return !stopped
            }
            guard go else { return }
            acknowledgeEvents()
            for c in connections where !c.broken { serve(c) }
        }
    }

    /// Takes the service's pending events (2-level: vcpu_info 0's selector, then the
    /// shared_info bitmaps), as a guest's upcall handler does. Which port fired does not
    /// matter: every connection is looked at on each wake.
    private func acknowledgeEvents() {
        let shared = UnsafeMutableRawPointer(bitPattern: UInt(xv_kvm_load_acquire_u64(pageTable)))!
        let vcpu = shared + SharedInfoLayout.vcpuInfo.offset
        _ = xv_kvm_exchange_u8(vcpu.assumingMemoryBound(to: UInt8.self) + VcpuInfoLayout.evtchnUpcallPending.offset, 0)
        var selector = xv_kvm_exchange_u64((vcpu + VcpuInfoLayout.evtchnPendingSel.offset).assumingMemoryBound(to: UInt64.self), 0)
        let pending = (shared + SharedInfoLayout.evtchnPending.offset).assumingMemoryBound(to: UInt64.self)
        while selector != 0 {
            let word = selector.trailingZeroBitCount
            selector &= selector - 1
            _ = xv_kvm_fetch_and_u64(pending + word, 0)
        }
    }

    private func notify(_ c: Connection) {
        let args = memory + 4096
        args.storeBytes(of: c.servicePort, toByteOffset: EvtchnSendLayout.port.offset, as: UInt32.self)
        _ = call(XenHypercall.eventChannelOp.rawValue, UInt64(EventChannelOp.send.rawValue), 1 << 12)
    }

    // Ring offsets (xenstore_domain_interface).
    private func index(_ c: Connection, _ field: ABIField) -> UnsafeMutablePointer<UInt32> {
        (c.ring + field.offset).assumingMemoryBound(to: UInt32.self)
    }

    /// Takes every request byte off the ring, answers each complete message, and writes what
    /// fits of the replies. A message longer than the ring arrives in pieces, as xenstored
    /// reads it.
    private func serve(_ c: Connection) {
        var notifyGuest = flush(c)
        // Backpressure, as xenstored has: a guest that does not read its replies is read no
        // further until it does, so neither buffer grows past a few messages.
        guard c.outbox.count < Self.outboxLimit / 4, c.inbox.count <= XsdSockmsgLayout.size + Int(XenStoreLimits.payloadMax) else {
            if notifyGuest { notify(c) }
            return
        }
        let cons = xv_kvm_load_acquire_u32(index(c, XenstoreDomainInterfaceLayout.reqCons))
        let prod = xv_kvm_load_acquire_u32(index(c, XenstoreDomainInterfaceLayout.reqProd))
        let available = prod &- cons
        if available > XenStoreLimits.ringSize { breakConnection(c); return }
        if available > 0 {
            c.inbox += copyOut(c, from: cons, count: Int(available))
            xv_kvm_store_release_u32(index(c, XenstoreDomainInterfaceLayout.reqCons), prod)
            notifyGuest = true
        }
        let header = XsdSockmsgLayout.size
        while c.inbox.count >= header {
            let head = Array(c.inbox[0..<header])
            let length = head.withUnsafeBytes { $0.load(fromByteOffset: XsdSockmsgLayout.length.offset, as: UInt32.self) }
            if length > XenStoreLimits.payloadMax { breakConnection(c); return }
            guard c.inbox.count >= header + Int(length) else { break }
            let payload = Array(c.inbox[header..<(header + Int(length))])
            c.inbox.removeFirst(header + Int(length))
            handle(c, head: head, payload: payload)
        }
        if flush(c) { notifyGuest = true }
        if notifyGuest { notify(c) }
    }

    private func breakConnection(_ c: Connection) {
        c.broken = true
        xv_kvm_store_release_u32(index(c, XenstoreDomainInterfaceLayout.error), 2)   // XENSTORE_ERROR_RINGIDX
    }

    private func copyOut(_ c: Connection, from start: UInt32, count: Int) -> [UInt8] {
        let ring = (c.ring + XenstoreDomainInterfaceLayout.req.offset).assumingMemoryBound(to: UInt8.self)
        return (0..<count).map { ring[Int((start &+ UInt32($0)) & (XenStoreLimits.ringSize - 1))] }
    }

    /// Writes as much of the outbox as the response ring has room for; true if it wrote any.
    private func flush(_ c: Connection) -> Bool {
        guard !c.outbox.isEmpty else { return false }
        let cons = xv_kvm_load_acquire_u32(index(c, XenstoreDomainInterfaceLayout.rspCons))
        let prod = xv_kvm_load_acquire_u32(index(c, XenstoreDomainInterfaceLayout.rspProd))
        let used = prod &- cons
        if used > XenStoreLimits.ringSize { breakConnection(c); return false }
        let room = Int(XenStoreLimits.ringSize - used)
        let n = min(room, c.outbox.count)
        guard n > 0 else { return false }
        let ring = (c.ring + XenstoreDomainInterfaceLayout.rsp.offset).assumingMemoryBound(to: UInt8.self)
        for i in 0..<n { ring[Int((prod &+ UInt32(i)) & (XenStoreLimits.ringSize - 1))] = c.outbox[i] }
        xv_kvm_store_release_u32(index(c, XenstoreDomainInterfaceLayout.rspProd), prod &+ UInt32(n))
        c.outbox.removeFirst(n)
        return true
    }

    private func reply(type: UInt32, head: [UInt8], payload: [UInt8]) -> [UInt8] {
        var out = head
        out.withUnsafeMutableBytes {
            $0.storeBytes(of: type, toByteOffset: XsdSockmsgLayout.type.offset, as: UInt32.self)
            $0.storeBytes(of: UInt32(payload.count), toByteOffset: XsdSockmsgLayout.length.offset, as: UInt32.self)
        }
        return out + payload
    }

    /// The NUL-separated strings of a payload (a trailing string without its NUL included).
    private static func strings(_ payload: [UInt8]) -> [String] {
        var parts = payload.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if payload.last == 0 { parts.removeLast() }
        return parts
    }

    private func handle(_ c: Connection, head: [UInt8], payload: [UInt8]) {
        let type = head.withUnsafeBytes { $0.load(fromByteOffset: XsdSockmsgLayout.type.offset, as: UInt32.self) }
        let ok: [UInt8] = Array("OK".utf8) + [0]
        func error(_ name: String) { c.outbox += reply(type: XenStoreMessage.error, head: head, payload: Array(name.utf8) + [0]) }
        func answer(_ bytes: [UInt8]) { c.outbox += reply(type: type, head: head, payload: bytes) }
        let parts = Self.strings(payload)
        func path(_ i: Int) -> String? { i < parts.count ? XenStoreTree.absolute(parts[i], domain: c.domain) : nil }
        switch type {
        case XenStoreMessage.read:
            guard let p = path(0) else { return error("EINVAL") }
            guard let v = tree.read(p) else { return error("ENOENT") }
            answer(Array(v.utf8))
        case XenStoreMessage.write:
            // "path\0value": the value is the rest of the payload, NULs and all.
            guard let nul = payload.firstIndex(of: 0), let p = XenStoreTree.absolute(String(decoding: payload[..<nul], as: UTF8.self), domain: c.domain) else { return error("EINVAL") }
            tree.write(p, String(decoding: payload[(nul + 1)...], as: UTF8.self))
            answer(ok)
            fireWatches(p)
        case XenStoreMessage.mkdir:
            guard let p = path(0) else { return error("EINVAL") }
            tree.mkdir(p)
            answer(ok)
            fireWatches(p)
        case XenStoreMessage.rm:
            guard let p = path(0) else { return error("EINVAL") }
            guard tree.remove(p) else { return error("ENOENT") }
            answer(ok)
            fireWatches(p)
        case XenStoreMessage.directory:
            guard let p = path(0) else { return error("EINVAL") }
            guard let names = tree.children(p) else { return error("ENOENT") }
            answer(names.flatMap { Array($0.utf8) + [0] })
        case XenStoreMessage.watch:
            guard parts.count >= 2, let p = path(0) else { return error("EINVAL") }
            c.watches.append((p, parts[1], !parts[0].hasPrefix("/")))
            answer(ok)
            // xenstored fires a new watch once at once.
            event(c, path: p, token: parts[1], relative: !parts[0].hasPrefix("/"))
        case XenStoreMessage.unwatch:
            guard parts.count >= 2, let p = path(0) else { return error("EINVAL") }
            guard let i = c.watches.firstIndex(where: { $0.path == p && $0.token == parts[1] }) else { return error("ENOENT") }
            c.watches.remove(at: i)
            answer(ok)
        case XenStoreMessage.resetWatches:
            c.watches.removeAll()
            answer(ok)
        case XenStoreMessage.transactionStart:
            transactions &+= 1
            answer(Array("\(max(transactions, 1))".utf8) + [0])
        case XenStoreMessage.transactionEnd:
            answer(ok)
        case XenStoreMessage.getDomainPath:
            guard let id = parts.first.flatMap({ UInt16($0) }) else { return error("EINVAL") }
            answer(Array("/local/domain/\(id)".utf8) + [0])
        case XenStoreMessage.getPerms:
            guard let p = path(0) else { return error("EINVAL") }
            guard tree.read(p) != nil else { return error("ENOENT") }
            // Owner the guest itself, others read ("b" both; no permissions are enforced).
            answer(Array("n\(c.domain)".utf8) + [0])
        case XenStoreMessage.setPerms:
            guard let p = path(0) else { return error("EINVAL") }
            guard tree.read(p) != nil else { return error("ENOENT") }
            answer(ok)
        default:
            error("ENOSYS")
        }
    }

    /// Queues XS_WATCH_EVENT for every watch on `path` or a parent of it.
    private func fireWatches(_ path: String) {
        for c in connections where !c.broken {
            for w in c.watches where path == w.path || path.hasPrefix(w.path == "/" ? "/" : w.path + "/") {
                event(c, path: path, token: w.token, relative: w.relative)
            }
            if !c.outbox.isEmpty, flush(c) { notify(c) }
        }
    }

    /// Replies and watch events queued for a guest beyond this break its connection
    /// (XENSTORE_ERROR_PROTO): a watcher that never reads cannot make the host's memory grow.
    static let outboxLimit = 256 * 1024

    private func event(_ c: Connection, path: String, token: String, relative: Bool) {
        guard c.outbox.count < Self.outboxLimit else {
            c.broken = true
            xv_kvm_store_release_u32(index(c, XenstoreDomainInterfaceLayout.error), 3)   // XENSTORE_ERROR_PROTO
            return
        }
        let home = "/local/domain/\(c.domain)/"
        let shown = relative && path.hasPrefix(home) ? String(path.dropFirst(home.count)) : path
        var head = [UInt8](repeating: 0, count: XsdSockmsgLayout.size)
        head.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(0), toByteOffset: XsdSockmsgLayout.reqId.offset, as: UInt32.self) }
        c.outbox += reply(type: XenStoreMessage.watchEvent, head: head, payload: Array(shown.utf8) + [0] + Array(token.utf8) + [0])
    }
}
