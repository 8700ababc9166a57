import Foundation
import Testing
import GuestABI
import ViridianABI
import XenABI
import XenCore
import XenViridian
import ViridianReference
import XVScenarios

/// The guest cannot name a layer frame (Docs/Layer.md): the translated world's SynIC message,
/// event-flags and hypercall input pages lie in the partition's memory, outside the guest's
/// view, so every guest address and frame number that falls on them gets the answer Xen gives
/// for memory the guest does not own, exactly as on the native side, and nothing is written
/// there.
@Suite("Layer frames are not guest memory")
struct LayerFrameIsolationTests {
    static let domains = 3, vcpus = 2

    /// The translated domains' layer frames (the same numbers in every partition).
    static var layerFrames: Range<UInt64> {
        let first = WorldLayout.layerFrames().rawValue
        return first..<first + UInt64(LayerConfiguration.layerFrameCount(vcpuCount: vcpus))
    }

    /// Guest-physical addresses on and next to the layer frames: the start, middle and end of
    /// each, and structures that start in the guest's last frame and run into the first.
    static var hostileAddresses: [UInt64] {
        var a: [UInt64] = []
        for f in layerFrames { a += [f << 12, f << 12 + 8, f << 12 + 2048, f << 12 + 4088, f << 12 + 4095] }
        let edge = WorldLayout.frames << 12
        a += [edge - 1, edge - 2, edge - 4, edge - 8, edge - 12, edge - 16, edge - 24]
        return a
    }

    /// Every byte of every translated domain's layer frames.
    static func layerBytes(_ w: TranslatedWorld) -> [[UInt8]] {
        (0..<domains).flatMap { d in
            layerFrames.map { f in
                let p = w.ram(w.domainID(d)).region.hostAddress(of: GuestFrameNumber(f))!
                return Array(UnsafeRawBufferPointer(start: p, count: 4096))
            }
        }
    }

