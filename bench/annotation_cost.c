/* The cost of leaktrace/annotate.h's requests (bench/annotation_cost.py): a pool allocator's
 * alloc/free pair, N times, timed by the program itself (so start-up and the report are not
 * counted). Built twice: with -DNO_ANNOTATIONS (the macros expand to nothing) and without;
 * the second is run alone (the requests' one load and never-taken branch) and under
 * `leaktrace run` (each request recorded). Prints nanoseconds per pair. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef NO_ANNOTATIONS
#define LEAKTRACE_CREATE_MEMPOOL(pool, rz, zeroed) ((void)0)
#define LEAKTRACE_MEMPOOL_ALLOC(pool, addr, size) ((void)0)
#define LEAKTRACE_MEMPOOL_FREE(pool, addr) ((void)0)
#else
#include <leaktrace/annotate.h>
#endif

#define OBJECT 64
#define SLOTS 1024

struct pool {
    char *slab;
    void *free_list;
};

__attribute__((noinline)) static void *pool_alloc(struct pool *p)
{
    void *obj = p->free_list;
    p->free_list = *(void **)obj;
    LEAKTRACE_MEMPOOL_ALLOC(p, obj, OBJECT);
    return obj;
}

__attribute__((noinline)) static void pool_free(struct pool *p, void *obj)
{
    LEAKTRACE_MEMPOOL_FREE(p, obj);
    *(void **)obj = p->free_list;
    p->free_list = obj;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    struct pool p = { malloc(OBJECT * SLOTS), NULL };
    for (int i = SLOTS - 1; i >= 0; i--) pool_free(&p, p.slab + i * OBJECT);
    LEAKTRACE_CREATE_MEMPOOL(&p, 0, 0);
    void *live[8] = { 0 };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        if (live[i & 7]) pool_free(&p, live[i & 7]);
        live[i & 7] = pool_alloc(&p);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (int i = 0; i < 8; i++) pool_free(&p, live[i]);
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (double)n;
    printf("%.2f\n", ns);
    free(p.slab);
    return 0;
}
