/* Leaks made inside the C library and by the aligned allocators, where valgrind names the
 * functions otherwise than debug info does: strndup (__strndup in glibc's source), fclose of
 * an open_memstream (fclose@@GLIBC_2.2.5, _IO_new_fclose), realpath (realpath@@GLIBC_2.3),
 * aligned_alloc, valloc and posix_memalign (under valgrind's memalign), and a constructor's
 * leak (below __libc_start_main@@GLIBC_2.34). Each leaks one block, definitely lost. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *volatile sink;

__attribute__((constructor)) static void early(void)
{
    sink = malloc(11);
    sink = NULL;
}

__attribute__((noinline)) static void in_strndup(void)
{
    sink = strndup("a longer string", 4);
    sink = NULL;
}

__attribute__((noinline)) static void in_memstream(void)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    fputc('x', f);
    fclose(f);
    sink = text;
    sink = NULL;
}

__attribute__((noinline)) static void in_realpath(void)
{
    sink = realpath("/", NULL);
    sink = NULL;
}

__attribute__((noinline)) static void aligned(void)
{
    sink = aligned_alloc(64, 64);
    sink = NULL;
}

__attribute__((noinline)) static void posix_aligned(void)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, 65) == 0) sink = p;
    sink = NULL;
}

__attribute__((noinline)) static void page_aligned(void)
{
    sink = valloc(66);
    sink = NULL;
}

int main(void)
{
    in_strndup();
    in_memstream();
    in_realpath();
    aligned();
    posix_aligned();
    page_aligned();
    return 0;
}
