/* The blkif exchange of blkif_ring.h. Written for this project against the public headers. */
#include "blkif_ring.h"
#include <stddef.h>
#include <string.h>

#if __has_include(<xen/io/blkif.h>)
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/memory.h>
/* ring.h's barriers are the includer's to define (xen_mb, xen_rmb, xen_wmb at this interface
 * version). */
#define xen_mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define xen_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define xen_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define rmb() xen_rmb()
#include <xen/io/ring.h>
#include <xen/io/blkif.h>

enum { RING_REF = 8, DATA_REF = 9, PAGE = 4096 };

typedef struct ring_state {
    blkif_front_ring_t front;
    blkif_back_ring_t back;
    uint32_t front_port, back_port;
    uint32_t ring_handle;
    uint64_t notifications_to_back, notifications_to_front;
} ring_state;

_Static_assert(sizeof(ring_state) <= sizeof(xv_ring_state), "xv_ring_state holds ring_state");

int xv_blkif_available(void) { return 1; }

static void *args(const xv_ring_host *h, uint16_t dom, uint64_t gfn) {
    void *p = h->frame(h->context, dom, gfn);
    if (p) memset(p, 0, 256);
    return p;
}

static int64_t call(const xv_ring_host *h, uint16_t dom, uint64_t gfn, uint64_t rax, uint64_t cmd, uint64_t count) {
    return h->hypercall(h->context, dom, rax, cmd, gfn << 12, count);
}

/* The guest's event handling: takes the port's pending bit in its shared_info. */
static int take_event(const xv_ring_host *h, uint16_t dom, uint64_t shinfo, uint32_t port) {
    struct shared_info *si = h->frame(h->context, dom, shinfo);
    if (!si) return 0;
    xen_ulong_t bit = (xen_ulong_t)1 << (port % (8 * sizeof(xen_ulong_t)));
    xen_ulong_t old = __atomic_fetch_and(&si->evtchn_pending[port / (8 * sizeof(xen_ulong_t))], ~bit, __ATOMIC_SEQ_CST);
    return (old & bit) != 0;
}

static int64_t notify(const xv_ring_host *h, uint16_t dom, uint64_t args_gfn, uint32_t port) {
    evtchn_send_t *send = args(h, dom, args_gfn);
    send->port = port;
    return call(h, dom, args_gfn, __HYPERVISOR_event_channel_op, EVTCHNOP_send, 0);
}

/* A v1 grant of the frontend's frame `gfn` to the backend: domid and frame first, then the
 * flags, as a guest must publish them. */
static void grant(const xv_ring_host *h, const xv_ring_layout *l, uint32_t ref, uint64_t gfn, int readonly) {
    grant_entry_v1_t *table = h->frame(h->context, l->front, l->front_grant_frame);
    table[ref].domid = l->back;
    table[ref].frame = (uint32_t)gfn;
    __atomic_store_n(&table[ref].flags, (uint16_t)(GTF_permit_access | (readonly ? GTF_readonly : 0)), __ATOMIC_RELEASE);
}

