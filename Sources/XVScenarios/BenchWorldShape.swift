import GuestABI
import XenABI
import XenCore

/// The worlds a `BenchPair` is built on: how many domains and vCPUs, and which event-channel
/// ABI with how many ports in use. The standard shape (two domains of two vCPUs, 2-level) is
/// what `xv bench`'s operations use; `xv bench`'s scaling runs vary one dimension at a time.
/// The operations always run between domains 1 and 2; the other domains exist (each a
/// partition on the translated side, with the layer's control channels to every other).
public struct BenchWorldShape: Sendable, Hashable {
    /// Domains in each world (ids 1 ... `domains`), two at least.
    public var domains: Int
    /// vCPUs of every domain, 1 ... `UpcallRecorder.maxVCPUs`.
    public var vcpus: Int
    /// FIFO event channels with ports 1 ... `fifoPorts` in use in domains 1 and 2: a control
    /// block for every vCPU, the event-array pages the ports need, every port but the last
    /// bound (IPI ports, which need no SynIC flag slot on the translated side, so any count up
    /// to 2^17 - 1 fits), and the operation's own channel on the highest port. Nil: 2-level,
    /// ports up to 1023, the operation's channel on the lowest free port.
    public var fifoPorts: Int?

    /// A shape; traps on fewer than two domains, a vCPU count outside 1 ... 32, or a FIFO port
    /// count outside 2 ... 2^17 - 1.
    public init(domains: Int = 2, vcpus: Int = 2, fifoPorts: Int? = nil) {
        precondition(domains >= 2 && vcpus >= 1 && vcpus <= UpcallRecorder.maxVCPUs, "two domains at least, vCPUs within the recorder's")
        precondition(fifoPorts.map { $0 >= 2 && $0 < Int(EventChannelFIFO.nrChannels) } ?? true, "FIFO ports: 2 ... 2^17 - 1")
        self.domains = domains
        self.vcpus = vcpus
        self.fifoPorts = fifoPorts
    }

    /// Two domains of two vCPUs, 2-level event channels: the worlds of `xv bench`'s operations.
    public static let standard = BenchWorldShape()

    var maxPort: UInt32 { fifoPorts.map { UInt32($0) } ?? 1023 }
    /// Event-array pages (1,024 words each) for ports 0 ... maxPort.
    var arrayPages: Int { Int(maxPort) / 1024 + 1 }
    /// FIFO: every vCPU's control block in the first free frame, 72 bytes apart, then the
    /// event-array pages.
    var controlFrame: UInt64 { WorldLayout.firstFreeFrame }
    func arrayFrame(_ page: Int) -> UInt64 { WorldLayout.firstFreeFrame + 1 + UInt64(page) }
    /// The guest's frames: the standard map, or as many as the FIFO pages need.
    public var guestFrames: UInt64 { fifoPorts == nil ? WorldLayout.frames : max(WorldLayout.frames, arrayFrame(arrayPages)) }
    /// The vCPU an IPI goes to: the last (vCPU 0 itself with one vCPU).
    public var ipiVCPU: Int { vcpus - 1 }

    /// A native world of this shape, before `prepare`.
    public func makeNative() -> NativeWorld { NativeWorld(domains: domains, vcpus: vcpus, maxPort: maxPort, frames: guestFrames) }
    /// A translated world of this shape, before `prepare`.
    public func makeTranslated() -> TranslatedWorld { TranslatedWorld(domains: domains, vcpus: vcpus, maxPort: maxPort, frames: guestFrames) }

    /// FIFO: the control blocks, the event-array pages and the bound ports, in domains 1 and 2
    /// (before the operation's own channel is made, so that it takes the highest port).
    func prepare(_ w: any XenWorld) {
        guard let ports = fifoPorts else { return }
        precondition(vcpus * EvtchnFifoControlBlockLayout.size <= 4096, "the control blocks fit one frame")
        for d in [DomainID(1), DomainID(2)] {
            for v in 0..<vcpus {
                let r = w.evtchn(d, .initControl, [(EvtchnInitControlLayout.controlGfn, controlFrame),
                                                   (EvtchnInitControlLayout.offset, UInt64(v * EvtchnFifoControlBlockLayout.size)),
                                                   (EvtchnInitControlLayout.vcpu, UInt64(v))])
                precondition(r == 0, "EVTCHNOP_init_control: \(r)")
            }
            for page in 0..<arrayPages {
                let r = w.evtchn(d, .expandArray, [(EvtchnExpandArrayLayout.arrayGfn, arrayFrame(page))])
                precondition(r == 0, "EVTCHNOP_expand_array: \(r)")
            }
            for _ in 1..<ports {
                let p = w.bindIPI(d, vcpu: 0)
                precondition(p > 0, "EVTCHNOP_bind_ipi: \(p)")
            }
        }
    }

    /// What a Linux FIFO upcall handler does on `vcpu`: clear evtchn_upcall_pending, and
    /// consume every ready queue from HEAD along the LINK chain, clearing each event's word
    /// (pending, linked, link), then HEAD and READY.
    func acknowledgeFIFO(_ w: any XenWorld, _ domain: DomainID, vcpu: Int) {
        w.vcpuInfo(domain, vcpu: vcpu).storeBytes(of: 0, toByteOffset: VcpuInfoLayout.evtchnUpcallPending.offset, as: UInt8.self)
        let cb = w.page(domain, frame: controlFrame)! + vcpu * EvtchnFifoControlBlockLayout.size
        var ready = cb.load(fromByteOffset: EvtchnFifoControlBlockLayout.ready.offset, as: UInt32.self)
        cb.storeBytes(of: 0, toByteOffset: EvtchnFifoControlBlockLayout.ready.offset, as: UInt32.self)
        while ready != 0 {
            let q = ready.trailingZeroBitCount
            ready &= ready - 1
            let head = EvtchnFifoControlBlockLayout.head.offset(ofElement: q)
            var port = cb.load(fromByteOffset: head, as: UInt32.self)
            cb.storeBytes(of: 0, toByteOffset: head, as: UInt32.self)
            while port != 0, port <= maxPort {
                let word = w.page(domain, frame: arrayFrame(Int(port) / 1024))! + Int(port % 1024) * 4
                let next = word.load(as: UInt32.self) & EventChannelFIFO.linkMask
                word.storeBytes(of: 0, as: UInt32.self)
                port = next
            }
        }
    }
}

extension BenchPair {
    /// The guest's acknowledgement of the target vCPU's events, in its world's ABI.
    func acknowledge(_ w: any XenWorld) {
        if shape.fifoPorts != nil {
            shape.acknowledgeFIFO(w, target, vcpu: targetVCPU)
        } else {
            w.acknowledgeEvents(target, vcpu: targetVCPU)
        }
    }
}
