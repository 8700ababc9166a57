/*
 * A C embedder of XenViridian, built as C11 and as C++ with -Wall -Wextra -Werror and linked
 * against the static library (Swift runtime) and the Embedded Swift archive (libc only). On
 * each side, native and translated, it runs two guests through the C ABI alone:
 *   callback vectors, an interdomain channel and a send, a grant of one page mapped by the
 *   other domain (the bytes checked through both), a one-shot timer to VIRQ_TIMER, a multicall
 *   of two calls, a migration to the other side (save, a new system, restore, the channel
 *   used again there), a console line, and the shutdown;
 * then checks that both sides gave the same guest-visible results.
 * The Xen numbers and layouts are the public interface's (xen/include/public: xen.h,
 * event_channel.h, grant_table.h, memory.h, hvm/hvm_op.h, hvm/params.h, sched.h), written
 * out here so the consumer needs only xen_viridian.h.
 */
#include "xen_viridian.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 4096u
#define FRAMES 64u
#define MAX_LAYER 16u
#define POOL 8u
#define ARG_GFN 16u        /* each guest's argument page */
#define GRANT_GFN 40u      /* domain 2's grant-table frame 0 */
#define SHARED_GFN 41u     /* domain 2's granted page */
#define MAPPED_GFN 42u     /* where domain 1 maps it */

enum { HC_memory_op = 12, HC_multicall = 13, HC_set_timer_op = 15, HC_xen_version = 17, HC_console_io = 18,
       HC_grant_table_op = 20, HC_sched_op = 29, HC_event_channel_op = 32, HC_hvm_op = 34 };

struct guest {
    uint16_t id;
    uint64_t table[FRAMES + MAX_LAYER];
    void *pages[FRAMES + MAX_LAYER];
    unsigned upcalls;
};

struct embedder {
    struct guest guests[2];
    unsigned shutdowns;
    uint8_t shutdown_reason;
    char console[128];
    unsigned console_lines;
};

static struct guest *guest_of(struct embedder *e, uint16_t domain) {
    return (domain == 1 || domain == 2) ? &e->guests[domain - 1] : NULL;
}

static void on_upcall(void *context, uint16_t domain, uint32_t vcpu, uint8_t vector) {
    struct guest *g = guest_of((struct embedder *)context, domain);
    if (g != NULL && vcpu == 0 && vector == 0x40 + domain) g->upcalls++;
}
static void on_shutdown(void *context, uint16_t domain, uint8_t reason) {
    struct embedder *e = (struct embedder *)context;
    (void)domain;
    e->shutdowns++;
    e->shutdown_reason = reason;
}
static void on_console(void *context, uint16_t domain, const uint8_t *bytes, uint64_t length) {
    struct embedder *e = (struct embedder *)context;
    size_t used = strlen(e->console);
    (void)domain;
    if (used + length + 1 < sizeof e->console) {
        memcpy(e->console + used, bytes, (size_t)length);
        e->console[used + length] = '\0';
    }
    e->console_lines++;
}
/* The guest-physical map: a frame shows a host page (grant maps, add_to_physmap), or a hole. */
static int32_t on_physmap_map(void *context, uint16_t domain, uint64_t gfn, void *page, uint32_t writable) {
    struct guest *g = guest_of((struct embedder *)context, domain);
    (void)writable; /* a real VMM maps the EPT entry read-only when 0 */
    if (g == NULL || gfn >= FRAMES + MAX_LAYER) return 0;
    g->table[gfn] = (uint64_t)(uintptr_t)page;
    return 1;
}
static void on_physmap_unmap(void *context, uint16_t domain, uint64_t gfn, uint32_t release) {
    struct guest *g = guest_of((struct embedder *)context, domain);
    (void)release;
    if (g != NULL && gfn < FRAMES + MAX_LAYER) g->table[gfn] = 0;
}

static void *page_of(struct guest *g, uint64_t gfn) { return (void *)(uintptr_t)g->table[gfn]; }
static void put32(struct guest *g, uint64_t gfn, unsigned offset, uint32_t v) { memcpy((uint8_t *)page_of(g, gfn) + offset, &v, 4); }
static void put16(struct guest *g, uint64_t gfn, unsigned offset, uint16_t v) { memcpy((uint8_t *)page_of(g, gfn) + offset, &v, 2); }
static void put64(struct guest *g, uint64_t gfn, unsigned offset, uint64_t v) { memcpy((uint8_t *)page_of(g, gfn) + offset, &v, 8); }
static uint32_t get32(struct guest *g, uint64_t gfn, unsigned offset) { uint32_t v; memcpy(&v, (uint8_t *)page_of(g, gfn) + offset, 4); return v; }
static uint64_t get64(struct guest *g, uint64_t gfn, unsigned offset) { uint64_t v; memcpy(&v, (uint8_t *)page_of(g, gfn) + offset, 8); return v; }

