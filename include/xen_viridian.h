/*
 * xen_viridian.h: the C ABI of XenViridian.
 *
 * XenViridian answers a Xen guest's hypercalls (PV-on-HVM ABI, Xen 4.17) either natively (the
 * baseline, which plays Xen itself) or translated onto a Viridian (Hyper-V style) hypervisor,
 * the bundled reference one. An embedder (a VMM) creates a system, its domains, and forwards
 * each guest hypercall with xv_hypercall; the library calls back into the embedder for what
 * only a VMM can do (inject an interrupt, change the guest's physical map, wake a vCPU thread).
 *
 * Conventions (Docs/CABI.md has the full contract):
 *  - Fixed-width types only. Every struct starts from zero (memset) and every reserved field
 *    must stay zero: a later ABI version gives them meaning, and this one refuses non-zero
 *    reserved fields with XV_EINVAL.
 *  - Functions that can fail return an int32_t: 0 (XV_OK) or a negative XV_E* code.
 *  - Pointers passed in are borrowed for the call unless the comment says the library keeps
 *    them. Nothing the library returns needs freeing except an xv_system (xv_system_destroy).
 *  - Threads: after xv_domain_create returns, any thread may call xv_hypercall and the other
 *    per-vCPU entries for any vCPU, one call per vCPU at a time (the vCPU's own thread), as the
 *    threading contract says (Docs/Threading.md). Creating domains may overlap with other
 *    domains' calls. xv_system_destroy must not overlap with anything.
 *  - Callbacks run on the calling thread (a vCPU's, or the one calling xv_set_guest_tsc) and
 *    must not call back into the library unless their comment allows it.
 */
#ifndef XEN_VIRIDIAN_H
#define XEN_VIRIDIAN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes; xv_abi_version() returns the library's. */
#define XV_ABI_VERSION 3u

/* Return codes. */
#define XV_OK 0
#define XV_EINVAL (-22)   /* a bad argument, a non-zero reserved field, a null required pointer */
#define XV_EEXIST (-17)   /* the domain id is in use */
#define XV_ENOMEM (-12)   /* the library could not allocate its state */
#define XV_ESRCH  (-3)    /* no such domain */
#define XV_ENODEV (-19)   /* the Viridian target refused to set the domain up */
#define XV_ENOSPC (-28)   /* the buffer is too small: the size needed is returned */
#define XV_EIMAGE (-74)   /* a domain image was refused (EBADMSG); the reason is an XV_IMAGE_REFUSED_* */

/* Why xv_domain_restore refused an image (Specs/translation/save-image.tbl); nothing changed. */
#define XV_IMAGE_REFUSED_MAGIC 1u      /* not a domain image */
#define XV_IMAGE_REFUSED_VERSION 2u    /* a format version this library does not read */
#define XV_IMAGE_REFUSED_TRUNCATED 3u  /* shorter than its header says */
#define XV_IMAGE_REFUSED_CHECKSUM 4u   /* a byte changed */
#define XV_IMAGE_REFUSED_MALFORMED 5u  /* a section or field out of range */
#define XV_IMAGE_REFUSED_SHAPE 6u      /* saved from a domain of another id or shape */
#define XV_IMAGE_REFUSED_NOT_FRESH 7u  /* the domain has run already */
#define XV_IMAGE_REFUSED_CAPACITY 8u   /* more unbound and interdomain ports than this side carries */

/* xv_system_config.side */
#define XV_SIDE_NATIVE 0u      /* the native baseline: Xen's own handling */
#define XV_SIDE_TRANSLATED 1u  /* the translation layer over the bundled reference Viridian hypervisor */
#define XV_SIDE_TARGET 2u      /* the translation layer over the embedder's own Viridian target (xv_viridian_target) */

/* xv_domain_config.flags */
#define XV_DOMAIN_VIRIDIAN_DUAL 1u  /* Xen's CPUID leaves at 0x40000100 with Viridian's at 0x40000000 */

/* xv_park_request results */
#define XV_PARK_NONE 0   /* run the vCPU */
#define XV_PARK_BLOCK 1  /* SCHEDOP_block: sleep until the wake callback */
#define XV_PARK_POLL 2   /* SCHEDOP_poll: sleep until the wake callback or the deadline, then xv_resume */

/* xv_classify_hypercall results */
#define XV_CALL_XEN 0       /* pass the registers to xv_hypercall */
#define XV_CALL_VIRIDIAN 1  /* a Viridian hypercall (dual layout only): the embedder's to handle */
#define XV_CALL_REFUSED 2   /* refused before dispatch: *refused_rax is the guest's RAX */

