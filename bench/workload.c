/* leaktrace benchmark workload: an allocation-heavy, deterministic, multi-threaded program.
 *
 * Each thread runs ITERATIONS steps. A step picks one of 15 allocation sites (weighted, with a
 * per-thread xorshift PRNG and a fixed seed), allocates through it, and puts the block into a
 * per-thread ring of RING_SLOTS live blocks, freeing the block it replaces, so memory stays
 * bounded. Every site is reached through its own chain of noinline functions, 3 to 12 frames
 * deep, so each has a distinct backtrace. A 16th site is the one deliberate leak: every
 * LEAK_PERIOD-th step of every thread, leak_site() allocates LEAK_SIZE bytes and drops the
 * pointer. At the end the rings are emptied, so only those blocks are left; the expected total
 * is printed to stderr as "expected leak: N blocks, M bytes".
 *
 * Built without frame pointers on purpose (-O2 -fomit-frame-pointer -g): a tracer has to unwind
 * with the DWARF call frame information, as it would for most distribution binaries.
 *
 * usage: workload [-n ITERATIONS_PER_THREAD] [-t THREADS] [-s SEED] [-l LEAK_SIZE]
 * (-l: bytes of each leaked block, default 100; bench/sampling_accuracy.py uses 1000.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noclone))
#define RING_SLOTS 4096
#define LEAK_PERIOD 1000
static size_t leak_size = 100; /* -l */
#define MMAP_SIZE (64 * 1024)
#define NSITES 15 /* allocation sites picked at random; leak_site() is the 16th */
#define MAX_DEPTH 12

struct slot {
    void *ptr;
    size_t size;
    int mapped; /* 1: mmap'ed, release with munmap */
};

struct thread_state {
    uint64_t rng;
    unsigned index;
    unsigned long iterations;
    unsigned long leaked_blocks;
    unsigned head;
    struct slot ring[RING_SLOTS];
};

/* Everything the workload reads from its blocks ends up here, so no allocation is dead code. */
static volatile uintptr_t sink;

