import CKVM
import CXenViridian
import Foundation
import Glibc

/// The host's side of the library's callbacks (xv_callbacks): C function pointers whose
/// context is the `XenHost`. Each does what the header asks of an embedder and returns.
enum XenHostCallbacks {
    static func host(_ context: UnsafeMutableRawPointer?) -> XenHost { Unmanaged<XenHost>.fromOpaque(context!).takeUnretainedValue() }

    static var table: xv_callbacks {
        var c = xv_callbacks()
        // The upcall vector, as an MSI to the vCPU's local APIC (KVM vCPU n has APIC ID n);
        // the xenstore service domain's upcalls wake its thread instead.
        c.upcall = { context, domain, vcpu, vector in
            let host = XenHostCallbacks.host(context)
            if domain == XenStoreService.domainID { host.store?.signal(); return }
            host.domain(domain)?.vm.signalMSI(apicID: vcpu, vector: vector)
        }
        c.nmi = { context, domain, vcpu in
            // An NMI is an MSI with delivery mode NMI (Intel SDM vol. 3, 11.11.2): data 0x400.
            let host = XenHostCallbacks.host(context)
            guard let vm = host.domain(domain)?.vm else { return }
            var msi = kvm_msi()
            msi.address_lo = 0xFEE0_0000 | (vcpu & 0xFF) << 12
            msi.data = 0x400
            _ = ioctl(vm.fd, xv_kvm_signal_msi, &msi)
        }
        c.shutdown = { context, domain, reason in XenHostCallbacks.host(context).domain(domain)?.shutDown(reason) }
        c.console = { context, domain, bytes, length in
            guard let d = XenHostCallbacks.host(context).domain(domain) else { return }
            let line = bytes.map { String(decoding: UnsafeBufferPointer(start: $0, count: Int(length)), as: UTF8.self) } ?? ""
            d.consoleLine(line)
        }
        c.wake = { context, domain, vcpu in
            guard let d = XenHostCallbacks.host(context).domain(domain), Int(vcpu) < d.vcpus.count else { return }
            d.vcpus[Int(vcpu)].wake()
        }
        c.yield = { _, _, _ in sched_yield() }
        c.initialise_vcpu = { context, domain, vcpu, state in
            guard let d = XenHostCallbacks.host(context).domain(domain), Int(vcpu) < d.vcpus.count, let state else { return 0 }
            return d.vcpus[Int(vcpu)].initialise(state.pointee) ? 1 : 0
        }
        c.vcpu_power = { context, domain, vcpu, up in
            guard let d = XenHostCallbacks.host(context).domain(domain), Int(vcpu) < d.vcpus.count else { return }
            d.vcpus[Int(vcpu)].power(up: up != 0)
        }
        c.timer_changed = { context, domain, vcpu, deadline, armed in
            XenHostCallbacks.host(context).clock.timerChanged(domain: domain, vcpu: vcpu, deadline: armed != 0 ? deadline : nil)
        }
        c.physmap_map = { context, domain, gfn, page, writable in
            let host = XenHostCallbacks.host(context)
            if domain == XenStoreService.domainID { return host.store.map(page, at: gfn) ? 1 : 0 }
            guard let d = host.domain(domain), let page else { return 0 }
            return d.physmap.show(page, at: gfn, writable: writable != 0) ? 1 : 0
        }
        c.physmap_unmap = { context, domain, gfn, release in
            let host = XenHostCallbacks.host(context)
            if domain == XenStoreService.domainID { host.store.unmap(gfn); return }
            host.domain(domain)?.physmap.hole(gfn, release: release != 0)
        }
        c.physmap_populate = { context, domain, gfn in
            guard let d = XenHostCallbacks.host(context).domain(domain) else { return 0 }
            return d.physmap.populate(gfn) ? 1 : 0
        }
        // Hypercall pointers of a paging guest: walked in the calling vCPU's page tables. Only
        // for the vCPU's own domain: any other thread, or another domain's question, gets none.
        c.translate_linear = { _, domain, page in
            guard let raw = pthread_getspecific(XenHostVCPU.current) else { return UInt64.max }
            let vcpu = Unmanaged<XenHostVCPU>.fromOpaque(raw).takeUnretainedValue()
            guard vcpu.domain.id == domain else { return UInt64.max }
            return vcpu.translateLinear(page) ?? UInt64.max
        }
        return c
    }
}
