/* A Xen split-driver exchange for the tests: a blkif frontend in one guest and a backend in
 * another, written against libxen-dev's xen/io/ring.h and xen/io/blkif.h, talking through a
 * granted shared ring, granted data pages and an interdomain event channel. They reach the
 * layer only through the two callbacks below (a guest's hypercall, and a guest frame as the
 * guest itself sees it), so the same C code runs over XenNative and over XenViridian. */
#ifndef XV_BLKIF_RING_H
#define XV_BLKIF_RING_H
#include <stdint.h>

typedef struct xv_ring_host {
    void *context;
    /* The guest `domain`'s hypercall with these registers; the value for RAX. */
    int64_t (*hypercall)(void *context, uint16_t domain, uint64_t rax, uint64_t rdi, uint64_t rsi, uint64_t rdx);
    /* The host address of `domain`'s frame `gfn` as the guest sees it; NULL for a hole. */
    void *(*frame)(void *context, uint16_t domain, uint64_t gfn);
} xv_ring_host;

/* Where each guest keeps things (guest frame numbers). */
typedef struct xv_ring_layout {
    uint16_t front, back;
    uint64_t front_args, back_args;      /* each guest's page for hypercall arguments */
    uint64_t front_shared_info, back_shared_info;
    uint64_t front_grant_frame;          /* where the frontend maps its grant table's frame 0 */
    uint64_t ring_frame;                 /* the frontend's shared ring page */
    uint64_t data_frame;                 /* the frontend's data pages, data_pages of them */
    uint32_t data_pages;
    uint64_t back_ring_frame;            /* where the backend maps the ring */
    uint64_t back_disk_frame;            /* the backend's disk: data_pages frames of its own */
} xv_ring_layout;

/* Opaque to the caller: the two ring views, ports and handles. */
typedef struct xv_ring_state { uint64_t words[32]; } xv_ring_state;

/* 1 when libxen-dev's headers were there at build time. */
int xv_blkif_available(void);
/* Grants, the event channel and the backend's mapping of the ring: 0, or the failing step as a
 * negative number (-1000 * step - the call's own error). */
int64_t xv_blkif_setup(const xv_ring_host *host, const xv_ring_layout *layout, xv_ring_state *state);
/* `requests` writes, each followed by a read of the same sectors into another page, through
 * the ring: the number of reads whose data came back intact and whose responses were
 * BLKIF_RSP_OKAY, or a negative step code. The event channel must carry every notification. */
int64_t xv_blkif_exchange(const xv_ring_host *host, const xv_ring_layout *layout, xv_ring_state *state, uint32_t requests);
/* The backend's unmap of the ring: 0 or a negative code. */
int64_t xv_blkif_teardown(const xv_ring_host *host, const xv_ring_layout *layout, xv_ring_state *state);

#endif
