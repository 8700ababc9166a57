import CGuestAtomics
import GuestABI
import XenABI

/// Saving a domain's image (Specs/translation/save-image.tbl, Docs/SaveRestore.md): the Xen
/// state the layer keeps outside guest memory, the same bytes on either side for the same
/// state. The embedder stops the domain's vCPUs first (no hypercall of the domain runs during
/// a save); other domains may go on, and an event a peer sends meanwhile lands in guest memory,
/// which the embedder copies after the save. A translated side drains its SynIC into this state
/// before it saves (`XenViridianDomain.saveImage`), so no event is left in Viridian's hands.
///
/// Not saved: which vCPUs are parked in SCHEDOP_block or poll (a restored vCPU resumes as if
/// woken, which both calls allow), the layer's copy windows (empty between hypercalls), and the
/// side's own objects (event-flag slots, Viridian ports and connections, timers), which the
/// restoring side makes again from this state.
extension XenDomain {
    /// The domain's image, with Xen system time from `fabric`'s clock. Holds the physmap,
    /// event and grant locks while it reads, so the image is one consistent state.
    public func saveImage<F: EventFabric>(fabric: F) -> [UInt8] where F.Memory == Memory {
        let now = systemTime(fabric: fabric)
        var w = SaveImageWriter()
        w.u32(DomainImageFormat.magic)
        w.u32(DomainImageFormat.version)
        w.u64(0)  // the length, patched at the end
        withPhysmapLock { withEventLock { withGrantLock {
            section(&w, .domain) { w in
                w.u16(id.rawValue)
                w.u32(UInt32(vcpuCount))
                w.u32(maxPort)
                w.u32(maxGrantFrames)
                w.u32(grantState.maxVersion)
                w.u32(UInt32(maxMaptrackFrames))
                w.u64(sharedInfoFrame.rawValue)
            }
            section(&w, .time) { w in w.optional(now) }
            section(&w, .words) { saveWords(&$0) }
            section(&w, .physmap) { savePhysmap(&$0) }
            section(&w, .ports) { savePorts(&$0) }
            section(&w, .vcpus) { saveVCPUs(&$0) }
            section(&w, .grants) { saveGrants(&$0) }
            section(&w, .maptrack) { saveMaptrack(&$0) }
        } } }
        w.patch64(UInt64(w.bytes.count + Int(DomainImageFormat.trailerSize)), at: 8)
        w.u64(SaveImageChecksum.fnv1a(w.bytes, 0..<w.bytes.count))
        return w.bytes
    }

    /// A section: its tag, its length (patched once `body` has written it), its fields.
    func section(_ w: inout SaveImageWriter, _ tag: DomainImageSection, _ body: (inout SaveImageWriter) -> Void) {
        w.u32(tag.rawValue)
        let lengthAt = w.bytes.count
        w.u32(0)
        body(&w)
        w.patch32(UInt32(w.bytes.count - lengthAt - 4), at: lengthAt)
    }

    func saveWords(_ w: inout SaveImageWriter) {
        w.u64(xv_load_acquire_u64(words + DomainWords.callbackIrq))
        w.u64(xv_load_acquire_u64(words + DomainWords.vmAssist))
        w.u32(xv_load_acquire_u32(words + DomainWords.shutdownCode))
        w.u32(xv_load_acquire_u32(words + DomainWords.shuttingDown))
        for i in 0..<Self.watchdogCount { w.u64(xv_load_acquire_u64(words + DomainWords.watchdogDeadlines + 8 * i)) }
        w.u32(xv_load_acquire_u32(words + DomainWords.watchdogsInUse))
        xv_spin_lock(words + DomainWords.consoleLock)
        let fill = min(Int(xv_load_acquire_u32(words + DomainWords.consoleFill)), Int(ConsoleIOLimits.lineBuffer))
        w.u32(UInt32(fill))
        w.raw(words + DomainWords.consoleBuffer, count: fill)
        xv_spin_unlock(words + DomainWords.consoleLock)
        w.u32(UInt32(hvmParams.count))
        for i in 0..<hvmParams.count { w.u64(hvmParams[i]) }
    }

    func savePhysmap(_ w: inout SaveImageWriter) {
        w.u64(physmapState.pages)
        w.u64(physmapState.maxPages)
        w.u64(physmapState.maximumGpfn)
        w.u64(physmapState.hostPages)
        w.u64(physmapState.sharedInfoLocation)
        w.u32(physmapState.grantFrames)
        for f in 0..<Int(physmapState.grantFrames) { w.u64(grantFrameLocations[f]) }
        w.u32(grantState.statusFrames)
        for f in 0..<Int(grantState.statusFrames) { w.u64(statusFrameLocations[f]) }
    }

