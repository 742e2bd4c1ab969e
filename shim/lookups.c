/* dlsym: a function looked up by name, not called through the PLT.
 *
 * dlsym on a library's handle finds that library's own definition, whatever comes first in
 * symbol lookup: `ctypes.CDLL("libc.so.6").malloc` is libc's malloc, not the shim's, and a
 * block allocated or freed through it would pass unseen (a leak missed, or a freed block
 * reported as lost). In attach mode every handle, RTLD_DEFAULT too, finds libc's. So when the
 * definition found is the very function an allocation hook forwards to (allocator.c decides),
 * the hook is returned instead: calling it does the same, and is seen.
 *
 * dlsym(RTLD_NEXT, name) answers relative to its caller, which glibc finds from the return
 * address: a C wrapper would make the shim the caller. So the hook is a few instructions of
 * assembly that jump to the next dlsym with the caller's return address untouched for
 * RTLD_NEXT (a hook is never what the next definition after a caller should be mapped to: an
 * interposer asking for it wants the real one), and to lt_dlsym_in_scope otherwise. x86-64
 * only, as the shim is.
 *
 * RTLD_DEFAULT depends on its caller too: glibc searches the caller's scope (a library
 * dlopen'd RTLD_LOCAL, as Python's extension modules are, also sees its own dependencies),
 * and a failed lookup's dlerror() names the caller's object ("./prog: undefined symbol: x";
 * the shim's path with the C wrapper). Preloaded, the shim's exports come before libc's in the
 * global scope, so RTLD_DEFAULT finds the hooks by itself: `dlsym` jumps straight on for it.
 * Attached, libc's come first, and `lt_hook_dlsym` (the GOT patcher's) takes the wrapper. */
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "shim.h"

/* dlsym's next definition (libc's; libdl's before glibc 2.34). Written by whichever thread
 * resolves it first: every writer stores the same value. */
__attribute__((used, externally_visible)) void *(*_Atomic lt_next_dlsym)(void *, const char *);

__attribute__((used, externally_visible)) void *(*lt_resolve_next_dlsym(void))(void *, const char *)
{
    static const char *const name[] = { "dlsym" };
    void *found = NULL;
    /* Any libc function will do to find libc; nobody interposes __errno_location. */
    if (!lt_object_symbols((const void *)(uintptr_t)&__errno_location, name, &found, 1) || !found)
        lt_soname_symbols("libdl.so.2", name, &found, 1);
    void *(*next)(void *, const char *) = (void *(*)(void *, const char *))found;
    if (next) atomic_store(&lt_next_dlsym, next);
    return next;
}

/* A handle other than RTLD_NEXT: the caller does not matter to dlsym (for RTLD_DEFAULT only
 * its namespace, and callers in other namespaces have their own libc). */
__attribute__((used, externally_visible)) void *lt_dlsym_in_scope(void *handle, const char *name)
{
    void *(*next)(void *, const char *) = atomic_load(&lt_next_dlsym);
    if (!next) next = lt_resolve_next_dlsym();
    if (!next) return NULL;
    void *definition = next(handle, name);
    return name ? lt_allocation_hook_for(name, definition) : definition;
}

/* ---- the next definitions of the hooked functions ------------------------------------------
 * Looked up all at once at start-up (lt_next_symbols_resolve), before the program's own code
 * runs, not at each hook's first call: any dlsym drops the calling thread's pending dlerror()
 * message, and frees it and its holder with the shim busy, so a program that had a dlsym fail
 * and then slept or set a signal handler found dlerror() empty, and the two blocks reported
 * lost. Written once at start-up; `next_count` publishes them. */
#define MAX_NEXT_SYMBOLS LT_MAX_HOOKS
static struct { const char *name; void *definition; } next_symbols[MAX_NEXT_SYMBOLS];
static _Atomic unsigned next_count;

/* Hooks that never call the next definition: C23's sized frees are free()'s. Not looked up:
 * glibc before 2.43 lacks both, and a dlsym that fails allocates its error message in the
 * program's heap, which moved the program's later blocks (a block realloc grew then held a
 * freed chunk's old bytes where natively it had fresh zeros). */
static bool calls_next(const char *name)
{
    return strcmp(name, "free_sized") != 0 && strcmp(name, "free_aligned_sized") != 0;
}

void lt_next_symbols_resolve(void)
{
    if (atomic_load(&next_count)) return; /* a later attach: the same objects, the same answers */
    lt_set_busy(true);
    unsigned n = 0;
    for (const struct lt_hook *h = lt_hooks; h->name && n < MAX_NEXT_SYMBOLS; h++, n++) {
        next_symbols[n].name = h->name;
        next_symbols[n].definition = calls_next(h->name) ? dlsym(RTLD_NEXT, h->name) : NULL;
    }
    (void)dlerror(); /* a name this libc lacks left a message the program must not find */
    lt_set_busy(false);
    atomic_store_explicit(&next_count, n, memory_order_release);
}

/* The next definition of a function the shim interposes; one called before start-up (from a
 * library's constructor) is looked up now (dlsym may allocate: busy). */
void *lt_next_symbol(const char *name)
{
    unsigned n = atomic_load_explicit(&next_count, memory_order_acquire);
    for (unsigned i = 0; i < n; i++)
        if (strcmp(next_symbols[i].name, name) == 0) return next_symbols[i].definition;
    lt_set_busy(true);
    void *f = dlsym(RTLD_NEXT, name);
    lt_set_busy(false);
    return f;
}

/* `dlsym` is exported (preload mode) and `lt_hook_dlsym` is what the GOT patcher writes
 * (attach mode); they differ only for RTLD_DEFAULT (above). The stack is kept as the caller
 * left it until the jump, but for the rare first call that must resolve the next dlsym. */
__asm__(".text\n"
        ".globl dlsym\n"
        ".type dlsym, @function\n"
        "dlsym:\n"
        "    testq %rdi, %rdi\n"          /* RTLD_DEFAULT */
        "    je .Lnext_dlsym\n"
        "    jmp lt_hook_dlsym\n"
        ".size dlsym, .-dlsym\n"
        ".globl lt_hook_dlsym\n"
        ".hidden lt_hook_dlsym\n"
        ".type lt_hook_dlsym, @function\n"
        "lt_hook_dlsym:\n"
        "    cmpq $-1, %rdi\n"            /* RTLD_NEXT */
        "    je .Lnext_dlsym\n"
        "    jmp lt_dlsym_in_scope\n"
        ".Lnext_dlsym:\n"
        "    movq lt_next_dlsym(%rip), %rax\n"
        "    testq %rax, %rax\n"
        "    jz 2f\n"
        "    jmp *%rax\n"
        "2:\n"
        LT_ASM_RESOLVE_THEN_JUMP("lt_resolve_next_dlsym") /* no dlsym in the process: NULL */
        ".size lt_hook_dlsym, .-lt_hook_dlsym\n");
