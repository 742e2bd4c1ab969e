/* Live heap blocks, in a side table keyed by address (never a header in front of the block:
 * headers break aligned_alloc, pvalloc and malloc_usable_size). The table is split in shards,
 * each an open-addressing hash with its own lock, so threads rarely meet on a lock.
 *
 * Signal safety: a signal handler may allocate or free while its thread is inside this file
 * holding a shard lock (e.g. interrupted inside free). Taking any shard lock again from there
 * could deadlock, so while a thread holds one (`locks_held`, per thread), its hooks do not
 * lock: they append the operation to the thread's pending queue, which the thread applies in
 * order as soon as it lets go of its last lock. The hot path pays one thread-local increment
 * and decrement, and one compare after unlocking. */
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sampling.h"
#include "shim.h"

#define SHARD_BITS 6
#define SHARDS (1u << SHARD_BITS)
#define INITIAL_SLOTS 256u

/* A futex lock (0 free, 1 held, 2 held with waiters): the uncontended path is one CAS and
 * one exchange, inlined, with no call into libc. */
typedef _Atomic int lt_lock;

static inline void futex(lt_lock *word, int op, int value)
{
    syscall(SYS_futex, (int *)word, op | FUTEX_PRIVATE_FLAG, value, NULL, NULL, 0);
}

static void lock_slow(lt_lock *l)
{
    int c = atomic_exchange_explicit(l, 2, memory_order_acquire);
    while (c != 0) {
        futex(l, FUTEX_WAIT, 2); /* EINTR (e.g. the scan's stop signal) just loops */
        c = atomic_exchange_explicit(l, 2, memory_order_acquire);
    }
}

static inline void raw_lock(lt_lock *l)
{
    int expected = 0;
    if (LT_UNLIKELY(!atomic_compare_exchange_strong_explicit(l, &expected, 1, memory_order_acquire,
                                                              memory_order_relaxed)))
        lock_slow(l);
}