    func savePorts(_ w: inout SaveImageWriter) {
        let valid = validPorts
        w.u32(valid)
        w.u8(usesFIFO ? 1 : 0)
        let pages = eventArrayPages
        w.u32(UInt32(pages))
        for p in 0..<pages { w.u64(xv_load_acquire_u64(eventArray + p)) }
        let countAt = w.bytes.count
        w.u32(0)
        var count: UInt32 = 0
        for p in 1..<valid {
            let c = channel(p)
            guard c.state != .free else { continue }
            count += 1
            w.u32(p)
            w.u8(c.state.rawValue)
            w.u8(c.priority)
            w.u8(c.virq)
            w.u8(c.savedPending ? 1 : 0)
            w.u16(c.notifyVCPU)
            w.u16(c.lastVCPU)
            w.u16(c.remoteDomain.rawValue)
            w.u8(c.lastPriority)
            w.u32(c.remotePort)
        }
        w.patch32(count, at: countAt)
    }

    func saveVCPUs(_ w: inout SaveImageWriter) {
        for v in 0..<vcpuCount {
            let vw = vcpuWords + v * VCPUWords.stride
            for i in 0..<vcpus[v].virqPorts.count { w.u32(vcpus[v].virqPorts[i]) }
            w.u8(xv_load_acquire_u8(vw + VCPUWords.upcallVector))
            w.u64(xv_load_acquire_u64(vw + VCPUWords.controlBlock))
            w.u64(xv_load_acquire_u64(vw + VCPUWords.vcpuInfoAddress))
            w.u32(xv_load_acquire_u32(vw + VCPUWords.online))
            w.u32(xv_load_acquire_u32(vw + VCPUWords.initialised))
            w.u64(xv_load_acquire_u64(vw + VCPUWords.timeArea))
            let lock = vw + VCPUWords.timeLock
            xv_spin_lock(lock)
            w.u64(xv_load_acquire_u64(vw + VCPUWords.singleshotDeadline))
            w.u64(xv_load_acquire_u64(vw + VCPUWords.periodicPeriod))
            w.u64(xv_load_acquire_u64(vw + VCPUWords.periodicNext))
            let r = runstateBlock(v)
            w.u32(UInt32(bitPattern: r.load(as: Int32.self)))
            w.u64(r.load(fromByteOffset: VcpuRunstateInfoLayout.stateEntryTime.offset, as: UInt64.self))
            for s in 0..<4 { w.u64((r + VcpuRunstateInfoLayout.time.offset(ofElement: s)).load(as: UInt64.self)) }
            xv_spin_unlock(lock)
            w.u64(xv_load_acquire_u64(vw + VCPUWords.runstateArea))
            for q in 0..<16 { w.u32(queueTail(v, q).pointee) }
        }
    }

    func saveGrants(_ w: inout SaveImageWriter) {
        w.u32(grantState.version)
        for f in 0..<Int(physmapState.grantFrames) { w.raw(grantFramePages[f]!, count: Int(guestPageSize)) }
        for f in 0..<Int(grantState.statusFrames) { w.raw(statusFramePages[f]!, count: Int(guestPageSize)) }
        let countAt = w.bytes.count
        w.u32(0)
        var count: UInt32 = 0
        let perFrame = Int(GrantTableLimits.v1EntriesPerFrame)
        for f in 0..<Int(physmapState.grantFrames) {
            guard let active = activeGrantPages[f] else { continue }
            for k in 0..<perFrame where active[k].pinned {
                let a = active[k]
                count += 1
                w.u32(UInt32(f * perFrame + k))
                w.u8(a.readPins)
                w.u8(a.writePins)
                w.u16(a.grantee)
                w.u16(a.offset)
                w.u16(a.length)
                w.u8(a.subPage ? 1 : 0)
                w.u16(a.transDomain)
                w.u32(a.transRef)
                w.u64(a.frame)
            }
        }
        w.patch32(count, at: countAt)
    }

    /// The maptrack: its page count, the free handles in the order the next maps take them (so
    /// a restored domain hands out the same handles), then the handles in use.
    func saveMaptrack(_ w: inout SaveImageWriter) {
        w.u32(UInt32(maptrackPageCount))
        let freeAt = w.bytes.count
        w.u32(0)
        var free: UInt32 = 0
        var h = maptrackFree
        while h != GrantMapping.none, let m = mapping(h) {
            w.u32(h)
            free += 1
            h = m.pointee.next
        }
        w.patch32(free, at: freeAt)
        let countAt = w.bytes.count
        w.u32(0)
        var count: UInt32 = 0
        let perPage = Int(GrantTableLimits.maptrackPerFrame)
        for p in 0..<maptrackPageCount {
            guard let page = maptrackPages[p] else { continue }
            for k in 0..<perPage where page[k].inUse {
                let m = page[k]
                count += 1
                w.u32(UInt32(p * perPage + k))
                w.u16(m.granter)
                w.u16(m.owner)
                w.u8(m.flags)
                w.u32(m.ref)
                w.u64(m.hostFrame)
                w.u64(m.granterFrame)
            }
        }
        w.patch32(count, at: countAt)
    }
}
