/* Deduplicated backtraces. A lock-free open-addressing table maps a backtrace's hash to a
 * stack id; records and their return addresses live in append-only arenas, so an id, once
 * published, stays valid and unchanged for the life of the process.
 *
 * Each stack's totals are kept in STRIPES copies, and a thread adds only to its own stripe:
 * threads running the same code path otherwise take each other's cache line on every call
 * (measured: 18% of the samples of two threads on two CPUs, 3% with one thread). A stripe is
 * either one thread's own or shared and added to atomically (below), so the sums stay exact. */
#include <string.h>

#include "shim.h"

#define MAX_STACKS (1u << 20)          /* records; id 0 is reserved for "no backtrace" */
#define TABLE_SLOTS (1u << 21)         /* hash slots: at most half full */
#define MAX_PCS (32u << 20)            /* return addresses in all records */

/* All three arenas are mapped once at start-up (NORESERVE: only touched pages cost memory).
 * next_id and pcs_used are claimed with atomic adds; a slot is published with a CAS after
 * the record it names is complete, so readers that see an id see its record. */
static struct lt_stack *records;
static _Atomic uint32_t *slots;
static uintptr_t *pcs_arena;
static _Atomic uint32_t next_id = 1;
static _Atomic uint32_t pcs_used;

/* The first EXCLUSIVE_STRIPES threads' registry slots (inflight.c) each own a stripe: only
 * that thread writes it, with plain adds (one instruction each, so a signal handler of the
 * same thread cannot split them); `lock` adds cost the calls 14% of the C++ workload's samples.
 * A slot is taken over only once its thread has ended, so a stripe has one writer at a time.
 * Every other thread adds atomically to one of the shared stripes. */
#define EXCLUSIVE_STRIPES 8u
#define SHARED_STRIPES 8u
#define STRIPES (EXCLUSIVE_STRIPES + SHARED_STRIPES)
struct totals {
    _Atomic uint64_t alloc_count, alloc_bytes, free_count, freed_bytes;
};
/* Mapped at start-up (NORESERVE: a stripe no thread used costs no memory). */
static struct totals *stripes[STRIPES];
/* Bit i set: stripe i may hold totals (readers skip the others). Set when a registry slot
 * is first given its stripe, so the adds never look at it; the stripe of threads without a
 * slot from the start. */
static _Atomic uint32_t stripes_used = 1u << EXCLUSIVE_STRIPES;
_Static_assert(STRIPES <= 32, "stripes_used is a 32-bit mask");

uint8_t lt_stack_stripe_of_slot(unsigned slot)
{
    unsigned stripe = slot >= 1 && slot <= EXCLUSIVE_STRIPES ? slot - 1
                                                             : EXCLUSIVE_STRIPES + slot % SHARED_STRIPES;
    atomic_fetch_or_explicit(&stripes_used, 1u << stripe, memory_order_relaxed);
    return (uint8_t)stripe;
}

bool lt_stacks_init(void)
{
    records = lt_map(sizeof(struct lt_stack) * MAX_STACKS);
    slots = lt_map(sizeof(uint32_t) * TABLE_SLOTS);
    pcs_arena = lt_map(sizeof(uintptr_t) * MAX_PCS);
    for (unsigned i = 0; i < STRIPES; i++)
        if (!(stripes[i] = lt_map(sizeof(struct totals) * MAX_STACKS))) return false;
    return records && slots && pcs_arena;
}

/* This thread's stripe: its registry slot's, or a shared one before it has a slot. */
static inline unsigned my_stripe(void)
{
    struct lt_thread_slot *slot = lt_my_slot;
    return slot ? slot->stripe : EXCLUSIVE_STRIPES;
}

/* Adds to a counter of this thread's stripe (see EXCLUSIVE_STRIPES). */
static inline void add(unsigned stripe, _Atomic uint64_t *counter, uint64_t value)
{
#if defined(__x86_64__)
    if (LT_LIKELY(stripe < EXCLUSIVE_STRIPES)) {
        __asm__ volatile("addq %1, %0" : "+m"(*(uint64_t *)counter) : "r"(value));
        return;
    }
#endif
    (void)stripe;
    atomic_fetch_add_explicit(counter, value, memory_order_relaxed);
}

/* lt_stack_hash_step from the outermost frame in: unwind.c computes the same value
 * incrementally. Never 0, so a zeroed record never matches. */
static uint64_t hash_pcs(const uintptr_t *pcs, int depth)
{
    uint64_t h = LT_STACK_HASH_SEED;
    for (int i = depth - 1; i >= 0; i--) h = lt_stack_hash_step(h, pcs[i]);
    return h | 1;
}

static bool same_stack(const struct lt_stack *s, uint64_t hash, const uintptr_t *pcs, int depth)
{
    return s->hash == hash && s->depth == (uint32_t)depth &&
           memcmp(pcs_arena + s->pcs_index, pcs, sizeof(uintptr_t) * (size_t)depth) == 0;
}

uint32_t lt_stacks_intern(const uintptr_t *pcs, int depth) { return lt_stacks_intern_hashed(pcs, depth, 0); }

