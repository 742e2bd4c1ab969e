/* leaktrace/annotate.h: tell leaktrace about the blocks of a custom allocator (a pool, an
 * arena, a free list carved out of big slabs), as valgrind's client requests tell memcheck.
 * Without them a malloc interposer sees only the slabs, never the objects, so a leaked object
 * is invisible and an unused slab looks like one big leak.
 *
 *   LEAKTRACE_MALLOCLIKE_BLOCK(addr, size, rz, zeroed)    addr now holds a block of size bytes
 *   LEAKTRACE_FREELIKE_BLOCK(addr, rz)                    ... and no longer does
 *   LEAKTRACE_RESIZEINPLACE_BLOCK(addr, old, new, rz)     the block changed size in place
 *   LEAKTRACE_CREATE_MEMPOOL(pool, rz, zeroed)            pool: any address naming the pool
 *   LEAKTRACE_DESTROY_MEMPOOL(pool)                       forgets every block of the pool
 *   LEAKTRACE_MEMPOOL_ALLOC(pool, addr, size)             a block of the pool
 *   LEAKTRACE_MEMPOOL_FREE(pool, addr)
 *   LEAKTRACE_MEMPOOL_TRIM(pool, addr, size)              keeps only what lies in [addr, +size)
 *   LEAKTRACE_MOVE_MEMPOOL(pool_a, pool_b)                the pool is now named pool_b
 *   LEAKTRACE_MEMPOOL_CHANGE(pool, addr_a, addr_b, size)  a block moved and/or resized
 *   LEAKTRACE_MEMPOOL_EXISTS(pool)                        1 if the pool is known, else 0
 *   LEAKTRACE_RUNNING()                                   1 while leaktrace follows this process
 *
 * The arguments mean what valgrind's do (rz and zeroed are accepted and ignored), so a program
 * can map VALGRIND_x to LEAKTRACE_x. Each block is reported with the backtrace of the code that
 * made the request, as a heap block of kind "malloclike" or "mempool"; a heap block that holds
 * annotated blocks is the allocator's superblock and is not reported (docs/annotations.md).
 *
 * Cost without leaktrace: each macro loads one GOT entry and takes a branch that is never
 * taken. Nothing to link: the entry point is a weak reference, 0 unless the leaktrace shim is
 * in the process (preloaded by `leaktrace run`, or loaded by `leaktrace attach` or
 * `leaktrace.track()`, which point this GOT entry at it). x86-64, GCC or Clang, C or C++.
 * Get the include directory with `leaktrace include-dir`. */
#ifndef LEAKTRACE_ANNOTATE_H
#define LEAKTRACE_ANNOTATE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The request numbers: part of the shim's ABI, never renumbered. */
enum leaktrace_request {
    LEAKTRACE_REQ_RUNNING = 1,
    LEAKTRACE_REQ_MALLOCLIKE_BLOCK = 2,
    LEAKTRACE_REQ_FREELIKE_BLOCK = 3,
    LEAKTRACE_REQ_RESIZEINPLACE_BLOCK = 4,
    LEAKTRACE_REQ_CREATE_MEMPOOL = 5,
    LEAKTRACE_REQ_DESTROY_MEMPOOL = 6,
    LEAKTRACE_REQ_MEMPOOL_ALLOC = 7,
    LEAKTRACE_REQ_MEMPOOL_FREE = 8,
    LEAKTRACE_REQ_MEMPOOL_TRIM = 9,
    LEAKTRACE_REQ_MOVE_MEMPOOL = 10,
    LEAKTRACE_REQ_MEMPOOL_CHANGE = 11,
    LEAKTRACE_REQ_MEMPOOL_EXISTS = 12
};

typedef uintptr_t (*leaktrace_request_fn)(unsigned request, uintptr_t a1, uintptr_t a2,
                                          uintptr_t a3, uintptr_t a4);

#ifndef LEAKTRACE_SHIM_BUILD /* the shim takes the request numbers and defines the function */

/* Defined by the shim only. A weak reference: resolves to 0 when the shim is absent. */
uintptr_t leaktrace_client_request(unsigned request, uintptr_t a1, uintptr_t a2, uintptr_t a3,
                                   uintptr_t a4) __attribute__((weak));

