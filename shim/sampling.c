/* Sampling mode: the Poisson process's random intervals, and the per-thread countdown. */
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sampling.h"

uint64_t lt_sample_mean_bytes;
__thread int64_t lt_sample_countdown __attribute__((tls_model("initial-exec")));
/* Per thread: the xorshift state (0 until the thread's first allocation draws it). */
static __thread uint64_t rng_state __attribute__((tls_model("initial-exec")));

_Atomic uint8_t *lt_sample_filter;

bool lt_sampling_init(void)
{
    if (lt_sample_filter) return true; /* a later attach: kept across detach (8 KiB) */
    lt_sample_filter = lt_map(sizeof(uint8_t) << LT_SAMPLE_FILTER_BITS);
    return lt_sample_filter != NULL;
}

void lt_sample_filter_add(uintptr_t addr)
{
    _Atomic uint8_t *c = lt_sample_filter_slot(addr);
    uint8_t v = atomic_load_explicit(c, memory_order_relaxed);
    while (v < 255 && !atomic_compare_exchange_weak_explicit(c, &v, (uint8_t)(v + 1), memory_order_relaxed,
                                                             memory_order_relaxed)) {
    }
}

void lt_sample_filter_remove(uintptr_t addr)
{
    _Atomic uint8_t *c = lt_sample_filter_slot(addr);
    uint8_t v = atomic_load_explicit(c, memory_order_relaxed);
    while (v > 0 && v < 255 && !atomic_compare_exchange_weak_explicit(c, &v, (uint8_t)(v - 1), memory_order_relaxed,
                                                                      memory_order_relaxed)) {
    }
}

void lt_sample_filter_clear(void)
{
    for (size_t i = 0; i < (size_t)1 << LT_SAMPLE_FILTER_BITS; i++)
        atomic_store_explicit(&lt_sample_filter[i], 0, memory_order_relaxed);
}

void lt_sampling_configure(uint64_t mean_bytes)
{
    lt_sample_mean_bytes = mean_bytes > (UINT64_C(1) << 40) ? UINT64_C(1) << 40 : mean_bytes;
}

static uint64_t next_random(void)
{
    if (LT_UNLIKELY(!rng_state)) {
        /* A different stream per thread and per run: thread id, clock, and a stack address. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t seed = (uint64_t)syscall(SYS_gettid) * 0x9e3779b97f4a7c15ull ^
                        (uint64_t)ts.tv_nsec * 0xbf58476d1ce4e5b9ull ^ (uint64_t)(uintptr_t)&ts;
        rng_state = seed | 1;
    }
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* ln(x) for a normal x > 0, to about 1e-14, without libm: the shim links no library but libc
 * (an extra one would change the program's link map and its loader's allocations), and a call
 * to `log` would bind to a program's own exported function of that name, a common one for a
 * logging helper (seen with -rdynamic). x = m * 2^e, m in [sqrt(1/2), sqrt(2)); ln(m) is
 * 2 atanh(s) with s = (m - 1) / (m + 1), |s| < 0.172, summed to s^15. */
static double natural_log(double x)
{
    union { double d; uint64_t bits; } v = { x };
    int e = (int)((v.bits >> 52) & 0x7ff) - 1023;
    v.bits = (v.bits & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1023) << 52); /* m in [1, 2) */
    double m = v.d;
    if (m > 1.4142135623730950488) {
        m *= 0.5;
        e++;
    }
    double s = (m - 1) / (m + 1), s2 = s * s;
    double tail = s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 * (1.0 / 11 +
                  s2 * (1.0 / 13 + s2 * (1.0 / 15)))))));
    return e * 0.69314718055994530942 + 2 * s * (1 + tail);
}

/* An exponentially distributed distance to the next sample point, mean lt_sample_mean_bytes. */
static int64_t next_interval(void)
{
    double u = (double)((next_random() >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
    double d = -natural_log(u) * (double)lt_sample_mean_bytes;
    return d >= 0x1.0p62 ? INT64_C(1) << 62 : (int64_t)d + 1;
}

bool lt_sample_pick_slow(size_t size)
{
    int64_t bytes = (int64_t)(size > INT64_MAX ? INT64_MAX : size);
    if (LT_UNLIKELY(!rng_state)) {
        /* The thread's first allocation: where its first point lies is still to be drawn.
         * Also where it takes its slot in the registry of threads, and with it its alternate
         * signal stack (inflight.c): a thread with no block sampled may never enter the tables. */
        lt_inflight_claim();
        int64_t left = next_interval() - bytes;
        if (left > 0) {
            lt_sample_countdown = left;
            return false;
        }
    }
    /* A point fell inside this block. The process is memoryless: the next point lies an
     * independent exponential distance past the block's end. */
    lt_sample_countdown = next_interval();
    return true;
}