/* xv_cpuid, xv_rdmsr, xv_wrmsr results */
#define XV_IDENTITY_XEN 0       /* Xen answered: use *out (or, for a write, the write is done) */
#define XV_IDENTITY_NOT_XEN 1   /* not Xen's leaf or MSR: the embedder's own model answers */
#define XV_IDENTITY_GP 2        /* Xen's MSR, but the access raises #GP(0) */
#define XV_IDENTITY_VIRIDIAN 3  /* Viridian's leaf or MSR (XV_DOMAIN_VIRIDIAN_DUAL): the embedder's Viridian model answers */

typedef struct xv_system xv_system;  /* opaque; one native or translated set of domains */

/* The registers of a Xen hypercall (x86-64: RAX is the number, then RDI, RSI, RDX, R10, R8). */
typedef struct xv_hypercall_regs {
    uint64_t rax, rdi, rsi, rdx, r10, r8;
    uint64_t reserved[2];
} xv_hypercall_regs;

/* A segment as VCPUOP_initialise gives it: attributes in Xen's segment_register.attr form. */
typedef struct xv_segment {
    uint64_t base;
    uint32_t limit;
    uint16_t attributes;
    uint16_t reserved;
} xv_segment;

/* The register state a vCPU starts from after VCPUOP_initialise (checked as Xen checks it). */
typedef struct xv_vcpu_context {
    uint64_t rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, rip, rflags;
    uint64_t cr0, cr3, cr4, efer;
    xv_segment cs, ds, ss, es, tr;
    uint64_t reserved[4];
} xv_vcpu_context;

typedef struct xv_cpuid_result {
    uint32_t eax, ebx, ecx, edx;
} xv_cpuid_result;

/*
 * What the library asks of the embedder. `context` is passed back to every callback as is;
 * the library keeps the whole struct (a copy) for the system's life. A NULL entry means the
 * behaviour its comment names.
 */
typedef struct xv_callbacks {
    void *context;
    /* Required. Inject `vector` into the vCPU's local APIC: the domain's event upcall
     * (HVM_PARAM_CALLBACK_IRQ vector or HVMOP_set_evtchn_upcall_vector). Any thread. */
    void (*upcall)(void *context, uint16_t domain, uint32_t vcpu, uint8_t vector);
    /* VCPUOP_send_nmi: inject an NMI (NULL: dropped). */
    void (*nmi)(void *context, uint16_t domain, uint32_t vcpu);
    /* The domain shut down with SHUTDOWN_* `reason`, once (NULL: ignored). No lock held. */
    void (*shutdown)(void *context, uint16_t domain, uint8_t reason);
    /* VCPUOP_initialise: load `state` into the vCPU, return 1 to accept or 0 to refuse (the
     * guest gets -EINVAL). Called under the domain's event lock: do not call the library.
     * NULL: refused. `state` is borrowed for the call. */
    int32_t (*initialise_vcpu)(void *context, uint16_t domain, uint32_t vcpu, const xv_vcpu_context *state);
    /* VCPUOP_up/down: start (up = 1) or stop running the vCPU (NULL: ignored). */
    void (*vcpu_power)(void *context, uint16_t domain, uint32_t vcpu, uint32_t up);
    /* Wake the thread of a vCPU parked by SCHEDOP_block or poll. It may come before the
     * thread sleeps; the wait must count it. Only signal here (NULL: the embedder polls
     * xv_park_request). Any thread, possibly with a library lock held. */
    void (*wake)(void *context, uint16_t domain, uint32_t vcpu);
    /* CONSOLEIO_write: one line without its newline (Xen's line buffering; unprintable bytes
     * dropped as Xen drops them), `length` bytes at `bytes`, borrowed.
     * NULL: the domain has no console, and console_io answers as Xen does without one. */
    void (*console)(void *context, uint16_t domain, const uint8_t *bytes, uint64_t length);
    /* Native side: HVMOP_flush_tlbs, flush every vCPU's TLB (NULL: nothing to flush). On the
     * translated side the Viridian target flushes. */
    void (*flush_tlbs)(void *context, uint16_t domain);
    /* Native side: SCHEDOP_yield (NULL: ignored). Translated: HvCallNotifyLongSpinWait. */
    void (*yield)(void *context, uint16_t domain, uint32_t vcpu);
    /* Native side: the vCPU's Xen timer is now due at Xen system time `deadline_ns`
     * (`armed` = 1; compare xv_system_time) or disarmed (0); the embedder calls
     * xv_set_guest_tsc at or after it (NULL: the embedder ticks on its own). One already due
     * fires before the hypercall returns. The translated side's timers live in the Viridian
     * target, which fires them from xv_set_guest_tsc. */
    void (*timer_changed)(void *context, uint16_t domain, uint32_t vcpu, uint64_t deadline_ns, uint32_t armed);
    /* The guest's physical map, for XENMEM_add_to_physmap, ballooning and grant maps (on the
     * translated side, the reference hypervisor's second-level mappings): make `gfn` show the
     * host page `page`, writable by the guest or (`writable` = 0, a read-only grant map)
     * read-only: the embedder's second-level entry must refuse its writes (return 1, or 0 to
     * refuse the mapping), make it a hole (`release` = 1: its RAM
     * page goes back to the embedder), or give it a fresh zeroed RAM page (1, or 0: none).
     * The library calls these under its physmap lock. NULL map/unmap: the library writes the
     * domain's page table itself; NULL populate: ballooning up is refused. */
    int32_t (*physmap_map)(void *context, uint16_t domain, uint64_t gfn, void *page, uint32_t writable);
    void (*physmap_unmap)(void *context, uint16_t domain, uint64_t gfn, uint32_t release);
    int32_t (*physmap_populate)(void *context, uint16_t domain, uint64_t gfn);
    /* ABI 2. A paging guest's hypercall pointers are guest-linear addresses, as Xen reads an
     * HVM guest's (through the calling vCPU's page tables). For an argument address whose page
     * number `page` is no guest frame (at or past the domain's `frames`: a kernel's addresses
     * lie far above its RAM), the library asks for the guest frame that linear page maps to in
     * the page tables of the vCPU whose hypercall is running; the call is made on that vCPU's
     * thread. Return UINT64_MAX when it is not mapped (the guest gets -EFAULT); a frame at or
     * past `frames` is refused the same way. Asked only for the calling domain, never for
     * frame numbers the guest passes as values. NULL: every argument address is
     * guest-physical (an identity-mapped guest, or paging off). */
    uint64_t (*translate_linear)(void *context, uint16_t domain, uint64_t page);
    void *reserved[7];
} xv_callbacks;

