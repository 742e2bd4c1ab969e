/* The 128 bytes below a thread's stack pointer (the red zone) at the exit scan.
 *   waiter:  a thread that waits in a system call with the only copy of the block's address
 *            64 bytes below its stack pointer, where a deeper call that returned (the
 *            malloc path) leaves its dead locals: not a root, so definitely lost
 *   spinner: a thread in a leaf loop that keeps the only copy there, as a leaf function may
 *            keep a local: a root, so still reachable
 * Each thread takes its block from `handover`, stores it below its stack pointer and clears
 * every other copy in one asm block, so nothing else points to the block.
 * Only write() is used: stdio would leave buffers of its own at exit. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "scrub_stack.h"

void *volatile handover;
volatile int waiting, spinning;
static int never; /* the futex word the waiter waits on: never woken */

/* asm: takes the block from `handover` (operand 0), stores it 64 bytes below the stack
 * pointer, clears `handover` and rax. */
#define HANDOVER_BELOW_SP                                                                      \
    "mov (%0), %%rax\n\t"                                                                     \
    "mov %%rax, -64(%%rsp)\n\t"                                                               \
    "movq $0, (%0)\n\t"                                                                       \
    "xor %%eax, %%eax\n\t"

static void *wait_in_syscall(void *unused)
{
    (void)unused;
    /* The flag's store is the last instruction before `syscall`: once it is seen, the thread
     * is at or in the system call, where the scan finds it. */
    __asm__ volatile(
        HANDOVER_BELOW_SP
        "mov %2, %%rdi\n\t"
        "mov $128, %%esi\n\t" /* FUTEX_WAIT_PRIVATE */
        "xor %%edx, %%edx\n\t"
        "xor %%r10d, %%r10d\n\t"
        "1: mov $202, %%eax\n\t" /* SYS_futex */
        "movl $1, (%1)\n\t"
        "syscall\n\t"
        "jmp 1b\n\t"
        :
        : "r"(&handover), "r"(&waiting), "r"(&never)
        : "rax", "rcx", "rdx", "rsi", "rdi", "r10", "r11", "memory");
    return NULL;
}

static void *spin_in_leaf(void *unused)
{
    (void)unused;
    __asm__ volatile(
        HANDOVER_BELOW_SP
        "movl $1, (%1)\n\t"
        "1: pause\n\t"
        "jmp 1b\n\t"
        :
        : "r"(&handover), "r"(&spinning)
        : "rax", "memory");
    return NULL;
}

static void start_holder(void *(*hold)(void *), volatile int *holds)
{
    pthread_t thread;
    pthread_create(&thread, NULL, hold, NULL);
    while (!*holds) usleep(1000);
}

__attribute__((noinline)) static void start_waiter(void)
{
    handover = malloc(500); /* @leak:waiter */
    start_holder(wait_in_syscall, &waiting);
}

__attribute__((noinline)) static void start_spinner(void)
{
    handover = malloc(600); /* @leak:spinner */
    start_holder(spin_in_leaf, &spinning);
}

int main(void)
{
    below(start_waiter);
    below(start_spinner);
    scrub_stack();
    static const char done[] = "red zones kept\n";
    write(1, done, sizeof done - 1);
    return 0;
}
