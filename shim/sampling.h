/* Sampling mode (LEAKTRACE_SAMPLE=BYTES): a block is recorded with probability
 * 1 - exp(-size / BYTES), like tcmalloc's and jemalloc's heap profilers: each thread walks a
 * Poisson process over the bytes it allocates, and a block is sampled when one of the process's
 * points falls inside it. The report divides each sampled block by that probability, which
 * makes every total an unbiased estimate. The decision is inlined into the hooks: one
 * thread-local subtraction per allocation. */
#ifndef LEAKTRACE_SAMPLING_H
#define LEAKTRACE_SAMPLING_H

#include "mtrace_log.h"
#include "shim.h"

/* The mean distance in bytes between sample points; 0 = exact mode (every block recorded).
 * Written once at start-up (or by leaktrace_attach before tracking starts), then read-only. */
extern uint64_t lt_sample_mean_bytes;
/* Bytes this thread may still allocate before the next sample point (initial-exec TLS). */
extern __thread int64_t lt_sample_countdown __attribute__((tls_model("initial-exec")));

void lt_sampling_configure(uint64_t mean_bytes);

/* Most frees in sampling mode are of blocks never recorded. Per hash bucket, a saturating count
 * of the recorded blocks that hash there (8 KiB, so it stays in L1: 64 KiB missed it on most
 * frees): a zero lets such a free skip the block table, whose probe would be a cache miss.
 * Mapped by lt_sampling_init; atomics; a count that reached 255 stays. */
#define LT_SAMPLE_FILTER_BITS 13
extern _Atomic uint8_t *lt_sample_filter;
bool lt_sampling_init(void);
void lt_sample_filter_add(uintptr_t addr);
void lt_sample_filter_remove(uintptr_t addr);
void lt_sample_filter_clear(void);

static inline _Atomic uint8_t *lt_sample_filter_slot(uintptr_t addr)
{
    uint64_t h = ((uint64_t)addr >> 4) * 0x9e3779b97f4a7c15ull;
    return &lt_sample_filter[h >> (64 - LT_SAMPLE_FILTER_BITS)];
}

/* True when no recorded block can have this address (sampling mode only). */
static inline bool lt_sample_unrecorded(uintptr_t addr)
{
    return LT_UNLIKELY(lt_sample_mean_bytes != 0) &&
           atomic_load_explicit(lt_sample_filter_slot(addr), memory_order_relaxed) == 0;
}
/* Sampling mode: the free of a block never recorded has nothing to do, unless the mtrace log
 * wants every free. */
static inline bool lt_sample_free_unrecorded(const void *p)
{
    return lt_sample_unrecorded((uintptr_t)p) &&
           atomic_load_explicit(&lt_mtrace_log_wanted, memory_order_relaxed) == 0;
}

/* The countdown ran out inside a block of `size` bytes: true when it is sampled. */
bool lt_sample_pick_slow(size_t size);

/* Takes `size` bytes from the countdown when no sample point falls inside them (true). */
static inline bool lt_sample_countdown_take(size_t size)
{
    int64_t left = lt_sample_countdown - (int64_t)(size > INT64_MAX ? INT64_MAX : size);
    if (LT_UNLIKELY(left <= 0)) return false;
    lt_sample_countdown = left;
    return true;
}

/* True when the block is not sampled and must not be recorded. */
static inline bool lt_sample_skip(size_t size)
{
    if (LT_LIKELY(lt_sample_mean_bytes == 0)) return false;
    return lt_sample_countdown_take(size) || !lt_sample_pick_slow(size);
}

/* The malloc hooks' fast path: true, the countdown taken, when a block of `size` bytes is not
 * sampled and no operator new's note waits (lt_allocation_kind would change the size the
 * decision is made on). Otherwise (exact mode, a sample point inside the block) the hook goes
 * its whole way, which decides from the same countdown. */
static inline bool lt_sample_skip_at_once(size_t size)
{
    if (LT_LIKELY(lt_sample_mean_bytes == 0) || lt_new_asked != 0) return false;
    return lt_sample_countdown_take(size);
}

#endif
