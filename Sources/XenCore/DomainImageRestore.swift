import CGuestAtomics
import GuestABI
import XenABI

/// Restoring a domain's image (Specs/translation/save-image.tbl, Docs/SaveRestore.md) into a
/// domain of the same id and shape that no hypercall has changed yet, on either side. The
/// embedder creates the domain, copies the guest's memory into it, restores the image, then
/// runs the vCPUs. The image is read and checked whole first: a refused image changes nothing.
///
/// The side's own objects are made again through the fabric, as the hypercalls that made them
/// first would: an unbound port is offered again; an interdomain port is bound again, as
/// EVTCHNOP_bind_interdomain would, when its peer exists here and its port waits for this
/// domain; otherwise it waits, unbound, for that peer, whose own restore then binds it (so
/// domains restore in any order). A peer that never arrives, because it stayed behind on the
/// source, leaves the port unbound: what Xen shows the survivor of a channel whose other end
/// closed. Timers are armed again, upcall vectors reprogrammed, grant mappings shown again
/// (a mapping of a granter absent here is dropped and its frame left a hole), the layer pages
/// placed where the guest saw them, and every vCPU's pvclock re-anchored. Pending events stay
/// pending (their bits are in guest memory); an upcall already raised is in the embedder's
/// interrupt controller state, which it moves itself.
///
/// Time: Xen system time goes on from the image's value, whatever the destination clock's
/// frequency and origin: the domain's clock offset (`clock`) is set so that now reads the saved
/// time rounded up to the next 100 ns, never earlier than any time the guest read before.
extension XenDomain {
    /// Whether this domain's (the granter's) active entry of `ref` is pinned by `grantee` on
    /// `frame`, with a write pin when `writable` (`EventFabric.grantHeld`).
    public func holdsPin(ref: UInt32, grantee: DomainID, frame: UInt64, writable: Bool) -> Bool {
        withGrantLock {
            let perFrame = Int(GrantTableLimits.v1EntriesPerFrame)
            guard ref < physmapState.grantFrames * UInt32(perFrame), let page = activeGrantPages[Int(ref) / perFrame] else { return false }
            let a = page[Int(ref) % perFrame]
            return a.pinned && a.grantee == grantee.rawValue && a.frame == frame && (!writable || a.writePins != 0)
        }
    }

    /// Whether the domain is as creation left it, as far as a restore needs: no port bound, the
    /// 2-level ABI, no grant mapping, the initial v1 grant table, no vcpu_info registered.
    public var isFresh: Bool {
        withPhysmapLock { withEventLock { withGrantLock {
            guard !usesFIFO, maptrackPageCount == 0, restoringMappings.isEmpty, grantState.version == 1,
                  physmapState.grantFrames == UInt32(GrantTableLimits.initialFrames),
                  validPorts == min(Self.portsPerBucket, maxPort + 1) else { return false }
            for p in 1..<validPorts where allocated[Int(p)] { return false }
            for v in 0..<vcpuCount where xv_load_acquire_u64(vcpuWords + v * VCPUWords.stride + VCPUWords.vcpuInfoAddress) != 0 { return false }
            return true
        } } }
    }

    /// Restores `bytes` (from `saveImage`, on either side) into this fresh domain through
    /// `fabric`. `bindablePortCapacity` is how many unbound and interdomain ports the side can
    /// carry. Throws, changing nothing, when the image is refused.
    public func restoreImage<F: EventFabric>(_ bytes: [UInt8], fabric: F, bindablePortCapacity: Int = Int.max) throws(DomainImageRefusal) where F.Memory == Memory {
        let image = try decodeImage(bytes, ownsFrame: { fabric.ownsFrame(self, $0) })
        guard image.bindablePorts <= bindablePortCapacity else { throw .capacity }
        guard isFresh else { throw .notFresh }
        setClock(continuingFrom: image.systemTime, fabric: fabric)
        withPhysmapLock {
            withEventLock { restoreWords(image) }
            restorePhysmapAndGrants(image)
        }
        withEventLock {
            restorePorts(image, fabric: fabric)
            restoreVCPUEvents(image)
        }
        restoreTimersAndTime(image, fabric: fabric)
        placeLayerPages(image)
        withGrantLock { restoringMappings = image.maptrack.map { $0.handle } }
        // An upcall already raised is the embedder's interrupt state (an IRR bit of the vCPU's
        // APIC), which it moves with the vCPU's registers: it is not raised a second time.
        for v in 0..<vcpuCount where upcallVector(v) != nil { _ = fabric.upcallVectorChanged(self, vcpu: v) }
    }

