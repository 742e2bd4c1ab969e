/* Live heap blocks, in a side table keyed by address (never a header in front of the block:
 * headers break aligned_alloc, pvalloc and malloc_usable_size). The table is split in shards,
 * each an open-addressing hash with its own mutex, so threads rarely meet on a lock. */
#include <pthread.h>
#include <string.h>

#include "shim.h"

#define SHARD_BITS 6
#define SHARDS (1u << SHARD_BITS)
#define INITIAL_SLOTS 256u

struct shard {
    _Alignas(64) pthread_mutex_t lock; /* guards every field below; one cache line per shard */
    struct lt_block *slots;  /* lt_map'd; addr 0 marks an empty slot */
    size_t capacity;         /* a power of two */
    size_t count;
};

/* Each shard is guarded by its own lock. */
static struct shard shards[SHARDS];

static inline uint64_t mix(uintptr_t addr)
{
    uint64_t h = (uint64_t)addr >> 4;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static inline struct shard *shard_of(uint64_t h) { return &shards[h >> (64 - SHARD_BITS)]; }

bool lt_blocks_init(void)
{
    for (unsigned i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&shards[i].lock, NULL);
        shards[i].slots = lt_map(INITIAL_SLOTS * sizeof(struct lt_block));
        if (!shards[i].slots) return false;
        shards[i].capacity = INITIAL_SLOTS;
    }
    return true;
}

/* pre: shard locked. Returns the slot holding addr, or the empty slot where it would go. */
static struct lt_block *probe(struct shard *s, uintptr_t addr, uint64_t h)
{
    size_t mask = s->capacity - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct lt_block *b = &s->slots[i];
        if (b->addr == addr || b->addr == 0) return b;
    }
}

/* pre: shard locked. Doubles the table; false if the shim's memory ran out. */
static bool grow(struct shard *s)
{
    size_t new_cap = s->capacity * 2;
    struct lt_block *fresh = lt_map(new_cap * sizeof(struct lt_block));
    if (!fresh) return false;
    struct lt_block *old = s->slots;
    size_t old_cap = s->capacity;
    s->slots = fresh;
    s->capacity = new_cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].addr) *probe(s, old[i].addr, mix(old[i].addr)) = old[i];
    lt_unmap(old, old_cap * sizeof(struct lt_block));
    return true;
}

static void insert_block(const struct lt_block *nb)
{
    uint64_t h = mix(nb->addr);
    struct shard *s = shard_of(h);
    pthread_mutex_lock(&s->lock);
    if ((s->count + 1) * 4 > s->capacity * 3 && !grow(s) && s->count + 1 >= s->capacity) {
        pthread_mutex_unlock(&s->lock);
        atomic_fetch_add_explicit(&lt_counters.dropped_blocks, 1, memory_order_relaxed);
        return;
    }
    struct lt_block *b = probe(s, nb->addr, h);
    struct lt_block replaced = *b;
    if (!b->addr) s->count++;
    *b = *nb;
    pthread_mutex_unlock(&s->lock);
    /* An address still recorded as live was freed behind our back (e.g. from a signal handler
     * while this thread was inside the shim): its old block is gone. */
    if (replaced.addr) lt_stack_note_free(replaced.stack_id, lt_block_size(&replaced), true);
}

void lt_blocks_insert(uintptr_t addr, uint64_t size, unsigned kind, uint32_t stack_id)
{
    struct lt_block b = { addr, lt_block_pack(size, lt_generation_now(), kind),
                          stack_id, lt_elapsed_ms() };
    insert_block(&b);
}

void lt_blocks_put_back(const struct lt_block *b) { insert_block(b); }

bool lt_blocks_take(uintptr_t addr, struct lt_block *out)
{
    uint64_t h = mix(addr);
    struct shard *s = shard_of(h);
    pthread_mutex_lock(&s->lock);
    struct lt_block *b = probe(s, addr, h);
    if (!b->addr) {
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    *out = *b;
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    size_t mask = s->capacity - 1;
    size_t hole = (size_t)(b - s->slots);
    for (size_t i = (hole + 1) & mask; s->slots[i].addr; i = (i + 1) & mask) {
        size_t home = mix(s->slots[i].addr) & mask;
        /* Move slot i into the hole unless its home lies cyclically in (hole, i]. */
        bool home_after_hole = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!home_after_hole) {
            s->slots[hole] = s->slots[i];
            hole = i;
        }
    }
    s->slots[hole].addr = 0;
    s->count--;
    pthread_mutex_unlock(&s->lock);
    return true;
}

unsigned lt_blocks_visit(lt_block_visitor fn, void *ctx, bool try_only)
{
    unsigned skipped = 0;
    for (unsigned i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        if (try_only) {
            if (pthread_mutex_trylock(&s->lock) != 0) {
                skipped++;
                continue;
            }
        } else {
            pthread_mutex_lock(&s->lock);
        }
        for (size_t j = 0; j < s->capacity; j++)
            if (s->slots[j].addr) fn(&s->slots[j], ctx);
        pthread_mutex_unlock(&s->lock);
    }
    return skipped;
}

size_t lt_blocks_count_locked(void)
{
    size_t n = 0;
    for (unsigned i = 0; i < SHARDS; i++) n += shards[i].count;
    return n;
}

void lt_blocks_visit_locked(lt_block_visitor fn, void *ctx)
{
    for (unsigned i = 0; i < SHARDS; i++)
        for (size_t j = 0; j < shards[i].capacity; j++)
            if (shards[i].slots[j].addr) fn(&shards[i].slots[j], ctx);
}

void lt_blocks_lock_all(void)
{
    for (unsigned i = 0; i < SHARDS; i++) pthread_mutex_lock(&shards[i].lock);
}

void lt_blocks_unlock_all(void)
{
    for (unsigned i = 0; i < SHARDS; i++) pthread_mutex_unlock(&shards[i].lock);
}

void lt_blocks_reset(void)
{
    for (unsigned i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&shards[i].lock);
        memset(shards[i].slots, 0, shards[i].capacity * sizeof(struct lt_block));
        shards[i].count = 0;
        pthread_mutex_unlock(&shards[i].lock);
    }
}
