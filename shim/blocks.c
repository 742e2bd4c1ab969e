/* Live heap blocks, in a side table keyed by address (never a header in front of the block:
 * headers break aligned_alloc, pvalloc and malloc_usable_size). The table is split in shards,
 * each an open-addressing hash with its own lock, so threads rarely meet on a lock. Shards come
 * in groups, one per 64 MiB region of the address space (a glibc arena heap is one such
 * region, and each thread mostly has an arena of its own): threads then mostly use shards,
 * locks and cache lines of their own, which two threads on two CPUs otherwise pass back and
 * forth on every call (measured: the C++ workload's shim time nearly halved).
 *
 * Signal safety: a signal handler may allocate or free while its thread is inside this file
 * holding a shard lock (e.g. interrupted inside free). Taking any shard lock again from there
 * could deadlock, so while a thread holds one (`locks_held`, per thread), its hooks do not
 * lock: they append the operation to the thread's pending queue, which the thread applies in
 * order as soon as it lets go of its last lock. The hot path pays one thread-local increment
 * and decrement, and one compare after unlocking.
 *
 * Owned shards: a shard's lock costs two locked instructions per call, each waiting for the
 * thread's pending stores (4-6% of the traced program's time, measured). Most shards are only
 * ever used by one thread (its arena's region), so the first thread to use a shard owns it and
 * enters it without the lock: it raises the shard's `busy` flag and goes on if the shard's
 * `gate` is still 0. Any other thread that needs the shard, or a caller that needs every
 * shard (scan, fork, capture), first raises the gate, then calls membarrier(), after which the
 * owner either sees the gate or has its busy flag visible, and waits until busy is down (an
 * owner inside never waits on anything). A second thread makes the shard shared for good:
 * from then on every thread takes the lock, as before. Without membarrier no shard is owned. */
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sampling.h"
#include "shim.h"

#define GROUP_BITS 4                /* groups of shards, chosen by a block's 64 MiB region */
#define SHARD_BITS 8                /* shards in all: 16 a group */
#define SHARDS (1u << SHARD_BITS)
#define REGION_SHIFT 26             /* glibc's arena heaps are 64 MiB, aligned on 64 MiB */
#define INITIAL_SLOTS 64u           /* 1.6 KiB a shard: small programs stay small */
#define SPAN_SHIFT 10               /* blocks are hashed by their 1 KiB span (home_slot) */
#define SPAN_UNIT_SHIFT 5           /* a large table gives a span a slot per 32 bytes (home_slot) */
#define SPAN_MIN_SLOTS 16384u       /* from this size (384 KiB) a table keeps spans together */

/* A futex lock (0 free, 1 held, 2 held with waiters): the uncontended path is one CAS and
 * one exchange, inlined, with no call into libc. */
typedef _Atomic int lt_lock;