    /// The clock offset that makes now read `saved` (rounded up to 100 ns); 0 without a saved
    /// time or a clock here.
    func setClock<F: EventFabric>(continuingFrom saved: UInt64?, fabric: F) where F.Memory == Memory {
        xv_store_release_u64(words + DomainWords.clockOffset, 0)
        guard let saved, let now = systemTime(fabric: fabric) else { return }
        let delta = Int64(bitPattern: saved &- now)
        // Ceiling division by 100 (toward +infinity), so the restored clock never reads earlier.
        let ticks = delta >= 0 ? (delta + 99) / 100 : -((-delta) / 100)
        xv_store_release_u64(words + DomainWords.clockOffset, UInt64(bitPattern: ticks))
    }

    func restoreWords(_ image: DomainImageContents) {
        xv_store_release_u64(words + DomainWords.callbackIrq, image.callbackIrq)
        xv_store_release_u64(words + DomainWords.vmAssist, image.vmAssist)
        xv_store_release_u32(words + DomainWords.shutdownCode, image.shutdownCode)
        xv_store_release_u32(words + DomainWords.shuttingDown, image.shuttingDown)
        for i in 0..<Self.watchdogCount { xv_store_release_u64(words + DomainWords.watchdogDeadlines + 8 * i, image.watchdogDeadlines[i]) }
        xv_store_release_u32(words + DomainWords.watchdogsInUse, image.watchdogsInUse)
        xv_spin_lock(words + DomainWords.consoleLock)
        for (i, b) in image.console.enumerated() { (words + DomainWords.consoleBuffer + i).storeBytes(of: b, as: UInt8.self) }
        xv_store_release_u32(words + DomainWords.consoleFill, UInt32(image.console.count))
        xv_spin_unlock(words + DomainWords.consoleLock)
        for i in 0..<hvmParams.count { hvmParams[i] = image.hvmParams[i] }
    }

    /// memory_op's figures, the grant table's frames, bytes and active entries, and the maptrack.
    /// Under the physmap lock.
    func restorePhysmapAndGrants(_ image: DomainImageContents) {
        physmapState.pages = image.pages
        physmapState.maxPages = image.maxPages
        physmapState.maximumGpfn = image.maximumGpfn
        physmapState.hostPages = image.hostPages
        physmapState.sharedInfoLocation = image.sharedInfoLocation
        withGrantLock { grantState.version = image.grantVersion }
        growGrantTable(to: UInt32(image.grantFrameLocations.count))
        withGrantLock {
            if grantState.version == 2 { populateStatusFrames() }
            let page = Int(guestPageSize)
            for f in 0..<image.grantFrameLocations.count {
                grantFrameLocations[f] = image.grantFrameLocations[f]
                image.grantFrameBytes.withUnsafeBytes { src in
                    grantFramePages[f]!.copyMemory(from: src.baseAddress! + f * page, byteCount: page)
                }
            }
            for f in 0..<image.statusFrameLocations.count {
                statusFrameLocations[f] = image.statusFrameLocations[f]
                image.statusFrameBytes.withUnsafeBytes { src in
                    statusFramePages[f]!.copyMemory(from: src.baseAddress! + f * page, byteCount: page)
                }
            }
            let perFrame = Int(GrantTableLimits.v1EntriesPerFrame)
            for a in image.active { activeGrantPages[Int(a.ref) / perFrame]![Int(a.ref) % perFrame] = a.grant }
            restoreMaptrackLocked(image)
        }
    }

