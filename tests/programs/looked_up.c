/* Allocation functions looked up by name instead of called through the PLT, as
 * ctypes.CDLL("libc.so.6").malloc does: dlsym on libc's handle finds libc's own malloc,
 * whatever comes first in symbol lookup. Blocks allocated through such pointers must be seen,
 * and so must frees through them (or a freed block shows as lost). Also: dlsym(RTLD_NEXT)
 * must still answer relative to its caller, the program: the next definition after it is
 * the first one (the shim's, traced; libc's, natively), not the one after the shim. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void (*free_fn)(void *);

static void *volatile sink;

__attribute__((noinline)) static void leak_through_handle(malloc_fn libc_malloc)
{
    sink = libc_malloc(321); /* @leak:handle */
}

int main(void)
{
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    if (!libc) return 2;
    malloc_fn libc_malloc = (malloc_fn)dlsym(libc, "malloc");
    calloc_fn libc_calloc = (calloc_fn)dlsym(libc, "calloc");
    realloc_fn libc_realloc = (realloc_fn)dlsym(libc, "realloc");
    free_fn libc_free = (free_fn)dlsym(libc, "free");
    malloc_fn default_malloc = (malloc_fn)dlsym(RTLD_DEFAULT, "malloc");
    if (!libc_malloc || !libc_calloc || !libc_realloc || !libc_free || !default_malloc) return 3;

    for (int i = 0; i < 3; i++) leak_through_handle(libc_malloc);
    sink = libc_calloc(5, 20); /* @leak:calloc */
    void *grown = malloc(10);
    sink = libc_realloc(grown, 555); /* @leak:realloc */
    sink = default_malloc(64); /* @leak:default */

    /* Allocated through the PLT, freed through libc's handle; and the other way round. */
    void *p = malloc(777); /* @leak:freed_by_handle */
    libc_free(p);
    void *q = libc_malloc(888); /* @leak:freed_by_plt */
    free(q);

    int first = dlsym(RTLD_NEXT, "sigaction") == dlsym(RTLD_DEFAULT, "sigaction");
    printf("the next sigaction is the first: %s\n", first ? "yes" : "no");
    dlclose(libc);
    return 0;
}
