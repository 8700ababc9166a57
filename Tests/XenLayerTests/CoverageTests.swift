import Foundation
import Testing
import XenABI
import XenCore
import XVSpecCatalog
import XVTestSupport
import XVScenarios

@Suite("Spec coverage of the layer")
struct CoverageTests {
    /// Every EVTCHNOP row of Specs/xen/event-channels.tbl appears, as a whole word, in the
    /// name of some test of this directory.
    @Test("every EVTCHNOP row is named by a test")
    func everyEventChannelRowIsNamed() throws {
        let rows = SpecCatalog.constants.filter { $0.interface == "xen" && $0.family == "EVTCHNOP" }.map(\.name)
        #expect(rows.count == 14)
        let names = try TestNames(directory: URL(fileURLWithPath: #filePath).deletingLastPathComponent())
        let unnamed = rows.filter { !names.names($0) }
        #expect(unnamed.isEmpty, "EVTCHNOP rows no test names: \(unnamed)")
    }

    /// Every hypercall number 0...63 reaches its declared refusal, a handler, or -ENOSYS only
    /// when listed in `XenDispatchCoverage.notYetImplemented` (known gaps are data).
    @Test("every hypercall number gets its declared answer; the not-yet-implemented list is exact")
    func dispatchCoverage() {
        onBothWorlds { w, side in
            for number in UInt64(0)..<64 {
                let call = XenHypercall(rawValue: number)
                // A sub-op no family defines, with an argument page of zeros.
                w.writeArguments(dom1, size: 64, [])
                let r = w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: number, rdi: 0xFFFF, rsi: w.argumentAddress))
                switch call.disposition {
                case .rejected(let errno):
                    #expect(r == errno.hypercallReturnValue, "\(side): \(number) answers its declared errno")
                case .translated, .layer, .subops:
                    let listed = XenDispatchCoverage.notYetImplemented.contains(call)
                    if listed {
                        #expect(r == errENOSYS, "\(side): \(number) is listed as not yet implemented")
                    } else {
                        #expect([.eventChannelOp, .hvmOp, .physdevOp, .xenVersion, .vmAssist, .consoleIo, .mmuextOp, .vcpuOp, .schedOp, .setTimerOp, .multicall, .memoryOp, .grantTableOp].contains(call), "\(side): \(number) has a handler")
                        #expect(r != errENOSYS || [XenHypercall.xenVersion, .consoleIo, .eventChannelOp, .hvmOp, .physdevOp, .schedOp, .memoryOp, .grantTableOp].contains(call),
                                "\(side): \(number) answers -ENOSYS only as an unknown sub-op")
                    }
                }
            }
            #expect(w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: UInt64.max)) == errENOSYS, "\(side)")
            for op in XenDispatchCoverage.hvmNotYetImplemented {
                #expect(w.hvm(dom1, op, []) == errENOSYS, "\(side): HVMOP \(op.rawValue)")
            }
            // Every GNTTABOP row, with a count of 1: its declared refusal, a handler, or listed.
            for raw in UInt32(0)...13 {
                let op = GrantTableOp(rawValue: raw)
                w.writeArguments(dom1, size: 64, [])
                let r = w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.grantTableOp.rawValue, rdi: UInt64(raw), rsi: w.argumentAddress, rdx: 1))
                if case .rejected(let errno) = op.disposition {
                    #expect(r == errno.hypercallReturnValue, "\(side): GNTTABOP \(raw)")
                } else if XenDispatchCoverage.grantNotYetImplemented.contains(op) {
                    #expect(r == errENOSYS, "\(side): GNTTABOP \(raw) is listed as not yet implemented")
                } else {
                    #expect(r != errENOSYS, "\(side): GNTTABOP \(raw) has a handler")
                }
            }
            // Every VCPUOP row: its declared refusal, a handler, or listed as not yet built.
            for raw in UInt32(0)...13 {
                let op = VCPUOp(rawValue: raw)
                let r = w.hypercall(domain: dom1, vcpu: 0, XenHypercallRegisters(rax: XenHypercall.vcpuOp.rawValue, rdi: UInt64(raw), rsi: 0, rdx: 0))
                if case .rejected(let errno) = op.disposition {
                    #expect(r == errno.hypercallReturnValue, "\(side): VCPUOP \(raw)")
                } else if XenDispatchCoverage.vcpuNotYetImplemented.contains(op) {
                    #expect(r == errENOSYS, "\(side): VCPUOP \(raw) is listed as not yet implemented")
                } else {
                    #expect(r != errENOSYS, "\(side): VCPUOP \(raw) has a handler")
                }
            }
        }
    }

    @Test("HVMOP_set_param HVM_PARAM_CALLBACK_IRQ and HVMOP_set_evtchn_upcall_vector: checks, and the upcalls Xen raises")
    func upcallVectors() {
        onBothWorlds { w, side in
            func setParam(_ index: UInt64, _ value: UInt64, dom: UInt64 = 0x7FF0) -> Int64 {
                w.hvm(dom1, .setParam, [(XenHvmParamLayout.domid, dom), (XenHvmParamLayout.index, index), (XenHvmParamLayout.value, value)])
            }
            #expect(setParam(0, 2 << 56 | 0x0F) == errEINVAL, "\(side): vector below 0x10")
            #expect(setParam(0, 1 << 56 | 5) == errEOPNOTSUPP, "\(side): PCI INTx callbacks are not offered")
            #expect(setParam(39, 0) == errEINVAL, "\(side): beyond HVM_NR_PARAMS")
            #expect(setParam(0, 2 << 56 | 0x40, dom: 2) == errEPERM, "\(side)")
            #expect(setParam(1, 5) == errEPERM, "\(side): HVM_PARAM_STORE_PFN is the toolstack's")
            // An upcall already pending is raised when the callback arrives.
            let ipi = UInt32(w.bindIPI(dom1, vcpu: 0))
            #expect(w.send(dom1, port: ipi) == 0 && w.upcallPending(dom1, vcpu: 0), "\(side)")
            #expect(w.recorder.count(domain: dom1, vcpu: 0) == 0, "\(side): no vector yet, no upcall")
            #expect(setParam(0, 2 << 56 | 0x40) == 0, "\(side)")
            #expect(w.recorder.count(domain: dom1, vcpu: 0) == 1 && w.recorder.lastVector(domain: dom1, vcpu: 0) == 0x40, "\(side)")
            #expect(w.hvm(dom1, .getParam, [(XenHvmParamLayout.domid, 0x7FF0), (XenHvmParamLayout.index, 0)]) == 0, "\(side)")
            #expect(w.readArgument(dom1, XenHvmParamLayout.value) == 2 << 56 | 0x40, "\(side)")
            // The per-vCPU vector: checks, then an unconditional upcall on that vCPU.
            func upcallVector(_ vcpu: UInt64, _ vector: UInt64) -> Int64 {
                w.hvm(dom1, .setEvtchnUpcallVector, [(XenHvmEvtchnUpcallVectorLayout.vcpu, vcpu), (XenHvmEvtchnUpcallVectorLayout.vector, vector)])
            }
            #expect(upcallVector(0, 0x0F) == errEINVAL, "\(side)")
            #expect(upcallVector(7, 0x90) == errENOENT, "\(side)")
            #expect(upcallVector(1, 0x90) == 0, "\(side)")
            #expect(w.recorder.count(domain: dom1, vcpu: 1) == 1 && w.recorder.lastVector(domain: dom1, vcpu: 1) == 0x90, "\(side)")
        }
    }
}