/* What a guest's upcall handler does: clear vcpu_info[0]'s evtchn_upcall_pending and
 * evtchn_pending_sel, and shared_info's evtchn_pending words (2-level ABI), so the next event
 * raises a new upcall. */
static void acknowledge(struct guest *g) {
    uint8_t *shared = (uint8_t *)page_of(g, 0);
    shared[0] = 0;
    memset(shared + 8, 0, 8);
    memset(shared + 2048, 0, 64 * 8);
}

/* Domain `id` (1 or 2) of the scenario: one vCPU on the embedder's page table, shared_info at frame 0. */
static xv_domain_config domain_config(struct embedder *e, uint16_t id) {
    xv_domain_config dc;
    memset(&dc, 0, sizeof dc);
    dc.domain = id;
    dc.vcpu_count = 1;
    dc.page_table = e->guests[id - 1].table;
    dc.frames = FRAMES;
    dc.shared_info_gfn = 0;
    return dc;
}

static int64_t call(xv_system *s, uint16_t domain, uint64_t rax, uint64_t rdi, uint64_t rsi, uint64_t rdx) {
    xv_hypercall_regs r;
    memset(&r, 0, sizeof r);
    r.rax = rax; r.rdi = rdi; r.rsi = rsi; r.rdx = rdx;
    return xv_hypercall(s, domain, 0, &r);
}

/* The guest-visible outcome of one run, compared between the sides. */
struct outcome {
    int64_t results[16];
    unsigned upcalls[2];
    uint32_t mapped_word, granter_word;
    char console[128];
    uint8_t shutdown_reason;
    unsigned shutdowns;
    uint64_t viridian_calls;
};

#define CHECK(cond, step) do { if (!(cond)) { fprintf(stderr, "%s: step %d failed: %s\n", side_name, (step), #cond); return (step); } } while (0)

