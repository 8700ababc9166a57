/* Per-thread allocation counting for zero-malloc tests. The test binary's malloc family is
 * replaced (ELF interposition) by wrappers that count calls made while counting is on for the
 * calling thread and forward to glibc's allocator. Per thread, so tests running in parallel do
 * not see each other's allocations. */
#ifndef XV_MALLOC_COUNTER_H
#define XV_MALLOC_COUNTER_H
#include <stdint.h>

/* Starts counting on this thread from zero. */
void xv_malloc_counter_begin(void);
/* Stops counting on this thread and returns the allocations (malloc, calloc, realloc,
 * posix_memalign, aligned_alloc, memalign) it saw. */
uint64_t xv_malloc_counter_end(void);
/* 1 when the interposed allocator is the one the process uses (a self-check). */
int xv_malloc_counter_is_active(void);

#endif
