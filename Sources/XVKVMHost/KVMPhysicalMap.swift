import CKVM
import Foundation
import Glibc

/// A domain's guest-physical map on KVM, kept as the layer's page table says: each guest frame
/// is the VM's own RAM, a hole, or a page shown from elsewhere (shared_info, grant frames, a
/// page granted by another domain). KVM maps guest memory in slots of contiguous host memory
/// (KVM_SET_USER_MEMORY_REGION), so RAM is a set of runs, each a slot, and every frame shown
/// from elsewhere is a slot of one page (KVM_MEM_READONLY when the guest may only read it).
/// Changing a frame splits the run around it.
///
/// The page table is the one the library reads (`xv_domain_config.page_table`): host
/// addresses, 0 for a hole, written with release stores under this map's lock. Its entries
/// past the guest's frames hold the translated side's layer frames, which no slot shows.
///
/// While a run is being split, a vCPU of the domain may touch a frame that has no slot for a
/// moment; KVM reports that as an MMIO exit, and `emulate` completes the access from the page
/// table under the same lock, so the guest never sees the gap.
public final class KVMPhysicalMap {
    /// The VM whose memory slots this map manages.
    public let vm: KVMVirtualMachine
    /// Guest-visible frames (the VM's RAM, `vm.size` / 4096).
    public let frames: Int
    /// The library's page table: `frames` entries, then `layerFrames` more.
    public let pageTable: UnsafeMutablePointer<UInt64>
    /// The layer's own frames after the guest's in the page table (translated side; 0 native).
    public let layerFrames: Int
    /// The layer's own frames (translated side), outside every slot.
    let layerPages: UnsafeMutableRawPointer?

    enum Frame: Equatable {
        case ram
        case hole
        case page(UInt, writable: Bool)
    }

    private var state: [Frame]
    /// RAM runs [start, end) and their slots, by start.
    private var runs: [Int: (end: Int, slot: UInt32)] = [:]
    /// The one-page slot of each frame that has one (shown pages and repopulated RAM).
    private var pageSlots: [Int: UInt32] = [:]
    private var freeSlots: [UInt32] = []
    private var nextSlot: UInt32 = 1
    private let lock = NSLock()
    /// Frames whose slot changed, and accesses `emulate` completed, for the run's report.
    public private(set) var slotChanges = 0
    /// Guest writes dropped by `emulate`: to a read-only page or a hole.
    public private(set) var refusedWrites = 0

    /// Takes over the VM's slot 0 (all of its RAM) and builds the page table for it, with
    /// `layerFrames` pages of the layer's own after the guest's.
    public init(vm: KVMVirtualMachine, layerFrames: Int) throws(KVMError) {
        self.vm = vm
        frames = vm.size / 4096
        self.layerFrames = layerFrames
        pageTable = .allocate(capacity: frames + layerFrames)
        for f in 0..<frames { pageTable[f] = UInt64(UInt(bitPattern: vm.memory + f * 4096)) }
        if layerFrames > 0 {
            guard let p = mmap(nil, layerFrames * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
                pageTable.deallocate()
                throw KVMError("mmap of \(layerFrames) layer frames")
            }
            layerPages = p
            for f in 0..<layerFrames { pageTable[frames + f] = UInt64(UInt(bitPattern: p + f * 4096)) }
        } else {
            layerPages = nil
        }
        state = Array(repeating: .ram, count: frames)
        runs[0] = (frames, 0)
    }

    deinit {
        if let layerPages { munmap(layerPages, layerFrames * 4096) }
        pageTable.deallocate()
    }

    /// Shows host page `page` at `gfn` (the physmap_map callback); false outside the guest's frames
    /// or when KVM refuses the slot.
    public func show(_ page: UnsafeMutableRawPointer, at gfn: UInt64, writable: Bool) -> Bool {
        guard gfn < UInt64(frames), UInt(bitPattern: page) % 4096 == 0 else { return false }
        return lock.withLock {
            let f = Int(gfn)
            detach(f)
            guard addSlot(f, host: page, readOnly: !writable) else { reattach(f); return false }
            state[f] = .page(UInt(bitPattern: page), writable: writable)
            xv_kvm_store_release_u64(pageTable + f, UInt64(UInt(bitPattern: page)))
            return true
        }
    }

    /// Makes `gfn` a hole (physmap_unmap); with `release` its RAM page is given back (zeroed).
    public func hole(_ gfn: UInt64, release: Bool) {
        guard gfn < UInt64(frames) else { return }
        lock.withLock {
            let f = Int(gfn)
            let wasRAM = state[f] == .ram
            detach(f)
            state[f] = .hole
            xv_kvm_store_release_u64(pageTable + f, 0)
            if release, wasRAM { madvise(vm.memory + f * 4096, 4096, MADV_DONTNEED) }
        }
    }

