/*
 * The tiny guest: a freestanding PVH kernel the project builds from source (build.sh), written
 * against Xen's own public headers (libxen-dev, /usr/include/xen) the way any PV-on-HVM guest is. It
 * does what a Xen guest does at boot and reports each result on its console, so the same
 * guest over the native and the translated side must print the same lines:
 *   - finds Xen's CPUID leaves and has Xen write its hypercall page (the MSR the leaves name);
 *   - maps shared_info, registers its vcpu_info, sets its callback vector and takes upcalls
 *     on it (the local APIC delivers them; the handler acknowledges with an EOI);
 *   - binds VIRQ_TIMER and an IPI port, arms one-shot timers and reads the pvclock;
 *   - blocks and polls (SCHEDOP_block, SCHEDOP_poll);
 *   - with `role=front peer=N`: grants a page to domain N, allocates the port, publishes
 *     both in xenstore and runs a ring (xen/io/ring.h) of requests to it;
 *     with `role=back peer=N`: watches N's xenstore entries, maps the grant into a frame it
 *     ballooned out, binds the port, serves the ring, unmaps and repopulates the frame;
 *   - with `bench=N`: times N of each hot hypercall with rdtsc, including the exit;
 *   - shuts down (poweroff; crash on any failure).
 * Nothing here is Xen's code: the structures and numbers come from the public headers.
 */
#include <stdint.h>
#include <stddef.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/version.h>
#include <xen/event_channel.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/memory.h>
#include <xen/grant_table.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/hvm_vcpu.h>
#include <xen/hvm/params.h>
#include <xen/arch-x86/hvm/start_info.h>
#include <xen/arch-x86/cpuid.h>
#include <xen/io/xs_wire.h>

#define xen_mb() __asm__ volatile("mfence" ::: "memory")
#define xen_rmb() __asm__ volatile("" ::: "memory")
#define xen_wmb() __asm__ volatile("" ::: "memory")
#include <xen/io/ring.h>

#define PAGE_SIZE 4096
#define UPCALL_VECTOR 0xF3
#define LAPIC_BASE 0xFEE00000UL

/* ---- Low-level helpers ---- */

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}
static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d) {
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}
static inline void wrmsr(uint32_t msr, uint64_t v) {
    __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline void lapic_write(uint32_t reg, uint32_t v) { *(volatile uint32_t *)(LAPIC_BASE + reg) = v; }
static inline uint32_t lapic_read(uint32_t reg) { return *(volatile uint32_t *)(LAPIC_BASE + reg); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
/* sti; hlt: the interrupt that ends the halt is taken only after the hlt starts. */
static inline void safe_halt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }
static inline void clear_bit(volatile xen_ulong_t *word, unsigned bit) {
    __asm__ volatile("lock btrq %1, %0" : "+m"(*word) : "r"((uint64_t)bit) : "memory");
}
static inline void set_bit(volatile xen_ulong_t *word, unsigned bit) {
    __asm__ volatile("lock btsq %1, %0" : "+m"(*word) : "r"((uint64_t)bit) : "memory");
}

static void *memset(void *d, int c, size_t n) {
    uint8_t *p = d;
    while (n--) *p++ = (uint8_t)c;
    return d;
}
static void *memcpy(void *d, const void *s, size_t n) {
    uint8_t *p = d;
    const uint8_t *q = s;
    while (n--) *p++ = *q++;
    return d;
}
static size_t strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}
static int strncmp(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) return (uint8_t)a[i] - (uint8_t)b[i];
        if (!a[i]) return 0;
    }
    return 0;
}

/* ---- Hypercalls through the page Xen writes ---- */

static uint8_t hypercall_page[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));

static long hypercall(unsigned nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5) {
    register uint64_t r10 __asm__("r10") = a4;
    register uint64_t r8 __asm__("r8") = a5;
    uint64_t stub = (uint64_t)(hypercall_page + nr * 32);
    long ret;
    __asm__ volatile("call *%%rcx"
                     : "=a"(ret), "+D"(a1), "+S"(a2), "+d"(a3), "+r"(r10), "+r"(r8), "+c"(stub)
                     :
                     : "memory", "r11");
    return ret;
}
#define HC(nr, a, b) hypercall(nr, (uint64_t)(a), (uint64_t)(b), 0, 0, 0)
#define HC3(nr, a, b, c) hypercall(nr, (uint64_t)(a), (uint64_t)(b), (uint64_t)(c), 0, 0)

/* ---- Console: the debug port before the hypercall page, CONSOLEIO_write after ---- */

static int have_hypercalls;
static char line[256];
static unsigned line_len;

