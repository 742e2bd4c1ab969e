/* One allocator behind every allocation API the program can call.
 *
 * The hooks allocate with __libc_malloc and friends. Whoever defines those in the process
 * is "the provider": glibc, or tcmalloc (which exports __libc_malloc & co. itself). A program
 * that brings another allocator (jemalloc, tcmalloc, preloaded or linked) also exports that
 * allocator's malloc_usable_size and C++ operator new/delete; the shim's malloc comes first
 * in symbol lookup, so those must follow it, or they see pointers of another heap:
 * - malloc_usable_size (the program's calls, and the scan's, which never go through the PLT)
 *   is the provider's own, found in the provider's object;
 * - aligned_alloc's real function is the provider's too (RTLD_NEXT could be jemalloc's);
 * - operator new and delete (all 20 of C++17) are the C++ runtime's own (libstdc++ or libc++),
 *   which allocate through malloc, and so through the hooks: tcmalloc's and jemalloc's
 *   replacements, which never call malloc, are bypassed. Reports are the same as with glibc
 *   (operator new heads the backtrace). The forwarders are tail calls, so no frame of the
 *   shim appears between the program and operator new. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hooked_functions.h"
#include "sampling.h"
#include "shim.h"

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern int __libc_mallopt(int, int);
extern void *lt_hook_malloc(size_t);
extern void *lt_hook_memalign(size_t, size_t);
extern void lt_hook_free(void *);

/* ---- the provider ------------------------------------------------------------------------- */
/* Written once at start-up (single-threaded, or by the first hook call that needs them: the
 * same values whoever writes them, published with release stores). */
static size_t (*_Atomic provider_usable_size)(void *);
static void *(*_Atomic provider_aligned_alloc)(size_t, size_t);
static int (*_Atomic provider_mallopt)(int, int);
static _Atomic bool provider_resolved;

/* Read from the provider's own symbol table, as dlsym on its handle would, not with dlopen:
 * dlopen of an object loaded at start-up makes the loader allocate its search list, blocks
 * the program then frees in __libc_freeres, unknown to the shim. */
static void resolve_provider(void)
{
    static const char *const names[] = { "malloc_usable_size", "aligned_alloc", "mallopt" };
    void *found[3] = { NULL, NULL, NULL };
    lt_object_symbols((const void *)(uintptr_t)__libc_malloc, names, found, 3);
    atomic_store(&provider_usable_size, (size_t (*)(void *))found[0]);
    atomic_store(&provider_aligned_alloc, (void *(*)(size_t, size_t))found[1]);
    atomic_store(&provider_mallopt, (int (*)(int, int))found[2]);
    atomic_store(&provider_resolved, true);
}

void lt_allocator_init(void)
{
    if (!atomic_load(&provider_resolved)) resolve_provider();
}

void *(*lt_provider_aligned_alloc(void))(size_t, size_t)
{
    return atomic_load(&provider_aligned_alloc);
}

/* The provider's mallopt (glibc's, or tcmalloc's, which accepts and ignores it); glibc's
 * when the provider has none. */
int lt_provider_mallopt(int param, int value)
{
    if (LT_UNLIKELY(!atomic_load_explicit(&provider_resolved, memory_order_acquire))) resolve_provider();
    int (*own)(int, int) = atomic_load_explicit(&provider_mallopt, memory_order_acquire);
    return own ? own(param, value) : __libc_mallopt(param, value);
}

size_t lt_usable_size(void *p)
{
    size_t (*usable)(void *) = atomic_load_explicit(&provider_usable_size, memory_order_acquire);
    return p && usable ? usable(p) : 0;
}

size_t lt_hook_malloc_usable_size(void *p)
{
    /* Called before the shim's constructor ran. */
    if (LT_UNLIKELY(!atomic_load_explicit(&provider_resolved, memory_order_acquire))) resolve_provider();
    return lt_usable_size(p);
}

/* ---- C++ operator new and delete ------------------------------------------------------------ */
enum cxx_function {
#define LT_X(name) CXX_##name,
    LT_HOOKED_CXX_FUNCTIONS(LT_X)
#undef LT_X
    CXX_COUNT
};
static const char *const cxx_names[CXX_COUNT] = {
#define LT_X(name) #name,
    LT_HOOKED_CXX_FUNCTIONS(LT_X)
#undef LT_X
};

/* The runtime's own functions: written by the one thread that wins the CAS on cxx_state
 * (0 -> 1), published by the release store of 2; read only after an acquire load sees 2.
 * With no C++ runtime in the process they stay NULL and the fallbacks below serve. */
