import GuestABI
import XenABI

extension DomainImageRefusal: Error {}

/// A domain image read and checked against the domain it is to restore into, before anything
/// of that domain changes (`XenDomain.restoreImage`). Every field is in range for that domain:
/// ports below its valid-port count, vCPUs below its count, frames its memory backs, grant refs
/// within its table, handles within its maptrack.
@usableFromInline struct DomainImageContents {
    @usableFromInline struct Port {
        @usableFromInline var port: UInt32
        @usableFromInline var channel: EventChannel
        @inlinable init(port: UInt32, channel: EventChannel) { self.port = port; self.channel = channel }
    }
    @usableFromInline struct VCPU {
        @usableFromInline var virqPorts: [UInt32] = []
        @usableFromInline var upcallVector: UInt8 = 0
        @usableFromInline var controlBlock: UInt64 = 0
        @usableFromInline var vcpuInfoAddress: UInt64 = 0
        @usableFromInline var online: UInt32 = 0
        @usableFromInline var initialised: UInt32 = 0
        @usableFromInline var timeArea: UInt64 = 0
        @usableFromInline var singleshot: UInt64 = 0
        @usableFromInline var period: UInt64 = 0
        @usableFromInline var periodicNext: UInt64 = 0
        @usableFromInline var runstate: UInt32 = 0
        @usableFromInline var entryTime: UInt64 = 0
        @usableFromInline var runstateTimes: [UInt64] = []
        @usableFromInline var runstateArea: UInt64 = 0
        @usableFromInline var queueTails: [UInt32] = []
        @inlinable init() {}
    }
    @usableFromInline struct Active {
        @usableFromInline var ref: UInt32
        @usableFromInline var grant: ActiveGrant
        @inlinable init(ref: UInt32, grant: ActiveGrant) { self.ref = ref; self.grant = grant }
    }
    @usableFromInline struct Mapping {
        @usableFromInline var handle: UInt32
        @usableFromInline var mapping: GrantMapping
        @inlinable init(handle: UInt32, mapping: GrantMapping) { self.handle = handle; self.mapping = mapping }
    }

    @usableFromInline var systemTime: UInt64?
    @usableFromInline var callbackIrq: UInt64 = 0
    @usableFromInline var vmAssist: UInt64 = 0
    @usableFromInline var shutdownCode: UInt32 = 0
    @usableFromInline var shuttingDown: UInt32 = 0
    @usableFromInline var watchdogDeadlines: [UInt64] = []
    @usableFromInline var watchdogsInUse: UInt32 = 0
    @usableFromInline var console: [UInt8] = []
    @usableFromInline var hvmParams: [UInt64] = []
    @usableFromInline var pages: UInt64 = 0
    @usableFromInline var maxPages: UInt64 = 0
    @usableFromInline var maximumGpfn: UInt64 = 0
    @usableFromInline var hostPages: UInt64 = 0
    @usableFromInline var sharedInfoLocation: UInt64 = 0
    @usableFromInline var grantFrameLocations: [UInt64] = []
    @usableFromInline var statusFrameLocations: [UInt64] = []
    @usableFromInline var validPorts: UInt32 = 0
    @usableFromInline var usesFIFO = false
    @usableFromInline var eventArray: [UInt64] = []
    @usableFromInline var ports: [Port] = []
    @usableFromInline var vcpus: [VCPU] = []
    @usableFromInline var grantVersion: UInt32 = 1
    @usableFromInline var grantFrameBytes: ArraySlice<UInt8> = []
    @usableFromInline var statusFrameBytes: ArraySlice<UInt8> = []
    @usableFromInline var active: [Active] = []
    @usableFromInline var maptrack: [Mapping] = []
    @usableFromInline var maptrackPages = 0
    @usableFromInline var maptrackFree: [UInt32] = []
    @inlinable init() {}

    /// Ports that need the side's objects (unbound and interdomain).
    @inlinable var bindablePorts: Int {
        var n = 0
        for p in ports where p.channel.state == .unbound || p.channel.state == .interdomain { n += 1 }
        return n
    }
}

