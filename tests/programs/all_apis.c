/* One leak per allocation API, each with a size of its own, and freed uses that must not
 * show up. Sizes: malloc 1001, calloc 3*334=1002, realloc 1003, reallocarray 4*251=1004,
 * memalign 1005, posix_memalign 1006, aligned_alloc 1024 (multiple of the alignment),
 * valloc 1008, pvalloc 1009 (a whole page), mmap 16 pages, mmap 8 pages of which the middle
 * 2 are unmapped (6 pages in 2 pieces), mremap to 12 pages, sbrk 4096, malloc(0). */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

void *volatile sink;
void *volatile nothing; /* NULL that the compiler cannot see: realloc(NULL, n) would become malloc(n) */
#define KEEP(x) (sink = (x))

int main(void)
{
    long page = sysconf(_SC_PAGESIZE);
    KEEP(malloc(1001)); /* @leak:malloc */
    KEEP(calloc(3, 334)); /* @leak:calloc */
    KEEP(realloc(nothing, 1003)); /* @leak:realloc */
    KEEP(reallocarray(nothing, 4, 251)); /* @leak:reallocarray */
    KEEP(memalign(64, 1005)); /* @leak:memalign */
    void *pm;
    if (posix_memalign(&pm, 128, 1006) == 0) KEEP(pm); /* @leak:posix_memalign */
    KEEP(aligned_alloc(256, 1024)); /* @leak:aligned_alloc */
    KEEP(valloc(1008)); /* @leak:valloc */
#ifndef NO_PVALLOC /* valgrind 3.19 aborts the program at pvalloc */
    KEEP(pvalloc(1009)); /* @leak:pvalloc */
#endif
    KEEP(malloc(0)); /* @leak:malloc0 */
    KEEP(mmap(NULL, 16 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)); /* @leak:mmap */
    char *part = mmap(NULL, 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); /* @leak:mmap_partial */
    munmap(part + 3 * page, 2 * page);
    char *grow = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    KEEP(mremap(grow, 4 * page, 12 * page, MREMAP_MAYMOVE)); /* @leak:mremap */
    KEEP(sbrk(4096)); /* @leak:sbrk */

    /* Freed: none of these may be reported. */
    void *r = malloc(10);
    for (int i = 1; i <= 20; i++) r = realloc(r, (size_t)i * 100);
    free(r);
    free(reallocarray(nothing, 10, 10));
    free(memalign(4096, 100));
    if (posix_memalign(&pm, 64, 200) == 0) free(pm);
    free(aligned_alloc(64, 640));
    free(valloc(77));
#ifndef NO_PVALLOC
    free(pvalloc(77));
#endif
    free(calloc(10, 10));
    free(malloc(0));
    void *gone = realloc(malloc(30), 0); /* realloc to 0 frees */
    KEEP(gone);
    munmap(mmap(NULL, 3 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), 3 * page);
    void *failed = malloc((size_t)-1 / 2); /* fails: nothing recorded */
    KEEP(failed);
    return 0;
}
