/* A custom allocator that hides its objects from malloc: pools carve objects out of big slabs
 * (malloc'd, or mmap'd with the argument "mmap") and tell leaktrace about each object through
 * leaktrace/annotate.h, or valgrind through its client requests when built with
 * -DUSE_VALGRIND: the same program under both tools must give the same leaks.
 *
 *   pool P:  a lost 48-byte object (definitely lost); a lost 64-byte object pointing to an
 *            80-byte one (definitely lost, and indirectly lost); a 96-byte object in a global
 *            (still reachable); a 112-byte object known only by a pointer 8 bytes in (possibly
 *            lost); a 128-byte object freed back to the pool.
 *   pool Q:  three 176-byte objects never freed one by one: the pool is destroyed.
 *   pool R:  a 208- and a 224-byte object; TRIM keeps only the first, the pool is renamed
 *            (MOVE_MEMPOOL) and the object shrinks to 104 bytes (MEMPOOL_CHANGE), in a global.
 *   arena:   MALLOCLIKE blocks in a malloc'd slab: one at the slab's own address resized in
 *            place to 200 bytes (still reachable, from a global and the arena's own pointer to
 *            its slab), a lost 144-byte block, a 32-byte one freed (FREELIKE); and a FREELIKE
 *            of an address that never was a block.
 * Only write() is used: stdio would leave buffers of its own. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "scrub_stack.h"

#ifdef USE_VALGRIND
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define TOOL_RUNNING() RUNNING_ON_VALGRIND
#define POOL_CREATE(pool) VALGRIND_CREATE_MEMPOOL(pool, 0, 0)
#define POOL_DESTROY(pool) VALGRIND_DESTROY_MEMPOOL(pool)
#define POOL_ALLOC(pool, p, size) VALGRIND_MEMPOOL_ALLOC(pool, p, size)
#define POOL_FREE(pool, p) VALGRIND_MEMPOOL_FREE(pool, p)
#define POOL_TRIM(pool, p, size) VALGRIND_MEMPOOL_TRIM(pool, p, size)
#define POOL_MOVE(from, to) VALGRIND_MOVE_MEMPOOL(from, to)
#define POOL_CHANGE(pool, a, b, size) VALGRIND_MEMPOOL_CHANGE(pool, a, b, size)
#define POOL_EXISTS(pool) VALGRIND_MEMPOOL_EXISTS(pool)
#define BLOCK_MALLOCLIKE(p, size) VALGRIND_MALLOCLIKE_BLOCK(p, size, 0, 0)
#define BLOCK_FREELIKE(p) VALGRIND_FREELIKE_BLOCK(p, 0)
#define BLOCK_RESIZE(p, old, new) VALGRIND_RESIZEINPLACE_BLOCK(p, old, new, 0)
#else
#include <leaktrace/annotate.h>
#define TOOL_RUNNING() LEAKTRACE_RUNNING()
#define POOL_CREATE(pool) LEAKTRACE_CREATE_MEMPOOL(pool, 0, 0)
#define POOL_DESTROY(pool) LEAKTRACE_DESTROY_MEMPOOL(pool)
#define POOL_ALLOC(pool, p, size) LEAKTRACE_MEMPOOL_ALLOC(pool, p, size)
#define POOL_FREE(pool, p) LEAKTRACE_MEMPOOL_FREE(pool, p)
#define POOL_TRIM(pool, p, size) LEAKTRACE_MEMPOOL_TRIM(pool, p, size)
#define POOL_MOVE(from, to) LEAKTRACE_MOVE_MEMPOOL(from, to)
#define POOL_CHANGE(pool, a, b, size) LEAKTRACE_MEMPOOL_CHANGE(pool, a, b, size)
#define POOL_EXISTS(pool) LEAKTRACE_MEMPOOL_EXISTS(pool)
#define BLOCK_MALLOCLIKE(p, size) LEAKTRACE_MALLOCLIKE_BLOCK(p, size, 0, 0)
#define BLOCK_FREELIKE(p) LEAKTRACE_FREELIKE_BLOCK(p, 0)
#define BLOCK_RESIZE(p, old, new) LEAKTRACE_RESIZEINPLACE_BLOCK(p, old, new, 0)
#endif

#define SLAB_SIZE 65536

/* ---- the pool: a bump allocator over a list of slabs ---------------------------------------- */
struct slab {
    struct slab *next;
    size_t size;
    char data[];
};

struct pool {
    struct slab *slabs;
    char *cur, *end;
    void *free_list;       /* freed objects, reused first (any size up to 128) */
    int use_mmap;
};

static void pool_init(struct pool *p, int use_mmap)
{
    memset(p, 0, sizeof *p);
    p->use_mmap = use_mmap;
    POOL_CREATE(p);
}