    /// Gives `gfn` its own RAM page again, zeroed (physmap_populate); false if KVM refuses.
    public func populate(_ gfn: UInt64) -> Bool {
        guard gfn < UInt64(frames) else { return false }
        return lock.withLock {
            let f = Int(gfn)
            detach(f)
            let ram = vm.memory + f * 4096
            ram.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
            guard addSlot(f, host: ram, readOnly: false) else { reattach(f); return false }
            state[f] = .ram
            xv_kvm_store_release_u64(pageTable + f, UInt64(UInt(bitPattern: ram)))
            return true
        }
    }

    /// Completes a guest access KVM could not (an MMIO exit): from the page the table shows,
    /// a write to a read-only page dropped, a hole read as all ones. Returns false for an
    /// address that is not guest RAM at all (the caller's to report).
    public func emulate(address: UInt64, length: Int, isWrite: Bool, data: UnsafeMutablePointer<UInt8>) -> Bool {
        let gfn = address >> 12
        guard gfn < UInt64(frames), length > 0, length <= 8, (address & 0xFFF) + UInt64(length) <= 4096 else { return false }
        lock.withLock {
            let f = Int(gfn)
            let host = UnsafeMutableRawPointer(bitPattern: UInt(xv_kvm_load_acquire_u64(pageTable + f)))
            let offset = Int(address & 0xFFF)
            switch (host, state[f], isWrite) {
            case (nil, _, false): data.initialize(repeating: 0xFF, count: length)
            case (nil, _, true): refusedWrites += 1
            case (let p?, .page(_, writable: false), true): _ = p; refusedWrites += 1
            case (let p?, _, true): (p + offset).copyMemory(from: data, byteCount: length)
            case (let p?, _, false): data.update(from: (p + offset).assumingMemoryBound(to: UInt8.self), count: length)
            }
        }
        return true
    }

    /// Removes whatever slot shows frame `f` (lock held): splits its RAM run, or deletes its page slot.
    private func detach(_ f: Int) {
        if let slot = pageSlots.removeValue(forKey: f) { deleteSlot(slot); return }
        guard state[f] == .ram, let start = runs.keys.first(where: { $0 <= f && f < runs[$0]!.end }) else { return }
        let run = runs.removeValue(forKey: start)!
        deleteSlot(run.slot)
        if start < f { addRun(start, f) }
        if f + 1 < run.end { addRun(f + 1, run.end) }
    }

    /// Puts frame `f`'s previous mapping back after a refused change (lock held).
    private func reattach(_ f: Int) {
        switch state[f] {
        case .ram: _ = addSlot(f, host: vm.memory + f * 4096, readOnly: false)
        case .hole: xv_kvm_store_release_u64(pageTable + f, 0)
        case .page(let p, let writable): _ = addSlot(f, host: UnsafeMutableRawPointer(bitPattern: p)!, readOnly: !writable)
        }
    }

    private func addRun(_ start: Int, _ end: Int) {
        let slot = takeSlot()
        if setRegion(slot, gfn: start, count: end - start, host: vm.memory + start * 4096, readOnly: false) {
            runs[start] = (end, slot)
        } else {
            freeSlots.append(slot)
            for g in start..<end { _ = addSlot(g, host: vm.memory + g * 4096, readOnly: false) }
        }
    }

    private func addSlot(_ f: Int, host: UnsafeMutableRawPointer, readOnly: Bool) -> Bool {
        let slot = takeSlot()
        guard setRegion(slot, gfn: f, count: 1, host: host, readOnly: readOnly) else { freeSlots.append(slot); return false }
        pageSlots[f] = slot
        return true
    }

    private func takeSlot() -> UInt32 {
        if let s = freeSlots.popLast() { return s }
        nextSlot += 1
        return nextSlot - 1
    }

    private func deleteSlot(_ slot: UInt32) {
        var region = kvm_userspace_memory_region(slot: slot, flags: 0, guest_phys_addr: 0, memory_size: 0, userspace_addr: 0)
        _ = ioctl(vm.fd, xv_kvm_set_user_memory_region, &region)
        freeSlots.append(slot)
        slotChanges += 1
    }

    private func setRegion(_ slot: UInt32, gfn: Int, count: Int, host: UnsafeMutableRawPointer, readOnly: Bool) -> Bool {
        var region = kvm_userspace_memory_region(slot: slot, flags: readOnly ? UInt32(KVM_MEM_READONLY) : 0, guest_phys_addr: UInt64(gfn) * 4096,
                                                 memory_size: UInt64(count) * 4096, userspace_addr: UInt64(UInt(bitPattern: host)))
        slotChanges += 1
        return ioctl(vm.fd, xv_kvm_set_user_memory_region, &region) == 0
    }
}
