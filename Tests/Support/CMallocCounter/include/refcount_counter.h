/* Per-thread counting of Swift reference-count operations (swift_retain, swift_release and
 * their _n forms), for the "no retain/release on the fast path" tests and xv bench. Installs
 * the Swift runtime's instrumentation hooks on first use; they forward to the runtime's own
 * implementations, so behaviour is unchanged and only the calling thread's operations are
 * counted while counting is on. */
#ifndef XV_REFCOUNT_COUNTER_H
#define XV_REFCOUNT_COUNTER_H
#include <stdint.h>

/* Installs the hooks (nested installs are counted); 0 when the runtime does not export them.
 * While installed every retain and release in the process takes a slightly longer path, so
 * timing code removes them before it measures. */
int xv_refcount_counter_install(void);
/* Undoes one install; the last one restores the runtime's own path. */
void xv_refcount_counter_remove(void);
/* Starts counting on this thread from zero (the hooks must be installed). */
void xv_refcount_counter_begin(void);
/* Stops counting on this thread and returns the retains plus releases it saw. */
uint64_t xv_refcount_counter_end(void);

#endif