uint32_t lt_stacks_intern_hashed(const uintptr_t *pcs, int depth, uint64_t hash)
{
    if (depth <= 0) return 0;
    if (!hash) hash = hash_pcs(pcs, depth);
    uint32_t mine = 0; /* a record we filled but have not published yet */
    for (uint32_t i = 0; i < TABLE_SLOTS; i++) {
        _Atomic uint32_t *slot = &slots[(hash + i) & (TABLE_SLOTS - 1)];
        uint32_t id = atomic_load_explicit(slot, memory_order_acquire);
        if (id == 0) {
            if (!mine) {
                /* Full: claim nothing more. Counters that kept growing with every dropped
                 * allocation would wrap after 2^32 of them and hand out ids and return
                 * address slots already in use. Racing threads overshoot by a few only. */
                if (atomic_load_explicit(&next_id, memory_order_relaxed) >= MAX_STACKS ||
                    atomic_load_explicit(&pcs_used, memory_order_relaxed) > MAX_PCS - (uint32_t)depth) {
                    atomic_fetch_add_explicit(&lt_counters.dropped_stacks, 1, memory_order_relaxed);
                    return 0;
                }
                uint32_t new_id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
                uint32_t at = atomic_fetch_add_explicit(&pcs_used, (uint32_t)depth, memory_order_relaxed);
                if (new_id >= MAX_STACKS || at + (uint32_t)depth > MAX_PCS) {
                    atomic_fetch_add_explicit(&lt_counters.dropped_stacks, 1, memory_order_relaxed);
                    return 0;
                }
                memcpy(pcs_arena + at, pcs, sizeof(uintptr_t) * (size_t)depth);
                records[new_id].pcs_index = at;
                records[new_id].depth = (uint32_t)depth;
                records[new_id].hash = hash;
                mine = new_id;
            }
            uint32_t expected = 0;
            if (atomic_compare_exchange_strong_explicit(slot, &expected, mine, memory_order_release,
                                                        memory_order_acquire))
                return mine;
            id = expected; /* another thread published first: is it the same stack? */
        }
        if (same_stack(&records[id], hash, pcs, depth)) return id; /* `mine`, if any, stays unused */
    }
    atomic_fetch_add_explicit(&lt_counters.dropped_stacks, 1, memory_order_relaxed);
    return 0;
}

struct lt_stack *lt_stack_get(uint32_t id)
{
    return id && id < MAX_STACKS ? &records[id] : NULL;
}

const uintptr_t *lt_stack_pcs(const struct lt_stack *s) { return pcs_arena + s->pcs_index; }

uint32_t lt_stacks_count(void)
{
    uint32_t n = atomic_load_explicit(&next_id, memory_order_acquire) - 1;
    return n >= MAX_STACKS ? MAX_STACKS - 1 : n;
}

void lt_stack_note_alloc(uint32_t id, uint64_t size)
{
    if (!id || id >= MAX_STACKS) return;
    unsigned stripe = my_stripe();
    struct totals *t = &stripes[stripe][id];
    add(stripe, &t->alloc_count, 1);
    add(stripe, &t->alloc_bytes, size);
}

void lt_stack_note_free(uint32_t id, uint64_t size, bool whole_block)
{
    if (!id || id >= MAX_STACKS) return;
    unsigned stripe = my_stripe();
    struct totals *t = &stripes[stripe][id];
    if (whole_block) add(stripe, &t->free_count, 1);
    add(stripe, &t->freed_bytes, size);
}

void lt_stack_note_grow(uint32_t id, uint64_t grown_by)
{
    if (!id || id >= MAX_STACKS) return;
    unsigned stripe = my_stripe();
    add(stripe, &stripes[stripe][id].alloc_bytes, grown_by);
}

/* Read while threads add: each field is exact as of its own read, so a reader can see a
 * free's count without its allocation's; callers clamp differences. */
struct lt_stack_totals lt_stack_totals(uint32_t id)
{
    struct lt_stack_totals sum = { 0, 0, 0, 0 };
    if (!id || id >= MAX_STACKS) return sum;
    for (uint32_t used = atomic_load_explicit(&stripes_used, memory_order_relaxed); used;
         used &= used - 1) {
        struct totals *t = &stripes[__builtin_ctz(used)][id];
        sum.alloc_count += atomic_load_explicit(&t->alloc_count, memory_order_relaxed);
        sum.alloc_bytes += atomic_load_explicit(&t->alloc_bytes, memory_order_relaxed);
        sum.free_count += atomic_load_explicit(&t->free_count, memory_order_relaxed);
        sum.freed_bytes += atomic_load_explicit(&t->freed_bytes, memory_order_relaxed);
    }
    return sum;
}

void lt_stacks_reset_totals(void)
{
    uint32_t count = lt_stacks_count();
    for (uint32_t used = atomic_load(&stripes_used); used; used &= used - 1) {
        struct totals *stripe = stripes[__builtin_ctz(used)];
        for (uint32_t id = 1; id <= count; id++) {
            atomic_store(&stripe[id].alloc_count, 0);
            atomic_store(&stripe[id].alloc_bytes, 0);
            atomic_store(&stripe[id].free_count, 0);
            atomic_store(&stripe[id].freed_bytes, 0);
        }
    }
}

/* After a detach, once no thread is inside the tables (lifecycle.c, lt_release_tables): the
 * arenas go back to the system, and ids start again at 1 when lt_stacks_init makes new ones. */
void lt_stacks_release(void)
{
    lt_unmap(records, sizeof(struct lt_stack) * MAX_STACKS);
    lt_unmap((void *)slots, sizeof(uint32_t) * TABLE_SLOTS);
    lt_unmap(pcs_arena, sizeof(uintptr_t) * MAX_PCS);
    for (unsigned i = 0; i < STRIPES; i++) {
        lt_unmap(stripes[i], sizeof(struct totals) * MAX_STACKS);
        stripes[i] = NULL; /* stripes_used stays: bits only say where to look */
    }
    records = NULL;
    slots = NULL;
    pcs_arena = NULL;
    atomic_store(&next_id, 1);
    atomic_store(&pcs_used, 0);
}
