/* A signal handler running on an alternate signal stack (mapped with mmap, as Rust's runtime
 * and Go's do for every thread) copies a block's address all over its frame; the handler
 * returns and the program then drops the block. The handler's frames are dead memory
 * (memcheck makes them unaddressable as the handler returns): the block is definitely lost.
 * argv[1] "thread": the handler runs in a second thread, which then waits in read() while the
 * main thread drops the block and exits (the exit scan stops that thread, and its stop handler
 * runs on the same alternate stack); else in the main thread. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *volatile held;
static int ready[2], never[2];

__attribute__((noinline)) static void look_at_block(int sig)
{
    (void)sig;
    void *volatile copies[512];
    for (int i = 0; i < 512; i++) copies[i] = held;
    (void)copies;
}

__attribute__((noinline)) static void *leak(void)
{
    void *p = malloc(321); /* @leak:alternate */
    memset(p, 1, 321); /* not a tail call: this frame stays in the backtrace */
    return p;
}

static int handle_on_an_alternate_stack(void)
{
    stack_t ss = { 0 };
    ss.ss_size = 64 * 1024;
    ss.ss_sp = mmap(NULL, ss.ss_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ss.ss_sp == MAP_FAILED || sigaltstack(&ss, NULL) != 0) return -1;
    return pthread_kill(pthread_self(), SIGUSR1);
}

static void *worker(void *arg)
{
    (void)arg;
    char c = 0;
    if (handle_on_an_alternate_stack() != 0) exit(1);
    if (write(ready[1], &c, 1) != 1) exit(1);
    while (read(never[0], &c, 1) != 0) {
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = look_at_block;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    held = leak();
    if (argc > 1 && strcmp(argv[1], "thread") == 0) {
        pthread_t thread;
        char c;
        if (pipe(ready) != 0 || pipe(never) != 0 || pthread_create(&thread, NULL, worker, NULL) != 0 ||
            read(ready[0], &c, 1) != 1)
            return 1;
    } else if (handle_on_an_alternate_stack() != 0) {
        return 1;
    }
    held = NULL;
    return 0;
}