extension XenDomain {
    /// Reads `bytes` as an image for this domain, checking every field; `ownsFrame` says which
    /// frames are the side's own (no guest location may name one).
    func decodeImage(_ bytes: [UInt8], ownsFrame: (GuestFrameNumber) -> Bool) throws(DomainImageRefusal) -> DomainImageContents {
        var r = SaveImageReader(bytes: bytes)
        guard let magic = r.u32(), magic == DomainImageFormat.magic else { throw .magic }
        guard let version = r.u32() else { throw .truncated }
        guard version == DomainImageFormat.version else { throw .version }
        guard let length = r.u64() else { throw .truncated }
        guard length == UInt64(bytes.count), bytes.count >= Int(DomainImageFormat.headerSize + DomainImageFormat.trailerSize) else {
            throw length > UInt64(bytes.count) ? .truncated : .malformed
        }
        let body = bytes.count - Int(DomainImageFormat.trailerSize)
        var trailer = SaveImageReader(bytes: bytes)
        trailer.at = body
        guard trailer.u64() == SaveImageChecksum.fnv1a(bytes, 0..<body) else { throw .checksum }
        r.end = body
        var out = DomainImageContents()

        try Self.section(&r, .domain) { (s: inout SaveImageReader) throws(DomainImageRefusal) in
            guard let id = s.u16(), let vcpus = s.u32(), let maxPort = s.u32(), let grantFrames = s.u32(),
                  let grantVersion = s.u32(), let maptrack = s.u32(), let sharedInfo = s.u64() else { throw .malformed }
            guard id == self.id.rawValue, Int(vcpus) == vcpuCount, maxPort == self.maxPort, grantFrames == maxGrantFrames,
                  grantVersion == grantState.maxVersion, Int(maptrack) == maxMaptrackFrames,
                  sharedInfo == sharedInfoFrame.rawValue else { throw .shape }
        }
        try Self.section(&r, .time) { (s: inout SaveImageReader) throws(DomainImageRefusal) in
            guard let t = s.optional() else { throw .malformed }
            out.systemTime = t
        }
        try Self.section(&r, .words) { (s: inout SaveImageReader) throws(DomainImageRefusal) in try decodeWords(&s, into: &out) }
        try Self.section(&r, .physmap) { (s: inout SaveImageReader) throws(DomainImageRefusal) in
            try decodePhysmap(&s, into: &out, ownsFrame: ownsFrame)
        }
        try Self.section(&r, .ports) { (s: inout SaveImageReader) throws(DomainImageRefusal) in try decodePorts(&s, into: &out) }
        try Self.section(&r, .vcpus) { (s: inout SaveImageReader) throws(DomainImageRefusal) in try decodeVCPUs(&s, into: &out) }
        try Self.section(&r, .grants) { (s: inout SaveImageReader) throws(DomainImageRefusal) in try decodeGrants(&s, into: &out) }
        try Self.section(&r, .maptrack) { (s: inout SaveImageReader) throws(DomainImageRefusal) in try decodeMaptrack(&s, into: &out) }
        guard r.isAtEnd else { throw .malformed }
        return out
    }

    /// One section: its tag must be `tag`, its length must fit, and `body` must read exactly it.
    static func section(_ r: inout SaveImageReader, _ tag: DomainImageSection,
                                   _ body: (inout SaveImageReader) throws(DomainImageRefusal) -> Void) throws(DomainImageRefusal) {
        guard let t = r.u32(), let n = r.u32() else { throw .truncated }
        guard t == tag.rawValue else { throw .malformed }
        guard Int(n) <= r.remaining else { throw .truncated }
        var s = r
        s.end = r.at + Int(n)
        try body(&s)
        guard s.isAtEnd else { throw .malformed }
        r.at = s.end
    }

