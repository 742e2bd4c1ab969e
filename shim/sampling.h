/* Sampling mode (LEAKTRACE_SAMPLE=BYTES): a block is recorded with probability
 * 1 - exp(-size / BYTES), like tcmalloc's and jemalloc's heap profilers: each thread walks a
 * Poisson process over the bytes it allocates, and a block is sampled when one of the process's
 * points falls inside it. The report divides each sampled block by that probability, which
 * makes every total an unbiased estimate. The decision is inlined into the hooks: one
 * thread-local subtraction per allocation. */
#ifndef LEAKTRACE_SAMPLING_H
#define LEAKTRACE_SAMPLING_H

#include "shim.h"

/* The mean distance in bytes between sample points; 0 = exact mode (every block recorded).
 * Written once at start-up (or by leaktrace_attach before tracking starts), then read-only. */
extern uint64_t lt_sample_mean_bytes;
/* Bytes this thread may still allocate before the next sample point (initial-exec TLS). */
extern __thread int64_t lt_sample_countdown __attribute__((tls_model("initial-exec")));

void lt_sampling_configure(uint64_t mean_bytes);
/* The countdown ran out inside a block of `size` bytes: true when it is sampled. */
bool lt_sample_pick_slow(size_t size);

/* True when the block is not sampled and must not be recorded. */
static inline bool lt_sample_skip(size_t size)
{
    if (LT_LIKELY(lt_sample_mean_bytes == 0)) return false;
    int64_t left = lt_sample_countdown - (int64_t)(size > INT64_MAX ? INT64_MAX : size);
    if (LT_LIKELY(left > 0)) {
        lt_sample_countdown = left;
        return true;
    }
    return !lt_sample_pick_slow(size);
}

#endif