/* A port the layer asks the target's root services to create (TLFS HvCallCreatePort's
 * HV_PORT_INFO): a message port (kind 0) on `sint` of `vp`, or an event port (kind 1) that sets
 * `flag_count` flags from `base_flag` in `sint`'s event flags of `vp`. */
typedef struct xv_port_info {
    uint32_t kind;
    uint32_t vp;
    uint8_t sint;
    uint8_t reserved0;
    uint16_t base_flag;
    uint16_t flag_count;
    uint16_t reserved1;
    uint64_t reserved[2];
} xv_port_info;

/*
 * The embedder's own Viridian hypervisor (XV_SIDE_TARGET): the partition interface the layer
 * uses (hypercalls, synthetic MSRs, CPUID) and the root services a parent partition has
 * (ports, connections, GPA mappings). Every entry is required. Status results are HV_STATUS
 * codes (0 is HV_STATUS_SUCCESS). Any thread may call them, one call per VP at a time for the
 * per-VP ones, as the layer's vCPUs run; the target raises its interrupts back through
 * xv_deliver_interrupt, on any thread.
 */
typedef struct xv_viridian_target {
    void *context;
    /* A hypercall from `vp` of `partition`: the control word (RCX), then RDX and R8 (input
     * and output GPAs, or a fast call's data). Returns the result value (RAX). */
    uint64_t (*hypercall)(void *context, uint64_t partition, uint32_t vp, uint64_t control, uint64_t rdx, uint64_t r8);
    /* A synthetic MSR: 0 and *value, or non-zero for #GP. */
    int32_t (*rdmsr)(void *context, uint64_t partition, uint32_t vp, uint32_t msr, uint64_t *value);
    int32_t (*wrmsr)(void *context, uint64_t partition, uint32_t vp, uint32_t msr, uint64_t value);
    /* A hypervisor CPUID leaf (0x40000000 and up) as the partition sees it. */
    void (*cpuid)(void *context, uint64_t partition, uint32_t leaf, xv_cpuid_result *out);
    /* Root services: HvCallCreatePort, DeletePort, ConnectPort, DisconnectPort, MapGpaPages,
     * UnmapGpaPages. `info` is borrowed for the call. */
    uint16_t (*create_port)(void *context, uint64_t partition, uint32_t port, const xv_port_info *info);
    uint16_t (*delete_port)(void *context, uint64_t partition, uint32_t port);
    uint16_t (*connect_port)(void *context, uint64_t partition, uint32_t connection, uint64_t target_partition, uint32_t port);
    uint16_t (*disconnect_port)(void *context, uint64_t partition, uint32_t connection);
    uint16_t (*map_gpa_pages)(void *context, uint64_t target_partition, uint64_t target_gfn, uint64_t source_partition,
                              uint64_t source_gfn, uint64_t count, uint32_t flags, uint64_t *mapped);
    uint16_t (*unmap_gpa_pages)(void *context, uint64_t partition, uint64_t gfn, uint64_t count, uint64_t *unmapped);
    /* Where the target shows `gfn` of `partition` (its own page or a mapped one), for the
     * access asked (`write` = 1), or NULL when that access is not allowed. */
    void *(*host_address)(void *context, uint64_t partition, uint64_t gfn, uint32_t write);
    void *reserved[8];
} xv_viridian_target;