    func decodeWords(_ s: inout SaveImageReader, into out: inout DomainImageContents) throws(DomainImageRefusal) {
        guard let callback = s.u64(), let assist = s.u64(), let code = s.u32(), let down = s.u32() else { throw .malformed }
        guard code == UInt32.max || code <= 0xFF, down <= 1 else { throw .malformed }
        out.callbackIrq = callback; out.vmAssist = assist; out.shutdownCode = code; out.shuttingDown = down
        for _ in 0..<Self.watchdogCount {
            guard let d = s.u64() else { throw .malformed }
            out.watchdogDeadlines.append(d)
        }
        guard let inUse = s.u32(), inUse < 1 << UInt32(Self.watchdogCount), let fill = s.u32(),
              fill <= ConsoleIOLimits.lineBuffer, let line = s.bytes(Int(fill)) else { throw .malformed }
        out.watchdogsInUse = inUse
        out.console = Array(line)
        guard let count = s.u32(), Int(count) == hvmParams.count else { throw .malformed }
        for _ in 0..<hvmParams.count {
            guard let v = s.u64() else { throw .malformed }
            out.hvmParams.append(v)
        }
        // HVM_PARAM_CALLBACK_IRQ is kept twice (the parameter and the published word): they agree,
        // and it is none or a vector, the only types the layer accepts from HVMOP_set_param.
        guard out.hvmParams[Int(HVMParam.callbackIrq.rawValue)] == callback,
              callback == 0 || callback >> 56 == UInt64(HVMCallbackType.vector.rawValue) else { throw .malformed }
    }

    func decodePhysmap(_ s: inout SaveImageReader, into out: inout DomainImageContents,
                                  ownsFrame: (GuestFrameNumber) -> Bool) throws(DomainImageRefusal) {
        guard let pages = s.u64(), let maxPages = s.u64(), let maximumGpfn = s.u64(), let hostPages = s.u64(),
              let sharedInfo = s.u64(), let grantFrames = s.u32() else { throw .malformed }
        guard pages <= maxPages, grantFrames >= UInt32(GrantTableLimits.initialFrames), grantFrames <= maxGrantFrames else { throw .malformed }
        func location(_ frame: UInt64) throws(DomainImageRefusal) {
            guard frame == PhysmapState.noFrame || (frame >> (64 - guestPageShift) == 0 && !ownsFrame(GuestFrameNumber(frame))) else { throw .malformed }
        }
        try location(sharedInfo)
        out.pages = pages; out.maxPages = maxPages; out.maximumGpfn = maximumGpfn; out.hostPages = hostPages
        out.sharedInfoLocation = sharedInfo
        for _ in 0..<Int(grantFrames) {
            guard let f = s.u64() else { throw .malformed }
            try location(f)
            out.grantFrameLocations.append(f)
        }
        guard let statusFrames = s.u32(), statusFrames == 0 || statusFrames == Self.statusFrames(for: grantFrames) else { throw .malformed }
        for _ in 0..<Int(statusFrames) {
            guard let f = s.u64() else { throw .malformed }
            try location(f)
            out.statusFrameLocations.append(f)
        }
    }

    func decodePorts(_ s: inout SaveImageReader, into out: inout DomainImageContents) throws(DomainImageRefusal) {
        guard let valid = s.u32(), let fifo = s.u8(), fifo <= 1, let pages = s.u32() else { throw .malformed }
        let firstBucket = min(Self.portsPerBucket, maxPort + 1)
        guard valid >= firstBucket, valid <= maxPort + 1, valid == maxPort + 1 || valid % Self.portsPerBucket == 0,
              fifo == 1 || valid <= EventChannel2L.nrChannels,
              Int(pages) <= Self.maxEventArrayPages, fifo == 1 || pages == 0 else { throw .malformed }
        out.validPorts = valid
        out.usesFIFO = fifo == 1
        for _ in 0..<Int(pages) {
            // Not necessarily backed now: memory_op may have taken the frame away since (the
            // layer reads an event word only through a backed frame).
            guard let frame = s.u64(), frame >> (64 - guestPageShift) == 0 else { throw .malformed }
            out.eventArray.append(frame)
        }
        guard let count = s.u32(), count < valid else { throw .malformed }
        var last: UInt32 = 0
        for _ in 0..<Int(count) {
            guard let port = s.u32(), let state = s.u8(), let priority = s.u8(), let virq = s.u8(), let saved = s.u8(),
                  let notify = s.u16(), let lastVCPU = s.u16(), let remote = s.u16(), let lastPriority = s.u8(),
                  let remotePort = s.u32() else { throw .malformed }
            guard port > last, port < valid, let st = EventChannelState(rawValue: state), st != .free, st != .reserved,
                  UInt32(priority) <= EventChannelFIFO.priorityMin, UInt32(lastPriority) <= EventChannelFIFO.priorityMin,
                  saved <= 1, Int(notify) < vcpuCount, Int(lastVCPU) < vcpuCount else { throw .malformed }
            switch st {
            case .virq: guard Int(virq) < Self.virqSlots, remote == 0, remotePort == 0 else { throw .malformed }
            case .unbound, .interdomain:
                // An unbound port keeps the peer port of a channel the peer closed, as Xen's does.
                // An unbound port may wait for any id EVTCHNOP_alloc_unbound accepted.
                guard virq == 0, st == .unbound || remote < DomainID.firstReserved.rawValue,
                      remotePort < EventChannelFIFO.nrChannels else { throw .malformed }
            default: guard virq == 0, remote == 0, remotePort == 0 else { throw .malformed }
            }
            last = port
            out.ports.append(DomainImageContents.Port(port: port, channel: EventChannel(
                state: st, priority: priority, virq: virq, savedPending: saved == 1, notifyVCPU: notify, lastVCPU: lastVCPU,
                remoteDomain: DomainID(remote), lastPriority: lastPriority, remotePort: remotePort)))
        }
    }