static void *cxx_targets[CXX_COUNT];
static _Atomic int cxx_state;

/* Resolved at the first call of any of them: by then the caller's C++ runtime is loaded (it
 * is what the caller was linked against). Read from the runtime's symbol table, not with
 * dlopen (see resolve_provider): nothing here allocates. */
static void resolve_cxx_runtime(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&cxx_state, &expected, 1)) return;
    static const char *const runtimes[] = { "libstdc++.so.6", "libc++.so.1", NULL };
    for (const char *const *r = runtimes; *r; r++)
        if (lt_soname_symbols(*r, cxx_names, cxx_targets, CXX_COUNT)) break;
    atomic_store_explicit(&cxx_state, 2, memory_order_release);
}

/* Sampling mode, preloaded, and the runtime's operators call the shim's malloc and free (no
 * object ahead of the shim defines its own: lt_allocator_check): a plain new whose block is not
 * sampled, and a delete of a block never recorded, call the allocator themselves, as the
 * runtime's operator and the shim's hook behind it would: two calls fewer each. Written once
 * at start-up (single-threaded), read-only afterwards. */
static bool cxx_direct;

void lt_allocator_allow_direct(void)
{
    cxx_direct = lt_sample_mean_bytes != 0 && !lt_foreign_allocator_note();
}

/* The uncommon paths stay out of line, each in a cold function of its hook's own: a hook's
 * common path is then a load, a test and a jump, with no registers to save (inlined, they
 * cost each call six pushes and pops, 3% of the C++ workload's samples in sampling mode). */
static __attribute__((noinline, cold)) void *cxx_target_resolved(enum cxx_function f)
{
    resolve_cxx_runtime();
    if (atomic_load_explicit(&cxx_state, memory_order_acquire) != 2) return NULL;
    return cxx_targets[f];
}

static inline void *cxx_target(enum cxx_function f)
{
    if (LT_UNLIKELY(atomic_load_explicit(&cxx_state, memory_order_acquire) != 2))
        return cxx_target_resolved(f);
    return cxx_targets[f];
}

/* The runtime's function once resolved; NULL before (the cold path resolves). */
static inline void *cxx_target_ready(enum cxx_function f)
{
    if (LT_UNLIKELY(atomic_load_explicit(&cxx_state, memory_order_acquire) != 2)) return NULL;
    return cxx_targets[f];
}

/* Without a C++ runtime (or while another thread resolves it): the same heap through the
 * hooks. No std::bad_alloc to throw without a runtime: a failed throwing new aborts. */
static void *fallback_new(size_t size, size_t alignment, bool nothrow)
{
    if (size == 0) size = 1;
    void *p = alignment ? lt_hook_memalign(alignment, size) : lt_hook_malloc(size);
    if (!p && !nothrow) abort();
    return p;
}

/* lt_new_asked (shim.h): set by the hooks of operator new just before their forwarder's tail
 * call, taken by the thread's next allocation hook. Thread-local: no guard. */
__thread size_t lt_new_asked __attribute__((tls_model("initial-exec")));
__thread uintptr_t lt_deleting __attribute__((tls_model("initial-exec")));

/* The array forms go through the scalar ones: the outermost call, the program's, says what was
 * asked. A plain scalar new needs saying only for 0 bytes (the runtime allocates 1): its
 * common path stays a compare. */
static inline void note_new_asked(size_t size, bool array, bool aligned)
{
    if (array) lt_new_asked = (size + 1) << 1 | 1;
    else if ((aligned || LT_UNLIKELY(size == 0)) && lt_new_asked >> 1 != size + 1)
        lt_new_asked = (size + 1) << 1;
}

typedef void *new_fn(size_t);
typedef void *new_nothrow_fn(size_t, const void *);
typedef void *new_aligned_fn(size_t, size_t);
typedef void *new_aligned_nothrow_fn(size_t, size_t, const void *);
typedef void delete_fn(void *);
typedef void delete_sized_fn(void *, size_t);
typedef void delete_nothrow_fn(void *, const void *);
typedef void delete_aligned_fn(void *, size_t);
typedef void delete_sized_aligned_fn(void *, size_t, size_t);
typedef void delete_aligned_nothrow_fn(void *, size_t, const void *);

/* A new in sampling mode (cxx_direct) whose block is not sampled: allocated here. NULL when
 * sampled, or when the allocator failed (the runtime's new then runs the new-handler, or
 * throws): the runtime's new decides again from the same countdown. */
