/* Memory the shim maps for its own tables. Never the program's allocator: a malloc from
 * inside a malloc hook would recurse, and a block of ours in the heap would look like the
 * program's to a reachability scan. */
#include <errno.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

/* Every mapping the shim made and still holds, for kernels without VMA names (they need
 * CONFIG_ANON_VMA_NAME): a reachability scan must skip the shim's tables, which are full of
 * heap addresses. Slots are claimed with a CAS on `start`, so lt_map is safe from any thread. */
#define MAX_OWN_MAPPINGS 4096
static _Atomic uintptr_t own_start[MAX_OWN_MAPPINGS];
static _Atomic size_t own_len[MAX_OWN_MAPPINGS];

static void remember(void *p, size_t size)
{
    for (unsigned i = 0; i < MAX_OWN_MAPPINGS; i++) {
        uintptr_t expected = 0;
        if (atomic_compare_exchange_strong(&own_start[i], &expected, (uintptr_t)p)) {
            atomic_store(&own_len[i], size);
            return;
        }
    }
}

static void forget(void *p)
{
    for (unsigned i = 0; i < MAX_OWN_MAPPINGS; i++) {
        if (atomic_load(&own_start[i]) == (uintptr_t)p) {
            atomic_store(&own_len[i], 0);
            atomic_store(&own_start[i], 0);
            return;
        }
    }
}

unsigned lt_own_mappings(uintptr_t *starts, uintptr_t *ends, unsigned max)
{
    unsigned n = 0;
    for (unsigned i = 0; i < MAX_OWN_MAPPINGS && n < max; i++) {
        uintptr_t s = atomic_load(&own_start[i]);
        size_t len = atomic_load(&own_len[i]);
        if (s && len) {
            starts[n] = s;
            ends[n] = s + len;
            n++;
        }
    }
    return n;
}

size_t lt_page_size(void)
{
    static size_t page; /* benign race: every thread computes the same value */
    if (!page) page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

static void *map_with(size_t size, int extra_flags)
{
    /* The system calls themselves, not mmap() and prctl(): in the preloaded shim those names
     * are our own hooks (mmap's would record the shim's tables as the program's mappings),
     * and the raw call leaves errno alone (PR_SET_VMA fails on kernels without VMA names). */
    long r = lt_raw_syscall(SYS_mmap, 0, (long)size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | extra_flags, -1, 0);
    if ((unsigned long)r > -4096ul) return NULL;
    void *p = (void *)r;
    /* Shows as [anon:leaktrace] in /proc/PID/maps (Linux >= 5.17; harmless elsewhere), which is
     * how tools and the reachability scan tell the shim's memory from the program's. */
    lt_raw_syscall(SYS_prctl, PR_SET_VMA, PR_SET_VMA_ANON_NAME, r, (long)size, (long)"leaktrace", 0);
    remember(p, size);
    return p;
}

void *lt_map(size_t size) { return map_with(size, 0); }

/* For memory written all over at once (a hash table being refilled): a first read of an
 * untouched page maps the shared zero page, and the write after it must then replace that
 * entry and flush it from every CPU running the program (an interrupt to each): measured at
 * 6% of the C++ workload's samples. Faulting every page in for writing up front avoids both. */
void *lt_map_populated(size_t size) { return map_with(size, MAP_POPULATE); }

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

void lt_ready_page_slow(const void *at, _Atomic uint64_t *ready, size_t bit)
{
    static _Atomic bool unsupported; /* EINVAL once: the kernel predates it */
    if (!atomic_load_explicit(&unsupported, memory_order_relaxed)) {
        uintptr_t page = (uintptr_t)at & ~(uintptr_t)(lt_page_size() - 1);
        long r = lt_raw_syscall(SYS_madvise, (long)page, (long)lt_page_size(), MADV_POPULATE_WRITE, 0, 0, 0);
        if (r == -EINVAL) atomic_store_explicit(&unsupported, true, memory_order_relaxed);
        /* Other failures (no memory) leave the page as it was: a read maps the zero page. */
    }
    atomic_fetch_or_explicit(&ready[bit / 64], 1ull << (bit % 64), memory_order_relaxed);
}

void lt_unmap(void *addr, size_t size)
{
    if (!addr) return;
    forget(addr);
    lt_raw_syscall(SYS_munmap, (long)addr, (long)size, 0, 0, 0, 0);
}

void *lt_map_once(_Atomic(void *) *at, size_t size)
{
    void *mapped = atomic_load_explicit(at, memory_order_acquire);
    if (mapped) return mapped;
    void *fresh = lt_map(size);
    if (!fresh) return NULL;
    if (atomic_compare_exchange_strong(at, &mapped, fresh)) return fresh;
    lt_unmap(fresh, size); /* another thread's is in */
    return mapped;
}