static inline void futex(lt_lock *word, int op, int value)
{
    lt_raw_syscall(SYS_futex, (long)word, op | FUTEX_PRIVATE_FLAG, value, 0, 0, 0);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void lock_slow(lt_lock *l)
{
    /* A shard is held for a few dozen nanoseconds: spin a little before sleeping in the
     * kernel, which costs microseconds. */
    for (int spin = 0; spin < 100; spin++) {
        cpu_relax();
        int expected = 0;
        if (atomic_load_explicit(l, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(l, &expected, 1, memory_order_acquire,
                                                    memory_order_relaxed))
            return;
    }
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

#define SHARED_OWNER UINT32_MAX     /* a shard's owner once a second thread used it */

struct shard {
    _Alignas(64) lt_lock lock; /* with `busy` (below), guards the rest but owner, gate, busy */
    struct lt_block *slots;  /* lt_map'd, with the tags after them; addr 0 in a slot not full */
    uint8_t *tags;           /* a tag a slot (TAG_EMPTY, TAG_DELETED or tag_of: below) */
    size_t capacity;         /* slots; a multiple of BUCKET below 2^32 (home_slot) */
    size_t count;            /* full slots */
    size_t used;             /* full and deleted slots: rehashed at 3/4 of capacity (too_full) */
    uint32_t spread;         /* home_slot's: 0 until the table is large */
    _Atomic uint32_t owner;  /* 0: nobody yet; an owner id (my_owner_id); SHARED_OWNER */
    _Atomic uint32_t gate;   /* +2 per caller holding every shard (freeze), +1 once shared:
                              * the owner enters without the lock only while it is 0 */
    _Atomic uint32_t busy;   /* 1 while the owner is inside without the lock; only it writes */
    unsigned char *small;    /* lt_map'd, two halves of SMALL_ARRAY_BYTES (rehash); or NULL */
};

/* Each shard is guarded by its own lock, or owned (above). */
static struct shard shards[SHARDS];

/* Set at lt_blocks_init (and in a fork child): membarrier works, so shards may be owned.
 * Cleared for good by lt_blocks_stop_owning (sandboxed: the filter may forbid membarrier). */
static bool owning_allowed, sandboxed;
/* A thread's owner id, from owner_ids (0: none yet); only its own thread touches it. */
static __thread uint32_t my_owner_id __attribute__((tls_model("initial-exec")));
static _Atomic uint32_t owner_ids;

/* The top GROUP_BITS: a hash of the block's region (its group of shards); below them, a hash
 * of its 1 KiB span (the shard in the group from the top bits; in a large table, the slot
 * from the low ones: home_slot). */
static inline uint64_t mix(uintptr_t addr)
{
    uint64_t h = (uint64_t)addr >> SPAN_SHIFT;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    uint64_t region = ((uint64_t)addr >> REGION_SHIFT) * 0x9e3779b97f4a7c15ull;
    return (h >> GROUP_BITS) | (region >> (64 - GROUP_BITS) << (64 - GROUP_BITS));
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

/* Leaves a shard entered as its owner (`owned`, shard_enter below) or with its lock. */
static inline void shard_leave(struct shard *s, bool owned)
{
    if (owned) atomic_store_explicit(&s->busy, 0, memory_order_release);
    else raw_unlock(&s->lock);
    atomic_signal_fence(memory_order_seq_cst);
    locks_held = locks_held - 1;
    atomic_signal_fence(memory_order_seq_cst);
    if (LT_UNLIKELY(pending_head != pending_tail) && locks_held == 0 && !applying) apply_pending();
}

static inline void shard_unlock(struct shard *s) { shard_leave(s, false); }

/* From a signal handler that interrupted this thread while it held a shard lock. */
static void defer(unsigned op, const struct lt_block *b)
{
    if (!pending) pending = lt_map(PENDING_MAX * sizeof(struct pending)); /* mmap: signal-safe */
    if (!pending || pending_tail - pending_head >= PENDING_MAX) {
        if (op == OP_INSERT) atomic_fetch_add_explicit(&lt_counters.dropped_blocks, 1, memory_order_relaxed);
        else lt_striped_add(LT_UNKNOWN_FREES);
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

/* ---- owned shards ------------------------------------------------------------------------ */
static void membarrier_all_threads(void)
{
    /* Registered at init, so the expedited command works; should it fail anyway, the global
     * one orders as strongly, only slower. */
    if (lt_raw_syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0, 0, 0, 0) != 0)
        lt_raw_syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0, 0, 0, 0);
}

/* pre: the shard's gate was raised and membarrier_all_threads() ran since. True once its owner
 * is not inside; false if `spins` ran out first (0: wait as long as it takes). */
static bool owner_out(struct shard *s, unsigned spins)
{
    /* An owner is inside for a few dozen nanoseconds, unless it was preempted (yield to it)
     * or stopped (a debugger: sleep rather than burn a CPU). */
    static const struct timespec nap = { 0, 50000 };
    for (unsigned n = 1; atomic_load_explicit(&s->busy, memory_order_acquire); n++) {
        if (spins && n >= spins) return false;
        if (n >= 4096) lt_sys_nanosleep(&nap, NULL);
        else if (n % 128 == 0) lt_raw_syscall(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
        else cpu_relax();
    }
    return true;
}

/* Every thread takes the lock of these shards from now on: a second thread needs one, or the
 * shim stops owning. */
static void make_shared(struct shard *first, unsigned n)
{
    for (unsigned i = 0; i < n; i++) atomic_fetch_or(&first[i].gate, 1);
    membarrier_all_threads(); /* also when another thread raised it: this thread's view of busy */
    for (unsigned i = 0; i < n; i++) {
        owner_out(&first[i], 0);
        atomic_store(&first[i].owner, SHARED_OWNER);
    }
}

/* The shard's owner is not this thread: claims it if nobody owns it yet. True if this thread
 * owns it now; false if it must lock (the shard is shared, or just made shared). */
static __attribute__((noinline, cold)) bool settle_owner(struct shard *s, uint32_t owner)
{
    if (owner == SHARED_OWNER || !owning_allowed) return false;
    if (!my_owner_id) {
        uint32_t id = atomic_fetch_add_explicit(&owner_ids, 1, memory_order_relaxed) + 1;
        if (id >= SHARED_OWNER) return false; /* 4 G threads made: the rest lock */
        my_owner_id = id;
    }
    if (owner == 0 && atomic_compare_exchange_strong(&s->owner, &owner, my_owner_id)) return true;
    if (owner == my_owner_id) return true; /* a signal handler on this thread claimed it */
    if (owner != SHARED_OWNER) make_shared(s, 1);
    return false;
}

/* Enters a shard: returns true if as its owner, without the lock; else with the lock held. */
static inline bool shard_enter(struct shard *s)
{
    uint32_t owner = atomic_load_explicit(&s->owner, memory_order_relaxed);
    bool mine = owner == my_owner_id && owner != 0;
    if (LT_UNLIKELY(!mine)) mine = settle_owner(s, owner);
    locks_held = locks_held + 1; /* as shard_lock: before entering */
    atomic_signal_fence(memory_order_seq_cst);
    if (LT_LIKELY(mine)) {
        atomic_store_explicit(&s->busy, 1, memory_order_relaxed);
        /* The CPU may still read the gate before busy is visible: the freezer's membarrier
         * orders it. The compiler must not. */
        atomic_signal_fence(memory_order_seq_cst);
        if (LT_LIKELY(atomic_load_explicit(&s->gate, memory_order_acquire) == 0)) return true;
        atomic_store_explicit(&s->busy, 0, memory_order_release);
    }
    raw_lock(&s->lock);
    return false;
}

/* Keeps every owner out of its shard without the lock, until thaw_all: raises every gate and
 * waits for owners inside to leave. wait false (a signal handler, which may have interrupted
 * an owner inside on its own thread): gives up on a shard whose owner stays inside, and marks
 * it in given_up (the caller skips it; thaw_all is still called). */
static void freeze_all(bool wait, bool given_up[SHARDS])
{
    for (unsigned i = 0; i < SHARDS; i++) atomic_fetch_add(&shards[i].gate, 2);
    if (owning_allowed) membarrier_all_threads();
    for (unsigned i = 0; i < SHARDS; i++) {
        bool out = !owning_allowed || owner_out(&shards[i], wait ? 0 : 4096);
        if (given_up) given_up[i] = !out;
    }
}

static void thaw_all(void)
{
    for (unsigned i = 0; i < SHARDS; i++) atomic_fetch_sub(&shards[i].gate, 2);
}

/* ---- the table: buckets of 16 slots, a tag byte a slot --------------------------------------
 * Beside its records (24 bytes a slot) a shard keeps a tag byte a slot, in an array of its own:
 * TAG_EMPTY, TAG_DELETED (a tombstone) or 0x80 | 7 bits of the address's hash (tag_of). Slots
 * come in buckets of 16; a lookup compares its bucket's 16 tags at once (SSE2) and reads a
 * record only where the tag matches: it touches one record, and a removal rewrites one tag.
 * (Linear probing over the records, with backward-shift deletion, walked and moved records: 45%
 * of the free path's time, measured on the C++ workload.) The tags are 1/24 of the records and
 * mostly stay in cache. A key whose bucket has no free slot goes on to the next bucket, so a
 * lookup stops at the first bucket with an empty slot; with 16 slots a bucket and at most 3/4
 * of them used, a bucket seldom has none (buckets of 8 went on to the next one on about a
 * fifth of the inserts' samples). A removal therefore empties its slot only in a bucket that
 * still has another empty one: such a bucket was never full since the last rehash (a full
 * bucket only ever gets tombstones), so no key probed past it. Elsewhere it leaves a
 * tombstone, which an insert may reuse and a rehash drops. */
#define BUCKET 16u
#define TAG_EMPTY 0u /* so that a fresh zeroed mapping is an empty table */
#define TAG_DELETED 1u
#define SLOT_BYTES (sizeof(struct lt_block) + 1) /* the record and its tag */
_Static_assert(INITIAL_SLOTS % BUCKET == 0, "a shard's capacity is a whole number of buckets");
_Static_assert(INITIAL_SLOTS * SLOT_BYTES % 16 == 0 && INITIAL_SLOTS * sizeof(struct lt_block) % 16 == 0,
               "each shard's first tags are 16-byte aligned in the first arrays");

/* A set of a bucket's slots, bit i for slot i. */
typedef uint32_t slot_set;

#if defined(__SSE2__)
#include <emmintrin.h>
/* A bucket's tags: 16-byte aligned (a shard's tags start 24 x capacity bytes into a
 * page-aligned mapping, or 1,600 x its index into the first arrays, and capacity is a
 * multiple of 16). */
typedef __m128i bucket_tags_t;
static inline bucket_tags_t bucket_tags(const struct shard *s, size_t bucket)
{
    return _mm_load_si128((const __m128i *)(const void *)(s->tags + bucket * BUCKET));
}
static inline slot_set match_tag(bucket_tags_t t, uint8_t tag)
{
    return (slot_set)_mm_movemask_epi8(_mm_cmpeq_epi8(t, _mm_set1_epi8((char)tag)));
}
static inline slot_set match_empty(bucket_tags_t t)
{
    return (slot_set)_mm_movemask_epi8(_mm_cmpeq_epi8(t, _mm_setzero_si128()));
}
static inline slot_set match_not_full(bucket_tags_t t) { return (slot_set)_mm_movemask_epi8(t) ^ 0xffffu; }
#else
typedef struct { uint8_t tag[BUCKET]; } bucket_tags_t;
static inline bucket_tags_t bucket_tags(const struct shard *s, size_t bucket)
{
    bucket_tags_t t;
    memcpy(t.tag, s->tags + bucket * BUCKET, BUCKET);
    return t;
}
static inline slot_set match_where(bucket_tags_t t, uint8_t tag, uint8_t mask)
{
    slot_set m = 0;
    for (unsigned i = 0; i < BUCKET; i++) m |= (slot_set)((t.tag[i] & mask) == tag) << i;
    return m;
}
static inline slot_set match_tag(bucket_tags_t t, uint8_t tag) { return match_where(t, tag, 0xff); }
static inline slot_set match_empty(bucket_tags_t t) { return match_where(t, TAG_EMPTY, 0xff); }
static inline slot_set match_not_full(bucket_tags_t t) { return match_where(t, 0, 0x80); }
#endif
static inline unsigned first_slot(slot_set m) { return (unsigned)__builtin_ctz(m); }

/* 7 bits of the address's granule hash, below the 32 home_slot scales in a small table, and
 * different for the granules of one span (a large table places a span's blocks together). */
static inline uint8_t tag_of(uintptr_t addr)
{
    return (uint8_t)(0x80u | ((((uint64_t)addr >> 4) * 0x9e3779b97f4a7c15ull) >> 25 & 0x7f));
}

/* Every shard's first slots and tags, carved from one mapping (one system call at start-up,
 * not one a shard); set by lt_blocks_init, unmapped by lt_blocks_release. */
static unsigned char *first_arrays;
#define FIRST_ARRAYS_BYTES ((size_t)SHARDS * INITIAL_SLOTS * SLOT_BYTES)

/* Small arrays take turns in the two halves of the shard's `small` mapping, which stays: a
 * munmap makes the kernel flush the old array from every CPU running the program, an
 * interrupt to each that it waits for (tens of microseconds in a virtual machine, more than
 * rehashing a few thousand blocks). Tables grow by half, so a shard grown to 2,000 blocks had
 * rehashed 8 times: munmap was 2.7% of the C++ workload's samples. The cost: while a table is
 * small, its previous array stays in memory too (at most SMALL_ARRAY_BYTES a shard). */
#define SMALL_ARRAY_BYTES ((size_t)64 << 10)

static bool in_small(const struct shard *s, const void *array)
{
    const unsigned char *at = array;
    return s->small && at >= s->small && at < s->small + 2 * SMALL_ARRAY_BYTES;
}

/* pre: the shard's arrays are no longer `slots` (set_arrays). */
static void release_array(struct shard *s, struct lt_block *slots, size_t capacity)
{
    unsigned char *at = (unsigned char *)slots;
    if (at >= first_arrays && at < first_arrays + FIRST_ARRAYS_BYTES) return;
    if (in_small(s, slots)) {
        if (in_small(s, s->slots)) return;
        lt_unmap(s->small, 2 * SMALL_ARRAY_BYTES); /* grown out of it: tables never shrink */
        s->small = NULL;
        return;
    }
    lt_unmap(slots, capacity * SLOT_BYTES);
}

/* Zeroed arrays for `capacity` slots: the half of `small` the table is not in while they fit
 * (written before read: no zero page to replace, see lt_map_populated), else a mapping of
 * their own. */
static void *fresh_arrays(struct shard *s, size_t capacity)
{
    size_t bytes = capacity * SLOT_BYTES;
    if (bytes > SMALL_ARRAY_BYTES) return lt_map_populated(bytes);
    if (!s->small) s->small = lt_map(2 * SMALL_ARRAY_BYTES);
    if (!s->small) return lt_map_populated(bytes);
    unsigned char *half = (unsigned char *)s->slots == s->small ? s->small + SMALL_ARRAY_BYTES : s->small;
    memset(half, 0, bytes);
    return half;
}

static void set_arrays(struct shard *s, void *mapping, size_t capacity)
{
    s->slots = mapping;
    s->tags = (uint8_t *)(s->slots + capacity);
    s->capacity = capacity;
}

/* No shard owned, and may they be: only where membarrier can order their owners (Linux 4.14
 * on; registered anew, as a fork child's registration is its own). */
static void forget_owners(void)
{
    for (unsigned i = 0; i < SHARDS; i++) {
        atomic_store(&shards[i].owner, 0);
        atomic_store(&shards[i].gate, 0);
        atomic_store(&shards[i].busy, 0);
    }
    owning_allowed = !sandboxed &&
                     lt_raw_syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0, 0, 0, 0) == 0;
}

/* Before a seccomp filter goes in (sandbox.c): every shard is made shared, with the one
 * membarrier() still allowed, and none is owned again; no membarrier() is made after this. */
void lt_blocks_stop_owning(void)
{
    if (sandboxed) return;
    sandboxed = true;
    if (!owning_allowed) return;
    make_shared(shards, SHARDS);
    owning_allowed = false;
}

bool lt_blocks_init(void)
{
    first_arrays = lt_map(FIRST_ARRAYS_BYTES);
    if (!first_arrays) return false;
    for (unsigned i = 0; i < SHARDS; i++) {
        set_arrays(&shards[i], first_arrays + (size_t)i * INITIAL_SLOTS * SLOT_BYTES, INITIAL_SLOTS);
        shards[i].spread = 0; /* small: spread_for(INITIAL_SLOTS) */
        shards[i].count = shards[i].used = 0;
    }
    forget_owners(); /* a new attach: the last one's owners may be gone */
    return lt_sampling_init();
}

/* In a fork child (lt_blocks_unlock_all done): the owners were the parent's threads. */
void lt_blocks_after_fork_child(void) { forget_owners(); }

/* The slot a block starts probing at, as 32 bits scaled to the capacity (a multiply and a
 * shift, for a capacity that is not a power of two: the table grows by half, below).
 * A small table stays in cache: there the 32 bits are a hash of the block's own 16-byte
 * granule (Fibonacci hashing), which scatters the blocks of a span. In a large table every
 * insert and free reads a line no cache holds, unless blocks made and freed together have
 * their records on the same lines: from SPAN_MIN_SLOTS the 32 bits are the span's hash plus
 * the block's 32-byte unit in the span times the spread (2^32 / capacity), so a span's records
 * sit on 32 consecutive slots, two buckets (a Python dict's objects, made and freed in address
 * order, then share lines). A unit of 32 bytes: glibc's smallest chunk, so two of its blocks
 * never share a home. Spans of 1 KiB rather than 256 bytes: a quarter of the jumps to a random
 * place of the table where blocks come and go in address order (python3 dict -20% CPU), even
 * elsewhere (docs/benchmarks-shim.md). Placing by span in small tables too only lengthened their probes. */
static inline size_t home_slot(uint64_t h, uintptr_t addr, size_t capacity, uint32_t spread)
{
    uint32_t at;
    if (!spread) at = (uint32_t)(((uint64_t)(addr >> 4) * 0x9e3779b97f4a7c15ull) >> 32);
    else at = (uint32_t)h + ((uint32_t)(addr >> SPAN_UNIT_SHIFT) & ((1u << (SPAN_SHIFT - SPAN_UNIT_SHIFT)) - 1)) * spread;
    return (size_t)(((uint64_t)at * (uint64_t)capacity) >> 32);
}

static inline uint32_t spread_for(size_t capacity)
{
    return capacity >= SPAN_MIN_SLOTS ? (uint32_t)((UINT64_C(1) << 32) / capacity) : 0;
}

/* Starts loading the tags and the record of addr's home slot, read without the lock: a stale
 * pointer (the shard just grew) only wastes the hint, a prefetch never faults. The record is
 * most often a cache miss, so loading it while the caller unwinds (or takes the lock) hides
 * most of it; an insert puts the block in its home slot when that is free. */
uint64_t lt_blocks_prefetch(uintptr_t addr)
{
    uint64_t h = mix(addr);
    struct shard *s = shard_of(h);
    struct lt_block *slots = __atomic_load_n(&s->slots, __ATOMIC_RELAXED);
    uint8_t *tags = __atomic_load_n(&s->tags, __ATOMIC_RELAXED);
    size_t capacity = __atomic_load_n(&s->capacity, __ATOMIC_RELAXED);
    size_t home = home_slot(h, addr, capacity, __atomic_load_n(&s->spread, __ATOMIC_RELAXED));
    __builtin_prefetch(&tags[home], 1);
    __builtin_prefetch(&slots[home], 1);
    return h;
}

static inline size_t next_bucket(size_t b, size_t buckets) { return b + 1 == buckets ? 0 : b + 1; }

/* pre: shard entered. The slot holding addr, or NULL. */
static struct lt_block *find(const struct shard *s, uintptr_t addr, uint64_t h)
{
    size_t buckets = s->capacity / BUCKET;
    size_t b = home_slot(h, addr, s->capacity, s->spread) / BUCKET;
    uint8_t tag = tag_of(addr);
    for (;;) {
        bucket_tags_t tags = bucket_tags(s, b);
        for (slot_set m = match_tag(tags, tag); m; m &= m - 1) {
            struct lt_block *slot = &s->slots[b * BUCKET + first_slot(m)];
            if (slot->addr == addr) return slot;
        }
        if (match_empty(tags)) return NULL;
        b = next_bucket(b, buckets);
    }
}

/* pre: shard entered; an empty slot left. The slot holding addr (*fresh false), or the one it
 * goes in (*fresh true): along its probe the first slot not full, from its home slot on. */
static struct lt_block *place(const struct shard *s, uintptr_t addr, uint64_t h, bool *fresh)
{
    size_t buckets = s->capacity / BUCKET;
    size_t home = home_slot(h, addr, s->capacity, s->spread);
    size_t b = home / BUCKET;
    slot_set from_home = ~(slot_set)0 << (home % BUCKET); /* the home bucket's slots from home on */
    uint8_t tag = tag_of(addr);
    struct lt_block *spot = NULL;
    for (;; b = next_bucket(b, buckets), from_home = ~(slot_set)0) {
        bucket_tags_t tags = bucket_tags(s, b);
        for (slot_set m = match_tag(tags, tag); m; m &= m - 1) {
            struct lt_block *slot = &s->slots[b * BUCKET + first_slot(m)];
            if (slot->addr == addr) {
                *fresh = false;
                return slot;
            }
        }
        slot_set free_slots = match_not_full(tags);
        if (!spot && free_slots) {
            slot_set after = free_slots & from_home;
            spot = &s->slots[b * BUCKET + first_slot(after ? after : free_slots)];
        }
        if (match_empty(tags)) break;
    }
    *fresh = true;
    return spot;
}

/* pre: shard entered; slot is free (place). */
static void fill(struct shard *s, struct lt_block *slot, const struct lt_block *b)
{
    size_t i = (size_t)(slot - s->slots);
    if (s->tags[i] == TAG_EMPTY) s->used++;
    s->tags[i] = tag_of(b->addr);
    *slot = *b;
    s->count++;
}

/* pre: shard entered; slot is full. */
static void empty_slot(struct shard *s, struct lt_block *slot)
{
    size_t i = (size_t)(slot - s->slots);
    if (match_empty(bucket_tags(s, i / BUCKET))) { /* never full: nothing probed past it */
        s->tags[i] = TAG_EMPTY;
        s->used--;
    } else {
        s->tags[i] = TAG_DELETED;
    }
    slot->addr = 0;
    s->count--;
}

/* pre: shard entered. Rehashes into fresh arrays, which drops the tombstones, grown by half if
 * more than half the slots are full; false if the shim's memory ran out. Rehashed at 3/4 used
 * (too_full), a table is at most 3/4 and after growing 1/2 full: 33-50 bytes a block. (Linear
 * probing needed more room, 40-60 bytes a block: its probes grew long past 3/5.) A full 64 MiB
 * arena heap always holds about the same number of blocks, so a program may sit at either end
 * for good (a python3 dict of 1 M entries). */
static bool rehash(struct shard *s)
{
    size_t new_cap = (s->count + 1) * 2 > s->capacity ? s->capacity + s->capacity / 2 : s->capacity;
    new_cap = (new_cap + BUCKET - 1) / BUCKET * BUCKET;
    if (new_cap >= (1ull << 32)) return false;
    void *fresh = fresh_arrays(s, new_cap);
    if (!fresh) return false;
    struct lt_block *old = s->slots;
    size_t old_cap = s->capacity;
    set_arrays(s, fresh, new_cap);
    s->spread = spread_for(new_cap);
    s->count = s->used = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].addr) continue;
        bool fresh; /* always: a rehash meets each address once */
        fill(s, place(s, old[i].addr, mix(old[i].addr), &fresh), &old[i]);
    }
    release_array(s, old, old_cap);
    return true;
}

/* Rehashed at 3/4 used; a large table (spans: a program with hundreds of thousands of live
 * blocks) at 7/8, where the table's memory shows in the peak: python3 building a 1 M-entry
 * dict 1.57x native peak RSS at 3/4, 1.49x at 7/8, for the same CPU time (2.88x and 2.89x; a
 * perl hash of 1 M keys 2.12x and 2.16x). Small tables stay at 3/4: they cost little memory,
 * and their probes stay short. */
static inline bool too_full(const struct shard *s)
{
    if (s->spread) return (s->used + 1) * 8 > s->capacity * 7;
    return (s->used + 1) * 4 > s->capacity * 3;
}

/* h: mix(nb->addr). */
static void insert_now(const struct lt_block *nb, uint64_t h)
{
    struct shard *s = shard_of(h);
    bool owned = shard_enter(s);
    if (too_full(s) && !rehash(s) && s->used + 1 >= s->capacity) {
        shard_leave(s, owned); /* no memory, and the last empty slot ends every probe */
        atomic_fetch_add_explicit(&lt_counters.dropped_blocks, 1, memory_order_relaxed);
        return;
    }
    bool fresh;
    struct lt_block *slot = place(s, nb->addr, h, &fresh);
    struct lt_block replaced = { 0 };
    if (fresh) {
        fill(s, slot, nb);
    } else {
        replaced = *slot;
        *slot = *nb;
    }
    shard_leave(s, owned);
    /* An address still recorded as live was freed behind our back (e.g. from a signal handler
     * while this thread was inside the shim): its old block is gone. */
    if (replaced.addr) {
        if (lt_sample_mean_bytes) lt_sample_filter_remove(nb->addr); /* counted once per insert */
        lt_stack_note_free(replaced.stack_id, lt_block_size(&replaced), true);
    }
}

static void insert_block(const struct lt_block *nb, uint64_t h)
{
    if (lt_sample_mean_bytes) lt_sample_filter_add(nb->addr); /* before it can be freed */
    if (must_defer()) defer(OP_INSERT, nb);
    else insert_now(nb, h);
}

void lt_blocks_insert(uintptr_t addr, uint64_t hash, uint64_t size, unsigned kind, uint32_t stack_id)
{
    struct lt_block b = { addr, lt_block_pack(size, lt_generation_now(), kind),
                          stack_id, lt_elapsed_ms() };
    insert_block(&b, hash);
    b.addr = 0; /* no copy of it stays behind in this dead frame (lt_hide_address) */
    __asm__ volatile("" : : "r"(&b) : "memory");
}

void lt_blocks_put_back(const struct lt_block *b) { insert_block(b, mix(b->addr)); }

/* pre: not must_defer(). */
static bool take_block(uintptr_t addr, struct lt_block *out)
{
    uint64_t h = mix(addr);
    if (lt_sample_unrecorded(addr)) return false;
    struct shard *s = shard_of(h); /* no prefetch: the lookup follows at once (measured even) */
    bool owned = shard_enter(s);
    struct lt_block *slot = find(s, addr, h);
    if (!slot) {
        shard_leave(s, owned);
        return false;
    }
    *out = *slot;
    empty_slot(s, slot);
    shard_leave(s, owned);
    if (lt_sample_mean_bytes) lt_sample_filter_remove(addr);
    return true;
}

bool lt_blocks_take(uintptr_t addr, struct lt_block *out)
{
    if (lt_sample_unrecorded(addr)) return false; /* sampling mode: the common case */
    return !must_defer() && take_block(addr, out); /* a handler's caller falls back to forget */
}

static unsigned forget_now(uintptr_t addr)
{
    struct lt_block b;
    if (take_block(addr, &b)) {
        lt_stack_note_free(b.stack_id, lt_block_size(&b), true);
        return lt_block_kind(&b); /* never 0 (LT_FORGET_MISSED) */
    }
    if (!lt_sample_mean_bytes) /* sampling: most frees are of blocks never recorded */
        lt_striped_add(LT_UNKNOWN_FREES); /* after an attach, most frees for a while */
    return LT_FORGET_MISSED;
}

unsigned lt_blocks_forget(uintptr_t addr)
{
    if (lt_sample_unrecorded(addr)) return LT_FORGET_UNTOLD; /* sampling mode: the common case */
    if (must_defer()) {
        struct lt_block b = { .addr = addr };
        defer(OP_FORGET, &b);
        return LT_FORGET_UNTOLD;
    }
    return forget_now(addr);
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
        if (op.op == OP_INSERT) insert_now(&op.block, mix(op.block.addr));
        else forget_now(op.block.addr);
    }
    atomic_signal_fence(memory_order_seq_cst);
    applying = false;
}

