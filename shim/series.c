/* The time series of per-backtrace totals (the capture's SERIES section): every interval the
 * control thread records, for each backtrace whose totals changed, its allocations and live
 * blocks and bytes. At most LT_MAX_SNAPSHOTS are kept; when full, neighbouring pairs merge
 * (later values win, stacks seen only in the earlier one carry over), so a process that runs
 * for days keeps a bounded, coarser history. */
#include <pthread.h>
#include <string.h>

#include "shim.h"

struct last_totals { uint64_t alloc_count, live_blocks, live_bytes; };

/* Guarded by `lock`: the control thread writes, the capture writer reads. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct lt_snapshot *snaps;           /* lt_map'd, LT_MAX_SNAPSHOTS */
static size_t nsnaps;
static struct lt_series_entry *entries;     /* lt_map'd, grows by doubling */
static size_t nentries, entries_cap;
static struct last_totals *last;            /* per stack id: what the series last recorded */
static size_t last_cap;

/* Grows an lt_map'd array to hold at least `need` items; false if memory ran out. */
static bool grow_array(void **array, size_t *cap, size_t need, size_t item)
{
    if (need <= *cap) return true;
    size_t fresh_cap = *cap ? *cap : 1024;
    while (fresh_cap < need) fresh_cap *= 2;
    void *fresh = lt_map(fresh_cap * item);
    if (!fresh) return false;
    if (*array) {
        memcpy(fresh, *array, *cap * item);
        lt_unmap(*array, *cap * item);
    }
    *array = fresh;
    *cap = fresh_cap;
    return true;
}

/* pre: lock held. Halves the number of snapshots. */
static void merge_pairs(void)
{
    size_t cap = entries_cap;
    struct lt_series_entry *merged = lt_map(cap * sizeof *merged);
    if (!merged) return;
    size_t out = 0, kept = 0;
    for (size_t j = 0; j + 1 < nsnaps; j += 2) {
        const struct lt_snapshot *a = &snaps[j], *b = &snaps[j + 1];
        size_t first = out, ia = 0, ib = 0;
        /* Both lists are sorted by stack id: a sorted merge, b winning on equal ids. */
        while (ia < a->count || ib < b->count) {
            const struct lt_series_entry *ea = ia < a->count ? &entries[a->first + ia] : NULL;
            const struct lt_series_entry *eb = ib < b->count ? &entries[b->first + ib] : NULL;
            if (eb && (!ea || eb->stack_id <= ea->stack_id)) {
                if (ea && ea->stack_id == eb->stack_id) ia++;
                merged[out++] = *eb;
                ib++;
            } else {
                merged[out++] = *ea;
                ia++;
            }
        }
        snaps[kept++] = (struct lt_snapshot){ b->time_ns, first, (uint32_t)(out - first) };
    }
    if (nsnaps % 2) { /* an odd last snapshot stays as it is */
        const struct lt_snapshot *a = &snaps[nsnaps - 1];
        memcpy(&merged[out], &entries[a->first], a->count * sizeof *merged);
        snaps[kept++] = (struct lt_snapshot){ a->time_ns, out, a->count };
        out += a->count;
    }
    lt_unmap(entries, entries_cap * sizeof *entries);
    entries = merged;
    nentries = out;
    nsnaps = kept;
}

bool lt_series_snapshot(void)
{
    bool merged = false;
    pthread_mutex_lock(&lock);
    if (!snaps) snaps = lt_map(LT_MAX_SNAPSHOTS * sizeof *snaps);
    uint32_t nstacks = lt_stacks_count();
    if (!snaps || !grow_array((void **)&last, &last_cap, (size_t)nstacks + 1, sizeof *last)) goto out;
    if (nsnaps == LT_MAX_SNAPSHOTS) {
        merge_pairs();
        merged = true;
        if (nsnaps == LT_MAX_SNAPSHOTS) goto out; /* no memory to merge: skip this snapshot */
    }
    /* The edge is on the blocks' clock and is set before the totals are read: a block counted
     * in them is stamped before it, one allocated after at or after it. (Blocks allocated
     * while the loop runs, before their stack's totals are read, are both: the totals are
     * read one by one, with threads running.) */
    uint64_t edge_ns = (uint64_t)lt_open_series_edge_ms() * 1000000u;
    size_t first = nentries;
    for (uint32_t id = 1; id <= nstacks; id++) {
        struct lt_stack_totals t = lt_stack_totals(id);
        if (!t.alloc_count) continue;
        /* Totals are read one by one while threads run: clamp the rare torn difference. */
        uint64_t live_blocks = t.alloc_count > t.free_count ? t.alloc_count - t.free_count : 0;
        uint64_t live_bytes = t.alloc_bytes > t.freed_bytes ? t.alloc_bytes - t.freed_bytes : 0;
        struct last_totals *l = &last[id];
        if (l->alloc_count == t.alloc_count && l->live_blocks == live_blocks && l->live_bytes == live_bytes)
            continue;
        if (!grow_array((void **)&entries, &entries_cap, nentries + 1, sizeof *entries)) break;
        entries[nentries++] = (struct lt_series_entry){ id, 0, t.alloc_count, t.alloc_bytes, live_blocks, live_bytes };
        *l = (struct last_totals){ t.alloc_count, live_blocks, live_bytes };
    }
    snaps[nsnaps++] = (struct lt_snapshot){ edge_ns, first, (uint32_t)(nentries - first) };
out:
    pthread_mutex_unlock(&lock);
    return merged;
}

size_t lt_series_count(void) { return nsnaps; }

void lt_series_lock(void) { pthread_mutex_lock(&lock); }
void lt_series_unlock(void) { pthread_mutex_unlock(&lock); }

const struct lt_snapshot *lt_series_get(size_t i, const struct lt_series_entry **first_entry)
{
    *first_entry = &entries[snaps[i].first];
    return &snaps[i];
}

void lt_series_after_fork_child(void)
{
    pthread_mutex_init(&lock, NULL);
}

void lt_series_reset(void)
{
    pthread_mutex_lock(&lock);
    nsnaps = 0;
    nentries = 0;
    if (last) memset(last, 0, last_cap * sizeof *last);
    pthread_mutex_unlock(&lock);
}

/* After a detach (lt_release_tables): the arrays are mapped again when the next session's
 * first snapshot needs them. */
void lt_series_release(void)
{
    pthread_mutex_lock(&lock);
    lt_unmap(snaps, LT_MAX_SNAPSHOTS * sizeof *snaps);
    lt_unmap(entries, entries_cap * sizeof *entries);
    lt_unmap(last, last_cap * sizeof *last);
    snaps = NULL;
    entries = NULL;
    last = NULL;
    nsnaps = nentries = entries_cap = last_cap = 0;
    pthread_mutex_unlock(&lock);
}
