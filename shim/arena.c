/* Memory the shim maps for its own tables. Never the program's allocator: a malloc from
 * inside a malloc hook would recurse, and a block of ours in the heap would look like the
 * program's to a reachability scan. */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "shim.h"

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

size_t lt_page_size(void)
{
    static size_t page; /* benign race: every thread computes the same value */
    if (!page) page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

void *lt_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    /* Shows as [anon:leaktrace] in /proc/PID/maps (Linux >= 5.17; harmless elsewhere), which is
     * how tools and the reachability scan tell the shim's memory from the program's. */
    prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, size, (unsigned long)"leaktrace");
    return p;
}

void lt_unmap(void *addr, size_t size)
{
    if (addr) munmap(addr, size);
}