static int run(uint32_t side, struct outcome *out) {
    const char *side_name = side == XV_SIDE_NATIVE ? "native" : "translated";
    struct embedder e;
    xv_callbacks callbacks;
    xv_system_config config;
    xv_system *s = NULL;
    uint64_t layer = xv_layer_frame_count(1);
    unsigned d, f;
    uint32_t remote_port, local_port, timer_port;
    uint64_t arg = (uint64_t)ARG_GFN * PAGE;
    int64_t rc;

    memset(&e, 0, sizeof e);
    memset(out, 0, sizeof *out);
    CHECK(layer > 0 && layer <= MAX_LAYER, 1);
    for (d = 0; d < 2; d++) {
        e.guests[d].id = (uint16_t)(d + 1);
        for (f = 0; f < FRAMES + layer; f++) {
            e.guests[d].pages[f] = aligned_alloc(PAGE, PAGE);
            CHECK(e.guests[d].pages[f] != NULL, 2);
            memset(e.guests[d].pages[f], 0, PAGE);
            e.guests[d].table[f] = (uint64_t)(uintptr_t)e.guests[d].pages[f];
        }
    }

    memset(&callbacks, 0, sizeof callbacks);
    callbacks.context = &e;
    callbacks.upcall = on_upcall;
    callbacks.shutdown = on_shutdown;
    callbacks.console = on_console;
    callbacks.physmap_map = on_physmap_map;
    callbacks.physmap_unmap = on_physmap_unmap;
    memset(&config, 0, sizeof config);
    config.side = side;
    config.tsc_hz = 2500000000u;
    CHECK(xv_abi_version() == XV_ABI_VERSION, 3);
    CHECK(xv_system_create(&config, &callbacks, &s) == XV_OK && s != NULL, 4);

    for (d = 0; d < 2; d++) {
        xv_domain_config dc = domain_config(&e, (uint16_t)(d + 1));
        CHECK(xv_domain_create(s, &dc) == XV_OK, 5);
        CHECK(xv_domain_create(s, &dc) == XV_EEXIST, 6);
    }
    {   /* A non-zero reserved field is refused. */
        xv_domain_config bad;
        memset(&bad, 0, sizeof bad);
        bad.domain = 3; bad.vcpu_count = 1; bad.page_table = e.guests[0].table; bad.frames = FRAMES;
        bad.reserved[4] = 1;
        CHECK(xv_domain_create(s, &bad) == XV_EINVAL, 7);
    }
    CHECK(call(s, 9, HC_xen_version, 0, 0, 0) == -3, 8); /* no such domain: -ESRCH */

    /* Each guest: HVMOP_set_param(HVM_PARAM_CALLBACK_IRQ, vector type, 0x40 + id). */
    for (d = 0; d < 2; d++) {
        struct guest *g = &e.guests[d];
        put16(g, ARG_GFN, 0, 0x7FF0);
        put32(g, ARG_GFN, 4, 0);
        put64(g, ARG_GFN, 8, (2ull << 56) | (0x40u + g->id));
        out->results[0] |= call(s, g->id, HC_hvm_op, 0, arg, 0);
    }

    /* Domain 2 offers a port to domain 1, domain 1 binds it and sends. */
    put16(&e.guests[1], ARG_GFN, 0, 0x7FF0);
    put16(&e.guests[1], ARG_GFN, 2, 1);
    out->results[1] = call(s, 2, HC_event_channel_op, 6 /* alloc_unbound */, arg, 0);
    remote_port = get32(&e.guests[1], ARG_GFN, 4);
    put16(&e.guests[0], ARG_GFN, 0, 2);
    put32(&e.guests[0], ARG_GFN, 4, remote_port);
    out->results[2] = call(s, 1, HC_event_channel_op, 0 /* bind_interdomain */, arg, 0);
    local_port = get32(&e.guests[0], ARG_GFN, 8);
    put32(&e.guests[0], ARG_GFN, 0, local_port);
    out->results[3] = call(s, 1, HC_event_channel_op, 4 /* send */, arg, 0);
    CHECK((get64(&e.guests[1], 0, 2048) >> remote_port) & 1, 9);   /* shared_info evtchn_pending */
    CHECK(e.guests[1].upcalls == 1, 10);
    /* Xen marks the new local end pending too (evtchn_bind_interdomain): domain 1's upcall. */
    CHECK(e.guests[0].upcalls == 1, 10);
    acknowledge(&e.guests[0]);
    acknowledge(&e.guests[1]);

    /* Domain 2 maps grant-table frame 0 (XENMEM_add_to_physmap, XENMAPSPACE_grant_table) and
     * grants its page SHARED_GFN to domain 1, read-write (grant_entry_v1, GTF_permit_access). */
    put16(&e.guests[1], ARG_GFN, 0, 0x7FF0);
    put16(&e.guests[1], ARG_GFN, 2, 0);
    put32(&e.guests[1], ARG_GFN, 4, 1);
    put64(&e.guests[1], ARG_GFN, 8, 0);
    put64(&e.guests[1], ARG_GFN, 16, GRANT_GFN);
    out->results[4] = call(s, 2, HC_memory_op, 7, arg, 0);
    CHECK(out->results[4] == 0, 11);
    put16(&e.guests[1], GRANT_GFN, 8 * 8 + 2, 1);             /* ref 8: domid 1 */
    put32(&e.guests[1], GRANT_GFN, 8 * 8 + 4, SHARED_GFN);    /* frame */
    put16(&e.guests[1], GRANT_GFN, 8 * 8, 1);                 /* flags last: GTF_permit_access */
    put32(&e.guests[1], SHARED_GFN, 0, 0x12345678);
    /* Domain 1: GNTTABOP_map_grant_ref at MAPPED_GFN's address (GNTMAP_host_map). */
    put64(&e.guests[0], ARG_GFN, 0, (uint64_t)MAPPED_GFN * PAGE);
    put32(&e.guests[0], ARG_GFN, 8, 2);
    put32(&e.guests[0], ARG_GFN, 12, 8);
    put16(&e.guests[0], ARG_GFN, 16, 2);
    out->results[5] = call(s, 1, HC_grant_table_op, 0, arg, 1);
    out->results[6] = (int16_t)(get32(&e.guests[0], ARG_GFN, 16) >> 16);   /* status */
    CHECK(out->results[5] == 0 && out->results[6] == 0, 12);
    {
        uint32_t handle = get32(&e.guests[0], ARG_GFN, 20);
        out->mapped_word = get32(&e.guests[0], MAPPED_GFN, 0);             /* the granter's bytes */
        put32(&e.guests[0], MAPPED_GFN, 4, 0xCAFEF00D);                      /* written through the map */
        out->granter_word = get32(&e.guests[1], SHARED_GFN, 4);
        CHECK(out->mapped_word == 0x12345678 && out->granter_word == 0xCAFEF00D, 13);
        put64(&e.guests[0], ARG_GFN, 0, (uint64_t)MAPPED_GFN * PAGE);
        put64(&e.guests[0], ARG_GFN, 8, 0);
        put32(&e.guests[0], ARG_GFN, 16, handle);
        out->results[7] = call(s, 1, HC_grant_table_op, 1 /* unmap */, arg, 1);
        out->results[8] = (int16_t)(get32(&e.guests[0], ARG_GFN, 20) & 0xFFFF);
        CHECK(out->results[7] == 0 && out->results[8] == 0, 14);
    }

    /* Domain 1: VIRQ_TIMER on vCPU 0, set_timer_op 1 ms ahead, then time passes. */
    put32(&e.guests[0], ARG_GFN, 0, 0);
    put32(&e.guests[0], ARG_GFN, 4, 0);
    out->results[9] = call(s, 1, HC_event_channel_op, 1 /* bind_virq */, arg, 0);
    timer_port = get32(&e.guests[0], ARG_GFN, 8);
    CHECK(xv_system_time(s, 1) != UINT64_MAX, 15);
    out->results[10] = call(s, 1, HC_set_timer_op, xv_system_time(s, 1) + 1000000u, 0, 0);
    CHECK(e.guests[0].upcalls == 1, 16);
    xv_set_guest_tsc(s, 2500000000ull / 100);     /* 10 ms of guest TSC */
    CHECK(e.guests[0].upcalls == 2, 17);
    CHECK((get64(&e.guests[0], 0, 2048) >> timer_port) & 1, 18);
    acknowledge(&e.guests[0]);

    /* Domain 1: a multicall of xen_version(XENVER_version) and a send on the channel. */
    put64(&e.guests[0], ARG_GFN, 0, HC_xen_version);
    put64(&e.guests[0], ARG_GFN, 16, 0);
    put64(&e.guests[0], ARG_GFN, 64, HC_event_channel_op);
    put64(&e.guests[0], ARG_GFN, 64 + 16, 4);
    put64(&e.guests[0], ARG_GFN, 64 + 24, arg + 256);
    put32(&e.guests[0], ARG_GFN, 256, local_port);
    out->results[11] = call(s, 1, HC_multicall, arg, 2, 0);
    out->results[12] = (int64_t)get64(&e.guests[0], ARG_GFN, 8);        /* 4.17 as (4 << 16) | 17 */
    out->results[13] = (int64_t)get64(&e.guests[0], ARG_GFN, 64 + 8);
    CHECK(out->results[11] == 0 && out->results[12] == ((4 << 16) | 17) && out->results[13] == 0, 19);
    CHECK(e.guests[1].upcalls == 2, 19);   /* the multicall's send */

    out->viridian_calls = xv_viridian_hypercalls(s);

    /* Migration to the other side (ABI 3): both domains saved, the system destroyed, a system
     * of the other side created over the same guest memory (the embedder's copy), the images
     * restored; then the channel, the callback vector and Xen time carry on there. */
    {
        uint8_t *images[2];
        uint64_t sizes[2];
        uint32_t refusal = 0;
        uint64_t before = xv_system_time(s, 1);
        for (d = 0; d < 2; d++) {
            CHECK(xv_domain_save(s, (uint16_t)(d + 1), NULL, 0, &sizes[d]) == XV_ENOSPC && sizes[d] > 0, 30);
            images[d] = (uint8_t *)malloc((size_t)sizes[d]);
            CHECK(images[d] != NULL, 31);
            CHECK(xv_domain_save(s, (uint16_t)(d + 1), images[d], sizes[d], &sizes[d]) == XV_OK, 32);
        }
        xv_system_destroy(s);
        s = NULL;
        for (d = 0; d < 2; d++)   /* a fresh partition's own frames (the layer's, past the guest's) */
            for (f = FRAMES; f < FRAMES + layer; f++) memset(e.guests[d].pages[f], 0, PAGE);
        config.side = side == XV_SIDE_NATIVE ? XV_SIDE_TRANSLATED : XV_SIDE_NATIVE;
        CHECK(xv_system_create(&config, &callbacks, &s) == XV_OK && s != NULL, 33);
        for (d = 0; d < 2; d++) {
            xv_domain_config dc = domain_config(&e, (uint16_t)(d + 1));
            CHECK(xv_domain_create(s, &dc) == XV_OK, 34);
        }
        images[0][sizes[0] / 2] ^= 1;   /* a changed byte is refused, and changes nothing */
        CHECK(xv_domain_restore(s, 1, images[0], sizes[0], &refusal) == XV_EIMAGE && refusal == XV_IMAGE_REFUSED_CHECKSUM, 35);
        images[0][sizes[0] / 2] ^= 1;
        CHECK(xv_domain_restore(s, 1, images[1], sizes[1], &refusal) == XV_EIMAGE && refusal == XV_IMAGE_REFUSED_SHAPE, 36);
        for (d = 0; d < 2; d++) CHECK(xv_domain_restore(s, (uint16_t)(d + 1), images[d], sizes[d], &refusal) == XV_OK, 37);
        for (d = 0; d < 2; d++) CHECK(xv_domain_finish_restore(s, (uint16_t)(d + 1)) == XV_OK, 38);
        CHECK(xv_domain_restore(s, 1, images[0], sizes[0], &refusal) == XV_EIMAGE && refusal == XV_IMAGE_REFUSED_NOT_FRESH, 39);
        for (d = 0; d < 2; d++) free(images[d]);
        /* Xen time goes on from the saved value on the new system's clock (TSC 0 there). */
        CHECK(xv_system_time(s, 1) >= before && xv_system_time(s, 1) - before < 100, 40);
        /* The channel: domain 1 sends on its port, domain 2 gets the event and its upcall. */
        acknowledge(&e.guests[1]);
        put32(&e.guests[0], ARG_GFN, 0, local_port);
        CHECK(call(s, 1, HC_event_channel_op, 4 /* send */, arg, 0) == 0, 41);
        CHECK((get64(&e.guests[1], 0, 2048) >> remote_port) & 1, 42);
        CHECK(e.guests[1].upcalls == 3, 43);
    }

    /* Domain 2: a console line, then SCHEDOP_shutdown(poweroff). */
    memcpy((uint8_t *)page_of(&e.guests[1], ARG_GFN) + 512, "hello from domain 2\n", 20);
    out->results[14] = call(s, 2, HC_console_io, 0 /* CONSOLEIO_write */, 20, arg + 512);
    put32(&e.guests[1], ARG_GFN, 0, 0 /* SHUTDOWN_poweroff */);
    out->results[15] = call(s, 2, HC_sched_op, 2 /* SCHEDOP_shutdown */, arg, 0);
    CHECK(e.shutdowns == 1 && e.shutdown_reason == 0, 20);
    CHECK(strcmp(e.console, "hello from domain 2") == 0 && e.console_lines == 1, 21);

    rc = 0;
    out->upcalls[0] = e.guests[0].upcalls;
    out->upcalls[1] = e.guests[1].upcalls;
    memcpy(out->console, e.console, sizeof out->console);
    out->shutdown_reason = e.shutdown_reason;
    out->shutdowns = e.shutdowns;
    xv_system_destroy(s);
    for (d = 0; d < 2; d++)
        for (f = 0; f < FRAMES + layer; f++) free(e.guests[d].pages[f]);
    return (int)rc;
}