#if defined(__x86_64__)
/* Read through the GOT even in a non-PIE executable, where the linker would otherwise resolve
 * an undefined weak function to a constant 0 and no preloaded shim could ever be reached. */
__asm__(".weak leaktrace_client_request");
#define LEAKTRACE__ENTRY(fn) \
    __asm__("movq leaktrace_client_request@GOTPCREL(%%rip), %0" : "=r"(fn))
#else
#define LEAKTRACE__ENTRY(fn) ((fn) = leaktrace_client_request)
#endif

/* A macro, not an inline function: the request is made from the caller's own line, which is
 * where the block's backtrace begins. */
#define LEAKTRACE__REQUEST(request, a1, a2, a3, a4)                                         \
    __extension__({                                                                        \
        leaktrace_request_fn leaktrace__fn;                                                \
        LEAKTRACE__ENTRY(leaktrace__fn);                                                   \
        __builtin_expect(leaktrace__fn != 0, 0)                                            \
            ? leaktrace__fn((request), (uintptr_t)(a1), (uintptr_t)(a2), (uintptr_t)(a3),  \
                            (uintptr_t)(a4))                                               \
            : (uintptr_t)0;                                                                \
    })

#define LEAKTRACE_RUNNING() ((int)LEAKTRACE__REQUEST(LEAKTRACE_REQ_RUNNING, 0, 0, 0, 0))
#define LEAKTRACE_MALLOCLIKE_BLOCK(addr, size, rz, zeroed) \
    ((void)(rz), (void)(zeroed), \
     (void)LEAKTRACE__REQUEST(LEAKTRACE_REQ_MALLOCLIKE_BLOCK, (addr), (size), 0, 0))
#define LEAKTRACE_FREELIKE_BLOCK(addr, rz) \
    ((void)(rz), (void)LEAKTRACE__REQUEST(LEAKTRACE_REQ_FREELIKE_BLOCK, (addr), 0, 0, 0))
#define LEAKTRACE_RESIZEINPLACE_BLOCK(addr, old_size, new_size, rz) \
    ((void)(rz), (void)LEAKTRACE__REQUEST(LEAKTRACE_REQ_RESIZEINPLACE_BLOCK, (addr), \
                                          (old_size), (new_size), 0))
#define LEAKTRACE_CREATE_MEMPOOL(pool, rz, zeroed) \
    ((void)(rz), (void)(zeroed), \
     (void)LEAKTRACE__REQUEST(LEAKTRACE_REQ_CREATE_MEMPOOL, (pool), 0, 0, 0))
#define LEAKTRACE_DESTROY_MEMPOOL(pool) \
    ((void)LEAKTRACE__REQUEST(LEAKTRACE_REQ_DESTROY_MEMPOOL, (pool), 0, 0, 0))
#define LEAKTRACE_MEMPOOL_ALLOC(pool, addr, size) \
    ((void)LEAKTRACE__REQUEST(LEAKTRACE_REQ_MEMPOOL_ALLOC, (pool), (addr), (size), 0))
#define LEAKTRACE_MEMPOOL_FREE(pool, addr) \
    ((void)LEAKTRACE__REQUEST(LEAKTRACE_REQ_MEMPOOL_FREE, (pool), (addr), 0, 0))
#define LEAKTRACE_MEMPOOL_TRIM(pool, addr, size) \
    ((void)LEAKTRACE__REQUEST(LEAKTRACE_REQ_MEMPOOL_TRIM, (pool), (addr), (size), 0))
#define LEAKTRACE_MOVE_MEMPOOL(pool_a, pool_b) \
    ((void)LEAKTRACE__REQUEST(LEAKTRACE_REQ_MOVE_MEMPOOL, (pool_a), (pool_b), 0, 0))
#define LEAKTRACE_MEMPOOL_CHANGE(pool, addr_a, addr_b, size) \
    ((void)LEAKTRACE__REQUEST(LEAKTRACE_REQ_MEMPOOL_CHANGE, (pool), (addr_a), (addr_b), (size)))
#define LEAKTRACE_MEMPOOL_EXISTS(pool) \
    ((int)LEAKTRACE__REQUEST(LEAKTRACE_REQ_MEMPOOL_EXISTS, (pool), 0, 0, 0))
#endif /* LEAKTRACE_SHIM_BUILD */

#ifdef __cplusplus
}
#endif

#endif
