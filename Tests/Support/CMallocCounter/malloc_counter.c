#include "malloc_counter.h"
#include <stddef.h>
#include <errno.h>
#include <stdlib.h>

/* glibc's own entry points, which the wrappers forward to. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

/* Under ThreadSanitizer the sanitizer owns malloc (its runtime allocates before it is set up,
 * so an interposer of ours would run uninstrumentable code first and crash): no interposition,
 * and xv_malloc_counter_is_active() says so, so the zero-allocation tests report themselves
 * skipped in that build. */
#if defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define XV_NO_MALLOC_INTERPOSER 1
#  endif
#endif
#if defined(__SANITIZE_THREAD__)
#  define XV_NO_MALLOC_INTERPOSER 1
#endif

static _Thread_local int counting;
static _Thread_local uint64_t count;

static inline void note(void) { if (counting) count++; }

#ifndef XV_NO_MALLOC_INTERPOSER
void *malloc(size_t size) { note(); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { note(); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { note(); return __libc_realloc(p, size); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    note();
    void *p = __libc_memalign(alignment, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
#endif

void xv_malloc_counter_begin(void) { count = 0; counting = 1; }
uint64_t xv_malloc_counter_end(void) { counting = 0; return count; }

int xv_malloc_counter_is_active(void) {
    xv_malloc_counter_begin();
    void *volatile p = malloc(24);
    free(p);
    return xv_malloc_counter_end() == 1;
}
