/* `leaktrace run --mtrace-log FILE` (mtrace_log.c): the glibc MALLOC_TRACE log with
 * backtraces. Both calls do nothing unless LEAKTRACE_MTRACE_LOG names the log. */
#ifndef LEAKTRACE_MTRACE_LOG_H
#define LEAKTRACE_MTRACE_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* A block was recorded (hooks.c record_block): `+`, or `>` for realloc, and its backtrace. */
void lt_mtrace_log_alloc(const void *p, uint64_t size, unsigned kind, uint32_t stack_id);
/* Before the real free (`-`), or before the real realloc of a non-NULL block (`<`). */
void lt_mtrace_log_free(const void *p, bool realloc_old);

#endif
