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

static _Thread_local int counting;
static _Thread_local uint64_t count;

static inline void note(void) { if (counting) count++; }

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

void xv_malloc_counter_begin(void) { count = 0; counting = 1; }
uint64_t xv_malloc_counter_end(void) { counting = 0; return count; }

int xv_malloc_counter_is_active(void) {
    xv_malloc_counter_begin();
    void *volatile p = malloc(24);
    free(p);
    return xv_malloc_counter_end() == 1;
}