unsigned lt_blocks_visit(lt_block_visitor fn, void *ctx, bool try_only)
{
    unsigned skipped = 0;
    bool owner_inside[SHARDS];
    freeze_all(!try_only, owner_inside);
    for (unsigned i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        if (try_only) {
            if (owner_inside[i] || !shard_trylock(s)) {
                skipped++;
                continue;
            }
        } else {
            shard_lock(s);
        }
        for (size_t j = 0; j < s->capacity; j++)
            if (s->slots[j].addr) fn(&s->slots[j], ctx);
        shard_unlock(s);
    }
    thaw_all();
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
    freeze_all(true, NULL);
    for (unsigned i = 0; i < SHARDS; i++) shard_lock(&shards[i]);
}

void lt_blocks_unlock_all(void)
{
    for (unsigned i = 0; i < SHARDS; i++) shard_unlock(&shards[i]);
    thaw_all();
}

void lt_blocks_reset(void)
{
    freeze_all(true, NULL);
    for (unsigned i = 0; i < SHARDS; i++) {
        shard_lock(&shards[i]);
        memset(shards[i].slots, 0, shards[i].capacity * SLOT_BYTES); /* records and tags */
        shards[i].count = shards[i].used = 0;
        shard_unlock(&shards[i]);
    }
    thaw_all();
    lt_sample_filter_clear();
}

/* After a detach (lt_release_tables): the shards' slot arrays go back to the system;
 * lt_blocks_init maps fresh ones. */
void lt_blocks_release(void)
{
    freeze_all(true, NULL); /* thawed by the next lt_blocks_init */
    for (unsigned i = 0; i < SHARDS; i++) {
        shard_lock(&shards[i]);
        struct lt_block *slots = shards[i].slots;
        shards[i].slots = NULL;
        release_array(&shards[i], slots, shards[i].capacity); /* and `small`, if they were there */
        shards[i].tags = NULL;
        shards[i].capacity = 0;
        shards[i].count = shards[i].used = 0;
        shard_unlock(&shards[i]);
    }
    lt_unmap(first_arrays, FIRST_ARRAYS_BYTES);
    first_arrays = NULL;
}

/* This thread holds a shard lock (a signal handler interrupted it there). */
bool lt_blocks_held_here(void) { return locks_held != 0; }