static void flush_line(void) {
    if (have_hypercalls) {
        line[line_len++] = '\n';
        HC3(__HYPERVISOR_console_io, CONSOLEIO_write, line_len, line);
    } else {
        for (unsigned i = 0; i < line_len; i++) outb(0xE9, (uint8_t)line[i]);
        outb(0xE9, '\n');
    }
    line_len = 0;
}
static void put_char(char c) {
    if (c == '\n') { flush_line(); return; }
    if (line_len < sizeof(line) - 1) line[line_len++] = c;
}
static void put_str(const char *s) { while (*s) put_char(*s++); }
static void put_unsigned(uint64_t v, unsigned base) {
    char digits[24];
    int n = 0;
    do { digits[n++] = "0123456789abcdef"[v % base]; v /= base; } while (v);
    while (n) put_char(digits[--n]);
}
/* A printf of %s, %d (signed 64-bit), %u, %x (unsigned 64-bit). */
static void print(const char *fmt, ...) {
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    for (; *fmt; fmt++) {
        if (*fmt != '%') { put_char(*fmt); continue; }
        switch (*++fmt) {
        case 's': put_str(__builtin_va_arg(ap, const char *)); break;
        case 'd': {
            int64_t v = __builtin_va_arg(ap, int64_t);
            if (v < 0) { put_char('-'); v = -v; }
            put_unsigned((uint64_t)v, 10);
            break;
        }
        case 'u': put_unsigned(__builtin_va_arg(ap, uint64_t), 10); break;
        case 'x': put_unsigned(__builtin_va_arg(ap, uint64_t), 16); break;
        default: put_char(*fmt); break;
        }
    }
    __builtin_va_end(ap);
}

static void shutdown(unsigned reason) {
    struct sched_shutdown s = { .reason = reason };
    HC(__HYPERVISOR_sched_op, SCHEDOP_shutdown, &s);
    for (;;) { cli(); __asm__ volatile("hlt"); }
}
static void fail(const char *what, int64_t rc) {
    print("tiny: FAIL %s (%d)\n", what, rc);
    shutdown(SHUTDOWN_crash);
}
#define CHECK(expr, what) do { long rc_ = (expr); if (rc_ < 0) fail(what, rc_); } while (0)

/* ---- Interrupts ---- */

struct idt_gate {
    uint16_t offset_low, selector;
    uint8_t ist, type;
    uint16_t offset_mid;
    uint32_t offset_high, zero;
};
static struct idt_gate idt[256] __attribute__((aligned(16)));
extern char upcall_entry[];
#define STUB(n) extern char exception_##n[];
STUB(0) STUB(1) STUB(2) STUB(3) STUB(4) STUB(5) STUB(6) STUB(7) STUB(8) STUB(9) STUB(10) STUB(11)
STUB(12) STUB(13) STUB(14) STUB(15) STUB(16) STUB(17) STUB(18) STUB(19) STUB(20) STUB(21) STUB(22)
STUB(23) STUB(24) STUB(25) STUB(26) STUB(27) STUB(28) STUB(29) STUB(30) STUB(31)
static char *const exception_stubs[32] = {
    exception_0, exception_1, exception_2, exception_3, exception_4, exception_5, exception_6, exception_7,
    exception_8, exception_9, exception_10, exception_11, exception_12, exception_13, exception_14, exception_15,
    exception_16, exception_17, exception_18, exception_19, exception_20, exception_21, exception_22, exception_23,
    exception_24, exception_25, exception_26, exception_27, exception_28, exception_29, exception_30, exception_31,
};

static void set_gate(unsigned vector, void *handler) {
    uint64_t a = (uint64_t)handler;
    idt[vector] = (struct idt_gate){ .offset_low = (uint16_t)a, .selector = 0x08, .type = 0x8E,
                                     .offset_mid = (uint16_t)(a >> 16), .offset_high = (uint32_t)(a >> 32) };
}

static void use_idt(void) {
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } pointer = { sizeof(idt) - 1, (uint64_t)idt };
    __asm__ volatile("lidt %0" ::"m"(pointer));
}
static void load_idt(void) {
    for (unsigned v = 0; v < 32; v++) set_gate(v, exception_stubs[v]);
    set_gate(UPCALL_VECTOR, upcall_entry);
    use_idt();
}

void guest_exception(uint64_t vector, uint64_t *frame) {
    /* With an error code the RIP is one slot further up. */
    int has_error = vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21;
    print("tiny: FAIL exception %u at rip 0x%x\n", vector, frame[has_error ? 1 : 0]);
    shutdown(SHUTDOWN_crash);
}

/* ---- Events ---- */

