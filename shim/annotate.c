/* Custom-allocator annotations: the requests of leaktrace/annotate.h (valgrind's
 * MALLOCLIKE_BLOCK, FREELIKE_BLOCK, RESIZEINPLACE_BLOCK and mempool requests), reaching the
 * shim through one exported function, leaktrace_client_request. The program's weak reference
 * to it is bound by the dynamic linker when the shim is preloaded, and written into its GOT by
 * attach.c (lt_annotation_hooks) when the shim is attached or loaded by leaktrace.track().
 *
 * Annotated blocks live in a table of their own, not in blocks.c's: the first object of a
 * slab often has the slab's own address, and both must be known at once. Each entry also
 * names its mempool (0 for MALLOCLIKE blocks), so that DESTROY_MEMPOOL and TRIM find the
 * pool's blocks; a pool itself is an entry keyed by its anchor with POOL_TAG set. The scan and
 * the capture read this table beside the heap blocks (lt_annotations_visit*); the scan drops
 * the heap blocks that hold annotated ones, valgrind's superblock rule (scan.c).
 *
 * One lock guards the table. A signal handler that makes a request while its thread holds it
 * (`inside`) cannot wait for it: the request is dropped and counted (dropped_blocks for a new
 * block, unknown_frees for a free). Backtraces are taken before the lock, nothing called under
 * it takes another lock of the shim, and the table lives in lt_map'd memory: no malloc. */
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LEAKTRACE_SHIM_BUILD
#include <leaktrace/annotate.h>

#include "sampling.h"
#include "shim.h"

#define INITIAL_SLOTS 1024u
#define POOL_TAG ((uintptr_t)1 << 63) /* no user-space address has it */

struct annotated {
    struct lt_block block;  /* block.addr 0: empty slot; POOL_TAG | anchor: a pool */
    uintptr_t pool;         /* the anchor of the block's mempool; 0 for MALLOCLIKE blocks */
};

/* The futex lock of blocks.c (0 free, 1 held, 2 held with waiters). */
static _Atomic int table_lock;
/* Guarded by table_lock. */
static struct annotated *slots; /* lt_map'd, a power of two of them */
static size_t capacity, count;
/* This thread holds table_lock (its own signal handlers read it). */
static __thread volatile bool inside __attribute__((tls_model("initial-exec")));

static void lock_table(void)
{
    inside = true;
    atomic_signal_fence(memory_order_seq_cst);
    int c = 0;
    if (atomic_compare_exchange_strong_explicit(&table_lock, &c, 1, memory_order_acquire,
                                                memory_order_relaxed))
        return;
    while (atomic_exchange_explicit(&table_lock, 2, memory_order_acquire) != 0)
        lt_raw_syscall(SYS_futex, (long)&table_lock, FUTEX_WAIT_PRIVATE, 2, 0, 0, 0);
}

static bool trylock_table(void)
{
    int c = 0;
    inside = true;
    atomic_signal_fence(memory_order_seq_cst);
    if (atomic_compare_exchange_strong_explicit(&table_lock, &c, 1, memory_order_acquire,
                                                memory_order_relaxed))
        return true;
    inside = false;
    return false;
}