static inline bool raw_trylock(lt_lock *l)
{
    int expected = 0;
    return atomic_compare_exchange_strong_explicit(l, &expected, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}

static inline void raw_unlock(lt_lock *l)
{
    if (LT_UNLIKELY(atomic_exchange_explicit(l, 0, memory_order_release) == 2)) futex(l, FUTEX_WAKE, 1);
}

/* The in-memory record of a live block is 16 bytes, so four share a cache line and none
 * straddles two: what the free path reads (address, size, stack id, kind) is all here. The
 * allocation time and generation, which only captures and scans read, sit in a parallel array
 * (`extras`, same index). This is not the capture file's block record (capture.c writes that
 * from struct lt_block). */
struct slot {
    uintptr_t addr;          /* 0 = empty slot */
    uint64_t meta;           /* size << 24 | stack id << 4 | kind */
};
struct slot_extra {
    uint32_t time_ms;        /* allocation time, ms since start */
    uint16_t generation;
};
_Static_assert(sizeof(struct slot) == 16 && sizeof(struct slot_extra) == 8, "record sizes");
_Static_assert(LT_KIND_MEMPOOL < 16, "a kind fits in 4 bits");
_Static_assert(LT_STACK_ID_BITS == 20, "a stack id fits in 20 bits");

static inline uint64_t pack_meta(uint64_t size, uint32_t stack_id, unsigned kind)
{
    if (size > LT_MAX_PACKED_SIZE) size = LT_MAX_PACKED_SIZE;
    return size << 24 | (uint64_t)(stack_id & ((1u << LT_STACK_ID_BITS) - 1)) << 4 | (kind & 0xf);
}
static inline uint64_t meta_size(uint64_t meta) { return meta >> 24; }
static inline uint32_t meta_stack(uint64_t meta) { return (uint32_t)(meta >> 4) & ((1u << LT_STACK_ID_BITS) - 1); }
static inline unsigned meta_kind(uint64_t meta) { return (unsigned)meta & 0xf; }

struct shard {
    _Alignas(64) lt_lock lock; /* guards every field below; one cache line per shard */
    struct slot *slots;      /* lt_map'd, with `extras` right after them in one mapping */
    struct slot_extra *extras;
    size_t capacity;         /* a power of two; at most half full while memory lasts */
    size_t count;
};

/* Each shard is guarded by its own lock. */
static struct shard shards[SHARDS];

static inline size_t shard_bytes(size_t capacity)
{
    return capacity * (sizeof(struct slot) + sizeof(struct slot_extra));
}

/* pre: shard locked (or the shard not yet published). */
static bool shard_map(struct shard *s, size_t capacity)
{
    struct slot *slots = lt_map(shard_bytes(capacity));
    if (!slots) return false;
    s->slots = slots;
    s->extras = (struct slot_extra *)(void *)(slots + capacity);
    s->capacity = capacity;
    return true;
}

static inline uint64_t mix(uintptr_t addr)
{
    uint64_t h = (uint64_t)addr >> 4;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static inline struct shard *shard_of(uint64_t h) { return &shards[h >> (64 - SHARD_BITS)]; }

/* ---- per-thread: locks held, and what a signal handler asked for meanwhile ------------- */
enum pending_op { OP_INSERT, OP_FORGET };
struct pending {
    unsigned op;
    struct lt_block block;   /* OP_INSERT: the block; OP_FORGET: only addr */
};
/* Mapped (NORESERVE: pages cost memory only once written) by the first handler that needs it,
 * and kept. Handlers can pile up while their thread holds a lock for long (a shard growing):
 * a timer signal every 50 us queued a few hundred operations in tests. */
#define PENDING_MAX 16384u
/* Only their own thread touches these: the thread itself, or a signal handler running on it
 * (which runs to completion before the thread goes on). `volatile` keeps the compiler from
 * caching them across the points where a handler may run. The queue is not in TLS: static
 * TLS is scarce when the shim is dlopen'd (attach), and few threads ever need one. */
static __thread volatile unsigned locks_held __attribute__((tls_model("initial-exec")));
static __thread volatile unsigned pending_head, pending_tail __attribute__((tls_model("initial-exec")));
static __thread struct pending *pending __attribute__((tls_model("initial-exec")));
static __thread volatile bool applying __attribute__((tls_model("initial-exec")));

static void apply_pending(void);

static inline void shard_lock(struct shard *s)
{
    locks_held = locks_held + 1; /* before taking it: a handler must never see it taken but unnoted */
    atomic_signal_fence(memory_order_seq_cst);
    raw_lock(&s->lock);
}

static inline bool shard_trylock(struct shard *s)
{
    locks_held = locks_held + 1;
    atomic_signal_fence(memory_order_seq_cst);
    if (raw_trylock(&s->lock)) return true;
    locks_held = locks_held - 1;
    return false;
}

static inline void shard_unlock(struct shard *s)
{
    raw_unlock(&s->lock);
    atomic_signal_fence(memory_order_seq_cst);
    locks_held = locks_held - 1;
    atomic_signal_fence(memory_order_seq_cst);
    if (LT_UNLIKELY(pending_head != pending_tail) && locks_held == 0 && !applying) apply_pending();
}

/* From a signal handler that interrupted this thread while it held a shard lock. */
static void defer(unsigned op, const struct lt_block *b)
{
    if (!pending) pending = lt_map(PENDING_MAX * sizeof(struct pending)); /* mmap: signal-safe */
    if (!pending || pending_tail - pending_head >= PENDING_MAX) {
        if (op == OP_INSERT) atomic_fetch_add_explicit(&lt_counters.dropped_blocks, 1, memory_order_relaxed);
        else atomic_fetch_add_explicit(&lt_counters.unknown_frees, 1, memory_order_relaxed);
        return;
    }
    struct pending *slot = &pending[pending_tail % PENDING_MAX];
    slot->op = op;
    slot->block = *b;
    atomic_signal_fence(memory_order_seq_cst);
    pending_tail = pending_tail + 1;
}

/* While the thread holds a lock, and while it applies the queue (a handler's operations must
 * not overtake the ones queued before them). */
static inline bool must_defer(void) { return LT_UNLIKELY(locks_held != 0 || applying); }

bool lt_blocks_init(void)
{
    for (unsigned i = 0; i < SHARDS; i++)
        if (!shard_map(&shards[i], INITIAL_SLOTS)) return false;
    return lt_sampling_init();
}

/* Starts loading the cache line of addr's home slot, read without the lock: a stale pointer
 * (the shard just grew) only wastes the hint, a prefetch never faults. The slot is most often
 * a cache miss, so loading it while the caller unwinds (or takes the lock) hides most of it.
 * An insertion also writes the slot's extra. */
static inline struct shard *prefetch_slot(uint64_t h, bool extra)
{
    struct shard *s = shard_of(h);
    struct slot *slots = __atomic_load_n(&s->slots, __ATOMIC_RELAXED);
    size_t cap = __atomic_load_n(&s->capacity, __ATOMIC_RELAXED);
    size_t i = h & (cap - 1);
    __builtin_prefetch(&slots[i], 1);
    if (extra) __builtin_prefetch((struct slot_extra *)(void *)(slots + cap) + i, 1);
    return s;
}

void lt_blocks_prefetch(uintptr_t addr) { prefetch_slot(mix(addr), true); }

/* pre: shard locked. Returns the index of the slot holding addr, or of the empty slot where
 * it would go. At most half full, so the chains are short (1.5 slots on a hit, 2.5 on a miss). */
static inline size_t probe(const struct shard *s, uintptr_t addr, uint64_t h)
{
    size_t mask = s->capacity - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uintptr_t a = s->slots[i].addr;
        if (a == addr || a == 0) return i;
    }
}

/* pre: shard locked. Doubles the table; false if the shim's memory ran out. */
static bool grow(struct shard *s)
{
    struct slot *old = s->slots;
    struct slot_extra *old_extras = s->extras;
    size_t old_cap = s->capacity;
    if (!shard_map(s, old_cap * 2)) return false;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].addr) continue;
        size_t at = probe(s, old[i].addr, mix(old[i].addr));
        s->slots[at] = old[i];
        s->extras[at] = old_extras[i];
    }
    lt_unmap(old, shard_bytes(old_cap));
    return true;
}

