#include "refcount_counter.h"
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/* The Swift runtime's instrumentation hooks (swift/stdlib/public/runtime/HeapObject.cpp in
 * swiftlang/swift): when the enable flag is set, swift_retain and swift_release call through
 * these pointers instead of their inline implementations. Weak, so a runtime without them
 * leaves the counter inactive rather than failing to link. */
extern void *(*_swift_retain)(void *) __attribute__((weak));
extern void *(*_swift_retain_n)(void *, uint32_t) __attribute__((weak));
extern void (*_swift_release)(void *) __attribute__((weak));
extern void (*_swift_release_n)(void *, uint32_t) __attribute__((weak));
extern _Atomic bool _swift_enableSwizzlingOfAllocationAndRefCountingFunctions_forInstrumentsOnly __attribute__((weak));

static void *(*original_retain)(void *);
static void *(*original_retain_n)(void *, uint32_t);
static void (*original_release)(void *);
static void (*original_release_n)(void *, uint32_t);

static _Thread_local int counting;
static _Thread_local uint64_t count;

static void *counting_retain(void *object) { if (counting && object) count++; return original_retain(object); }
static void *counting_retain_n(void *object, uint32_t n) { if (counting && object) count += n; return original_retain_n(object, n); }
static void counting_release(void *object) { if (counting && object) count++; original_release(object); }
static void counting_release_n(void *object, uint32_t n) { if (counting && object) count += n; original_release_n(object, n); }

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int installs;

static int available(void) {
    return &_swift_retain && &_swift_retain_n && &_swift_release && &_swift_release_n &&
           &_swift_enableSwizzlingOfAllocationAndRefCountingFunctions_forInstrumentsOnly;
}

int xv_refcount_counter_install(void) {
    if (!available()) return 0;
    pthread_mutex_lock(&lock);
    if (installs++ == 0) {
        original_retain = _swift_retain;
        original_retain_n = _swift_retain_n;
        original_release = _swift_release;
        original_release_n = _swift_release_n;
        _swift_retain = counting_retain;
        _swift_retain_n = counting_retain_n;
        _swift_release = counting_release;
        _swift_release_n = counting_release_n;
        _swift_enableSwizzlingOfAllocationAndRefCountingFunctions_forInstrumentsOnly = true;
    }
    pthread_mutex_unlock(&lock);
    return 1;
}

void xv_refcount_counter_remove(void) {
    if (!available()) return;
    pthread_mutex_lock(&lock);
    if (installs > 0 && --installs == 0) {
        /* The flag first: a call already inside a hook still forwards to the runtime. */
        _swift_enableSwizzlingOfAllocationAndRefCountingFunctions_forInstrumentsOnly = false;
        _swift_retain = original_retain;
        _swift_retain_n = original_retain_n;
        _swift_release = original_release;
        _swift_release_n = original_release_n;
    }
    pthread_mutex_unlock(&lock);
}

void xv_refcount_counter_begin(void) { count = 0; counting = 1; }

uint64_t xv_refcount_counter_end(void) { counting = 0; return count; }
