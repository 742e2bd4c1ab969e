/* How many frees would a per-thread "nursery" of a thread's N youngest blocks catch? A
 * counting preload for docs/benchmarks-shim.md (fifth pass), not part of leaktrace:
 *
 *   gcc -O2 -shared -fPIC -o young_frees.so bench/young_frees.c
 *   LD_PRELOAD=./young_frees.so PROGRAM ARGS
 *
 * For N in 16, 64, 128, 256 and 1024 it prints the share of frees (realloc counts as a free
 * and an allocation) of a block the freeing thread itself allocated, and that is still one of
 * (window) its last N allocations, or (live) its N youngest live blocks. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

#define SIZES 5
#define MAX_N 1024
static const unsigned sizes[SIZES] = { 16, 64, 128, 256, 1024 };

/* Per thread: the last N allocations (a ring, freed entries cleared), and the N youngest
 * live blocks (oldest first). */
static __thread uintptr_t window[SIZES][MAX_N];
static __thread uintptr_t youngest[SIZES][MAX_N];
static __thread unsigned youngest_n[SIZES];
static __thread unsigned long allocations;
static __thread int inside; /* snprintf or write may allocate: not counted */
static _Atomic unsigned long frees, window_hits[SIZES], live_hits[SIZES];

static void on_alloc(void *p)
{
    if (!p || inside) return;
    inside = 1;
    unsigned long k = allocations++;
    for (int i = 0; i < SIZES; i++) {
        unsigned n = sizes[i];
        window[i][k % n] = (uintptr_t)p;
        if (youngest_n[i] == n) memmove(youngest[i], youngest[i] + 1, --youngest_n[i] * sizeof(uintptr_t));
        youngest[i][youngest_n[i]++] = (uintptr_t)p;
    }
    inside = 0;
}

static void on_free(void *p)
{
    if (!p || inside) return;
    inside = 1;
    atomic_fetch_add(&frees, 1);
    for (int i = 0; i < SIZES; i++) {
        for (unsigned j = 0; j < sizes[i]; j++)
            if (window[i][j] == (uintptr_t)p) {
                window[i][j] = 0;
                atomic_fetch_add(&window_hits[i], 1);
                break;
            }
        for (unsigned j = youngest_n[i]; j-- > 0;)
            if (youngest[i][j] == (uintptr_t)p) {
                memmove(youngest[i] + j, youngest[i] + j + 1, (--youngest_n[i] - j) * sizeof(uintptr_t));
                atomic_fetch_add(&live_hits[i], 1);
                break;
            }
    }
    inside = 0;
}

void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
    on_alloc(p);
    return p;
}

void *calloc(size_t count, size_t n)
{
    void *p = __libc_calloc(count, n);
    on_alloc(p);
    return p;
}

void free(void *p)
{
    on_free(p);
    __libc_free(p);
}

void *realloc(void *old, size_t n)
{
    on_free(old);
    void *p = __libc_realloc(old, n);
    on_alloc(p);
    return p;
}

void *reallocarray(void *old, size_t count, size_t n)
{
    size_t bytes;
    return __builtin_mul_overflow(count, n, &bytes) ? NULL : realloc(old, bytes);
}

__attribute__((destructor)) static void report(void)
{
    char buf[1024];
    int len = snprintf(buf, sizeof buf, "young_frees: %lu frees\n", atomic_load(&frees));
    for (int i = 0; i < SIZES && len < (int)sizeof buf; i++)
        len += snprintf(buf + len, sizeof buf - (size_t)len, "N=%u: window %.1f%%, live %.1f%%\n", sizes[i],
                        100.0 * (double)window_hits[i] / (double)(frees ? frees : 1),
                        100.0 * (double)live_hits[i] / (double)(frees ? frees : 1));
    if (write(2, buf, (size_t)len) < 0) { /* nothing to do */ }
}