typedef struct xv_system_config {
    uint32_t side;          /* XV_SIDE_NATIVE, XV_SIDE_TRANSLATED or XV_SIDE_TARGET */
    uint32_t reserved0;
    uint64_t tsc_hz;        /* the guests' TSC frequency (0: 2.5 GHz; the bundled reference's) */
    const xv_viridian_target *target;  /* XV_SIDE_TARGET only (copied), else NULL */
    uint64_t reserved[5];
} xv_system_config;

/*
 * A domain. Its memory is a page table the embedder owns: page_table[gfn] is the host address
 * of guest frame gfn (a 4 KiB page), 0 for a hole. The library keeps the pointer, reads
 * entries with acquire loads, and writes them only through the physmap callbacks' defaults;
 * the table must outlive the system.
 *
 * The translated side also needs the layer's own frames (SynIC message and event pages,
 * hypercall input pages, the reference TSC page, grant copy windows): the table has
 * xv_layer_frame_count(vcpu_count) more entries after the guest's `frames`, each backed by a
 * page of its own. They are the partition's, outside the guest's view: no guest address
 * reaches them. The native side ignores them.
 */
typedef struct xv_domain_config {
    uint16_t domain;        /* 1 ... 0x7FEF */
    uint16_t reserved0;
    uint32_t vcpu_count;    /* 1 ... 32 */
    uint32_t max_port;      /* highest event channel port, 1 ... 131071 (0: 1023) */
    uint32_t flags;         /* XV_DOMAIN_* */
    uint64_t *page_table;   /* kept; frames (+ layer frames on the translated side) entries */
    uint64_t frames;        /* guest-visible frames, 0 ... frames - 1 */
    uint64_t max_pages;     /* what XENMEM_maximum_reservation reports (0: frames) */
    uint64_t shared_info_gfn; /* a backed frame the domain's shared_info starts in */
    uint64_t partition;     /* XV_SIDE_TARGET: the target's partition for the domain (its
                             * memory shown by the same page table); else 0 */
    uint64_t reserved[5];
} xv_domain_config;

/* The library's ABI version (XV_ABI_VERSION of the header it was built with). */
uint32_t xv_abi_version(void);

/* Frames the translated side needs past the guest's, for `vcpu_count` vCPUs (0 if out of range). */
uint64_t xv_layer_frame_count(uint32_t vcpu_count);

/* Creates a system. `config` and `callbacks` are copied; *out receives the system. */
int32_t xv_system_create(const xv_system_config *config, const xv_callbacks *callbacks, xv_system **out);

/* Destroys the system and all its domains. Nothing may run in it any more. NULL is ignored. */
void xv_system_destroy(xv_system *system);

/* Creates a domain (translated: its Viridian partition too). XV_EEXIST for a used id. */
int32_t xv_domain_create(xv_system *system, const xv_domain_config *config);

/* A guest's VMCALL/VMMCALL at privilege level `cpl`: XV_CALL_XEN, XV_CALL_VIRIDIAN or
 * XV_CALL_REFUSED (then *refused_rax is what the guest sees). *refused_rax may be NULL. */
int32_t xv_classify_hypercall(xv_system *system, uint16_t domain, uint64_t rax, uint8_t cpl, int64_t *refused_rax);

/* A Xen hypercall from `vcpu` of `domain`; returns the value for the guest's RAX (an unknown
 * domain: -ESRCH, Xen's -3). `regs` is borrowed. Guest memory named by the arguments is read
 * through the domain's page table; a bad value gets Xen's errno, never a fault. */
int64_t xv_hypercall(xv_system *system, uint16_t domain, uint32_t vcpu, const xv_hypercall_regs *regs);