static void insert_now(const struct lt_block *nb)
{
    uint64_t h = mix(nb->addr);
    struct shard *s = shard_of(h);
    shard_lock(s);
    if ((s->count + 1) * 2 > s->capacity && !grow(s) && s->count + 1 >= s->capacity) {
        shard_unlock(s);
        atomic_fetch_add_explicit(&lt_counters.dropped_blocks, 1, memory_order_relaxed);
        return;
    }
    size_t i = probe(s, nb->addr, h);
    struct slot replaced = s->slots[i];
    if (!replaced.addr) s->count++;
    s->slots[i].addr = nb->addr;
    s->slots[i].meta = pack_meta(lt_block_size(nb), nb->stack_id, lt_block_kind(nb));
    s->extras[i].time_ms = nb->time_ms;
    s->extras[i].generation = (uint16_t)lt_block_generation(nb);
    shard_unlock(s);
    /* An address still recorded as live was freed behind our back (e.g. from a signal handler
     * while this thread was inside the shim): its old block is gone. */
    if (replaced.addr) {
        if (lt_sample_mean_bytes) lt_sample_filter_remove(nb->addr); /* counted once per insert */
        lt_stack_note_free(meta_stack(replaced.meta), meta_size(replaced.meta), true);
    }
}

static void insert_block(const struct lt_block *nb)
{
    if (lt_sample_mean_bytes) lt_sample_filter_add(nb->addr); /* before it can be freed */
    if (must_defer()) defer(OP_INSERT, nb);
    else insert_now(nb);
}

void lt_blocks_insert(uintptr_t addr, uint64_t size, unsigned kind, uint32_t stack_id)
{
    struct lt_block b = { addr, lt_block_pack(size, lt_generation_now(), kind),
                          stack_id, lt_elapsed_ms() };
    insert_block(&b);
}

void lt_blocks_put_back(const struct lt_block *b) { insert_block(b); }

/* pre: not must_defer(). Removes addr's record: its meta word, and its extra when `extra` is
 * not NULL (the free path needs only the size and stack). False when addr is not recorded. */
static bool take_slot(uintptr_t addr, uint64_t *meta, struct slot_extra *extra)
{
    uint64_t h = mix(addr);
    struct shard *s = prefetch_slot(h, false);
    shard_lock(s);
    size_t hole = probe(s, addr, h);
    if (!s->slots[hole].addr) {
        shard_unlock(s);
        return false;
    }
    *meta = s->slots[hole].meta;
    if (extra) *extra = s->extras[hole];
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    size_t mask = s->capacity - 1;
    for (size_t i = (hole + 1) & mask; s->slots[i].addr; i = (i + 1) & mask) {
        size_t home = mix(s->slots[i].addr) & mask;
        /* Move slot i into the hole unless its home lies cyclically in (hole, i]. */
        bool home_after_hole = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!home_after_hole) {
            s->slots[hole] = s->slots[i];
            s->extras[hole] = s->extras[i];
            hole = i;
        }
    }
    s->slots[hole].addr = 0;
    s->count--;
    shard_unlock(s);
    if (lt_sample_mean_bytes) lt_sample_filter_remove(addr);
    return true;
}

