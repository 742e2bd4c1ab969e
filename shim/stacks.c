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

/* Records, totals and return addresses are mapped a chunk at a time, as ids and addresses are
 * claimed: mapped all at once they took 800 MiB of address space, which a program under an
 * address-space limit (RLIMIT_AS, `ulimit -v`) needs for itself. NORESERVE: only touched pages
 * cost memory. A chunk is installed (CAS) before any id in it is published, and never moves. */
#define CHUNK_BITS 14                  /* stack ids a chunk holds */
#define CHUNK_IDS (1u << CHUNK_BITS)
#define PCS_CHUNK_BITS 18              /* return addresses a chunk holds (2 MiB): a stack's are
                                        * never split across two, as readers take them whole */
#define PCS_CHUNK (1u << PCS_CHUNK_BITS)
_Static_assert(LT_MAX_DEPTH_LIMIT <= PCS_CHUNK, "a stack fits in a chunk");

/* next_id and pcs_used are claimed with atomic adds; a slot is published with a CAS after
 * the record it names is complete, so readers that see an id see its record. */
static _Atomic uint32_t *slots;
static _Atomic uint64_t slots_ready[sizeof(uint32_t) * TABLE_SLOTS >> LT_READY_SHIFT >> 6]; /* lt_ready_page */
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
/* A chunk of ids: their records, and each stripe's totals (a stripe no thread used costs no
 * memory). */
struct id_chunk {
    struct lt_stack records[CHUNK_IDS];
    struct totals stripes[STRIPES][CHUNK_IDS];
};
static _Atomic(struct id_chunk *) id_chunks[MAX_STACKS / CHUNK_IDS];
static _Atomic(uintptr_t *) pcs_chunks[MAX_PCS / PCS_CHUNK];
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
    slots = lt_map(sizeof(uint32_t) * TABLE_SLOTS);
    return slots != NULL;
}

/* For an id published (or claimed by this thread, chunk ensured): its chunk is in. */
static inline struct id_chunk *chunk_of(uint32_t id)
{
    return atomic_load_explicit(&id_chunks[id >> CHUNK_BITS], memory_order_relaxed);
}

static inline struct lt_stack *record_of(uint32_t id) { return &chunk_of(id)->records[id & (CHUNK_IDS - 1)]; }

static inline struct totals *totals_of(unsigned stripe, uint32_t id)
{
    return &chunk_of(id)->stripes[stripe][id & (CHUNK_IDS - 1)];
}

static inline uintptr_t *pcs_at(uint32_t index)
{
    return atomic_load_explicit(&pcs_chunks[index >> PCS_CHUNK_BITS], memory_order_relaxed) +
           (index & (PCS_CHUNK - 1));
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
           memcmp(pcs_at(s->pcs_index), pcs, sizeof(uintptr_t) * (size_t)depth) == 0;
}

/* Room for `depth` return addresses, all in one chunk (mapped): their index, or UINT32_MAX. */
static uint32_t claim_pcs(uint32_t depth)
{
    for (;;) {
        uint32_t at = atomic_fetch_add_explicit(&pcs_used, depth, memory_order_relaxed);
        if (at > MAX_PCS - depth) return UINT32_MAX;
        if (at >> PCS_CHUNK_BITS != (at + depth - 1) >> PCS_CHUNK_BITS) continue; /* the rest of
                                                                      * this chunk stays unused */
        if (!lt_map_once((_Atomic(void *) *)&pcs_chunks[at >> PCS_CHUNK_BITS], sizeof(uintptr_t) * PCS_CHUNK))
            return UINT32_MAX;
        return at;
    }
}

uint32_t lt_stacks_intern(const uintptr_t *pcs, int depth) { return lt_stacks_intern_hashed(pcs, depth, 0); }

uint32_t lt_stacks_intern_hashed(const uintptr_t *pcs, int depth, uint64_t hash)
{
    if (depth <= 0) return 0;
    if (!hash) hash = hash_pcs(pcs, depth);
    uint32_t mine = 0; /* a record we filled but have not published yet */
    for (uint32_t i = 0; i < TABLE_SLOTS; i++) {
        _Atomic uint32_t *slot = &slots[(hash + i) & (TABLE_SLOTS - 1)];
        lt_ready_page(slots, slots_ready, slot);
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
                uint32_t at = claim_pcs((uint32_t)depth);
                if (new_id >= MAX_STACKS || at == UINT32_MAX ||
                    !lt_map_once((_Atomic(void *) *)&id_chunks[new_id >> CHUNK_BITS], sizeof(struct id_chunk))) {
                    atomic_fetch_add_explicit(&lt_counters.dropped_stacks, 1, memory_order_relaxed);
                    return 0;
                }
                memcpy(pcs_at(at), pcs, sizeof(uintptr_t) * (size_t)depth);
                struct lt_stack *record = record_of(new_id);
                record->pcs_index = at;
                record->depth = (uint32_t)depth;
                record->hash = hash;
                mine = new_id;
            }
            uint32_t expected = 0;
            if (atomic_compare_exchange_strong_explicit(slot, &expected, mine, memory_order_release,
                                                        memory_order_acquire))
                return mine;
            id = expected; /* another thread published first: is it the same stack? */
        }
        if (same_stack(record_of(id), hash, pcs, depth)) return id; /* `mine`, if any, stays unused */
    }
    atomic_fetch_add_explicit(&lt_counters.dropped_stacks, 1, memory_order_relaxed);
    return 0;
}