/* CPUID and the Xen MSRs (the hypercall-page MSR): XV_IDENTITY_* (see above). */
int32_t xv_cpuid(xv_system *system, uint16_t domain, uint32_t vcpu, uint32_t leaf, uint32_t subleaf, xv_cpuid_result *out);
int32_t xv_rdmsr(xv_system *system, uint16_t domain, uint32_t vcpu, uint32_t msr, uint64_t *out);
int32_t xv_wrmsr(xv_system *system, uint16_t domain, uint32_t vcpu, uint32_t msr, uint64_t value);

/* After a hypercall: whether the vCPU must sleep (XV_PARK_*); for a poll, *deadline_ns gets
 * its Xen system time deadline or UINT64_MAX for none. `deadline_ns` may be NULL. */
int32_t xv_park_request(xv_system *system, uint16_t domain, uint32_t vcpu, uint64_t *deadline_ns);
/* The embedder resumes a parked vCPU without a wake (its poll deadline passed). */
int32_t xv_resume(xv_system *system, uint16_t domain, uint32_t vcpu);

/* The guests' TSC moved forward to `tsc` (ignored if not later): due Xen timers fire (their
 * upcalls arrive through the upcall callback, on this thread). Any one thread at a time.
 * XV_SIDE_TARGET: nothing; the embedder's target keeps its own clock and timers. */
void xv_set_guest_tsc(xv_system *system, uint64_t tsc);
/* Xen system time of the domain now (ns), or UINT64_MAX when it has no time source yet. */
uint64_t xv_system_time(xv_system *system, uint16_t domain);
/* The embedder's tick: re-anchor the vCPU's vcpu_time_info (pvclock). XV_ESRCH: no such
 * domain or vCPU; XV_EINVAL: no time source yet. */
int32_t xv_refresh_time(xv_system *system, uint16_t domain, uint32_t vcpu);
/* The embedder started (INIT/SIPI) or stopped a vCPU itself. */
int32_t xv_set_vcpu_up(xv_system *system, uint16_t domain, uint32_t vcpu, uint32_t up);

/* The toolstack's HVM parameters (HVM_PARAM_* `index`, below HVM_NR_PARAMS): set without the
 * guest's checks, as Xen's domain builder sets STORE_PFN, STORE_EVTCHN, CONSOLE_PFN and
 * CONSOLE_EVTCHN before the guest runs; the guest reads them with HVMOP_get_param. XV_ESRCH
 * for an unknown domain, XV_EINVAL for an index out of range or a null `value`. */
int32_t xv_set_hvm_param(xv_system *system, uint16_t domain, uint32_t index, uint64_t value);
int32_t xv_get_hvm_param(xv_system *system, uint16_t domain, uint32_t index, uint64_t *value);

/* XV_SIDE_TARGET: the target raised `vector` on VP `vcpu` of the domain's partition (a SINT,
 * a synthetic timer or a synthetic IPI); the layer turns what the SynIC holds into the
 * guest's upcall. XV_ESRCH for an unknown domain or vCPU, XV_EINVAL on the other sides (the
 * bundled reference delivers its own). Any thread. */
int32_t xv_deliver_interrupt(xv_system *system, uint16_t domain, uint32_t vcpu, uint8_t vector);

/* Save and restore (ABI 3; Docs/SaveRestore.md). An image is the domain's Xen state outside
 * guest memory, the same format on either side: a domain saved from a native system restores
 * into a translated one and the other way round.
 *  - xv_domain_save: the domain's vCPUs are stopped. Writes the image into `buffer` (the
 *    caller's, `capacity` bytes) and its size into `*size` (required); with a null or too
 *    small buffer, XV_ENOSPC and the size needed. XV_ESRCH for an unknown domain.
 *  - xv_domain_restore: into a domain created with the same configuration that has made no
 *    hypercall yet, after the embedder copied the guest's memory into it. The image is read
 *    whole (borrowed for the call). XV_EIMAGE with `*refusal` (optional) set to an
 *    XV_IMAGE_REFUSED_* when the image is refused, which changes nothing.
 *  - xv_domain_finish_restore: once every domain that moves is restored, shows their grant
 *    mappings again (checked against their granters' restored tables). XV_ESRCH for an
 *    unknown domain. */
int32_t xv_domain_save(xv_system *system, uint16_t domain, uint8_t *buffer, uint64_t capacity, uint64_t *size);
int32_t xv_domain_restore(xv_system *system, uint16_t domain, const uint8_t *image, uint64_t size, uint32_t *refusal);
int32_t xv_domain_finish_restore(xv_system *system, uint16_t domain);

/* Viridian hypercalls the translated side issued so far (0 on the native side). */
uint64_t xv_viridian_hypercalls(xv_system *system);

#ifdef __cplusplus
}
#endif

#endif /* XEN_VIRIDIAN_H */
