/* The one list of functions the shim interposes. From it come the exported symbols (preload
 * mode: the dynamic linker binds the program to them), the GOT patcher's table (attach mode:
 * the shim rewrites each loaded object's GOT entries for these names), and nothing else needs
 * to know the list. Each name N has its implementation in hooks.c as lt_hook_N. */
#ifndef LEAKTRACE_HOOKED_FUNCTIONS_H
#define LEAKTRACE_HOOKED_FUNCTIONS_H

#define LT_HOOKED_FUNCTIONS(X) \
    X(malloc)                  \
    X(free)                    \
    X(calloc)                  \
    X(realloc)                 \
    X(reallocarray)            \
    X(memalign)                \
    X(posix_memalign)          \
    X(aligned_alloc)           \
    X(valloc)                  \
    X(pvalloc)                 \
    X(mmap)                    \
    X(mmap64)                  \
    X(munmap)                  \
    X(mremap)                  \
    X(sbrk)                    \
    X(brk)                     \
    X(dlclose)                 \
    X(mtrace)                  \
    X(muntrace)                \
    X(_exit)                   \
    X(_Exit)

#endif