    /// Both worlds with the same channels: d2-d3 interdomain, an IPI port on d1, callback
    /// vectors everywhere, so the layer frames hold live state.
    static func worlds() -> (NativeWorld, TranslatedWorld) {
        let n = NativeWorld(domains: domains, vcpus: vcpus)
        let t = TranslatedWorld(domains: domains, vcpus: vcpus)
        for w in [n as any XenWorld, t] {
            for d in 0..<domains { #expect(w.setCallbackVector(w.domainID(d), 0x40 + UInt8(d)) == 0) }
            let p = w.allocUnbound(DomainID(3), remote: DomainID(2))
            #expect(p > 0 && w.bindInterdomain(DomainID(2), remote: DomainID(3), remotePort: UInt32(p)) > 0)
            #expect(w.bindIPI(DomainID(1), vcpu: 1) > 0)
        }
        return (n, t)
    }

    /// Guest frames of every domain identical on both sides.
    static func sameGuestFrames(_ n: NativeWorld, _ t: TranslatedWorld) -> Bool {
        for d in 0..<domains {
            for f in WorldLayout.comparedFrames {
                let ma = n.ram(n.domainID(d)).region.hostAddress(of: GuestFrameNumber(f))
                let mb = t.ram(t.domainID(d)).region.hostAddress(of: GuestFrameNumber(f))
                guard let a = ma, let b = mb else { if (ma == nil) != (mb == nil) { return false }; continue }
                if memcmp(a, b, 4096) != 0 { return false }
            }
        }
        return true
    }

    /// Implemented EVTCHNOPs and HVMOPs that read an argument structure: each is -EFAULT when it
    /// points at memory the guest does not own.
    static let evtchnOps: [EventChannelOp] = [.bindInterdomain, .bindVirq, .close, .send, .status, .allocUnbound, .bindIpi, .bindVcpu,
                                              .unmask, .reset, .initControl, .expandArray, .setPriority]
    static let hvmOps: [HVMOp] = [.setParam, .getParam, .setEvtchnUpcallVector]

    @Test("the layer's reproducer 1: the hypercall-page MSR onto the layer's event-flags page is #GP, and no event appears")
    func hypercallPageOntoEventFlags() {
        let (n, t) = Self.worlds()
        let d2 = DomainID(2)
        let before = Self.layerBytes(t)
        let sief = WorldLayout.layerFrames().rawValue + 1  // vCPU 0's event-flags page
        for w in [n as any XenWorld, t] {
            w.acknowledgeEvents(d2, vcpu: 0)
            #expect(w.xenDomain(d2).writeMSR(0x4000_0000, value: sief << 12, vcpu: 0) == .xen(.generalProtection))
        }
        #expect(Self.layerBytes(t) == before, "nothing written into the layer's frames")
        t.layer(d2).interrupt(vp: 0, vector: 0x42)
        #expect(!n.upcallPending(d2, vcpu: 0) && !t.upcallPending(d2, vcpu: 0), "no event on domain 2's bound ports")
        #expect(Self.sameGuestFrames(n, t))
    }

    @Test("every hypercall that takes a guest address or frame number, pointed at every layer frame: the native answer, nothing written")
    func sweep() {
        let (n, t) = Self.worlds()
        let before = Self.layerBytes(t)
        var probes = 0
        func check(_ what: String, expected: Int64?, _ call: (any XenWorld) -> Int64) {
            let a = call(n), b = call(t)
            probes += 1
            #expect(a == b, "\(what): native \(a), translated \(b)")
            if let expected { #expect(b == expected, "\(what): \(b), expected \(expected)") }
        }
        for d in 0..<Self.domains {
            let dom = n.domainID(d)
            for gpa in Self.hostileAddresses {
                // On a layer frame: -EFAULT. Straddling the guest's last frame: -EFAULT when
                // the structure reaches past it, else whatever the bytes there say, on both
                // sides alike.
                let onLayerFrame: Int64? = gpa >= WorldLayout.frames << 12 ? errEFAULT : nil
                // The sub-op families: implemented sub-ops answer -EFAULT on a layer frame;
                // every other number 0 ..< 48 answers as on the native side.
                let families: [(String, UInt64, [UInt32])] = [("EVTCHNOP", XenHypercall.eventChannelOp.rawValue, Self.evtchnOps.map(\.rawValue)),
                                                               ("HVMOP", XenHypercall.hvmOp.rawValue, Self.hvmOps.map(\.rawValue))]
                for (family, number, implemented) in families {
                    for cmd in UInt32(0)..<48 {
                        check("d\(d + 1) \(family) \(cmd) at \(String(gpa, radix: 16))", expected: implemented.contains(cmd) ? onLayerFrame : nil) {
                            $0.hypercall(domain: dom, vcpu: Int(cmd & 1), XenHypercallRegisters(rax: number, rdi: UInt64(cmd), rsi: gpa))
                        }
                    }
                }
                // Every other hypercall number with the address in every argument register.
                for number in UInt64(0)..<64 where number != XenHypercall.eventChannelOp.rawValue && number != XenHypercall.hvmOp.rawValue {
                    check("d\(d + 1) hypercall \(number) at \(String(gpa, radix: 16))", expected: nil) {
                        $0.hypercall(domain: dom, vcpu: 0, XenHypercallRegisters(rax: number, rdi: gpa, rsi: gpa, rdx: gpa, r10: gpa, r8: gpa))
                    }
                }
            }
            for f in Self.layerFrames {
                // Frame numbers: the FIFO control block, an event-array page (after a good
                // init_control on the other side of the FIFO switch), the hypercall page.
                check("d\(d + 1) init_control gfn \(f)", expected: errEINVAL) {
                    $0.evtchn(dom, .initControl, [(EvtchnInitControlLayout.controlGfn, f), (EvtchnInitControlLayout.offset, 0),
                                                  (EvtchnInitControlLayout.vcpu, 0)])
                }
                #expect(n.xenDomain(dom).writeMSR(0x4000_0000, value: f << 12, vcpu: 1) == .xen(.generalProtection))
                #expect(t.xenDomain(dom).writeMSR(0x4000_0000, value: f << 12, vcpu: 1) == .xen(.generalProtection), "d\(d + 1) hypercall page at \(f)")
            }
            check("d\(d + 1) init_control on a guest frame", expected: 0) {
                $0.evtchn(dom, .initControl, [(EvtchnInitControlLayout.controlGfn, WorldLayout.firstFreeFrame), (EvtchnInitControlLayout.offset, 0),
                                              (EvtchnInitControlLayout.vcpu, 0)])
            }
            for f in Self.layerFrames {
                check("d\(d + 1) expand_array gfn \(f)", expected: errEINVAL) { $0.evtchn(dom, .expandArray, [(EvtchnExpandArrayLayout.arrayGfn, f)]) }
                check("d\(d + 1) init_control vCPU 1 gfn \(f)", expected: errEINVAL) {
                    $0.evtchn(dom, .initControl, [(EvtchnInitControlLayout.controlGfn, f), (EvtchnInitControlLayout.offset, 64),
                                                  (EvtchnInitControlLayout.vcpu, 1)])
                }
            }
        }
        #expect(probes > 10_000)
        #expect(Self.layerBytes(t) == before, "nothing written into any layer frame")
        #expect(Self.sameGuestFrames(n, t), "guest frames identical on both sides")
        // The layer still works: d2's send reaches d3, on both sides.
        for w in [n as any XenWorld, t] {
            #expect(w.send(DomainID(2), port: 1) == 0)
        }
        #expect(Self.sameGuestFrames(n, t))
    }

    @Test("a structure whose first fields are guest memory and whose last run onto a layer frame is -EFAULT with nothing done (Xen copies it in whole)")
    func straddlingStructureDoesNothing() {
        let (n, t) = Self.worlds()
        let edge = WorldLayout.frames << 12
        for w in [n as any XenWorld, t] {
            let page = w.ram(DomainID(1)).region.hostAddress(of: GuestFrameNumber(WorldLayout.frames - 1))!
            // alloc_unbound: dom and remote_dom in the guest's last frame, port past it.
            page.storeBytes(of: DomainID.selfDomain.rawValue, toByteOffset: 4092, as: UInt16.self)
            page.storeBytes(of: UInt16(2), toByteOffset: 4094, as: UInt16.self)
            #expect(w.hypercall(domain: DomainID(1), vcpu: 0, XenHypercallRegisters(rax: XenHypercall.eventChannelOp.rawValue,
                                                                                  rdi: UInt64(EventChannelOp.allocUnbound.rawValue), rsi: edge - 4)) == errEFAULT)
            // HVMOP_set_param of HVM_PARAM_STORE_EVTCHN: domid and index readable, value past the frame.
            page.storeBytes(of: DomainID.selfDomain.rawValue, toByteOffset: 4088, as: UInt16.self)
            page.storeBytes(of: UInt32(HVMParam.storeEvtchn.rawValue), toByteOffset: 4092, as: UInt32.self)
            #expect(w.hypercall(domain: DomainID(1), vcpu: 0, XenHypercallRegisters(rax: XenHypercall.hvmOp.rawValue,
                                                                                  rdi: UInt64(HVMOp.setParam.rawValue), rsi: edge - 8)) == errEFAULT)
            #expect(w.xenDomain(DomainID(1)).hvmParameter(.storeEvtchn) == 0, "nothing set")
        }
        // No port was allocated: the next one is the same on both sides, and is port 2 (the IPI took 1).
        #expect(n.allocUnbound(DomainID(1), remote: DomainID(2)) == 2 && t.allocUnbound(DomainID(1), remote: DomainID(2)) == 2)
        #expect(Self.sameGuestFrames(n, t))
    }

    @Test("a layer whose frames the guest's memory view contains, or that are not backed, does not start")
    func layerFramesMustBeOutsideTheGuestView() {
        let router = LayerInterruptRouter()
        let reference = LayerInterruptRouter.Reference(host: router)!
        let root = XenViridianRoot(target: ReferenceBoundary(reference))
        let ram = GuestRAM(frameCount: 64)
        let partition = try! reference.createPartition(PartitionConfiguration(vpCount: 1), memory: ram.region)
        let config = DomainConfiguration(id: DomainID(1), vcpuCount: 1, sharedInfoFrame: GuestFrameNumber(0))
        let recorder = UpcallRecorder()
        func attempt(guestFrames: UInt64, layerFrames: UInt64, partitionFrames: UInt64 = 64) -> DomainConfigurationError? {
            do {
                _ = try LayerInterruptRouter.Layer(config, layer: LayerConfiguration(partition: partition, layerFrames: GuestFrameNumber(layerFrames)),
                                                   memory: ram.view(frames: guestFrames),
                                                   partitionMemory: ram.view(frames: partitionFrames), root: root, sink: recorder)
                return nil
            } catch let error as DomainConfigurationError { return error } catch { return nil }
        }
        #expect(attempt(guestFrames: 64, layerFrames: 10) == .layerFramesVisibleToGuest, "inside the guest's map")
        #expect(attempt(guestFrames: 62, layerFrames: 61) == .layerFramesVisibleToGuest, "overlapping its last frame")
        #expect(attempt(guestFrames: 48, layerFrames: 62) == .layerFramesNotBacked, "running past the partition's memory")
        #expect(attempt(guestFrames: 48, layerFrames: UInt64.max >> 12) == .layerFramesNotBacked, "wrapping")
        #expect(attempt(guestFrames: 48, layerFrames: 48) == nil, "right after the guest's map")
    }

    @Test("the embedder's checks for a guest offered Viridian: which frames and which synthetic MSRs are the layer's")
    func embedderChecks() {
        let t = TranslatedWorld(domains: 1, vcpus: 2)
        let layer = t.layer(DomainID(1))
        let owned = (0..<80).filter { layer.isLayerFrame(GuestFrameNumber(UInt64($0))) }
        #expect(owned == Array(48..<59), "three per VP, the reference TSC page and two copy windows per VP")
        #expect(!layer.isLayerFrame(GuestFrameNumber(.max)))
        let msrs: [HVMSR] = [.guestOsId, .simp, .siefp, .scontrol, .eom, .referenceTsc] + (0..<16).map { HVMSR(rawValue: HVMSR.sint0.rawValue + UInt32($0)) }
        for m in msrs { #expect(LayerInterruptRouter.Layer.isLayerMSR(m), "\(m)") }
        for m: HVMSR in [.hypercall, .vpIndex, .timeRefCount, .stimer0Config] {
            #expect(!LayerInterruptRouter.Layer.isLayerMSR(m), "\(m)")
        }
    }
}