static inline void block_of(uintptr_t addr, uint64_t meta, const struct slot_extra *e, struct lt_block *out)
{
    out->addr = addr;
    out->packed = lt_block_pack(meta_size(meta), e->generation, meta_kind(meta));
    out->stack_id = meta_stack(meta);
    out->time_ms = e->time_ms;
}

bool lt_blocks_take(uintptr_t addr, struct lt_block *out)
{
    if (lt_sample_unrecorded(addr)) return false; /* sampling mode: the common case */
    uint64_t meta;
    struct slot_extra extra;
    if (must_defer() || !take_slot(addr, &meta, &extra)) return false; /* a handler's caller falls back to forget */
    block_of(addr, meta, &extra, out);
    return true;
}

static void forget_now(uintptr_t addr)
{
    uint64_t meta;
    if (take_slot(addr, &meta, NULL)) lt_stack_note_free(meta_stack(meta), meta_size(meta), true);
    else if (!lt_sample_mean_bytes) /* sampling: most frees are of blocks never recorded */
        atomic_fetch_add_explicit(&lt_counters.unknown_frees, 1, memory_order_relaxed);
}

void lt_blocks_forget(uintptr_t addr)
{
    if (lt_sample_unrecorded(addr)) return; /* sampling mode: the common case */
    if (must_defer()) {
        struct lt_block b = { .addr = addr };
        defer(OP_FORGET, &b);
        return;
    }
    forget_now(addr);
}

/* pre: locks_held == 0. Applies, in order, what signal handlers queued; a handler that runs
 * meanwhile (while an operation below holds a lock) queues behind. */
static void apply_pending(void)
{
    applying = true;
    atomic_signal_fence(memory_order_seq_cst);
    while (pending_head != pending_tail) {
        struct pending op = pending[pending_head % PENDING_MAX];
        atomic_signal_fence(memory_order_seq_cst);
        pending_head = pending_head + 1;
        if (op.op == OP_INSERT) insert_now(&op.block);
        else forget_now(op.block.addr);
    }
    atomic_signal_fence(memory_order_seq_cst);
    applying = false;
}

/* pre: s locked. Visitors get a struct lt_block made for the call (they copy what they keep). */
static void visit_shard(const struct shard *s, lt_block_visitor fn, void *ctx)
{
    for (size_t j = 0; j < s->capacity; j++) {
        if (!s->slots[j].addr) continue;
        struct lt_block b;
        block_of(s->slots[j].addr, s->slots[j].meta, &s->extras[j], &b);
        fn(&b, ctx);
    }
}

unsigned lt_blocks_visit(lt_block_visitor fn, void *ctx, bool try_only)
{
    unsigned skipped = 0;
    for (unsigned i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        if (try_only) {
            if (!shard_trylock(s)) {
                skipped++;
                continue;
            }
        } else {
            shard_lock(s);
        }
        visit_shard(s, fn, ctx);
        shard_unlock(s);
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
    for (unsigned i = 0; i < SHARDS; i++) visit_shard(&shards[i], fn, ctx);
}

void lt_blocks_lock_all(void)
{
    for (unsigned i = 0; i < SHARDS; i++) shard_lock(&shards[i]);
}

void lt_blocks_unlock_all(void)
{
    for (unsigned i = 0; i < SHARDS; i++) shard_unlock(&shards[i]);
}

void lt_blocks_reset(void)
{
    for (unsigned i = 0; i < SHARDS; i++) {
        shard_lock(&shards[i]);
        memset(shards[i].slots, 0, shard_bytes(shards[i].capacity));
        shards[i].count = 0;
        shard_unlock(&shards[i]);
    }
    lt_sample_filter_clear();
}

/* After a detach (lt_release_tables): the shards' slot arrays go back to the system;
 * lt_blocks_init maps fresh ones. */
void lt_blocks_release(void)
{
    for (unsigned i = 0; i < SHARDS; i++) {
        shard_lock(&shards[i]);
        lt_unmap(shards[i].slots, shard_bytes(shards[i].capacity));
        shards[i].slots = NULL;
        shards[i].extras = NULL;
        shards[i].capacity = 0;
        shards[i].count = 0;
        shard_unlock(&shards[i]);
    }
}

/* This thread holds a shard lock (a signal handler interrupted it there). */
bool lt_blocks_held_here(void) { return locks_held != 0; }
