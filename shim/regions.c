/* Memory mappings (mmap, mremap) and program-break growth (brk, sbrk): few, large, and
 * unmapped in arbitrary sub-ranges, so they live in a sorted array of non-overlapping
 * ranges rather than in the block table. A partial munmap trims or splits a range. */
#include <pthread.h>
#include <string.h>

#include "shim.h"

#define MAX_REGIONS (1u << 20)
#define FIRST_REGIONS 1024u /* 32 KiB; doubled as needed (address space is not free: RLIMIT_AS) */

struct region {
    uintptr_t start;
    uint64_t len;
    uint32_t stack_id;
    uint32_t time_ms;
    uint16_t generation;
    uint8_t kind;
};

/* Guarded by `lock`, which hooks hold across the real mmap/munmap system call so that no
 * other thread can map the same range between the call and our update. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct region *regions; /* lt_map'd, sorted by start */
static size_t nregions, capacity;

bool lt_regions_init(void)
{
    regions = lt_map(sizeof(struct region) * FIRST_REGIONS);
    capacity = regions ? FIRST_REGIONS : 0;
    return regions != NULL;
}

/* pre: lock held. */
static bool grow(void)
{
    size_t new_cap = capacity * 2;
    if (new_cap > MAX_REGIONS) return false;
    struct region *fresh = lt_map(sizeof(struct region) * new_cap);
    if (!fresh) return false;
    memcpy(fresh, regions, nregions * sizeof *regions);
    lt_unmap(regions, sizeof(struct region) * capacity);
    regions = fresh;
    capacity = new_cap;
    return true;
}

void lt_regions_lock(void) { pthread_mutex_lock(&lock); }
void lt_regions_unlock(void) { pthread_mutex_unlock(&lock); }

/* First region whose end is above addr. */
static size_t first_ending_after(uintptr_t addr)
{
    size_t lo = 0, hi = nregions;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (regions[mid].start + regions[mid].len <= addr) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static bool insert_at(size_t i, const struct region *r)
{
    if (nregions == capacity && !grow()) {
        atomic_fetch_add_explicit(&lt_counters.dropped_blocks, 1, memory_order_relaxed);
        return false;
    }
    memmove(&regions[i + 1], &regions[i], (nregions - i) * sizeof *regions);
    regions[i] = *r;
    nregions++;
    return true;
}

static void erase_at(size_t i)
{
    memmove(&regions[i], &regions[i + 1], (nregions - i - 1) * sizeof *regions);
    nregions--;
}

void lt_regions_remove(uintptr_t start, uint64_t len)
{
    uintptr_t end = start + len;
    size_t i = first_ending_after(start);
    while (i < nregions && regions[i].start < end) {
        struct region *r = &regions[i];
        uintptr_t r_end = r->start + r->len;
        uintptr_t cut_lo = r->start > start ? r->start : start;
        uintptr_t cut_hi = r_end < end ? r_end : end;
        bool whole = cut_lo == r->start && cut_hi == r_end;
        lt_stack_note_free(r->stack_id, cut_hi - cut_lo, whole);
        if (whole) {
            erase_at(i);
            continue;
        }
        if (cut_lo > r->start && cut_hi < r_end) { /* a hole in the middle: split in two */
            struct region tail = *r;
            tail.start = cut_hi;
            tail.len = r_end - cut_hi;
            r->len = cut_lo - r->start;
            insert_at(i + 1, &tail);
            i += 2;
            continue;
        }
        if (cut_lo == r->start) { /* front cut */
            r->start = cut_hi;
            r->len = r_end - cut_hi;
        } else { /* back cut */
            r->len = cut_lo - r->start;
        }
        i++;
    }
}

void lt_regions_add(uintptr_t start, uint64_t len, unsigned kind, uint32_t stack_id)
{
    if (!regions || !len) return;
    lt_regions_remove(start, len); /* MAP_FIXED replaces what was there */
    if (lt_thread_generation == LT_QUIET_GENERATION) return; /* track()'s bookkeeping (track.c) */
    struct region r = { start, len, stack_id, lt_elapsed_ms(),
                        (uint16_t)lt_generation_now(), (uint8_t)kind };
    if (insert_at(first_ending_after(start), &r)) lt_stack_note_alloc(stack_id, len);
}

unsigned lt_regions_visit(lt_block_visitor fn, void *ctx, bool try_only)
{
    if (try_only) {
        if (pthread_mutex_trylock(&lock) != 0) return 1;
    } else {
        pthread_mutex_lock(&lock);
    }
    lt_regions_visit_locked(fn, ctx);
    pthread_mutex_unlock(&lock);
    return 0;
}

/* pre: lock held (the scan holds it throughout). */
void lt_regions_visit_locked(lt_block_visitor fn, void *ctx)
{
    for (size_t i = 0; i < nregions; i++) {
        struct lt_block b = { regions[i].start,
                              lt_block_pack(regions[i].len, regions[i].generation, regions[i].kind),
                              regions[i].stack_id, regions[i].time_ms };
        fn(&b, ctx);
    }
}

void lt_regions_reset(void)
{
    pthread_mutex_lock(&lock);
    nregions = 0;
    pthread_mutex_unlock(&lock);
}

/* After a detach (lt_release_tables); lt_regions_init maps the array again. */
void lt_regions_release(void)
{
    pthread_mutex_lock(&lock);
    lt_unmap(regions, sizeof(struct region) * capacity);
    regions = NULL;
    nregions = 0;
    capacity = 0;
    pthread_mutex_unlock(&lock);
}