static struct shared_info *shared;
static struct vcpu_info *vcpu;
static struct vcpu_info vcpu_info_area __attribute__((aligned(64)));
static uint8_t shared_info_frame[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static volatile uint64_t port_hits[64];   /* upcalls per port, ports 0 ... 63 */
static volatile uint64_t upcalls;

/* The upcall: clear the pending flag, then take every pending, unmasked port (2-level ABI,
 * xen/include/public/xen.h's shared_info and vcpu_info), acknowledge at the local APIC. */
void guest_upcall(void) {
    upcalls++;
    /* vCPU 0 registered its own vcpu_info; vCPU 1 keeps shared_info's (LAPIC ID = vCPU). */
    struct vcpu_info *v = (lapic_read(0x20) >> 24) == 0 ? vcpu : &shared->vcpu_info[1];
    v->evtchn_upcall_pending = 0;
    xen_ulong_t selector = __atomic_exchange_n(&v->evtchn_pending_sel, 0, __ATOMIC_SEQ_CST);
    while (selector) {
        unsigned word = (unsigned)__builtin_ctzll(selector);
        selector &= selector - 1;
        xen_ulong_t pending = shared->evtchn_pending[word] & ~shared->evtchn_mask[word];
        while (pending) {
            unsigned bit = (unsigned)__builtin_ctzll(pending);
            pending &= pending - 1;
            clear_bit(&shared->evtchn_pending[word], bit);
            unsigned port = word * 64 + bit;
            if (port < 64) port_hits[port]++;
        }
    }
    lapic_write(0xB0, 0);   /* EOI */
}

/* Halts (interrupts on) until port `port` has had `hits` upcalls. */
static void wait_port(unsigned port, uint64_t hits) {
    while (port_hits[port] < hits) safe_halt();
    cli();
}

static uint64_t pvclock_ns(void) {
    volatile struct vcpu_time_info *t = &vcpu->time;
    uint32_t version;
    uint64_t ns;
    do {
        version = t->version;
        __asm__ volatile("lfence" ::: "memory");
        uint64_t delta = rdtsc() - t->tsc_timestamp;
        int8_t shift = t->tsc_shift;
        delta = shift < 0 ? delta >> -shift : delta << shift;
        ns = t->system_time + (uint64_t)(((unsigned __int128)delta * t->tsc_to_system_mul) >> 32);
        __asm__ volatile("lfence" ::: "memory");
    } while ((version & 1) || version != t->version);
    return ns;
}

static long set_timer(uint64_t deadline) {
    struct vcpu_set_singleshot_timer timer = { .timeout_abs_ns = deadline, .flags = 0 };
    return HC3(__HYPERVISOR_vcpu_op, VCPUOP_set_singleshot_timer, 0, &timer);
}

/* ---- Xenstore client (xen/include/public/io/xs_wire.h) ---- */

static struct xenstore_domain_interface *store;
static unsigned store_port;
static uint32_t store_req_id;
static volatile int watch_fired;

static void store_put(const void *data, unsigned len) {
    const uint8_t *p = data;
    while (len) {
        while (store->req_prod - store->req_cons >= XENSTORE_RING_SIZE) {
            HC(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &(struct evtchn_send){ .port = store_port });
            safe_halt(); cli();
        }
        unsigned at = MASK_XENSTORE_IDX(store->req_prod);
        store->req[at] = (char)*p++;
        __atomic_thread_fence(__ATOMIC_RELEASE);
        store->req_prod++;
        len--;
    }
}
static void store_get(void *data, unsigned len) {
    uint8_t *p = data;
    while (len) {
        while (store->rsp_prod == store->rsp_cons) { safe_halt(); cli(); }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        *p++ = (uint8_t)store->rsp[MASK_XENSTORE_IDX(store->rsp_cons)];
        store->rsp_cons++;
        len--;
    }
    HC(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &(struct evtchn_send){ .port = store_port });
}

static char store_reply[XENSTORE_PAYLOAD_MAX + 1];

/* One request; the reply's payload goes to store_reply (NUL-terminated), its type is returned.
 * Watch events that arrive first are counted and skipped. */
static uint32_t store_request(uint32_t type, const char *a, const char *b, unsigned *reply_len) {
    unsigned la = (unsigned)strlen(a) + 1, lb = b ? (unsigned)strlen(b) : 0;
    if (type == XS_WATCH) lb += 1;   /* the token's NUL */
    struct xsd_sockmsg msg = { .type = type, .req_id = ++store_req_id, .tx_id = 0, .len = la + lb };
    store_put(&msg, sizeof(msg));
    store_put(a, la);
    if (b) store_put(b, lb);
    HC(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &(struct evtchn_send){ .port = store_port });
    for (;;) {
        struct xsd_sockmsg reply;
        store_get(&reply, sizeof(reply));
        if (reply.len > XENSTORE_PAYLOAD_MAX) fail("xenstore reply too long", reply.len);
        store_get(store_reply, reply.len);
        store_reply[reply.len] = 0;
        if (reply.type == XS_WATCH_EVENT) { watch_fired++; continue; }
        if (reply_len) *reply_len = reply.len;
        return reply.type;
    }
}
static void store_write(const char *path, const char *value) {
    char buf[128];
    unsigned lp = (unsigned)strlen(path) + 1, lv = (unsigned)strlen(value);
    memcpy(buf, path, lp);
    memcpy(buf + lp, value, lv);
    struct xsd_sockmsg msg = { .type = XS_WRITE, .req_id = ++store_req_id, .len = lp + lv };
    store_put(&msg, sizeof(msg));
    store_put(buf, lp + lv);
    HC(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &(struct evtchn_send){ .port = store_port });
    for (;;) {
        struct xsd_sockmsg reply;
        store_get(&reply, sizeof(reply));
        store_get(store_reply, reply.len);
        store_reply[reply.len] = 0;
        if (reply.type == XS_WATCH_EVENT) { watch_fired++; continue; }
        if (reply.type != XS_WRITE) fail("xenstore write", -(int64_t)reply.type);
        return;
    }
}
/* Reads `path` into store_reply; 0 when it exists. */
static int store_read(const char *path) {
    unsigned len;
    return store_request(XS_READ, path, 0, &len) == XS_READ ? 0 : -1;
}
/* Reads one message nobody asked for: a watch event. */
static void store_next_event(void) {
    struct xsd_sockmsg msg;
    store_get(&msg, sizeof(msg));
    if (msg.len > XENSTORE_PAYLOAD_MAX) fail("xenstore message too long", msg.len);
    store_get(store_reply, msg.len);
    if (msg.type == XS_WATCH_EVENT) watch_fired++;
}
/* Watches `path` until it reads `expected`. */
static void store_wait(const char *path, const char *expected) {
    unsigned len;
    if (store_request(XS_WATCH, path, "tiny", &len) != XS_WATCH) fail("xenstore watch", -1);
    for (;;) {
        int seen = watch_fired;
        if (!store_read(path) && !strncmp(store_reply, expected, strlen(expected) + 1)) return;
        while (watch_fired == seen) store_next_event();
    }
}
static uint64_t parse_unsigned(const char *s) {
    uint64_t v = 0;
    while (*s >= '0' && *s <= '9') v = v * 10 + (uint64_t)(*s++ - '0');
    return v;
}
static void format_unsigned(char *out, uint64_t v) {
    char digits[24];
    int n = 0;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *out++ = digits[--n];
    *out = 0;
}

/* ---- The ring: requests carry a value, responses its square plus one ---- */

struct tiny_request { uint32_t id; uint32_t value; };
struct tiny_response { uint32_t id; uint32_t result; };
DEFINE_RING_TYPES(tiny, struct tiny_request, struct tiny_response);

static uint8_t ring_page[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t grant_frame[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t mapping_frame[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
#define RING_REF 8
#define RING_REQUESTS 24

static uint64_t pfn(const void *p) { return (uint64_t)p / PAGE_SIZE; }

static void front(unsigned peer, unsigned self) {
    /* The grant table's first frame, shown at a frame of our own (XENMAPSPACE_grant_table). */
    struct xen_add_to_physmap map = { .domid = DOMID_SELF, .space = XENMAPSPACE_grant_table, .idx = 0, .gpfn = pfn(grant_frame) };
    CHECK(HC(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, &map), "map the grant table");
    grant_entry_v1_t *grants = (grant_entry_v1_t *)grant_frame;
    grants[RING_REF].domid = (domid_t)peer;
    grants[RING_REF].frame = (uint32_t)pfn(ring_page);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    grants[RING_REF].flags = GTF_permit_access;

    struct evtchn_alloc_unbound unbound = { .dom = DOMID_SELF, .remote_dom = (domid_t)peer };
    CHECK(HC(__HYPERVISOR_event_channel_op, EVTCHNOP_alloc_unbound, &unbound), "alloc_unbound");
    unsigned port = unbound.port;

    tiny_sring_t *sring = (tiny_sring_t *)ring_page;
    SHARED_RING_INIT(sring);
    tiny_front_ring_t ring;
    FRONT_RING_INIT(&ring, sring, PAGE_SIZE);

    char value[24];
    format_unsigned(value, RING_REF);
    store_write("device/tiny/0/ring-ref", value);
    format_unsigned(value, port);
    store_write("device/tiny/0/event-channel", value);
    store_write("device/tiny/0/state", "ready");
    print("tiny: front granted ref %u and port %u to domain %u\n", (uint64_t)RING_REF, (uint64_t)port, (uint64_t)peer);
    (void)self;

    /* Requests in two batches, so the ring wraps its notification logic at least once. */
    uint64_t sum = 0, answered = 0;
    for (unsigned batch = 0; batch < 2; batch++) {
        for (unsigned i = 0; i < RING_REQUESTS / 2; i++) {
            struct tiny_request *req = RING_GET_REQUEST(&ring, ring.req_prod_pvt);
            req->id = batch * 100 + i;
            req->value = batch * (RING_REQUESTS / 2) + i + 1;
            ring.req_prod_pvt++;
        }
        int notify;
        RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&ring, notify);
        if (notify) CHECK(HC(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &(struct evtchn_send){ .port = port }), "send");
        while (answered < (batch + 1) * (RING_REQUESTS / 2)) {
            int more;
            do {
                while (RING_HAS_UNCONSUMED_RESPONSES(&ring)) {
                    struct tiny_response *rsp = RING_GET_RESPONSE(&ring, ring.rsp_cons);
                    sum += rsp->result;
                    answered++;
                    ring.rsp_cons++;
                }
                RING_FINAL_CHECK_FOR_RESPONSES(&ring, more);
            } while (more);
            if (answered < (batch + 1) * (RING_REQUESTS / 2)) wait_port(port, port_hits[port] + 1);
        }
    }
    print("tiny: front got %u responses, sum %u\n", answered, sum);
    /* Wait for the back to let go of the page before ending the grant. */
    store_wait("device/tiny/0/backend-state", "closed");
    grants[RING_REF].flags = 0;
    print("tiny: front ended the grant (in use: %u)\n", (uint64_t)(grants[RING_REF].flags & (GTF_reading | GTF_writing)));
}

static void back(unsigned peer) {
    char path[64] = "/local/domain/";
    format_unsigned(path + strlen(path), peer);
    char *tail = path + strlen(path);
    memcpy(tail, "/device/tiny/0/state", 21);
    store_wait(path, "ready");
    memcpy(tail, "/device/tiny/0/ring-ref", 24);
    if (store_read(path)) fail("read ring-ref", -1);
    grant_ref_t ref = (grant_ref_t)parse_unsigned(store_reply);
    memcpy(tail, "/device/tiny/0/event-channel", 29);
    if (store_read(path)) fail("read event-channel", -1);
    unsigned remote_port = (unsigned)parse_unsigned(store_reply);

    /* Balloon out a frame, map the grant into it (GNTMAP_host_map at a guest-physical
     * address, as an HVM guest does), serve the ring, unmap, and populate the frame again. */
    xen_pfn_t frame = pfn(mapping_frame);
    struct xen_memory_reservation out = { .nr_extents = 1, .extent_order = 0, .domid = DOMID_SELF };
    set_xen_guest_handle(out.extent_start, &frame);
    if (HC(__HYPERVISOR_memory_op, XENMEM_decrease_reservation, &out) != 1) fail("decrease_reservation", -1);
    struct gnttab_map_grant_ref map = { .host_addr = pfn(mapping_frame) * PAGE_SIZE, .flags = GNTMAP_host_map, .ref = ref, .dom = (domid_t)peer };
    CHECK(HC3(__HYPERVISOR_grant_table_op, GNTTABOP_map_grant_ref, &map, 1), "map_grant_ref");
    if (map.status != GNTST_okay) fail("map_grant_ref status", map.status);

    struct evtchn_bind_interdomain bind = { .remote_dom = (domid_t)peer, .remote_port = remote_port };
    CHECK(HC(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_interdomain, &bind), "bind_interdomain");
    unsigned port = bind.local_port;
    print("tiny: back mapped ref %u from domain %u, bound port %u\n", (uint64_t)ref, (uint64_t)peer, (uint64_t)port);

    tiny_sring_t *sring = (tiny_sring_t *)mapping_frame;
    tiny_back_ring_t ring;
    BACK_RING_INIT(&ring, sring, PAGE_SIZE);
    unsigned served = 0;
    while (served < RING_REQUESTS) {
        int more;
        do {
            while (RING_HAS_UNCONSUMED_REQUESTS(&ring)) {
                struct tiny_request req = *RING_GET_REQUEST(&ring, ring.req_cons);
                ring.req_cons++;
                struct tiny_response *rsp = RING_GET_RESPONSE(&ring, ring.rsp_prod_pvt);
                rsp->id = req.id;
                rsp->result = req.value * req.value + 1;
                ring.rsp_prod_pvt++;
                served++;
            }
            int notify;
            RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&ring, notify);
            if (notify) CHECK(HC(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &(struct evtchn_send){ .port = port }), "send");
            RING_FINAL_CHECK_FOR_REQUESTS(&ring, more);
        } while (more);
        if (served < RING_REQUESTS) wait_port(port, port_hits[port] + 1);
    }
    print("tiny: back served %u requests\n", (uint64_t)served);

    struct gnttab_unmap_grant_ref unmap = { .host_addr = map.host_addr, .handle = map.handle };
    CHECK(HC3(__HYPERVISOR_grant_table_op, GNTTABOP_unmap_grant_ref, &unmap, 1), "unmap_grant_ref");
    if (unmap.status != GNTST_okay) fail("unmap_grant_ref status", unmap.status);
    struct xen_memory_reservation in = { .nr_extents = 1, .extent_order = 0, .domid = DOMID_SELF };
    set_xen_guest_handle(in.extent_start, &frame);
    if (HC(__HYPERVISOR_memory_op, XENMEM_populate_physmap, &in) != 1) fail("populate_physmap", -1);
    CHECK(HC(__HYPERVISOR_event_channel_op, EVTCHNOP_close, &(struct evtchn_close){ .port = port }), "close");
    memcpy(tail, "/device/tiny/0/backend-state", 29);
    store_write(path, "closed");
    print("tiny: back unmapped the grant and repopulated frame 0x%x\n", (uint64_t)frame);
}

/* ---- A second vCPU: VCPUOP_initialise, VCPUOP_up, an IPI to it, VCPUOP_down ---- */

extern char ap_entry[];
extern char pml4[];
static uint8_t ap_stack[16384] __attribute__((aligned(16)));
static volatile int ap_state;      /* 1: bound its port; 2: took the upcall */
static volatile unsigned ap_port;

void ap_main(void) {
    use_idt();
    lapic_write(0xF0, lapic_read(0xF0) | 0x1FF);
    struct evtchn_bind_ipi ipi = { .vcpu = 1 };
    if (HC(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_ipi, &ipi) < 0) { ap_state = -1; for (;;) { cli(); __asm__ volatile("hlt"); } }
    ap_port = ipi.port;
    __atomic_store_n(&ap_state, 1, __ATOMIC_RELEASE);
    while (port_hits[ap_port] == 0) safe_halt();
    cli();
    __atomic_store_n(&ap_state, 2, __ATOMIC_RELEASE);
    HC3(__HYPERVISOR_vcpu_op, VCPUOP_down, 1, 0);
    for (;;) { cli(); __asm__ volatile("hlt"); }
}

static void second_vcpu(void) {
    struct vcpu_hvm_context ctx = { .mode = VCPU_HVM_MODE_64B };
    ctx.cpu_regs.x86_64 = (struct vcpu_hvm_x86_64){
        .rip = (uint64_t)ap_entry, .rsp = (uint64_t)(ap_stack + sizeof(ap_stack)), .rflags = 2,
        .cr0 = 0x80000011, .cr3 = (uint64_t)pml4, .cr4 = 0x20, .efer = 0x500,   /* PG|ET|PE; PAE; LME|LMA */
    };
    CHECK(HC3(__HYPERVISOR_vcpu_op, VCPUOP_initialise, 1, &ctx), "VCPUOP_initialise");
    CHECK(HC3(__HYPERVISOR_vcpu_op, VCPUOP_up, 1, 0), "VCPUOP_up");
    while (__atomic_load_n(&ap_state, __ATOMIC_ACQUIRE) == 0) __asm__ volatile("pause");
    if (ap_state < 0) fail("vCPU 1 bind_ipi", -1);
    long up = HC3(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 1, 0);
    CHECK(HC(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &(struct evtchn_send){ .port = ap_port }), "send to vCPU 1");
    while (__atomic_load_n(&ap_state, __ATOMIC_ACQUIRE) != 2) __asm__ volatile("pause");
    while (HC3(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 1, 0) != 0) __asm__ volatile("pause");
    print("tiny: vCPU 1 came up (is_up %d), took its IPI upcall on port %u, and went down\n", up, (uint64_t)ap_port);
}

/* ---- Timing hot hypercalls from the guest, exits included ---- */

static void bench(uint64_t n, unsigned ipi_port) {
    /* A masked port: each send only sets the pending bit, so the loop times the hypercall. */
    set_bit(&shared->evtchn_mask[0], ipi_port);
    uint64_t t0 = rdtsc();
    for (uint64_t i = 0; i < n; i++) HC(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &(struct evtchn_send){ .port = ipi_port });
    uint64_t t1 = rdtsc();
    for (uint64_t i = 0; i < n; i++) HC(__HYPERVISOR_xen_version, XENVER_version, 0);
    uint64_t t2 = rdtsc();
    for (uint64_t i = 0; i < n; i++) {
        struct xen_hvm_param param = { .domid = DOMID_SELF, .index = HVM_PARAM_STORE_EVTCHN };
        HC(__HYPERVISOR_hvm_op, HVMOP_get_param, &param);
    }
    uint64_t t3 = rdtsc();
    for (uint64_t i = 0; i < n; i++) set_timer(pvclock_ns() + 1000000000000ull);
    uint64_t t4 = rdtsc();
    set_timer(0);
    clear_bit(&shared->evtchn_pending[0], ipi_port);
    clear_bit(&shared->evtchn_mask[0], ipi_port);
    print("bench: evtchn_send %u cycles %u\n", n, t1 - t0);
    print("bench: xen_version %u cycles %u\n", n, t2 - t1);
    print("bench: hvm_get_param %u cycles %u\n", n, t3 - t2);
    print("bench: set_singleshot_timer %u cycles %u\n", n, t4 - t3);
}

/* ---- The command line ---- */

static const char *option(const char *cmdline, const char *key) {
    size_t k = strlen(key);
    for (const char *p = cmdline; *p; p++) {
        if ((p == cmdline || p[-1] == ' ') && !strncmp(p, key, k) && p[k] == '=') return p + k + 1;
    }
    return 0;
}

void guest_main(uint32_t start_info_address) {
    struct hvm_start_info *start = (struct hvm_start_info *)(uint64_t)start_info_address;
    load_idt();
    if (start->magic != XEN_HVM_START_MAGIC_VALUE) { print("tiny: FAIL no start info\n"); for (;;) { cli(); __asm__ volatile("hlt"); } }
    const char *cmdline = start->cmdline_paddr ? (const char *)start->cmdline_paddr : "";
    print("tiny: start info version %u, %u memory map entries\n", (uint64_t)start->version, (uint64_t)start->memmap_entries);

    /* Xen's leaves: the first base from 0x40000000 in steps of 0x100 that says XenVMMXenVMM. */
    uint32_t base = 0, a, b, c, d;
    for (uint32_t leaf = 0x40000000; leaf < 0x40010000; leaf += 0x100) {
        cpuid(leaf, &a, &b, &c, &d);
        if (b == XEN_CPUID_SIGNATURE_EBX && c == XEN_CPUID_SIGNATURE_ECX && d == XEN_CPUID_SIGNATURE_EDX) { base = leaf; break; }
    }
    if (!base) { print("tiny: FAIL no Xen CPUID leaves\n"); for (;;) { cli(); __asm__ volatile("hlt"); } }
    cpuid(base + 2, &a, &b, &c, &d);
    print("tiny: Xen leaves at 0x%x, %u hypercall page, MSR 0x%x\n", (uint64_t)base, (uint64_t)a, (uint64_t)b);
    wrmsr(b, (uint64_t)hypercall_page);
    have_hypercalls = 1;
    if (option(cmdline, "badmsr")) {
        /* After the real one, a hypercall page past the guest's memory: Xen answers #GP, and so must the host. */
        print("tiny: writing the hypercall MSR with frame 0x%x\n", (uint64_t)(1ull << 33));  /* 1 << 45 as a frame number */
        wrmsr(b, 1ull << 45);
        print("tiny: FAIL no #GP\n");
        for (;;) { cli(); __asm__ volatile("hlt"); }
    }
    long version = HC(__HYPERVISOR_xen_version, XENVER_version, 0);
    print("tiny: Xen %u.%u\n", (uint64_t)(version >> 16), (uint64_t)(version & 0xFFFF));

    struct xen_add_to_physmap map = { .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info, .idx = 0, .gpfn = pfn(shared_info_frame) };
    CHECK(HC(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, &map), "map shared_info");
    shared = (struct shared_info *)shared_info_frame;
    vcpu = &shared->vcpu_info[0];
    struct vcpu_register_vcpu_info info = { .mfn = pfn(&vcpu_info_area), .offset = (uint64_t)&vcpu_info_area % PAGE_SIZE };
    CHECK(HC3(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, 0, &info), "register_vcpu_info");
    vcpu = &vcpu_info_area;
    print("tiny: shared_info at frame 0x%x, vcpu_info registered\n", pfn(shared_info_frame));

    /* The callback: a vector on the local APIC (HVM_PARAM_CALLBACK_IRQ's vector type). */
    lapic_write(0xF0, lapic_read(0xF0) | 0x1FF);   /* software-enable, spurious vector 0xFF */
    struct xen_hvm_param callback = { .domid = DOMID_SELF, .index = HVM_PARAM_CALLBACK_IRQ,
                                      .value = (uint64_t)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56 | UPCALL_VECTOR };
    CHECK(HC(__HYPERVISOR_hvm_op, HVMOP_set_param, &callback), "set the callback vector");

    struct evtchn_bind_virq virq = { .virq = VIRQ_TIMER, .vcpu = 0 };
    CHECK(HC(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_virq, &virq), "bind VIRQ_TIMER");
    struct evtchn_bind_ipi ipi = { .vcpu = 0 };
    CHECK(HC(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_ipi, &ipi), "bind_ipi");
    print("tiny: VIRQ_TIMER on port %u, IPI on port %u\n", (uint64_t)virq.port, (uint64_t)ipi.port);
    if (virq.port >= 64 || ipi.port >= 64) fail("ports past the first word", virq.port);

    CHECK(HC(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &(struct evtchn_send){ .port = ipi.port }), "send IPI");
    wait_port(ipi.port, 1);
    print("tiny: IPI upcall taken on vector 0x%x\n", (uint64_t)UPCALL_VECTOR);

    uint64_t now = pvclock_ns();
    uint64_t deadline = now + 2000000;
    CHECK(set_timer(deadline), "set_singleshot_timer");
    wait_port(virq.port, 1);
    uint64_t after = pvclock_ns();
    print("tiny: one-shot timer fired %s its deadline\n", after >= deadline ? "after" : "BEFORE");
    if (after < deadline) fail("timer early", (int64_t)(deadline - after));

    /* SCHEDOP_block with a timer armed: the vCPU sleeps until the timer's event. */
    CHECK(set_timer(pvclock_ns() + 3000000), "set_singleshot_timer");
    sti();
    CHECK(HC(__HYPERVISOR_sched_op, SCHEDOP_block, 0), "SCHEDOP_block");
    wait_port(virq.port, 2);
    print("tiny: SCHEDOP_block woke for the timer\n");

    /* SCHEDOP_poll on a port that stays quiet: returns at its timeout. */
    evtchn_port_t poll_port = ipi.port;
    set_bit(&shared->evtchn_mask[0], poll_port);
    struct sched_poll poll = { .nr_ports = 1, .timeout = pvclock_ns() + 2000000 };
    set_xen_guest_handle(poll.ports, &poll_port);
    uint64_t poll_deadline = poll.timeout;
    CHECK(HC(__HYPERVISOR_sched_op, SCHEDOP_poll, &poll), "SCHEDOP_poll");
    print("tiny: SCHEDOP_poll returned %s its timeout\n", pvclock_ns() >= poll_deadline ? "after" : "BEFORE");
    clear_bit(&shared->evtchn_mask[0], poll_port);

    /* Hostile arguments: an unassigned hypercall (63: its stub exists, no handler), an argument pointer past the guest's memory, a
     * port past the ABI's last, a shared_info frame past any p2m. Each gets Xen's errno. */
    long unknown = HC(63, 0, 0);
    long unmapped = HC(__HYPERVISOR_event_channel_op, EVTCHNOP_send, 1ull << 40);
    long bad_port = HC(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &(struct evtchn_send){ .port = 1u << 30 });
    struct xen_add_to_physmap far = { .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info, .idx = 0, .gpfn = 1ull << 52 };
    long far_frame = HC(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, &far);
    print("tiny: hostile calls: unknown %d, unmapped argument %d, bad port %d, far frame %d\n", unknown, unmapped, bad_port, far_frame);

    if (option(cmdline, "smp")) second_vcpu();

    const char *bench_n = option(cmdline, "bench");
    if (bench_n) bench(parse_unsigned(bench_n), ipi.port);

    const char *role = option(cmdline, "role");
    if (role) {
        struct xen_hvm_param p = { .domid = DOMID_SELF, .index = HVM_PARAM_STORE_PFN };
        CHECK(HC(__HYPERVISOR_hvm_op, HVMOP_get_param, &p), "get STORE_PFN");
        store = (struct xenstore_domain_interface *)(p.value * PAGE_SIZE);
        p.index = HVM_PARAM_STORE_EVTCHN;
        CHECK(HC(__HYPERVISOR_hvm_op, HVMOP_get_param, &p), "get STORE_EVTCHN");
        store_port = (unsigned)p.value;
        if (store_read("domid")) fail("read domid", -1);
        unsigned self = (unsigned)parse_unsigned(store_reply);
        if (store_read("name")) fail("read name", -1);
        print("tiny: xenstore says domid %u, name %s\n", (uint64_t)self, store_reply);
        if (option(cmdline, "xshostile")) {
            /* A producer index a whole ring ahead of the consumer: the server must refuse the
             * connection (XENSTORE_ERROR_RINGIDX), not read past its ring. */
            store->req_prod = store->req_cons + XENSTORE_RING_SIZE + 16;
            HC(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &(struct evtchn_send){ .port = store_port });
            uint64_t until = pvclock_ns() + 2000000000ull;
            while (store->error == XENSTORE_ERROR_NONE && pvclock_ns() < until) __asm__ volatile("pause");
            print("tiny: hostile store ring: error %u\n", (uint64_t)store->error);
            shutdown(SHUTDOWN_poweroff);
        }
        if (option(cmdline, "xsflood")) {
            /* Requests without ever reading a reply: the server must stop reading them (its
             * replies would otherwise pile up in the host), leaving requests on the ring. */
            struct xsd_sockmsg msg = { .type = XS_READ, .len = 6 };
            uint64_t until = pvclock_ns() + 3000000000ull;
            unsigned sent = 0;
            while (pvclock_ns() < until && sent < 100000) {
                if (XENSTORE_RING_SIZE - (store->req_prod - store->req_cons) >= sizeof(msg) + 6) {
                    msg.req_id = ++store_req_id;
                    const uint8_t *m = (const uint8_t *)&msg;
                    for (unsigned i = 0; i < sizeof(msg); i++) store->req[MASK_XENSTORE_IDX(store->req_prod + i)] = (char)m[i];
                    for (unsigned i = 0; i < 6; i++) store->req[MASK_XENSTORE_IDX(store->req_prod + sizeof(msg) + i)] = "domid"[i];
                    __atomic_thread_fence(__ATOMIC_RELEASE);
                    store->req_prod += sizeof(msg) + 6;
                    sent++;
                    HC(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &(struct evtchn_send){ .port = store_port });
                } else {
                    __asm__ volatile("pause");
                }
            }
            print("tiny: store flood: the server stopped reading: %s\n", store->req_prod != store->req_cons && sent < 100000 ? "yes" : "no");
            shutdown(SHUTDOWN_poweroff);
        }
        unsigned peer = (unsigned)parse_unsigned(option(cmdline, "peer") ? option(cmdline, "peer") : "0");
        if (!strncmp(role, "front", 5)) front(peer, self);
        else if (!strncmp(role, "back", 4)) back(peer);
    }
    print("tiny: done\n");
    shutdown(SHUTDOWN_poweroff);
}
