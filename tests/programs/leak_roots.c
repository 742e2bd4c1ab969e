/* Where the only pointer to a block is kept.
 *   mapped:    in a page the program mapped itself (mmap): a root, so still reachable; the
 *              mapping itself is never unmapped
 *   hidden:    in a page made unreadable (mprotect PROT_NONE) before exit: the scan cannot
 *              read it, so definitely lost (and the scan must survive the page)
 *   register:  in register r12 of a thread spinning in an asm loop while main exits:
 *              still reachable (only when run with the argument "thread")
 * Only write() is used: stdio would leave buffers of its own at exit. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "scrub_stack.h"

void *volatile handover; /* passes the pointer to the thread, which clears it */
volatile int thread_holds;

static char *readable, *unreadable; /* the two pages */

__attribute__((noinline)) static void keep_in_mapping(void)
{
    char *page = readable;
    void *p = malloc(200); /* @leak:mapped */
    memcpy(page + 128, &p, sizeof p);
}

__attribute__((noinline)) static void keep_in_unreadable(void)
{
    char *page = unreadable;
    void *p = malloc(300); /* @leak:hidden */
    memcpy(page + 64, &p, sizeof p);
}

/* Loads the pointer into r12, clears every other copy, says so, and spins forever. */
static void *hold_in_register(void *unused)
{
    (void)unused;
    __asm__ volatile(
        "mov (%0), %%r12\n\t"
        "movq $0, (%0)\n\t"
        "movl $1, (%1)\n\t"
        "1: pause\n\t"
        "jmp 1b\n\t"
        :
        : "r"(&handover), "r"(&thread_holds)
        : "r12", "memory");
    return NULL;
}

__attribute__((noinline)) static void start_holder(void)
{
    handover = malloc(400); /* @leak:register */
    pthread_t thread;
    pthread_create(&thread, NULL, hold_in_register, NULL);
    while (!thread_holds) usleep(1000);
}

int main(int argc, char **argv)
{
    long size = sysconf(_SC_PAGESIZE);
    readable = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); /* @leak:readable_page */
    unreadable = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); /* @leak:unreadable_page */
    below(keep_in_mapping);
    below(keep_in_unreadable);
    mprotect(unreadable, size, PROT_NONE);
    if (argc > 1 && strcmp(argv[1], "thread") == 0) below(start_holder);
    scrub_stack();
    static const char done[] = "roots kept\n";
    write(1, done, sizeof done - 1);
    return 0;
}
