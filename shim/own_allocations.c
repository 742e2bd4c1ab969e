/* The heap memory the C library allocates for the shim's own thread, kept out of the
 * program's heap.
 *
 * pthread_create allocates the new thread's dynamic thread vector (glibc's DTV, about 300
 * bytes) with calloc, which in preload mode the loader resolved to the shim's hook: the control
 * thread's vector went into the program's heap, after whichever block the program allocated
 * last, and the program saw a heap unlike its native one (mallinfo's in-use bytes,
 * malloc_stats, malloc_info, the address of every later block: a test that compares
 * mallinfo before and after a call saw 304 bytes more). While the shim creates its thread,
 * calloc is served from slots of the shim's own mapping instead, and free, which glibc calls
 * when the thread is joined, gives them back. (Under attach the loader's calloc is the C
 * library's own, resolved before the shim came: nothing comes here.) */
#include <string.h>

#include "shim.h"

#define OWN_SLOT_BYTES 4096u /* a DTV: 16 bytes per module with TLS, plus 16 spare: 250 modules */
#define OWN_SLOTS 4u         /* the thread restarts (setuid, chroot), a vector in each process */
_Static_assert(OWN_SLOT_BYTES * OWN_SLOTS == LT_OWN_POOL_BYTES, "the pool's size");

/* The pool's address, mapped at the first thread start; until then an address above user
 * space, so no pointer is in the pool. Written once (a start of the control thread), read by
 * every free: on a cache line of its own (shim.h), away from counters other threads write. */
struct lt_own_pool_line lt_own_pool = { LT_NO_OWN_POOL, LT_NO_OWN_POOL, LT_OWN_POOL_BYTES };
/* Set by the thread that creates a shim thread, for that call (only that thread reads it). */
__thread bool lt_allocating_for_shim __attribute__((tls_model("initial-exec")));
static _Atomic unsigned slots_taken; /* bit i: slot i holds a block (atomic: any thread frees) */

void lt_own_allocations_begin(void)
{
    if (atomic_load(&lt_own_pool.base) == LT_NO_OWN_POOL) {
        void *pool = lt_map(LT_OWN_POOL_BYTES);
        if (pool) {
            atomic_store(&lt_own_pool.base, (uintptr_t)pool);
            atomic_store(&lt_own_pool.free_base, (uintptr_t)pool);
        }
    }
    lt_allocating_for_shim = true;
}

void lt_own_allocations_end(void) { lt_allocating_for_shim = false; }

/* A zeroed block from a free slot, or NULL (too large, or every slot taken: the caller then
 * takes it from the C library, as before). */
void *lt_own_calloc(size_t n, size_t size)
{
    size_t bytes;
    uintptr_t pool = atomic_load(&lt_own_pool.base);
    if (pool == LT_NO_OWN_POOL || __builtin_mul_overflow(n, size, &bytes) || bytes > OWN_SLOT_BYTES)
        return NULL;
    for (unsigned i = 0; i < OWN_SLOTS; i++) {
        unsigned bit = 1u << i;
        if (atomic_fetch_or(&slots_taken, bit) & bit) continue;
        void *slot = (void *)(pool + (uintptr_t)i * OWN_SLOT_BYTES);
        memset(slot, 0, bytes ? bytes : 1);
        return slot;
    }
    return NULL;
}

/* pre: lt_own_block(p). */
void lt_own_free(void *p)
{
    unsigned i = (unsigned)(((uintptr_t)p - atomic_load(&lt_own_pool.base)) / OWN_SLOT_BYTES);
    atomic_fetch_and(&slots_taken, ~(1u << i));
}

/* At exit the shim has glibc and libstdc++ release the buffers they keep for the life of the
 * process (lifecycle.c, as valgrind does) so that they are not reported. Their frees forget
 * the blocks' records, but the memory stays where it is: freeing it would work the heap, which
 * a bug of the program's may have broken without any sign natively (a double free glibc let
 * through), and glibc would abort the process in its last moment, where it natively exits. */
void lt_divert_frees(bool all)
{
    atomic_store(&lt_own_pool.free_base, all ? 0 : atomic_load(&lt_own_pool.base));
    atomic_store(&lt_own_pool.free_span, all ? UINTPTR_MAX : LT_OWN_POOL_BYTES);
}

void lt_diverted_free(void *p)
{
    if (lt_own_block(p)) lt_own_free(p);
}

/* pre: lt_own_block(old). glibc grows a thread's vector when the thread first uses the TLS
 * of a library loaded later, which the shim's thread does not; kept correct all the same. */
void *lt_own_realloc(void *old, size_t size)
{
    if (size == 0) {
        lt_own_free(old);
        return NULL;
    }
    void *p = lt_own_calloc(1, size);
    if (!p) p = __libc_malloc(size);
    if (!p) return NULL;
    memcpy(p, old, size < OWN_SLOT_BYTES ? size : OWN_SLOT_BYTES);
    lt_own_free(old);
    return p;
}

/* The fork child has no shim thread: glibc drops the descriptors of the parent's other
 * threads without freeing their vectors. */
void lt_own_allocations_after_fork_child(void) { atomic_store(&slots_taken, 0); }
