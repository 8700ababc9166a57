/* A fine-grained clock for xv bench. CLOCK_MONOTONIC ticks in 10 ns steps on some virtual
 * machines, coarser than the operations measured; the time-stamp counter is read instead
 * where it exists (x86_64), fenced so the read neither drifts ahead of the code before it nor
 * behind the code after it (Intel SDM vol. 2, RDTSC: "use LFENCE"). Its rate is calibrated
 * against CLOCK_MONOTONIC by the caller. Header-only. */
#ifndef XV_BENCH_CLOCK_H
#define XV_BENCH_CLOCK_H
#include <stdint.h>
#include <time.h>

/* 1 when xv_bench_ticks counts TSC cycles, 0 when it is CLOCK_MONOTONIC nanoseconds. */
static inline int xv_bench_ticks_are_cycles(void) {
#if defined(__x86_64__)
    return 1;
#else
    return 0;
#endif
}

static inline uint64_t xv_bench_ticks(void) {
#if defined(__x86_64__)
    uint32_t lo, hi;
    __asm__ __volatile__("lfence\n\trdtsc\n\tlfence" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

static inline uint64_t xv_bench_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
