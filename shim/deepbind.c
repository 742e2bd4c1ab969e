/* dlopen with RTLD_DEEPBIND: the library's symbol lookups start with its own scope (itself,
 * then its dependencies, libc among them) instead of the global scope, where the preloaded
 * shim comes first. Its calls of malloc, free and the other hooked functions then go straight
 * to libc, unseen: a block the program allocated and the library freed was reported lost, a
 * block the library leaked was missed. PHP loads every extension so.
 *
 * dlopen finds its caller from the return address (the caller's RUNPATH and $ORIGIN decide
 * where a name is searched), so the hook is assembly that jumps on to the next dlopen with the
 * caller's return address untouched, as lookups.c's dlsym does. Only a deep-bound load of a
 * path (a '/' in it, no '$'), whose search the caller does not change, is made by the shim
 * (lt_dlopen_deep_bound): the next dlopen, then the GOT entries of the objects it loaded
 * pointed at the hooks wherever they lead to the functions the hooks forward to (attach.c's
 * patcher, as attach mode does for every object). A deep-bound load by name is left as it
 * is, and the capture's notes say so. Preload mode only: attach mode patches every object. */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <string.h>

#include "shim.h"

/* dlopen's next definition (libc's; libdl's before glibc 2.34). Written by whichever thread
 * resolves it first: every writer stores the same value. */
__attribute__((used, externally_visible)) void *(*_Atomic lt_next_dlopen)(const char *, int);

__attribute__((used, externally_visible)) void *(*lt_resolve_next_dlopen(void))(const char *, int)
{
    static const char *const name[] = { "dlopen" };
    void *found = NULL;
    if (!lt_object_symbols((const void *)(uintptr_t)&__errno_location, name, &found, 1) || !found)
        lt_soname_symbols("libdl.so.2", name, &found, 1);
    void *(*next)(const char *, int) = (void *(*)(const char *, int))found;
    if (next) atomic_store(&lt_next_dlopen, next);
    return next;
}

/* The first library loaded deep-bound by name, for the capture's notes. Written once (the
 * flag's exchange picks the writer), read when a capture is written. */
static char unwatched_name[256];
static _Atomic int unwatched_state; /* 0 none, 1 being written, 2 written */

const char *lt_deepbind_note(void)
{
    static char note[sizeof unwatched_name + 160];
    if (atomic_load_explicit(&unwatched_state, memory_order_acquire) != 2) return NULL;
    size_t at = 0;
    static const char head[] = "a library loaded with RTLD_DEEPBIND by name (";
    static const char tail[] = ") calls the C library's malloc, free and other traced functions "
                               "directly: they are not traced";
    memcpy(note, head, sizeof head - 1);
    at += sizeof head - 1;
    size_t len = strlen(unwatched_name);
    memcpy(note + at, unwatched_name, len);
    at += len;
    memcpy(note + at, tail, sizeof tail); /* with its NUL */
    return note;
}

/* Whether the shim makes this load itself (the assembly below jumps on to the next dlopen
 * otherwise). Also resolves the next dlopen. */
__attribute__((used, externally_visible)) int lt_dlopen_is_watchable(const char *file)
{
    if (!atomic_load(&lt_next_dlopen) && !lt_resolve_next_dlopen()) return 0;
    if (!file) return 0; /* the program itself: nothing is loaded */
    if (strchr(file, '/') && !strchr(file, '$')) return 1;
    int expected = 0;
    if (atomic_compare_exchange_strong(&unwatched_state, &expected, 1)) {
        size_t len = strnlen(file, sizeof unwatched_name - 1);
        memcpy(unwatched_name, file, len);
        unwatched_name[len] = 0;
        atomic_store_explicit(&unwatched_state, 2, memory_order_release);
    }
    return 0;
}

#define KNOWN_OBJECTS 1024

struct known_objects {
    uintptr_t bias[KNOWN_OBJECTS];
    size_t count;
};

static int note_object(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    struct known_objects *known = ctx;
    if (known->count < KNOWN_OBJECTS) known->bias[known->count++] = info->dlpi_addr;
    return 0;
}

extern void *(*_Atomic lt_next_dlsym)(void *, const char *);   /* lookups.c */
extern void *(*lt_resolve_next_dlsym(void))(void *, const char *);

/* Per lt_hooks entry, the hook the new objects' slots get: where their lookups find the very
 * function the hook forwards to (the C library's). dlsym on the handle searches the library
 * and its dependencies, as a deep-bound lookup first does; a dependency may bring its own
 * malloc, which then stays theirs, and where nothing is found there the global scope comes
 * next, where the shim is already. Decided before patching, which runs under the loader's
 * lock; a failed lookup's dlerror() message is dropped, as the successful dlopen just before
 * left none. C++'s operators are not in lt_hooks: the runtime's own call malloc through its
 * own GOT, which holds the hooks. */
static void deep_bound_hooks(void *handle, void **hooks, size_t max)
{
    void *(*next)(void *, const char *) = atomic_load(&lt_next_dlsym);
    if (!next) next = lt_resolve_next_dlsym();
    lt_set_busy(true); /* the error messages are the loader's blocks, not the program's */
    for (size_t i = 0; i < max && lt_hooks[i].name; i++) {
        void *forwarded_to = lt_next_symbol(lt_hooks[i].name);
        bool found = next && forwarded_to && next(handle, lt_hooks[i].name) == forwarded_to;
        hooks[i] = found ? lt_hooks[i].function : NULL;
    }
    (void)dlerror();
    lt_set_busy(false);
}

__attribute__((used, externally_visible)) void *lt_dlopen_deep_bound(const char *file, int mode)
{
    struct known_objects known = { .count = 0 };
    dl_iterate_phdr(note_object, &known); /* no lock of ours is held: a dlopen's context */
    void *handle = atomic_load(&lt_next_dlopen)(file, mode);
    if (handle) {
        int saved = errno;
        void *hooks[LT_MAX_HOOKS] = { NULL };
        deep_bound_hooks(handle, hooks, LT_MAX_HOOKS);
        lt_patch_deep_bound(known.bias, known.count, hooks);
        errno = saved;
    }
    return handle;
}

/* The stack is kept as the caller left it until the jump to the next dlopen. */
__asm__(".text\n"
        ".globl dlopen\n"
        ".type dlopen, @function\n"
        "dlopen:\n"
        "    testl $0x8, %esi\n"          /* RTLD_DEEPBIND */
        "    jnz 1f\n"
        "0:  movq lt_next_dlopen(%rip), %rax\n"
        "    testq %rax, %rax\n"
        "    jz 2f\n"
        "    jmp *%rax\n"
        "1:  pushq %rdi\n"                /* two pushes and 8 bytes: the call's 16-byte alignment */
        "    pushq %rsi\n"
        "    subq $8, %rsp\n"
        "    call lt_dlopen_is_watchable\n"
        "    addq $8, %rsp\n"
        "    popq %rsi\n"
        "    popq %rdi\n"
        "    testl %eax, %eax\n"
        "    jz 0b\n"
        "    jmp lt_dlopen_deep_bound\n"
        "2:\n"
        LT_ASM_RESOLVE_THEN_JUMP("lt_resolve_next_dlopen") /* no dlopen in the process: NULL */
        ".size dlopen, .-dlopen\n");
