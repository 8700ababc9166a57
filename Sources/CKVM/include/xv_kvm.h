/* KVM's request numbers and structure layouts for the KVM host (Sources/XVKVMHost), from the
 * kernel's own <linux/kvm.h>: Swift imports the structures but not the _IO/_IOW request
 * macros, so each request the host uses is a constant here. Nothing else lives in C. */
#ifndef XV_KVM_H
#define XV_KVM_H
#include <linux/kvm.h>

static const unsigned long xv_kvm_get_api_version = KVM_GET_API_VERSION;
static const unsigned long xv_kvm_create_vm = KVM_CREATE_VM;
static const unsigned long xv_kvm_check_extension = KVM_CHECK_EXTENSION;
static const unsigned long xv_kvm_get_vcpu_mmap_size = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long xv_kvm_set_user_memory_region = KVM_SET_USER_MEMORY_REGION;
static const unsigned long xv_kvm_create_vcpu = KVM_CREATE_VCPU;
static const unsigned long xv_kvm_run = KVM_RUN;
static const unsigned long xv_kvm_get_regs = KVM_GET_REGS;
static const unsigned long xv_kvm_set_regs = KVM_SET_REGS;
static const unsigned long xv_kvm_get_sregs = KVM_GET_SREGS;
static const unsigned long xv_kvm_set_sregs = KVM_SET_SREGS;

static const unsigned long xv_kvm_create_irqchip = KVM_CREATE_IRQCHIP;
static const unsigned long xv_kvm_signal_msi = KVM_SIGNAL_MSI;
static const unsigned long xv_kvm_enable_cap = KVM_ENABLE_CAP;
static const unsigned long xv_kvm_set_msr_filter = KVM_X86_SET_MSR_FILTER;
static const unsigned long xv_kvm_get_supported_cpuid = KVM_GET_SUPPORTED_CPUID;
static const unsigned long xv_kvm_set_cpuid2 = KVM_SET_CPUID2;
static const unsigned long xv_kvm_get_tsc_khz = KVM_GET_TSC_KHZ;
static const unsigned long xv_kvm_set_msrs = KVM_SET_MSRS;
static const unsigned long xv_kvm_get_msrs = KVM_GET_MSRS;
static const unsigned long xv_kvm_get_mp_state = KVM_GET_MP_STATE;
static const unsigned long xv_kvm_translate = KVM_TRANSLATE;
static const unsigned long xv_kvm_set_mp_state = KVM_SET_MP_STATE;

static const int xv_kvm_cap_xen_hvm = KVM_CAP_XEN_HVM;
static const int xv_kvm_cap_immediate_exit = KVM_CAP_IMMEDIATE_EXIT;
static const int xv_kvm_cap_user_memory = KVM_CAP_USER_MEMORY;
static const int xv_kvm_cap_set_guest_debug = KVM_CAP_SET_GUEST_DEBUG;
static const int xv_kvm_cap_irqchip = KVM_CAP_IRQCHIP;
static const int xv_kvm_cap_signal_msi = KVM_CAP_SIGNAL_MSI;
static const int xv_kvm_cap_user_space_msr = KVM_CAP_X86_USER_SPACE_MSR;
static const int xv_kvm_cap_msr_filter = KVM_CAP_X86_MSR_FILTER;
static const int xv_kvm_cap_sync_regs = KVM_CAP_SYNC_REGS;
static const int xv_kvm_cap_readonly_mem = KVM_CAP_READONLY_MEM;
static const int xv_kvm_cap_nr_memslots = KVM_CAP_NR_MEMSLOTS;

/* A CPUID table of up to XV_KVM_CPUID_ENTRIES entries (struct kvm_cpuid2 ends in a flexible array). */
#define XV_KVM_CPUID_ENTRIES 256
struct xv_kvm_cpuid {
    struct kvm_cpuid2 header;
    struct kvm_cpuid_entry2 entries[XV_KVM_CPUID_ENTRIES];
};

/* One MSR for KVM_GET_MSRS / KVM_SET_MSRS (struct kvm_msrs ends in a flexible array). */
struct xv_kvm_one_msr {
    struct kvm_msrs header;
    struct kvm_msr_entry entry;
};

/* The exit information of the exits the host serves, out of kvm_run's anonymous union. */
static inline struct kvm_run *xv_kvm_run_self(struct kvm_run *run) { return run; }
static inline __u32 xv_kvm_msr_index(struct kvm_run *run) { return run->msr.index; }
static inline __u64 xv_kvm_msr_data(struct kvm_run *run) { return run->msr.data; }
static inline void xv_kvm_msr_answer(struct kvm_run *run, __u8 error, __u64 data) { run->msr.error = error; run->msr.data = data; }
static inline __u64 xv_kvm_mmio_address(struct kvm_run *run) { return run->mmio.phys_addr; }
static inline __u32 xv_kvm_mmio_length(struct kvm_run *run) { return run->mmio.len; }
static inline __u8 xv_kvm_mmio_is_write(struct kvm_run *run) { return run->mmio.is_write; }
static inline __u8 *xv_kvm_mmio_data(struct kvm_run *run) { return run->mmio.data; }
static inline struct kvm_regs *xv_kvm_sync_regs(struct kvm_run *run) { return &run->s.regs.regs; }
static inline struct kvm_sregs *xv_kvm_sync_sregs(struct kvm_run *run) { return &run->s.regs.sregs; }
static inline __u64 xv_kvm_fail_entry_reason(struct kvm_run *run) { return run->fail_entry.hardware_entry_failure_reason; }
static inline __u32 xv_kvm_internal_suberror(struct kvm_run *run) { return run->internal.suberror; }

static const __u32 xv_kvm_sync_x86_regs = KVM_SYNC_X86_REGS;
static const __u32 xv_kvm_sync_x86_sregs = KVM_SYNC_X86_SREGS;

/* The port-I/O exit's data, which sits at an offset inside the kvm_run mapping. */
static inline unsigned char *xv_kvm_io_data(struct kvm_run *run) { return (unsigned char *)run + run->io.data_offset; }
/* The page-table words the library reads with acquire loads are written with release stores. */
static inline void xv_kvm_store_release_u64(__u64 *p, __u64 v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline __u64 xv_kvm_load_acquire_u64(const __u64 *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline __u8 xv_kvm_exchange_u8(__u8 *p, __u8 v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
static inline __u64 xv_kvm_exchange_u64(__u64 *p, __u64 v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
static inline __u64 xv_kvm_fetch_and_u64(__u64 *p, __u64 v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }
static inline __u32 xv_kvm_load_acquire_u32(const __u32 *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void xv_kvm_store_release_u32(__u32 *p, __u32 v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
/* kvm_run.immediate_exit is set by other threads (the documented way to stop KVM_RUN), so
 * every access is atomic. */
static inline void xv_kvm_set_immediate_exit(struct kvm_run *run, __u8 v) { __atomic_store_n(&run->immediate_exit, v, __ATOMIC_SEQ_CST); }
static inline __u64 xv_kvm_rdtsc(void) { return __builtin_ia32_rdtsc(); }
#endif