static void pool_grow(struct pool *p)
{
    struct slab *s;
    if (p->use_mmap) {
        s = mmap(NULL, SLAB_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (s == MAP_FAILED) abort();
    } else {
        s = malloc(SLAB_SIZE); /* @leak:slab */
        if (!s) abort();
    }
    memset(s, 0, SLAB_SIZE);
    s->next = p->slabs;
    s->size = SLAB_SIZE;
    p->slabs = s;
    p->cur = s->data;
    p->end = (char *)s + SLAB_SIZE;
}

__attribute__((noinline)) static void *pool_alloc(struct pool *p, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (!p->cur || (size_t)(p->end - p->cur) < size) pool_grow(p);
    void *obj = p->cur;
    p->cur += size;
    POOL_ALLOC(p, obj, size); /* @leak:pool_request */
    return obj;
}

__attribute__((noinline)) static void pool_free(struct pool *p, void *obj)
{
    POOL_FREE(p, obj);
    memset(obj, 0, sizeof(void *));
    *(void **)obj = p->free_list;
    p->free_list = obj;
}

static void pool_release_slabs(struct pool *p)
{
    for (struct slab *s = p->slabs, *next; s; s = next) {
        next = s->next;
        if (p->use_mmap) munmap(s, SLAB_SIZE);
        else free(s);
    }
    p->slabs = NULL;
}

__attribute__((noinline)) static void pool_destroy(struct pool *p)
{
    POOL_DESTROY(p);
    pool_release_slabs(p);
}

/* ---- the arena: MALLOCLIKE blocks bumped out of one malloc'd slab, no header ---------------- */
static char *arena_slab, *arena_cur;

__attribute__((noinline)) static void *arena_alloc(size_t size)
{
    if (!arena_slab) arena_cur = arena_slab = calloc(1, SLAB_SIZE);
    void *block = arena_cur;
    arena_cur += (size + 15) & ~(size_t)15;
    BLOCK_MALLOCLIKE(block, size); /* @leak:arena_request */
    return block;
}

__attribute__((noinline)) static void arena_free(void *block)
{
    BLOCK_FREELIKE(block);
}

/* ---- the objects ------------------------------------------------------------------------- */
struct obj {
    struct obj *next;
    char payload[];
};

struct pool pool_p, pool_q, pool_r, pool_r_moved;
void *volatile reachable_obj, *volatile interior_ptr, *volatile resized_block, *volatile moved_obj;
void *volatile sink;
long never_a_block;

static void make_objects(void)
{
    sink = pool_alloc(&pool_p, 48); /* @call:p_definite */

    struct obj *a = pool_alloc(&pool_p, 64); /* @call:p_lost_head */
    a->next = pool_alloc(&pool_p, 80); /* @call:p_indirect */
    sink = a;

    reachable_obj = pool_alloc(&pool_p, 96); /* @call:p_reachable */

    interior_ptr = (char *)pool_alloc(&pool_p, 112) + 8; /* @call:p_possible */

    pool_free(&pool_p, pool_alloc(&pool_p, 128)); /* @call:p_freed */

    for (int i = 0; i < 3; i++) sink = pool_alloc(&pool_q, 176); /* @call:q_destroyed */
    pool_destroy(&pool_q);

    void *r1 = pool_alloc(&pool_r, 208); /* @call:r_kept */
    sink = pool_alloc(&pool_r, 224); /* @call:r_trimmed */
    POOL_TRIM(&pool_r, r1, 208);
    POOL_MOVE(&pool_r, &pool_r_moved);
    POOL_CHANGE(&pool_r_moved, r1, r1, 104);
    moved_obj = r1;
    if (TOOL_RUNNING() && (POOL_EXISTS(&pool_r) || !POOL_EXISTS(&pool_r_moved)))
        write(1, "pool rename failed\n", 19);

    void *resized = arena_alloc(160); /* @call:m_resized */
    BLOCK_RESIZE(resized, 160, 200);
    resized_block = resized;
    sink = arena_alloc(144); /* @call:m_definite */
    arena_free(arena_alloc(32)); /* @call:m_freed */
    arena_free(&never_a_block);
    sink = NULL;
}

/* For leaktrace.track()'s test, which loads this file as a library: is a tool answering now? */
int pool_tool_running(void) { return TOOL_RUNNING(); }

/* With a second argument "wait": the pools are created, then the program waits for a line on
 * stdin before it makes the objects (leaktrace attach comes meanwhile), and for another before
 * it exits. */
static void wait_for_line(const char *say)
{
    char c;
    write(1, say, strlen(say));
    while (read(0, &c, 1) == 1 && c != '\n') continue;
}

int main(int argc, char **argv)
{
    int use_mmap = argc > 1 && strcmp(argv[1], "mmap") == 0;
    int wait = argc > 2 && strcmp(argv[2], "wait") == 0;
    pool_init(&pool_p, use_mmap);
    pool_init(&pool_q, use_mmap);
    pool_init(&pool_r, 0);
    if (wait) wait_for_line("ready\n");
    below(make_objects);
    scrub_stack();
    if (wait) wait_for_line("made\n");
    write(1, "done\n", 5);
    return 0;
}
