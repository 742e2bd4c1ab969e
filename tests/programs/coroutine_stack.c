/* A thread that runs on a 1 KiB stack carved out of a larger region, with the memory just
 * below it in use, as a goroutine runs on a small stack inside Go's heap, beside live
 * objects. The thread has an alternate signal stack, as every Go thread has: a handler that
 * asks for it (SA_ONSTACK) runs there; one that does not gets its signal frame pushed below
 * the small stack's pointer, over the neighbouring memory. Go requires SA_ONSTACK of every
 * handler that non-Go code installs.
 *
 * The main thread waits for a line (or end of file) on stdin while the other spins, then says
 * whether the memory below the small stack is as it was. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

#define NEIGHBOUR 16384 /* the in-use memory below the small stack */
#define SMALL_STACK 1024
#define PATTERN 0xa5

static _Alignas(64) unsigned char region[NEIGHBOUR + SMALL_STACK];
static _Alignas(16) unsigned char alternate[65536];
static atomic_int spinning, done;
static ucontext_t thread_context, coroutine;

static void spin(void)
{
    atomic_store(&spinning, 1);
    while (!atomic_load(&done)) {
    }
}

static void *run(void *arg)
{
    (void)arg;
    stack_t ss = { .ss_sp = alternate, .ss_size = sizeof alternate };
    if (sigaltstack(&ss, NULL) != 0) return NULL;
    getcontext(&coroutine);
    coroutine.uc_stack.ss_sp = region + NEIGHBOUR;
    coroutine.uc_stack.ss_size = SMALL_STACK;
    coroutine.uc_link = &thread_context;
    makecontext(&coroutine, spin, 0);
    swapcontext(&thread_context, &coroutine);
    return NULL;
}

int main(void)
{
    memset(region, PATTERN, sizeof region);
    pthread_t t;
    if (pthread_create(&t, NULL, run, NULL) != 0) return 2;
    while (!atomic_load(&spinning)) {
    }
    char line[64];
    if (!fgets(line, sizeof line, stdin)) line[0] = 0;
    atomic_store(&done, 1);
    pthread_join(t, NULL);
    size_t changed = 0;
    for (size_t i = 0; i < NEIGHBOUR; i++) changed += region[i] != PATTERN;
    printf("%zu bytes below the small stack changed\n", changed);
    return changed != 0;
}
