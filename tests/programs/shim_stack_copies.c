/* A leaked block, then a copy of the program's own dead stack into a block it keeps: the
 * unwritten bytes of a large local, as Rust copies a struct whose padding it never wrote
 * (ripgrep does). The copy holds whatever the frames below the leaked block's malloc call left
 * there: under leaktrace, the shim's hook, its backtrace (a few KiB deep) and its table insert,
 * besides glibc's malloc. None of them may leave the block's address there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 4096

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
    memcpy(kept, window, WINDOW);
}

int main(void)
{
    for (int i = 0; i < 16; i++) { /* past the first-call paths (a malloc-free pair is elided) */
        kept = malloc(100);
        free(kept);
    }
    leak_one();
    copy_dead_stack();
    puts("done");
    return 0;
}