    /// The maptrack's pages, its free list in the saved order, and the mappings in use with the
    /// frames they occupy. Under the grant lock.
    func restoreMaptrackLocked(_ image: DomainImageContents) {
        // The pages' own links are replaced below by the saved free list.
        while maptrackPageCount < image.maptrackPages { _ = appendMaptrackPage() }
        for m in image.maptrack {
            mapping(m.handle)!.pointee = m.mapping
            insertMappedFrame(m.mapping.hostFrame)
        }
        maptrackFree = GrantMapping.none
        for h in image.maptrackFree.reversed() {
            let m = mapping(h)!
            m.pointee = GrantMapping()
            m.pointee.next = maptrackFree
            maptrackFree = h
        }
    }

    /// The port table, with the side's objects made again (see the type's comment). Under the
    /// event lock, as every binding change.
    func restorePorts<F: EventFabric>(_ image: DomainImageContents, fabric: F) where F.Memory == Memory {
        xv_store_release_u32(words + DomainWords.validPorts, image.validPorts)
        for (i, frame) in image.eventArray.enumerated() { xv_store_release_u64(eventArray + i, frame) }
        xv_store_release_u32(words + DomainWords.eventArrayPages, UInt32(image.eventArray.count))
        xv_store_release_u32(words + DomainWords.usesFIFO, image.usesFIFO ? 1 : 0)
        for entry in image.ports {
            let p = entry.port, saved = entry.channel
            allocated[Int(p)] = true
            if saved.state == .interdomain, fabric.domainExists(saved.remoteDomain) {
                // Bound again when the peer's port waits for this one (it restored first).
                writeRecord(p, saved, state: .free)
                if fabric.connect(self, localPort: p, to: saved.remoteDomain, remotePort: saved.remotePort) == .ok {
                    writeRecord(p, saved, state: .interdomain)
                    if saved.notifyVCPU != 0 { fabric.notifyVCPUChanged(self, port: p) }
                    continue
                }
            }
            switch saved.state {
            case .interdomain, .unbound:
                writeRecord(p, saved, state: .unbound)
                _ = fabric.offer(self, port: p, to: saved.remoteDomain)
            default:
                writeRecord(p, saved, state: saved.state)
            }
        }
        freeSearchStart = 1
    }

    /// Writes port `p`'s record as saved but in `state` (an interdomain port waiting for its
    /// peer is unbound, keeping the peer's domain), and publishes it.
    func writeRecord(_ p: UInt32, _ saved: EventChannel, state: EventChannelState) {
        lockChannel(p)
        var c = saved
        c.state = state
        if state == .free { c.remoteDomain = DomainID(0); c.remotePort = 0 }
        channelPointer(p).pointee = c
        publishBinding(p)
        unlockChannel(p)
    }

    /// VIRQ bindings and the per-vCPU words but time. Under the event lock.
    func restoreVCPUEvents(_ image: DomainImageContents) {
        for v in 0..<vcpuCount {
            let s = image.vcpus[v]
            for i in 0..<s.virqPorts.count { vcpus[v].virqPorts[i] = s.virqPorts[i] }
            let vw = vcpuWords + v * VCPUWords.stride
            xv_store_release_u8(vw + VCPUWords.upcallVector, s.upcallVector)
            xv_store_release_u64(vw + VCPUWords.controlBlock, s.controlBlock)
            for q in 0..<16 { queueTail(v, q).pointee = s.queueTails[q] }
            xv_store_release_u32(vw + VCPUWords.online, s.online)
            xv_store_release_u32(vw + VCPUWords.initialised, s.initialised)
            xv_store_release_u64(vw + VCPUWords.timeArea, s.timeArea)
            xv_store_release_u64(vw + VCPUWords.runstateArea, s.runstateArea)
            if s.vcpuInfoAddress != 0 {
                let at = GuestPhysicalAddress(s.vcpuInfoAddress & ~1)
                let info = memory.hostAddress(of: at.frame)! + Int(at.offsetInPage)
                xv_store_release_u64(vw + VCPUWords.vcpuInfoAddress, s.vcpuInfoAddress)
                xv_store_release_u64(vw + VCPUWords.vcpuInfoHost, UInt64(UInt(bitPattern: info)))
            }
        }
    }