int main(void) {
    struct outcome native, translated;
    int a = run(XV_SIDE_NATIVE, &native);
    int b = run(XV_SIDE_TRANSLATED, &translated);
    unsigned i;
    if (a != 0 || b != 0) return 1;
    for (i = 0; i < 16; i++) {
        if (native.results[i] != translated.results[i]) {
            fprintf(stderr, "result %u differs: native %lld, translated %lld\n", i, (long long)native.results[i], (long long)translated.results[i]);
            return 1;
        }
    }
    if (native.upcalls[0] != translated.upcalls[0] || native.upcalls[1] != translated.upcalls[1] ||
        native.mapped_word != translated.mapped_word || native.granter_word != translated.granter_word ||
        strcmp(native.console, translated.console) != 0 || native.shutdown_reason != translated.shutdown_reason) {
        fprintf(stderr, "the sides differ\n");
        return 1;
    }
    if (native.viridian_calls != 0 || translated.viridian_calls == 0) {
        fprintf(stderr, "viridian calls: native %llu, translated %llu\n", (unsigned long long)native.viridian_calls,
                (unsigned long long)translated.viridian_calls);
        return 1;
    }
    printf("c consumer: ABI %u; native and translated agree, each migrated to the other side: upcalls %u/%u, grant map read 0x%08x and wrote 0x%08x, "
           "console \"hello from domain 2\", shutdown %u; translated issued %llu Viridian calls\n",
           xv_abi_version(), native.upcalls[0], native.upcalls[1], native.mapped_word, native.granter_word,
           native.shutdown_reason, (unsigned long long)translated.viridian_calls);
    return 0;
}