int64_t xv_blkif_setup(const xv_ring_host *h, const xv_ring_layout *l, xv_ring_state *raw) {
    ring_state *s = (ring_state *)raw;
    memset(s, 0, sizeof *s);
    int64_t rc;
    /* 1: the frontend maps its grant table frame. */
    struct xen_add_to_physmap *xatp = args(h, l->front, l->front_args);
    xatp->domid = DOMID_SELF;
    xatp->space = XENMAPSPACE_grant_table;
    xatp->idx = 0;
    xatp->gpfn = l->front_grant_frame;
    if ((rc = call(h, l->front, l->front_args, __HYPERVISOR_memory_op, XENMEM_add_to_physmap, 0)) != 0) return -1000 + rc;
    /* 2: the shared ring, initialised and granted; the data pages granted writable. */
    blkif_sring_t *sring = h->frame(h->context, l->front, l->ring_frame);
    if (!sring) return -2000;
    SHARED_RING_INIT(sring);
    FRONT_RING_INIT(&s->front, sring, PAGE);
    grant(h, l, RING_REF, l->ring_frame, 0);
    for (uint32_t i = 0; i < l->data_pages; i++) grant(h, l, DATA_REF + i, l->data_frame + i, 0);
    /* 3: an unbound port for the backend. */
    evtchn_alloc_unbound_t *alloc = args(h, l->front, l->front_args);
    alloc->dom = DOMID_SELF;
    alloc->remote_dom = l->back;
    if ((rc = call(h, l->front, l->front_args, __HYPERVISOR_event_channel_op, EVTCHNOP_alloc_unbound, 0)) != 0) return -3000 + rc;
    s->front_port = ((evtchn_alloc_unbound_t *)h->frame(h->context, l->front, l->front_args))->port;
    /* 4: the backend binds to it. */
    evtchn_bind_interdomain_t *bind = args(h, l->back, l->back_args);
    bind->remote_dom = l->front;
    bind->remote_port = s->front_port;
    if ((rc = call(h, l->back, l->back_args, __HYPERVISOR_event_channel_op, EVTCHNOP_bind_interdomain, 0)) != 0) return -4000 + rc;
    s->back_port = ((evtchn_bind_interdomain_t *)h->frame(h->context, l->back, l->back_args))->local_port;
    /* 5: the backend maps the ring. */
    gnttab_map_grant_ref_t *map = args(h, l->back, l->back_args);
    map->host_addr = l->back_ring_frame << 12;
    map->flags = GNTMAP_host_map;
    map->ref = RING_REF;
    map->dom = l->front;
    if ((rc = call(h, l->back, l->back_args, __HYPERVISOR_grant_table_op, GNTTABOP_map_grant_ref, 1)) != 0) return -5000 + rc;
    map = h->frame(h->context, l->back, l->back_args);
    if (map->status != GNTST_okay) return -5000 + map->status;
    s->ring_handle = map->handle;
    blkif_sring_t *back_view = h->frame(h->context, l->back, l->back_ring_frame);
    if (!back_view) return -5999;
    BACK_RING_INIT(&s->back, back_view, PAGE);
    return 0;
}

/* The backend: every request on the ring, carried out with grant copies between the
 * frontend's data page and the backend's disk, answered, and the frontend notified. */
static int64_t serve(const xv_ring_host *h, const xv_ring_layout *l, ring_state *s) {
    int more;
    do {
        RING_IDX rp = s->back.sring->req_prod;
        rmb();
        while (s->back.req_cons != rp) {
            blkif_request_t req = *RING_GET_REQUEST(&s->back, s->back.req_cons);
            s->back.req_cons++;
            int16_t status = BLKIF_RSP_ERROR;
            if ((req.operation == BLKIF_OP_WRITE || req.operation == BLKIF_OP_READ) && req.nr_segments == 1) {
                uint64_t disk = l->back_disk_frame + (req.sector_number / 8) % l->data_pages;
                unsigned len = (req.seg[0].last_sect - req.seg[0].first_sect + 1) * 512;
                gnttab_copy_t *c = args(h, l->back, l->back_args);
                if (req.operation == BLKIF_OP_WRITE) {
                    c->source.u.ref = req.seg[0].gref; c->source.domid = l->front; c->source.offset = req.seg[0].first_sect * 512;
                    c->dest.u.gmfn = disk; c->dest.domid = DOMID_SELF; c->dest.offset = req.seg[0].first_sect * 512;
                    c->flags = GNTCOPY_source_gref;
                } else {
                    c->source.u.gmfn = disk; c->source.domid = DOMID_SELF; c->source.offset = req.seg[0].first_sect * 512;
                    c->dest.u.ref = req.seg[0].gref; c->dest.domid = l->front; c->dest.offset = req.seg[0].first_sect * 512;
                    c->flags = GNTCOPY_dest_gref;
                }
                c->len = (uint16_t)len;
                int64_t rc = call(h, l->back, l->back_args, __HYPERVISOR_grant_table_op, GNTTABOP_copy, 1);
                c = h->frame(h->context, l->back, l->back_args);
                if (rc == 0 && c->status == GNTST_okay) status = BLKIF_RSP_OKAY;
            }
            blkif_response_t *rsp = RING_GET_RESPONSE(&s->back, s->back.rsp_prod_pvt);
            rsp->id = req.id;
            rsp->operation = req.operation;
            rsp->status = status;
            s->back.rsp_prod_pvt++;
        }
        int notify_front;
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&s->back, notify_front);
        if (notify_front) {
            if (notify(h, l->back, l->back_args, s->back_port) != 0) return -7000;
            s->notifications_to_front++;
        }
        RING_FINAL_CHECK_FOR_REQUESTS(&s->back, more);
    } while (more);
    return 0;
}