static void unlock_table(void)
{
    if (atomic_exchange_explicit(&table_lock, 0, memory_order_release) == 2)
        lt_raw_syscall(SYS_futex, (long)&table_lock, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
    atomic_signal_fence(memory_order_seq_cst);
    inside = false;
}

static inline uint64_t mix(uintptr_t addr)
{
    uint64_t h = (uint64_t)addr >> 4;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* pre: table locked. The slot holding key, or the empty slot where it would go; NULL when the
 * table was never mapped. */
static struct annotated *probe(uintptr_t key)
{
    if (!slots) return NULL;
    size_t mask = capacity - 1;
    for (size_t i = mix(key) & mask;; i = (i + 1) & mask)
        if (slots[i].block.addr == key || slots[i].block.addr == 0) return &slots[i];
}

/* pre: table locked. Room for one more entry; false if the shim's memory ran out. */
static bool make_room(void)
{
    if (slots && (count + 1) * 4 <= capacity * 3) return true;
    size_t new_cap = slots ? capacity * 2 : INITIAL_SLOTS;
    struct annotated *fresh = lt_map(new_cap * sizeof *fresh);
    if (!fresh) return slots && count + 1 < capacity;
    struct annotated *old = slots;
    size_t old_cap = capacity;
    slots = fresh;
    capacity = new_cap;
    for (size_t i = 0; old && i < old_cap; i++)
        if (old[i].block.addr) *probe(old[i].block.addr) = old[i];
    if (old) lt_unmap(old, old_cap * sizeof *old);
    return true;
}

/* pre: table locked. Removes slot i (backward-shift deletion, as blocks.c). */
static void remove_at(size_t hole)
{
    size_t mask = capacity - 1;
    for (size_t i = (hole + 1) & mask; slots[i].block.addr; i = (i + 1) & mask) {
        size_t home = mix(slots[i].block.addr) & mask;
        bool home_after_hole = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!home_after_hole) {
            slots[hole] = slots[i];
            hole = i;
        }
    }
    slots[hole].block.addr = 0;
    count--;
}

/* pre: table locked. Puts e in; an entry it replaces (a block annotated twice without a free
 * between) is returned in *replaced. False when dropped. */
static bool put(const struct annotated *e, struct annotated *replaced)
{
    replaced->block.addr = 0;
    if (!make_room()) return false;
    struct annotated *slot = probe(e->block.addr);
    if (slot->block.addr) *replaced = *slot;
    else count++;
    *slot = *e;
    return true;
}

static void note_freed(const struct annotated *e)
{
    if (e->block.addr && !(e->block.addr & POOL_TAG))
        lt_stack_note_free(e->block.stack_id, lt_block_size(&e->block), true);
}

/* ---- the requests ------------------------------------------------------------------------ */
/* As hooks.c: record new blocks? (The first hooked call of a preloaded shim starts it.) When
 * true, as for tracking(), the thread is inside the tables (shim.h, lt_tables_enter) until
 * it calls lt_tables_leave(): a detach does not unmap them meanwhile. */
static inline bool recording(void)
{
    int state = atomic_load_explicit(&lt_state, memory_order_relaxed);
    if (LT_LIKELY(state == LT_STATE_COLLECTING)) return !lt_busy && lt_tables_enter();
    return LT_UNLIKELY(state == LT_STATE_LOADED) && lt_start_on_first_call() && lt_tables_enter();
}

/* Follow frees and pools? */
static inline bool tracking(void)
{
    return atomic_load_explicit(&lt_state, memory_order_relaxed) >= LT_STATE_TRACKING && !lt_busy &&
           lt_tables_enter();
}

static void drop(_Atomic uint64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

static void ensure_pool(uintptr_t anchor); /* pre: table locked */

/* Runs outside any lock of ours until the insertion, as hooks.c's record_block. */
static void record(uintptr_t addr, uint64_t size, unsigned kind, uintptr_t pool)
{
    if (lt_sample_skip(size)) return;
    if (inside) { /* a signal handler on a thread that holds the table */
        drop(&lt_counters.dropped_blocks);
        return;
    }
    lt_control_start();
    uintptr_t pcs[LT_MAX_DEPTH_LIMIT];
    bool truncated;
    int depth = lt_unwind(pcs, lt_cfg.max_depth, &truncated);
    if (truncated) lt_striped_add(LT_CUT_BACKTRACES);
    uint32_t id = lt_stacks_intern(pcs, depth);
    lt_stack_note_alloc(id, size);
    struct annotated e = { { addr, lt_block_pack(size, lt_generation_now(), kind), id, lt_elapsed_ms() }, pool };
    struct annotated replaced;
    lock_table();
    if (pool) ensure_pool(pool); /* an unknown pool is created: attach may come after it was */
    bool stored = put(&e, &replaced);
    unlock_table();
    if (!stored) drop(&lt_counters.dropped_blocks);
    note_freed(&replaced);
    lt_scrub_scratch_registers();
}

/* Removes the block at addr made for `pool` (0: by MALLOCLIKE_BLOCK). Returns false, counting
 * an unknown free, when there is none. */
static bool take(uintptr_t addr, uintptr_t pool, struct annotated *out)
{
    if (inside) {
        lt_striped_add(LT_UNKNOWN_FREES);
        return false;
    }
    lock_table();
    struct annotated *slot = addr ? probe(addr) : NULL;
    bool found = slot && slot->block.addr && slot->pool == pool;
    if (found) {
        *out = *slot;
        remove_at((size_t)(slot - slots));
    }
    unlock_table();
    if (!found && !lt_sample_mean_bytes) lt_striped_add(LT_UNKNOWN_FREES);
    return found;
}

static void free_block(uintptr_t addr, uintptr_t pool)
{
    struct annotated e;
    if (take(addr, pool, &e)) note_freed(&e);
}

/* pre: table locked. */
static void ensure_pool(uintptr_t anchor)
{
    struct annotated *slot = probe(anchor | POOL_TAG);
    if (slot && slot->block.addr) return;
    struct annotated e = { { anchor | POOL_TAG, 0, 0, 0 }, 0 }, replaced;
    if (!put(&e, &replaced)) drop(&lt_counters.dropped_blocks);
}

/* pre: table locked. Calls fn on every block of `pool`; fn returns true to remove the entry,
 * which it may have changed (then it is put back under its new address). Removals move later
 * entries back into slot i, so slot i is looked at again. */
typedef bool (*pool_fn)(struct annotated *e, void *ctx);
static void for_each_in_pool(uintptr_t pool, pool_fn fn, void *ctx)
{
    for (size_t i = 0; slots && i < capacity; i++) {
        while (slots[i].block.addr && !(slots[i].block.addr & POOL_TAG) && slots[i].pool == pool) {
            struct annotated e = slots[i];
            if (!fn(&e, ctx)) break;
            remove_at(i);
            if (e.block.addr) {
                struct annotated replaced;
                if (!put(&e, &replaced)) drop(&lt_counters.dropped_blocks);
            }
        }
    }
}

static bool forget_entry(struct annotated *e, void *ctx)
{
    (void)ctx;
    note_freed(e);
    e->block.addr = 0;
    return true;
}

struct trim { uintptr_t lo, hi; };

/* valgrind's MEMPOOL_TRIM: blocks outside [lo, hi) go, blocks across an edge keep their part
 * inside it. Entries changed here are put back and met again: by then they lie inside. */
static bool trim_entry(struct annotated *e, void *ctx)
{
    const struct trim *t = ctx;
    uintptr_t start = e->block.addr, end = start + lt_block_size(&e->block);
    if (start >= t->lo && end <= t->hi) return false;
    if (end <= t->lo || start >= t->hi) return forget_entry(e, NULL);
    uintptr_t new_start = start > t->lo ? start : t->lo, new_end = end < t->hi ? end : t->hi;
    lt_stack_note_free(e->block.stack_id, (end - start) - (new_end - new_start), false);
    e->block.addr = new_start;
    e->block.packed = lt_block_pack(new_end - new_start, lt_block_generation(&e->block),
                                    lt_block_kind(&e->block));
    return true;
}

static bool rename_pool(struct annotated *e, void *ctx)
{
    e->pool = *(const uintptr_t *)ctx;
    return true;
}

static void destroy_pool(uintptr_t pool)
{
    if (inside) return;
    lock_table();
    for_each_in_pool(pool, forget_entry, NULL);
    struct annotated *slot = probe(pool | POOL_TAG);
    if (slot && slot->block.addr) remove_at((size_t)(slot - slots));
    unlock_table();
}

static void trim_pool(uintptr_t pool, uintptr_t addr, uintptr_t size)
{
    if (inside) return;
    struct trim t = { addr, addr + size };
    lock_table();
    for_each_in_pool(pool, trim_entry, &t);
    unlock_table();
}

static void move_pool(uintptr_t from, uintptr_t to)
{
    if (inside || from == to) return;
    lock_table();
    struct annotated *slot = probe(from | POOL_TAG);
    if (slot && slot->block.addr) {
        remove_at((size_t)(slot - slots));
        ensure_pool(to);
    }
    for_each_in_pool(from, rename_pool, &to);
    unlock_table();
}

/* The block keeps its backtrace (valgrind keeps the allocation context too). In one critical
 * section: a scan never sees the block missing. */
static void change_block(uintptr_t pool, uintptr_t from, uintptr_t to, uint64_t size)
{
    if (inside) {
        lt_striped_add(LT_UNKNOWN_FREES);
        return;
    }
    struct annotated e = { { 0, 0, 0, 0 }, 0 }, replaced = e;
    lock_table();
    struct annotated *slot = probe(from);
    bool found = slot && slot->block.addr && slot->pool == pool, stored = true;
    uint64_t old_size = 0;
    if (found) {
        e = *slot;
        old_size = lt_block_size(&e.block);
        remove_at((size_t)(slot - slots));
        e.block.addr = to;
        e.block.packed = lt_block_pack(size, lt_block_generation(&e.block), lt_block_kind(&e.block));
        stored = put(&e, &replaced); /* room: one entry was just removed */
    }
    unlock_table();
    if (!found) {
        if (!lt_sample_mean_bytes) lt_striped_add(LT_UNKNOWN_FREES);
        return;
    }
    if (!stored) drop(&lt_counters.dropped_blocks);
    note_freed(&replaced);
    /* The stack's totals follow the size (not a new allocation, not a whole free). */
    if (size < old_size) lt_stack_note_free(e.block.stack_id, old_size - size, false);
    else lt_stack_note_grow(e.block.stack_id, size - old_size);
}

static bool pool_exists(uintptr_t pool)
{
    if (inside) return false;
    lock_table();
    struct annotated *slot = probe(pool | POOL_TAG);
    bool known = slot && slot->block.addr;
    unlock_table();
    return known;
}

static void create_pool(uintptr_t pool)
{
    if (inside) return;
    lock_table();
    ensure_pool(pool);
    unlock_table();
}

/* pre: tracking() was true. Requests other than new blocks. */
static uintptr_t follow(unsigned request, uintptr_t a1, uintptr_t a2, uintptr_t a3, uintptr_t a4)
{
    switch (request) {
    case LEAKTRACE_REQ_RUNNING: return 1;
    case LEAKTRACE_REQ_FREELIKE_BLOCK: if (a1) free_block(a1, 0); break;
    case LEAKTRACE_REQ_RESIZEINPLACE_BLOCK: if (a1) change_block(0, a1, a1, a3); break;
    case LEAKTRACE_REQ_CREATE_MEMPOOL: if (a1) create_pool(a1); break;
    case LEAKTRACE_REQ_DESTROY_MEMPOOL: if (a1) destroy_pool(a1); break;
    case LEAKTRACE_REQ_MEMPOOL_FREE: if (a1 && a2) free_block(a2, a1); break;
    case LEAKTRACE_REQ_MEMPOOL_TRIM: if (a1) trim_pool(a1, a2, a3); break;
    case LEAKTRACE_REQ_MOVE_MEMPOOL: if (a1 && a2) move_pool(a1, a2); break;
    case LEAKTRACE_REQ_MEMPOOL_CHANGE: if (a1 && a2 && a3) change_block(a1, a2, a3, a4); break;
    case LEAKTRACE_REQ_MEMPOOL_EXISTS: return a1 && pool_exists(a1);
    default: break; /* a newer header's request: nothing to do */
    }
    return 0;
}

LT_EXPORT uintptr_t leaktrace_client_request(unsigned request, uintptr_t a1, uintptr_t a2,
                                             uintptr_t a3, uintptr_t a4)
{
    /* New blocks: recorded while collecting, as malloc's. */
    if (request == LEAKTRACE_REQ_MALLOCLIKE_BLOCK || request == LEAKTRACE_REQ_MEMPOOL_ALLOC) {
        bool pooled = request == LEAKTRACE_REQ_MEMPOOL_ALLOC;
        uintptr_t pool = pooled ? a1 : 0, addr = pooled ? a2 : a1, size = pooled ? a3 : a2;
        if (addr && !(addr & POOL_TAG) && (pool || !pooled) && recording()) {
            record(addr, size, pooled ? LT_KIND_MEMPOOL : LT_KIND_MALLOCLIKE, pool);
            lt_tables_leave();
        }
        return 0;
    }
    /* The rest: followed whenever the tables are (frees, pools). */
    if (!tracking()) return 0;
    uintptr_t answer = follow(request, a1, a2, a3, a4);
    lt_tables_leave();
    return answer;
}

/* The GOT patcher's table (attach.c): attach and track() point the program's weak reference
 * here, and detach puts 0 back. */
const struct lt_hook lt_annotation_hooks[] = {
    { "leaktrace_client_request", (void *)leaktrace_client_request },
    { NULL, NULL },
};

/* ---- for the scan, the capture, fork and attach -------------------------------------------- */
void lt_annotations_lock(void) { lock_table(); }
bool lt_annotations_held_here(void) { return inside; }
void lt_annotations_unlock(void) { unlock_table(); }

size_t lt_annotations_count_locked(void) { return count; }

void lt_annotations_visit_locked(lt_block_visitor fn, void *ctx)
{
    for (size_t i = 0; slots && i < capacity; i++)
        if (slots[i].block.addr && !(slots[i].block.addr & POOL_TAG)) fn(&slots[i].block, ctx);
}

unsigned lt_annotations_visit(lt_block_visitor fn, void *ctx, bool try_only)
{
    if (inside) return 1; /* a signal handler on a thread that holds the table */
    if (try_only) {
        if (!trylock_table()) return 1;
    } else {
        lock_table();
    }
    lt_annotations_visit_locked(fn, ctx);
    unlock_table();
    return 0;
}

/* After a detach (lt_release_tables), with no thread inside the tables: the next request
 * maps a fresh table. */
void lt_annotations_release(void)
{
    lock_table();
    if (slots) lt_unmap(slots, capacity * sizeof *slots);
    slots = NULL;
    capacity = count = 0;
    unlock_table();
}

void lt_annotations_reset(void)
{
    lock_table();
    if (slots) memset(slots, 0, capacity * sizeof *slots);
    count = 0;
    unlock_table();
}