static inline void *new_unsampled(size_t size)
{
    if (size == 0 || !lt_sample_skip_at_once(size)) return NULL;
    void *p = __libc_malloc(size);
    if (LT_UNLIKELY(!p)) lt_sample_countdown += (int64_t)size; /* as it was */
    return p;
}

/* Each hook ends in a call through the runtime's pointer with the same arguments (forward_):
 * compiled as a jump, it leaves no frame of the shim on the stack. SLOW_AND_FORWARD makes the
 * cold path (resolve, or fall back) and forward_; `direct` is sampling mode's shortcut. */
#define SLOW_AND_FORWARD(ret, name, params, args, fn_type, note, fallback)                    \
    static __attribute__((noinline, cold)) ret slow_##name params                               \
    {                                                                                        \
        fn_type *f = (fn_type *)cxx_target_resolved(CXX_##name);                             \
        if (!f) return fallback;                                                             \
        return f args;                                                                       \
    }                                                                                        \
    static inline ret forward_##name params                                                  \
    {                                                                                        \
        note;                                                                                \
        fn_type *f = (fn_type *)cxx_target_ready(CXX_##name);                                \
        if (LT_UNLIKELY(!f)) return slow_##name args;                                        \
        return f args;                                                                       \
    }
#define SLOW_AND_HOOK(ret, name, params, args, fn_type, direct, note, fallback)               \
    SLOW_AND_FORWARD(ret, name, params, args, fn_type, note, fallback)                        \
    ret lt_hook_##name params                                                                \
    {                                                                                        \
        direct;                                                                              \
        return forward_##name args;                                                          \
    }
/* The shortcut has a frame (it checks the allocator's answer), the hook none. */
#define NEW(name, array)                                                                     \
    SLOW_AND_FORWARD(void *, name, (size_t size), (size), new_fn,                             \
                     note_new_asked(size, array, false), fallback_new(size, 0, false))        \
    static __attribute__((noinline)) void *direct_##name(size_t size)                         \
    {                                                                                        \
        void *p = new_unsampled(size);                                                       \
        if (LT_LIKELY(p)) return p;                                                          \
        return forward_##name(size);                                                         \
    }                                                                                        \
    void *lt_hook_##name(size_t size)                                                        \
    {                                                                                        \
        if (cxx_direct) return direct_##name(size);                                          \
        return forward_##name(size);                                                         \
    }
#define NEW_NOTHROW(name, array)                                                             \
    SLOW_AND_HOOK(void *, name, (size_t size, const void *tag), (size, tag), new_nothrow_fn,  \
                  (void)0, note_new_asked(size, array, false), fallback_new(size, 0, true))
#define NEW_ALIGNED(name, array)                                                             \
    SLOW_AND_HOOK(void *, name, (size_t size, size_t alignment), (size, alignment),          \
                  new_aligned_fn, (void)0, note_new_asked(size, array, true),                \
                  fallback_new(size, alignment, false))
#define NEW_ALIGNED_NOTHROW(name, array)                                                     \
    SLOW_AND_HOOK(void *, name, (size_t size, size_t alignment, const void *tag),            \
                  (size, alignment, tag), new_aligned_nothrow_fn,                            \
                  (void)0, note_new_asked(size, array, true), fallback_new(size, alignment, true))
/* Every delete frees with free (aligned blocks too). The note names the block the thread
 * deletes, for the free hook: an invalid free's name, a mismatched free (lt_deleting, shim.h). */
#define DELETE_DIRECT if (cxx_direct && lt_sample_free_unrecorded(p)) return __libc_free(p)
/* The C++ runtime's delete[] calls delete, through our hook again: an array's note stays. */
#define NOTE_DELETE(array)                                                                   \
    do {                                                                                     \
        if ((array) || lt_deleting != ((uintptr_t)p | 1)) lt_deleting = (uintptr_t)p | (array); \
    } while (0)
#define DELETE(name, array)                                                                  \
    SLOW_AND_HOOK(void, name, (void *p), (p), delete_fn, DELETE_DIRECT, NOTE_DELETE(array),  \
                  lt_hook_free(p))
#define DELETE_SIZED(name, array)                                                            \
    SLOW_AND_HOOK(void, name, (void *p, size_t size), (p, size), delete_sized_fn,            \
                  DELETE_DIRECT, NOTE_DELETE(array), lt_hook_free(p))
#define DELETE_NOTHROW(name, array)                                                          \
    SLOW_AND_HOOK(void, name, (void *p, const void *tag), (p, tag), delete_nothrow_fn,       \
                  DELETE_DIRECT, NOTE_DELETE(array), lt_hook_free(p))
#define DELETE_ALIGNED(name, array)                                                          \
    SLOW_AND_HOOK(void, name, (void *p, size_t alignment), (p, alignment), delete_aligned_fn, \
                  DELETE_DIRECT, NOTE_DELETE(array), lt_hook_free(p))
#define DELETE_SIZED_ALIGNED(name, array)                                                    \
    SLOW_AND_HOOK(void, name, (void *p, size_t size, size_t alignment), (p, size, alignment), \
                  delete_sized_aligned_fn, DELETE_DIRECT, NOTE_DELETE(array), lt_hook_free(p))
#define DELETE_ALIGNED_NOTHROW(name, array)                                                  \
    SLOW_AND_HOOK(void, name, (void *p, size_t alignment, const void *tag),                  \
                  (p, alignment, tag), delete_aligned_nothrow_fn, DELETE_DIRECT,             \
                  NOTE_DELETE(array), lt_hook_free(p))

NEW(_Znwm, false)
NEW(_Znam, true)
NEW_NOTHROW(_ZnwmRKSt9nothrow_t, false)
NEW_NOTHROW(_ZnamRKSt9nothrow_t, true)
NEW_ALIGNED(_ZnwmSt11align_val_t, false)
NEW_ALIGNED(_ZnamSt11align_val_t, true)
NEW_ALIGNED_NOTHROW(_ZnwmSt11align_val_tRKSt9nothrow_t, false)
NEW_ALIGNED_NOTHROW(_ZnamSt11align_val_tRKSt9nothrow_t, true)
DELETE(_ZdlPv, false)
DELETE(_ZdaPv, true)
DELETE_SIZED(_ZdlPvm, false)
DELETE_SIZED(_ZdaPvm, true)
DELETE_NOTHROW(_ZdlPvRKSt9nothrow_t, false)
DELETE_NOTHROW(_ZdaPvRKSt9nothrow_t, true)
DELETE_ALIGNED(_ZdlPvSt11align_val_t, false)
DELETE_ALIGNED(_ZdaPvSt11align_val_t, true)
DELETE_SIZED_ALIGNED(_ZdlPvmSt11align_val_t, false)
DELETE_SIZED_ALIGNED(_ZdaPvmSt11align_val_t, true)
DELETE_ALIGNED_NOTHROW(_ZdlPvSt11align_val_tRKSt9nothrow_t, false)
DELETE_ALIGNED_NOTHROW(_ZdaPvSt11align_val_tRKSt9nothrow_t, true)

/* ---- the exported names, and the GOT patcher's table (attach mode) ------------------------ */
#define LT_X(name) extern __typeof__(lt_hook_##name) name __attribute__((alias("lt_hook_" #name), visibility("default")));
LT_HOOKED_ALLOCATOR_FUNCTIONS(LT_X)
LT_HOOKED_CXX_FUNCTIONS(LT_X)
#undef LT_X

const struct lt_hook lt_allocator_hooks[] = {
#define LT_X(name) { #name, (void *)lt_hook_##name },
    LT_HOOKED_ALLOCATOR_FUNCTIONS(LT_X)
    LT_HOOKED_CXX_FUNCTIONS(LT_X)
#undef LT_X
    { NULL, NULL },
};

/* ---- dlsym's answers (lookups.c) ------------------------------------------------------------ */
/* Only where the definition is the very function the hook forwards to (the provider's own C
 * function, the C++ runtime's operator): calling the hook then does the same. Another
 * allocator's malloc, looked up in its own library, stays what it is. */
static const char *const provider_functions[] = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "memalign", "posix_memalign",
    "aligned_alloc", "valloc", "pvalloc", "malloc_usable_size",
};

void *lt_allocation_hook_for_value(void *value)
{
    for (size_t i = 0; value && i < sizeof provider_functions / sizeof *provider_functions; i++) {
        void *hook = lt_allocation_hook_for(provider_functions[i], value);
        if (hook != value) return hook;
    }
    return value;
}

void *lt_allocation_hook_for(const char *name, void *definition)
{
    if (!definition) return NULL;
    void *target = NULL;
    for (size_t i = 0; i < sizeof provider_functions / sizeof *provider_functions; i++)
        if (strcmp(name, provider_functions[i]) == 0) {
            lt_object_symbols((const void *)(uintptr_t)__libc_malloc, &provider_functions[i], &target, 1);
            break;
        }
    for (int f = 0; !target && f < CXX_COUNT; f++)
        if (strcmp(name, cxx_names[f]) == 0) target = cxx_target((enum cxx_function)f);
    void *hook = target == definition ? lt_hook_named(name) : NULL;
    return hook ? hook : definition;
}
