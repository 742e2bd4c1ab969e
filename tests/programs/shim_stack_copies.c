/* A leaked block, then a copy of the program's own dead stack into a block it keeps: the
 * unwritten bytes of a large local, as Rust copies a struct whose padding it never wrote
 * (ripgrep does). The copy holds whatever the frames below the leaked block's malloc call left
 * there: under leaktrace, the shim's, whose backtrace goes a few KiB deep. The copy leaves out
 * the first DEPTH_SKIPPED bytes below the call, where the hook's own frame, glibc's malloc and
 * the table's insert lie, as natively glibc's malloc alone does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 4096
#define DEPTH_SKIPPED 512

unsigned char *volatile kept; /* still reachable, and so is whatever it points to */

__attribute__((noinline)) static void leak_one(void)
{
    void *volatile block = malloc(100); /* @leak:dropped definitely lost */
    block = NULL;
}

__attribute__((noinline)) static void copy_dead_stack(void)
{
    unsigned char window[WINDOW];
    __asm__ volatile("" : : "r"(window) : "memory"); /* as if written: the copy is kept */
    kept = malloc(WINDOW); /* @leak:kept still reachable */
    memcpy(kept, window, WINDOW - DEPTH_SKIPPED);
}

int main(void)
{
    for (int i = 0; i < 16; i++) free(malloc(100)); /* the allocator's first-call paths */
    leak_one();
    copy_dead_stack();
    puts("done");
    return 0;
}
