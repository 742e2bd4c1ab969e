/* Where the only pointer to a block lies in memory the program mapped large and mostly never
 * touched (the scan skips the untouched pages of private anonymous memory, not the others):
 *   middle:  in the one page written in the middle of a 256 MiB private anonymous mapping:
 *            still reachable
 *   last:    in the last word of that mapping: still reachable
 *   shared:  in the middle of a 1 MiB shared anonymous mapping: still reachable
 *   lost:    nowhere: definitely lost
 *   big:     a 64 MiB block (glibc maps it) that a global points to: still reachable; the
 *   in_big:  block whose only pointer is in the big block's middle page, and the
 *   big_end: one whose only pointer is the big block's last word: still reachable too, the
 *            rest of the big block never touched
 * The mappings are never unmapped. Nothing else allocates (no stdio). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SPARSE_BYTES ((size_t)256 << 20)
#define SHARED_BYTES ((size_t)1 << 20)
#define BIG_BYTES ((size_t)64 << 20)

void *volatile sink;
void *volatile big;

static char *map(size_t size, int flags)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) abort();
    return p;
}

__attribute__((noinline)) static void keep_in_middle(char *at)
{
    void *p = malloc(100); /* @leak:middle */
    memcpy(at, &p, sizeof p);
}

__attribute__((noinline)) static void keep_in_last_word(char *at)
{
    void *p = malloc(200); /* @leak:last */
    memcpy(at, &p, sizeof p);
}

__attribute__((noinline)) static void keep_in_shared(char *at)
{
    void *p = malloc(300); /* @leak:shared */
    memcpy(at, &p, sizeof p);
}

__attribute__((noinline)) static void lose(void)
{
    sink = malloc(400); /* @leak:lost */
    sink = NULL;
}

__attribute__((noinline)) static void keep_in_big_block(void)
{
    char *block = malloc(BIG_BYTES); /* @leak:big */
    big = block;
    void *p = malloc(500); /* @leak:in_big */
    memcpy(block + BIG_BYTES / 2, &p, sizeof p);
    void *q = malloc(600); /* @leak:big_end */
    memcpy(block + BIG_BYTES - sizeof q, &q, sizeof q);
}

int main(void)
{
    char *sparse = map(SPARSE_BYTES, MAP_PRIVATE);
    char *shared = map(SHARED_BYTES, MAP_SHARED);
    keep_in_middle(sparse + SPARSE_BYTES / 2 + 40);
    keep_in_last_word(sparse + SPARSE_BYTES - sizeof(void *));
    keep_in_shared(shared + SHARED_BYTES / 2);
    lose();
    keep_in_big_block();
    return 0;
}