/* One request through the ring: pushed, the backend notified (and the event checked where it
 * lands), served, the frontend's event taken, and the response consumed. */
static int64_t round_trip(const xv_ring_host *h, const xv_ring_layout *l, ring_state *s, uint8_t op, uint32_t page, uint64_t id, uint64_t sector) {
    blkif_request_t *req = RING_GET_REQUEST(&s->front, s->front.req_prod_pvt);
    memset(req, 0, sizeof *req);
    req->operation = op;
    req->nr_segments = 1;
    req->id = id;
    req->sector_number = sector;
    req->seg[0].gref = DATA_REF + page;
    req->seg[0].first_sect = 0;
    req->seg[0].last_sect = 7;
    s->front.req_prod_pvt++;
    int notify_back;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&s->front, notify_back);
    if (notify_back) {
        if (notify(h, l->front, l->front_args, s->front_port) != 0) return -6000;
        s->notifications_to_back++;
        if (!take_event(h, l->back, l->back_shared_info, s->back_port)) return -6001;
    }
    int64_t rc = serve(h, l, s);
    if (rc != 0) return rc;
    if (s->notifications_to_front && !take_event(h, l->front, l->front_shared_info, s->front_port)) return -8001;
    int more;
    do {
        RING_IDX rp = s->front.sring->rsp_prod;
        rmb();
        while (s->front.rsp_cons != rp) {
            blkif_response_t *rsp = RING_GET_RESPONSE(&s->front, s->front.rsp_cons);
            s->front.rsp_cons++;
            if (rsp->id != id || rsp->operation != op) return -8002;
            if (rsp->status != BLKIF_RSP_OKAY) return -8003;
        }
        RING_FINAL_CHECK_FOR_RESPONSES(&s->front, more);
    } while (more);
    return 0;
}

int64_t xv_blkif_exchange(const xv_ring_host *h, const xv_ring_layout *l, xv_ring_state *raw, uint32_t requests) {
    ring_state *s = (ring_state *)raw;
    if (l->data_pages < 2) return -9000;
    int64_t verified = 0;
    for (uint32_t i = 0; i < requests; i++) {
        uint32_t out = (2 * i) % l->data_pages, in = (2 * i + 1) % l->data_pages;
        uint64_t *w = h->frame(h->context, l->front, l->data_frame + out);
        uint64_t *r = h->frame(h->context, l->front, l->data_frame + in);
        if (!w || !r) return -9001;
        for (unsigned k = 0; k < PAGE / 8; k++) w[k] = ((uint64_t)i << 32) ^ (k * 0x9E3779B97F4A7C15ull);
        memset(r, 0, PAGE);
        uint64_t sector = 8 * (uint64_t)(i % l->data_pages);
        int64_t rc = round_trip(h, l, s, BLKIF_OP_WRITE, out, 2 * (uint64_t)i, sector);
        if (rc != 0) return rc;
        rc = round_trip(h, l, s, BLKIF_OP_READ, in, 2 * (uint64_t)i + 1, sector);
        if (rc != 0) return rc;
        if (memcmp(w, r, PAGE) == 0) verified++;
    }
    return verified;
}

int64_t xv_blkif_teardown(const xv_ring_host *h, const xv_ring_layout *l, xv_ring_state *raw) {
    ring_state *s = (ring_state *)raw;
    gnttab_unmap_grant_ref_t *unmap = args(h, l->back, l->back_args);
    unmap->host_addr = l->back_ring_frame << 12;
    unmap->handle = s->ring_handle;
    int64_t rc = call(h, l->back, l->back_args, __HYPERVISOR_grant_table_op, GNTTABOP_unmap_grant_ref, 1);
    if (rc != 0) return rc;
    unmap = h->frame(h->context, l->back, l->back_args);
    return unmap->status;
}

#else
int xv_blkif_available(void) { return 0; }
int64_t xv_blkif_setup(const xv_ring_host *h, const xv_ring_layout *l, xv_ring_state *s) { (void)h; (void)l; (void)s; return -1; }
int64_t xv_blkif_exchange(const xv_ring_host *h, const xv_ring_layout *l, xv_ring_state *s, uint32_t n) { (void)h; (void)l; (void)s; (void)n; return -1; }
int64_t xv_blkif_teardown(const xv_ring_host *h, const xv_ring_layout *l, xv_ring_state *s) { (void)h; (void)l; (void)s; return -1; }
#endif
