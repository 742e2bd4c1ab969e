/* `leaktrace run --mtrace-log FILE` (mtrace_log.c): the glibc MALLOC_TRACE log with
 * backtraces. Both calls do nothing unless LEAKTRACE_MTRACE_LOG names the log. */
#ifndef LEAKTRACE_MTRACE_LOG_H
#define LEAKTRACE_MTRACE_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Whether this process logs: -1 not known yet, 0 no, 1 yes (mtrace_log.c). Read inline, so
 * the free path of a run without a log costs one relaxed load, not a call. */
extern _Atomic int lt_mtrace_log_wanted;
void lt_mtrace_log_event(char op, const void *ptr, uint64_t size, uint32_t stack_id);

/* A block was recorded (hooks.c record_block): `+`, or `>` for realloc, and its backtrace. */
void lt_mtrace_log_alloc(const void *p, uint64_t size, unsigned kind, uint32_t stack_id);

/* Before the real free (`-`), or before the real realloc of a non-NULL block (`<`). */
static inline void lt_mtrace_log_free(const void *p, bool realloc_old)
{
    if (__builtin_expect(atomic_load_explicit(&lt_mtrace_log_wanted, memory_order_relaxed) == 0, 1))
        return;
    lt_mtrace_log_event(realloc_old ? '<' : '-', p, 0, 0);
}

#endif