    /// Runstates and timers (the side's timers armed again), then every vCPU's pvclock.
    func restoreTimersAndTime<F: EventFabric>(_ image: DomainImageContents, fabric: F) where F.Memory == Memory {
        for v in 0..<vcpuCount {
            let s = image.vcpus[v]
            withTimers(v, fabric: fabric) {
                let vw = vcpuWords + v * VCPUWords.stride
                xv_store_release_u64(vw + VCPUWords.singleshotDeadline, s.singleshot)
                xv_store_release_u64(vw + VCPUWords.periodicPeriod, s.period)
                xv_store_release_u64(vw + VCPUWords.periodicNext, s.periodicNext)
                let r = runstateBlock(v)
                r.storeBytes(of: Int32(bitPattern: s.runstate), as: Int32.self)
                r.storeBytes(of: s.entryTime, toByteOffset: VcpuRunstateInfoLayout.stateEntryTime.offset, as: UInt64.self)
                for k in 0..<4 { (r + VcpuRunstateInfoLayout.time.offset(ofElement: k)).storeBytes(of: s.runstateTimes[k], as: UInt64.self) }
            }
            refreshTime(vcpu: v, fabric: fabric)
        }
    }

    /// The layer pages where the image says the guest saw them, through the embedder's physmap
    /// (shared_info where the guest moved it; grant and status frames where it placed them).
    func placeLayerPages(_ image: DomainImageContents) {
        withPhysmapLock {
            guard let physmap else { return }
            if image.sharedInfoLocation != sharedInfoFrame.rawValue, image.sharedInfoLocation != PhysmapState.noFrame {
                _ = physmap.map(sharedInfoPage, at: GuestFrameNumber(image.sharedInfoLocation), writable: true)
            }
            for (f, at) in image.grantFrameLocations.enumerated() where at != PhysmapState.noFrame {
                _ = physmap.map(grantFramePages[f]!, at: GuestFrameNumber(at), writable: true)
            }
            for (f, at) in image.statusFrameLocations.enumerated() where at != PhysmapState.noFrame {
                _ = physmap.map(statusFramePages[f]!, at: GuestFrameNumber(at), writable: true)
            }
        }
    }

    /// The second step of a restore, once every domain that moves has been restored: every
    /// saved grant mapping's page is shown again through the side, when its granter's table
    /// holds the pin (the granter restored its own image); a mapping whose granter is not here,
    /// holds no such pin (a granter that stayed behind, or a forged image) or whose page the
    /// side cannot show is dropped, its handle freed, its frame a hole. Two steps, because a
    /// grantee may be restored before its granter. Returns the mappings shown.
    @discardableResult
    public func finishRestore<F: EventFabric>(fabric: F) -> Int where F.Memory == Memory {
        let handles = withGrantLock { () -> [UInt32] in
            let h = restoringMappings
            restoringMappings = []
            return h
        }
        var shown = 0
        for handle in handles {
            guard let g = withGrantLock({ mapping(handle)?.pointee }), g.inUse else { continue }
            let granter = DomainID(g.granter)
            if fabric.domainExists(granter)
                && fabric.grantHeld(self, granter: granter, ref: g.ref, granterFrame: g.granterFrame, writable: !g.readOnly)
                && fabric.mapGrantedFrame(self, at: GuestFrameNumber(g.hostFrame), granter: granter, granterFrame: g.granterFrame, writable: !g.readOnly) {
                shown += 1
                continue
            }
            withGrantLock {
                removeMappedFrame(g.hostFrame)
                freeHandle(handle)
            }
        }
        return shown
    }
}
