/* Shared by the reachability test programs: build the blocks in frames that are cleared
 * afterwards, so that stale copies of pointers on the stack do not keep blocks reachable at
 * exit (the scan, like valgrind, reads the stack from the stack pointer up). */
#ifndef LEAKTRACE_TEST_SCRUB_STACK_H
#define LEAKTRACE_TEST_SCRUB_STACK_H

#include <string.h>

/* Runs `make` over 1 KiB below main's frame, inside the area scrub_stack clears afterwards:
 * copies of pointers left in its frames must not be found at exit. */
__attribute__((noinline)) static void below(void (*make)(void))
{
    volatile char pad[1024];
    pad[0] = 0;
    make();
    pad[1] = 0;
}

/* Overwrites the stack below main's frame (the asm keeps the compiler from dropping the
 * memset of an array nobody reads). */
__attribute__((noinline)) static void scrub_stack(void)
{
    char area[64 * 1024];
    memset(area, 0, sizeof area);
    __asm__ volatile("" : : "r"(area) : "memory");
}

#endif
