/* Locks and ordered accesses for the library's own state (not guest memory).
 *
 * The threading contract (Docs/Threading.md): each vCPU runs on its own thread, so the
 * library's per-domain and per-port state is shared between threads. Its locks are
 * test-and-test-and-set spinlocks on one 32-bit word, as Xen's spinlocks are: a hypercall
 * holds one for a few dozen instructions and never sleeps with it. A waiter spins with the
 * CPU's pause hint and yields its time slice now and then, so a holder preempted on a busy
 * host is not starved. Acquire and release orderings are the C11 ones, which ThreadSanitizer
 * understands. Header-only (static inline), so Embedded Swift needs no extra object; sched_yield
 * is libc's.
 */
#ifndef XV_LOCKS_H
#define XV_LOCKS_H
#include <stdint.h>
#include <stdbool.h>
#include <sched.h>
#include <pthread.h>

static inline void xv_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
/* Sequentially consistent counts (a reader announcing itself against a writer's flag). */
static inline uint64_t xv_atomic_fetch_add_u64(void *p, uint64_t v) { return __atomic_fetch_add((uint64_t *)p, v, __ATOMIC_SEQ_CST); }
static inline uint64_t xv_atomic_fetch_sub_u64(void *p, uint64_t v) { return __atomic_fetch_sub((uint64_t *)p, v, __ATOMIC_SEQ_CST); }
#endif
}

/* Gives up the time slice: a waiter on a preempted holder. */
static inline void xv_yield(void) { sched_yield(); }

/* Takes the lock at `l` (a zeroed, naturally aligned uint32_t) when it is free; true when taken. */
static inline bool xv_spin_trylock(void *l) {
    uint32_t free = 0;
    return __atomic_compare_exchange_n((uint32_t *)l, &free, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static inline void xv_spin_lock(void *l) {
    if (__builtin_expect(xv_spin_trylock(l), 1)) return;
    for (uint32_t spins = 1;; spins++) {
        while (__atomic_load_n((uint32_t *)l, __ATOMIC_RELAXED) != 0) {
            xv_cpu_relax();
            if ((++spins & 0xFF) == 0) sched_yield();
        }
        if (xv_spin_trylock(l)) return;
    }
}

static inline void xv_spin_unlock(void *l) {
    __atomic_store_n((uint32_t *)l, 0, __ATOMIC_RELEASE);
}

/* A lock its holder may take again (a callback that re-enters on the same thread): two 64-bit
 * words, the owner (pthread_self) and the depth, zeroed. Only the owner touches the depth. */
static inline void xv_rlock_lock(void *l) {
    uint64_t *w = (uint64_t *)l;
    uint64_t self = (uint64_t)(uintptr_t)pthread_self();
    if (__atomic_load_n(&w[0], __ATOMIC_RELAXED) == self) { w[1]++; return; }
    for (uint32_t spins = 1;; spins++) {
        uint64_t free = 0;
        if (__atomic_compare_exchange_n(&w[0], &free, self, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) break;
        xv_cpu_relax();
        if ((spins & 0xFF) == 0) sched_yield();
    }
    w[1] = 1;
}

static inline void xv_rlock_unlock(void *l) {
    uint64_t *w = (uint64_t *)l;
    if (--w[1] == 0) __atomic_store_n(&w[0], 0, __ATOMIC_RELEASE);
}

/* Ordered loads and stores of words other threads read or write without the lock that guards
 * their writers (a published count, a vCPU's upcall vector). */
static inline uint32_t xv_load_acquire_u32(const void *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE); }
static inline void xv_store_release_u32(void *p, uint32_t v) { __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE); }
static inline uint64_t xv_load_acquire_u64(const void *p) { return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE); }
static inline void xv_store_release_u64(void *p, uint64_t v) { __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE); }
static inline uint8_t xv_load_acquire_u8(const void *p) { return __atomic_load_n((const uint8_t *)p, __ATOMIC_ACQUIRE); }
static inline void xv_store_release_u8(void *p, uint8_t v) { __atomic_store_n((uint8_t *)p, v, __ATOMIC_RELEASE); }
static inline uint64_t xv_fetch_add_relaxed_u64(void *p, uint64_t v) { return __atomic_fetch_add((uint64_t *)p, v, __ATOMIC_RELAXED); }
static inline uint64_t xv_load_relaxed_u64(const void *p) { return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED); }
static inline void xv_store_relaxed_u64(void *p, uint64_t v) { __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELAXED); }
static inline bool xv_cas_u32(void *p, uint32_t expected, uint32_t desired) {
    return __atomic_compare_exchange_n((uint32_t *)p, &expected, desired, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline uint32_t xv_exchange_u32(void *p, uint32_t v) { return __atomic_exchange_n((uint32_t *)p, v, __ATOMIC_ACQ_REL); }
static inline uint64_t xv_exchange_u64(void *p, uint64_t v) { return __atomic_exchange_n((uint64_t *)p, v, __ATOMIC_ACQ_REL); }
static inline bool xv_cas_u64(void *p, uint64_t expected, uint64_t desired) {
    return __atomic_compare_exchange_n((uint64_t *)p, &expected, desired, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
/* Sequentially consistent counts (a reader announcing itself against a writer's flag). */
static inline uint64_t xv_atomic_fetch_add_u64(void *p, uint64_t v) { return __atomic_fetch_add((uint64_t *)p, v, __ATOMIC_SEQ_CST); }
static inline uint64_t xv_atomic_fetch_sub_u64(void *p, uint64_t v) { return __atomic_fetch_sub((uint64_t *)p, v, __ATOMIC_SEQ_CST); }
#endif