static inline uint64_t next_random(struct thread_state *t)
{
    /* xorshift64* */
    uint64_t x = t->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Block size: 8 B - 64 KiB, mostly small. */
static size_t random_size(struct thread_state *t)
{
    uint64_t r = next_random(t);
    unsigned bucket = (unsigned)(r % 1000);
    uint64_t v = r >> 20;
    if (bucket < 50)
        return 8 + v % 8; /* 5%: 8-15 */
    if (bucket < 850)
        return 16 + v % 241; /* 80%: 16-256 */
    if (bucket < 970)
        return 257 + v % 3840; /* 12%: 257-4096 */
    if (bucket < 995)
        return 4097 + v % 28672; /* 2.5%: 4 KiB - 32 KiB */
    return 32769 + v % 32768; /* 0.5%: 32 KiB - 64 KiB */
}

/* Touch a new block the way a program would: initialise its start and end. */
static inline void touch(void *p, size_t size)
{
    unsigned char *b = p;
    memset(b, 0xA5, size < 64 ? size : 64);
    b[size - 1] = (unsigned char)size;
    sink += b[0];
}

static void release(struct slot *s)
{
    if (s->ptr == NULL)
        return;
    if (s->mapped)
        munmap(s->ptr, s->size);
    else
        free(s->ptr);
    s->ptr = NULL;
}

/* Put a new block into the ring, freeing the oldest one. */
static void keep(struct thread_state *t, void *p, size_t size, int mapped)
{
    if (p == NULL) {
        fprintf(stderr, "workload: allocation of %zu bytes failed\n", size);
        abort();
    }
    touch(p, size);
    struct slot *s = &t->ring[t->head];
    release(s);
    s->ptr = p;
    s->size = size;
    s->mapped = mapped;
    t->head = (t->head + 1) % RING_SLOTS;
}

/* ---- the 15 allocation sites, one API call each ------------------------------------------ */

static NOINLINE void site_malloc_a(struct thread_state *t)
{
    size_t n = random_size(t);
    keep(t, malloc(n), n, 0);
}

static NOINLINE void site_malloc_b(struct thread_state *t)
{
    size_t n = random_size(t);
    keep(t, malloc(n), n, 0);
}

static NOINLINE void site_malloc_c(struct thread_state *t)
{
    size_t n = random_size(t);
    keep(t, malloc(n), n, 0);
}

static NOINLINE void site_malloc_small(struct thread_state *t)
{
    size_t n = 16 + next_random(t) % 48;
    keep(t, malloc(n), n, 0);
}

static NOINLINE void site_calloc_a(struct thread_state *t)
{
    size_t n = random_size(t);
    keep(t, calloc(1, n), n, 0);
}

static NOINLINE void site_calloc_b(struct thread_state *t)
{
    size_t n = random_size(t);
    size_t count = 1 + n / 16;
    keep(t, calloc(count, 16), count * 16, 0);
}

/* A growing realloc chain: 3 reallocs, each may move the block. */
static NOINLINE void site_realloc_grow(struct thread_state *t)
{
    size_t n = random_size(t);
    void *p = malloc(16);
    if (p != NULL)
        memset(p, 1, 16);
    p = realloc(p, 16 + n / 4);
    p = realloc(p, 16 + n / 2);
    p = realloc(p, 16 + n);
    keep(t, p, 16 + n, 0);
}

/* A shrinking realloc chain. */
static NOINLINE void site_realloc_shrink(struct thread_state *t)
{
    size_t n = random_size(t);
    void *p = malloc(n * 2);
    if (p != NULL)
        ((unsigned char *)p)[n * 2 - 1] = 1;
    p = realloc(p, n);
    keep(t, p, n, 0);
}

static NOINLINE void site_reallocarray(struct thread_state *t)
{
    size_t n = 1 + random_size(t) / 8;
    void *p = reallocarray(NULL, n / 2 + 1, 8);
    p = reallocarray(p, n, 8);
    keep(t, p, n * 8, 0);
}

static NOINLINE void site_posix_memalign(struct thread_state *t)
{
    size_t n = random_size(t);
    void *p = NULL;
    if (posix_memalign(&p, 64, n) != 0)
        p = NULL;
    keep(t, p, n, 0);
}

static NOINLINE void site_aligned_alloc(struct thread_state *t)
{
    size_t n = (random_size(t) + 127) & ~(size_t)127; /* C11: a multiple of the alignment */
    keep(t, aligned_alloc(128, n), n, 0);
}

static NOINLINE void site_memalign(struct thread_state *t)
{
    size_t n = random_size(t);
    keep(t, memalign(32, n), n, 0);
}

static NOINLINE void site_valloc(struct thread_state *t)
{
    size_t n = random_size(t);
    keep(t, valloc(n), n, 0);
}

static NOINLINE void site_mmap(struct thread_state *t)
{
    void *p = mmap(NULL, MMAP_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    keep(t, p == MAP_FAILED ? NULL : p, MMAP_SIZE, 1);
}

static NOINLINE void site_malloc_deep(struct thread_state *t)
{
    size_t n = 16 + next_random(t) % 241;
    keep(t, malloc(n), n, 0);
}

/* The one deliberate leak: the block is written, read and dropped. */
static NOINLINE void leak_site(struct thread_state *t)
{
    unsigned char *p = malloc(leak_size);
    if (p == NULL)
        abort();
    memset(p, 0x5A, leak_size);
    sink += p[leak_size / 2];
    t->leaked_blocks++;
}

typedef void (*site_fn)(struct thread_state *);

struct site {
    site_fn fn;
    unsigned depth;  /* frames from the thread's loop to the allocating function, inclusive */
    unsigned weight; /* relative frequency, out of the sum of weights */
};

static const struct site sites[NSITES] = {
    {site_malloc_a, 3, 200},
    {site_malloc_small, 4, 160},
    {site_calloc_a, 5, 80},
    {site_malloc_b, 6, 100},
    {site_realloc_grow, 7, 60},
    {site_posix_memalign, 8, 40},
    {site_aligned_alloc, 9, 40},
    {site_memalign, 10, 30},
    {site_valloc, 11, 3},
    {site_reallocarray, 12, 40},
    {site_calloc_b, 6, 60},
    {site_malloc_c, 8, 60},
    {site_mmap, 5, 2},
    {site_malloc_deep, 12, 95},
    {site_realloc_shrink, 10, 30},
};
#define LEAK_DEPTH 9

/* ---- call chains: level_k calls level_{k+1}, the last level calls the site --------------- */

static NOINLINE void call_site(struct thread_state *t, site_fn fn)
{
    fn(t);
    sink += t->head; /* keeps the call from becoming a tail call */
}

#define LEVEL(k, next)                                                       \
    static NOINLINE void level##k(struct thread_state *t, site_fn fn)        \
    {                                                                        \
        next(t, fn);                                                         \
        sink += (k);                                                         \
    }

LEVEL(10, call_site)
LEVEL(9, level10)
LEVEL(8, level9)
LEVEL(7, level8)
LEVEL(6, level7)
LEVEL(5, level6)
LEVEL(4, level5)
LEVEL(3, level4)
LEVEL(2, level3)
LEVEL(1, level2)

typedef void (*level_fn)(struct thread_state *, site_fn);

/* entry[d] starts a chain that puts the site function d frames below the loop: the site, then
 * call_site, then d - 2 levels. */
static level_fn const entry[MAX_DEPTH + 1] = {
    NULL, NULL, NULL,
    level10, level9, level8, level7, level6, level5, level4, level3, level2, level1,
};

static void run_site(struct thread_state *t, const struct site *s)
{
    if (s->depth == 2)
        call_site(t, s->fn);
    else
        entry[s->depth](t, s->fn);
}

static void *worker(void *arg)
{
    struct thread_state *t = arg;
    unsigned total_weight = 0;
    for (unsigned i = 0; i < NSITES; i++)
        total_weight += sites[i].weight;
    const struct site leak = {leak_site, LEAK_DEPTH, 0};

    for (unsigned long i = 1; i <= t->iterations; i++) {
        unsigned r = (unsigned)(next_random(t) % total_weight);
        unsigned k = 0;
        while (r >= sites[k].weight) {
            r -= sites[k].weight;
            k++;
        }
        run_site(t, &sites[k]);
        if (i % LEAK_PERIOD == 0)
            run_site(t, &leak);
    }
    for (unsigned i = 0; i < RING_SLOTS; i++)
        release(&t->ring[i]);
    return NULL;
}

/* Peak resident set size of this process so far, in KiB, from /proc/self/status (VmHWM).
 * Read with plain system calls so that it allocates nothing. */
static long peak_rss_kib(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *line = strstr(buf, "VmHWM:");
    return line ? strtol(line + 6, NULL, 10) : -1;
}

static unsigned long parse_count(const char *text, const char *what)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || end == text || v == 0) {
        fprintf(stderr, "workload: bad %s: %s\n", what, text);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    unsigned long iterations = 1000000;
    unsigned long threads = 4;
    unsigned long seed = 0x5EEDULL;
    int opt;
    while ((opt = getopt(argc, argv, "n:t:s:l:")) != -1) {
        switch (opt) {
        case 'n':
            iterations = parse_count(optarg, "iteration count");
            break;
        case 't':
            threads = parse_count(optarg, "thread count");
            break;
        case 's':
            seed = parse_count(optarg, "seed");
            break;
        case 'l':
            leak_size = parse_count(optarg, "leak size");
            break;
        default:
            fprintf(stderr, "usage: %s [-n ITERATIONS_PER_THREAD] [-t THREADS] [-s SEED] [-l LEAK_SIZE]\n",
                    argv[0]);
            return 2;
        }
    }
    if (threads > 256) {
        fprintf(stderr, "workload: at most 256 threads\n");
        return 2;
    }

    /* Thread states live in mmap'ed memory, not on the heap, so that the only heap blocks
     * left at exit are the leaked ones. */
    static pthread_t ids[256];
    size_t state_bytes = threads * sizeof(struct thread_state);
    struct thread_state *states = mmap(NULL, state_bytes, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (states == MAP_FAILED) {
        perror("workload: mmap");
        return 1;
    }
    for (unsigned long i = 0; i < threads; i++) {
        states[i].rng = (seed + 0x9E3779B97F4A7C15ULL * (i + 1)) | 1;
        states[i].index = (unsigned)i;
        states[i].iterations = iterations;
        int err = pthread_create(&ids[i], NULL, worker, &states[i]);
        if (err != 0) {
            fprintf(stderr, "workload: pthread_create: %s\n", strerror(err));
            return 1;
        }
    }
    unsigned long leaked = 0;
    for (unsigned long i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
        leaked += states[i].leaked_blocks;
    }
    munmap(states, state_bytes);

    fprintf(stderr, "expected leak: %lu blocks, %lu bytes\n", leaked, leaked * leak_size);
    fprintf(stderr, "peak rss: %ld KiB\n", peak_rss_kib());
    return 0;
}