struct lt_stack *lt_stack_get(uint32_t id)
{
    /* An id counted in lt_stacks_count but still being claimed may have no chunk yet. */
    return id && id < MAX_STACKS && chunk_of(id) ? record_of(id) : NULL;
}

const uintptr_t *lt_stack_pcs(const struct lt_stack *s) { return pcs_at(s->pcs_index); }

uint32_t lt_stacks_count(void)
{
    uint32_t n = atomic_load_explicit(&next_id, memory_order_acquire) - 1;
    return n >= MAX_STACKS ? MAX_STACKS - 1 : n;
}

void lt_stack_note_alloc(uint32_t id, uint64_t size)
{
    if (!id || id >= MAX_STACKS) return;
    unsigned stripe = my_stripe();
    struct totals *t = totals_of(stripe, id);
    add(stripe, &t->alloc_count, 1);
    add(stripe, &t->alloc_bytes, size);
}

void lt_stack_note_free(uint32_t id, uint64_t size, bool whole_block)
{
    if (!id || id >= MAX_STACKS) return;
    unsigned stripe = my_stripe();
    struct totals *t = totals_of(stripe, id);
    if (whole_block) add(stripe, &t->free_count, 1);
    add(stripe, &t->freed_bytes, size);
}

/* Counters every thread may bump on every call (enum lt_striped), a set a stripe: a single
 * shared counter took a cache line from CPU to CPU on every allocation of a program deeper than
 * the depth limit (two threads of the C++ workload cut at 8 frames: 5.4x native CPU, 3.0x
 * without it), and on every free of a block allocated before an attach. Written as the totals
 * are (add: by the stripe's one thread, or atomically in a shared stripe). */
static struct {
    _Alignas(64) _Atomic uint64_t count[LT_STRIPED_COUNTERS];
} striped[STRIPES];

void lt_striped_add(enum lt_striped which)
{
    unsigned stripe = my_stripe();
    add(stripe, &striped[stripe].count[which], 1);
}

uint64_t lt_striped_sum(enum lt_striped which)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < STRIPES; i++) sum += atomic_load_explicit(&striped[i].count[which], memory_order_relaxed);
    return sum;
}

void lt_stack_note_grow(uint32_t id, uint64_t grown_by)
{
    if (!id || id >= MAX_STACKS) return;
    unsigned stripe = my_stripe();
    add(stripe, &totals_of(stripe, id)->alloc_bytes, grown_by);
}

/* Read while threads add: each field is exact as of its own read, so a reader can see a
 * free's count without its allocation's; callers clamp differences. */
struct lt_stack_totals lt_stack_totals(uint32_t id)
{
    struct lt_stack_totals sum = { 0, 0, 0, 0 };
    if (!id || id >= MAX_STACKS || !chunk_of(id)) return sum;
    for (uint32_t used = atomic_load_explicit(&stripes_used, memory_order_relaxed); used;
         used &= used - 1) {
        struct totals *t = totals_of((unsigned)__builtin_ctz(used), id);
        sum.alloc_count += atomic_load_explicit(&t->alloc_count, memory_order_relaxed);
        sum.alloc_bytes += atomic_load_explicit(&t->alloc_bytes, memory_order_relaxed);
        sum.free_count += atomic_load_explicit(&t->free_count, memory_order_relaxed);
        sum.freed_bytes += atomic_load_explicit(&t->freed_bytes, memory_order_relaxed);
    }
    return sum;
}

void lt_stacks_reset_totals(void)
{
    for (unsigned i = 0; i < STRIPES; i++)
        for (unsigned c = 0; c < LT_STRIPED_COUNTERS; c++) atomic_store(&striped[i].count[c], 0);
    uint32_t count = lt_stacks_count();
    for (uint32_t used = atomic_load(&stripes_used); used; used &= used - 1) {
        unsigned stripe = (unsigned)__builtin_ctz(used);
        for (uint32_t id = 1; id <= count; id++) {
            if (!chunk_of(id)) continue;
            struct totals *t = totals_of(stripe, id);
            atomic_store(&t->alloc_count, 0);
            atomic_store(&t->alloc_bytes, 0);
            atomic_store(&t->free_count, 0);
            atomic_store(&t->freed_bytes, 0);
        }
    }
}

/* After a detach, once no thread is inside the tables (lifecycle.c, lt_release_tables): the
 * arenas go back to the system, and ids start again at 1 when lt_stacks_init makes new ones. */
void lt_stacks_release(void)
{
    lt_unmap((void *)slots, sizeof(uint32_t) * TABLE_SLOTS);
    for (size_t i = 0; i < sizeof id_chunks / sizeof *id_chunks; i++)
        lt_unmap(atomic_exchange(&id_chunks[i], NULL), sizeof(struct id_chunk)); /* stripes_used stays:
                                                                   * bits only say where to look */
    for (size_t i = 0; i < sizeof pcs_chunks / sizeof *pcs_chunks; i++)
        lt_unmap(atomic_exchange(&pcs_chunks[i], NULL), sizeof(uintptr_t) * PCS_CHUNK);
    slots = NULL;
    for (size_t i = 0; i < sizeof slots_ready / sizeof *slots_ready; i++) atomic_store(&slots_ready[i], 0);
    atomic_store(&next_id, 1);
    atomic_store(&pcs_used, 0);
}
