/* Atomic read-modify-write on guest memory shared with running vCPUs.
 *
 * Xen updates the words a guest shares with it (shared_info pending/mask bitmaps, vcpu_info
 * upcall bytes, FIFO event words and control blocks) with locked instructions, because the
 * guest's vCPUs change the same words concurrently (xen-project/xen
 * xen/include/xen/guest_atomics.h). Swift has no atomics on raw pointers in the standard
 * library, so these are C11-style builtins, inlined into the Swift caller. Header-only, so an
 * Embedded Swift build needs no extra object. Pointers must be naturally aligned.
 */
#ifndef XV_GUEST_ATOMICS_H
#define XV_GUEST_ATOMICS_H
#include <stdint.h>
#include <stdbool.h>

static inline uint64_t xv_atomic_fetch_or_u64(void *p, uint64_t v) {
    return __atomic_fetch_or((uint64_t *)p, v, __ATOMIC_SEQ_CST);
}
static inline uint64_t xv_atomic_fetch_and_u64(void *p, uint64_t v) {
    return __atomic_fetch_and((uint64_t *)p, v, __ATOMIC_SEQ_CST);
}
static inline uint64_t xv_atomic_exchange_u64(void *p, uint64_t v) {
    return __atomic_exchange_n((uint64_t *)p, v, __ATOMIC_SEQ_CST);
}
static inline uint64_t xv_atomic_load_u64(const void *p) {
    return __atomic_load_n((const uint64_t *)p, __ATOMIC_SEQ_CST);
}
static inline uint32_t xv_atomic_fetch_or_u32(void *p, uint32_t v) {
    return __atomic_fetch_or((uint32_t *)p, v, __ATOMIC_SEQ_CST);
}
static inline uint32_t xv_atomic_fetch_and_u32(void *p, uint32_t v) {
    return __atomic_fetch_and((uint32_t *)p, v, __ATOMIC_SEQ_CST);
}
static inline uint32_t xv_atomic_load_u32(const void *p) {
    return __atomic_load_n((const uint32_t *)p, __ATOMIC_SEQ_CST);
}
static inline void xv_atomic_store_u32(void *p, uint32_t v) {
    __atomic_store_n((uint32_t *)p, v, __ATOMIC_SEQ_CST);
}
/* Compare-and-swap: returns the value found (equal to `expected` when the swap happened). */
static inline uint32_t xv_atomic_cas_u32(void *p, uint32_t expected, uint32_t desired) {
    __atomic_compare_exchange_n((uint32_t *)p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return expected;
}
/* 16-bit words: grant status words (grant_status_t) and v2 entry headers. */
static inline uint16_t xv_atomic_fetch_or_u16(void *p, uint16_t v) {
    return __atomic_fetch_or((uint16_t *)p, v, __ATOMIC_SEQ_CST);
}
static inline uint16_t xv_atomic_fetch_and_u16(void *p, uint16_t v) {
    return __atomic_fetch_and((uint16_t *)p, v, __ATOMIC_SEQ_CST);
}
static inline uint16_t xv_atomic_load_u16(const void *p) {
    return __atomic_load_n((const uint16_t *)p, __ATOMIC_SEQ_CST);
}
static inline uint8_t xv_atomic_fetch_or_u8(void *p, uint8_t v) {
    return __atomic_fetch_or((uint8_t *)p, v, __ATOMIC_SEQ_CST);
}
static inline uint8_t xv_atomic_load_u8(const void *p) {
    return __atomic_load_n((const uint8_t *)p, __ATOMIC_SEQ_CST);
}
#endif