    /// The image's record of `port`, if it has one.
    static func imagePort(_ out: DomainImageContents, _ port: UInt32) -> EventChannel? {
        var lo = 0, hi = out.ports.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if out.ports[mid].port < port { lo = mid + 1 } else { hi = mid }
        }
        return lo < out.ports.count && out.ports[lo].port == port ? out.ports[lo].channel : nil
    }

    func decodeVCPUs(_ s: inout SaveImageReader, into out: inout DomainImageContents) throws(DomainImageRefusal) {
        let virqCount = Self.virqSlots
        for _ in 0..<vcpuCount {
            var v = DomainImageContents.VCPU()
            for i in 0..<virqCount {
                guard let p = s.u32() else { throw .malformed }
                // A VIRQ slot names a port of the image bound to that VIRQ.
                if p != 0 {
                    guard let c = Self.imagePort(out, p), c.state == .virq, Int(c.virq) == i else { throw .malformed }
                }
                v.virqPorts.append(p)
            }
            guard let vector = s.u8(), let control = s.u64(), let info = s.u64(), let online = s.u32(), let initialised = s.u32(),
                  let timeArea = s.u64(), let singleshot = s.u64(), let period = s.u64(), let next = s.u64(),
                  let state = s.u32(), let entry = s.u64() else { throw .malformed }
            guard vector == 0 || vector >= 0x10, online <= 1, initialised <= 1, state <= UInt32(VCPURunstate.offline.rawValue),
                  period == 0 || (period >= Self.minimumPeriod && period <= Self.maximumPeriod) else { throw .malformed }
            if control != 0 {
                let at = GuestPhysicalAddress(control & ~1)
                guard out.usesFIFO, control & 1 == 1,
                      Int(at.offsetInPage) + EvtchnFifoControlBlockLayout.size <= Int(guestPageSize),
                      at.rawValue & 7 == 0, at.frame.rawValue >> (64 - 2 * guestPageShift) == 0 else { throw .malformed }
            }
            if info != 0 {
                let at = GuestPhysicalAddress(info & ~1)
                guard info & 1 == 1, at.rawValue & 7 == 0, Int(at.offsetInPage) + VcpuInfoLayout.size <= Int(guestPageSize),
                      memory.hostAddress(of: at.frame) != nil else { throw .malformed }
            }
            guard timeArea == 0 || timeArea & 1 == 1 else { throw .malformed }
            v.upcallVector = vector; v.controlBlock = control; v.vcpuInfoAddress = info; v.online = online
            v.initialised = initialised; v.timeArea = timeArea; v.singleshot = singleshot; v.period = period
            v.periodicNext = next; v.runstate = state; v.entryTime = entry
            for _ in 0..<4 {
                guard let t = s.u64() else { throw .malformed }
                v.runstateTimes.append(t)
            }
            guard let area = s.u64(), area == 0 || area & 1 == 1 else { throw .malformed }
            v.runstateArea = area
            for _ in 0..<16 {
                // A queue tail is a port the FIFO link code will follow: below the valid count.
                guard let tail = s.u32(), tail < out.validPorts, tail == 0 || out.usesFIFO else { throw .malformed }
                v.queueTails.append(tail)
            }
            out.vcpus.append(v)
        }
    }

    func decodeGrants(_ s: inout SaveImageReader, into out: inout DomainImageContents) throws(DomainImageRefusal) {
        guard let version = s.u32(), version >= 1, version <= grantState.maxVersion else { throw .malformed }
        let frames = out.grantFrameLocations.count
        guard (version == 2) == !out.statusFrameLocations.isEmpty else { throw .malformed }
        guard let shared = s.bytes(frames * Int(guestPageSize)),
              let status = s.bytes(out.statusFrameLocations.count * Int(guestPageSize)) else { throw .malformed }
        out.grantVersion = version
        out.grantFrameBytes = shared
        out.statusFrameBytes = status
        guard let count = s.u32() else { throw .malformed }
        let entries = UInt32(frames) * UInt32(GrantTableLimits.v1EntriesPerFrame)
        guard count <= entries else { throw .malformed }
        var last: Int64 = -1
        for _ in 0..<Int(count) {
            guard let ref = s.u32(), let readPins = s.u8(), let writePins = s.u8(), let grantee = s.u16(), let offset = s.u16(),
                  let length = s.u16(), let sub = s.u8(), let transDomain = s.u16(), let transRef = s.u32(), let frame = s.u64() else { throw .malformed }
            guard Int64(ref) > last, ref < entries, readPins != 0 || writePins != 0, grantee < DomainID.firstReserved.rawValue,
                  sub <= 1, Int(offset) + Int(length) <= Int(guestPageSize), frame >> (64 - guestPageShift) == 0 else { throw .malformed }
            last = Int64(ref)
            var a = ActiveGrant()
            a.readPins = readPins; a.writePins = writePins; a.grantee = grantee; a.offset = offset; a.length = length
            a.subPage = sub == 1; a.transDomain = transDomain; a.transRef = transRef; a.frame = frame
            out.active.append(DomainImageContents.Active(ref: ref, grant: a))
        }
    }

    func decodeMaptrack(_ s: inout SaveImageReader, into out: inout DomainImageContents) throws(DomainImageRefusal) {
        let perPage = UInt32(GrantTableLimits.maptrackPerFrame)
        guard let pageCount = s.u32(), Int(pageCount) <= maxMaptrackFrames, let freeCount = s.u32() else { throw .malformed }
        let handles = pageCount * perPage
        // Every handle of the pages is free or in use, exactly once.
        var seen = [Bool](repeating: false, count: Int(handles))
        guard freeCount <= handles else { throw .malformed }
        for _ in 0..<Int(freeCount) {
            guard let h = s.u32(), h < handles, !seen[Int(h)] else { throw .malformed }
            seen[Int(h)] = true
            out.maptrackFree.append(h)
        }
        out.maptrackPages = Int(pageCount)
        guard let count = s.u32(), UInt64(count) + UInt64(freeCount) == UInt64(handles) else { throw .malformed }
        var last: Int64 = -1
        for _ in 0..<Int(count) {
            guard let handle = s.u32(), let granter = s.u16(), let owner = s.u16(), let flags = s.u8(), let ref = s.u32(),
                  let hostFrame = s.u64(), let granterFrame = s.u64() else { throw .malformed }
            guard Int64(handle) > last, handle < handles, !seen[Int(handle)], flags & 1 == 1, flags <= 3,
                  granter < DomainID.firstReserved.rawValue, owner == granter,
                  hostFrame >> (64 - guestPageShift) == 0, granterFrame >> (64 - guestPageShift) == 0 else { throw .malformed }
            last = Int64(handle)
            out.maptrack.append(DomainImageContents.Mapping(handle: handle, mapping: GrantMapping(
                granter: granter, owner: owner, flags: flags, ref: ref, next: GrantMapping.none, hostFrame: hostFrame, granterFrame: granterFrame)))
        }
    }
}

extension XenDomain {
    /// VIRQ slots per vCPU (`VCPUEventState.virqPorts`, Xen's NR_VIRQS).
    static var virqSlots: Int { 24 }
}
