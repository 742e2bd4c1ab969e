/* Frees of addresses the shim never saw allocated, or saw freed already: valgrind's "Invalid
 * free() / delete / delete[] / realloc()". glibc aborts on many double frees itself (the
 * fatal signal's backtrace then names the free: fatal.c), not on all: a block freed twice
 * past the thread's cache, or a pointer realloc had already moved, goes through and corrupts
 * the heap later. Told only while every block of the process is known: launched under the
 * shim (not attached), exact mode, collecting since the start (not LEAKTRACE_START=on-mtrace)
 * and never paused since (muntrace(), the control's pause), no block dropped for want of
 * memory. Per (backtrace, API): how many such calls, and the first one's address; written as
 * the INVALID_FREES section (capture.c). Off the hot path: only a free that misses the table
 * comes here. */
#include <stdatomic.h>

#include "sampling.h"
#include "shim.h"

#define SITES 256u /* distinct (backtrace, API) pairs kept; more are counted in `unrecorded` */

/* Each site is claimed by a CAS of its key (stack id << 8 | API: never 0); its count and first
 * address are written by whoever claimed or found it, and read by the capture writer, which
 * may see a site claimed a moment ago with its count still 0 (it leaves those out). In a
 * mapping of the shim's, made at the first such call and installed with a CAS: the addresses
 * are heap addresses, which the scan must not take for pointers (it reads the shim's own
 * static data as roots, not its mappings). */
struct site {
    _Atomic uint64_t key;
    _Atomic uint64_t count;
    _Atomic uint64_t first_address;
};
static _Atomic(struct site *) sites;
static _Atomic uint64_t unrecorded;
/* Cleared for good when collecting pauses (lt_set_collecting): blocks allocated then are
 * not in the table, and their frees would look invalid. */
static _Atomic bool checking = true;

void lt_invalid_frees_stop(void) { atomic_store(&checking, false); }

bool lt_invalid_frees_checked(void)
{
    return atomic_load_explicit(&checking, memory_order_relaxed) && !lt_sample_mean_bytes &&
           !lt_attach_mode() && lt_cfg.collect_at_start && !lt_libc_allocations_imported() &&
           atomic_load_explicit(&lt_counters.dropped_blocks, memory_order_relaxed) == 0;
}

/* Collecting now: once the final capture is claimed (FINAL), new blocks are not recorded. */
bool lt_invalid_frees_checking(void)
{
    return atomic_load_explicit(&lt_state, memory_order_relaxed) == LT_STATE_COLLECTING &&
           lt_invalid_frees_checked();
}

__attribute__((noinline, cold)) void lt_invalid_frees_note(uintptr_t addr, unsigned api)
{
    uintptr_t pcs[LT_MAX_DEPTH_LIMIT];
    bool truncated;
    int depth = lt_unwind(pcs, lt_cfg.max_depth, &truncated);
    struct site *table = atomic_load(&sites);
    if (!table) {
        struct site *fresh = lt_map(SITES * sizeof *fresh);
        if (!fresh) {
            atomic_fetch_add(&unrecorded, 1);
            return;
        }
        if (atomic_compare_exchange_strong(&sites, &table, fresh)) table = fresh;
        else lt_unmap(fresh, SITES * sizeof *fresh); /* another thread's came first */
    }
    uint64_t key = (uint64_t)lt_stacks_intern(pcs, depth) << 8 | api;
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    bool imports_checked = false;
    for (unsigned probe = 0; probe < SITES; probe++) {
        struct site *s = &table[(h >> 56 ^ probe) % SITES];
        uint64_t found = atomic_load(&s->key);
        if (found == 0) {
            /* A new site: first, is it a block of glibc's own __libc_malloc, which an object
             * mapped now calls? Then nothing is checked any more. */
            if (!imports_checked) {
                imports_checked = true;
                lt_modules_check_imports();
                if (lt_libc_allocations_imported()) return;
            }
            if (!atomic_compare_exchange_strong(&s->key, &found, key) && found != key) continue;
            if (found == 0) atomic_store(&s->first_address, addr); /* claimed it */
        } else if (found != key) {
            continue;
        }
        atomic_fetch_add(&s->count, 1);
        return;
    }
    atomic_fetch_add(&unrecorded, 1);
}

unsigned lt_invalid_frees_each(void (*fn)(uint32_t stack_id, unsigned api, uint64_t count,
                                          uint64_t first_address, void *ctx), void *ctx)
{
    unsigned n = 0;
    struct site *table = atomic_load(&sites);
    for (unsigned i = 0; table && i < SITES; i++) {
        uint64_t key = atomic_load(&table[i].key), count = atomic_load(&table[i].count);
        if (!key || !count) continue;
        if (fn) fn((uint32_t)(key >> 8), (unsigned)(key & 0xff), count, atomic_load(&table[i].first_address), ctx);
        n++;
    }
    return n;
}

uint64_t lt_invalid_frees_unrecorded(void) { return atomic_load(&unrecorded); }

/* The parent's calls are the parent's: a traced child reports its own (one thread now). */
void lt_invalid_frees_after_fork_child(void)
{
    struct site *table = atomic_load(&sites);
    for (unsigned i = 0; table && i < SITES; i++) {
        atomic_store(&table[i].key, 0);
        atomic_store(&table[i].count, 0);
        atomic_store(&table[i].first_address, 0);
    }
    atomic_store(&unrecorded, 0);
}
