/* Runaway recursion: SIGSEGV on a full stack. Leaks 200 bytes in two blocks and keeps 100
 * bytes in a global before it. argv[1] "altstack": first prints what sigaltstack() reports,
 * sets a stack of its own and prints what it reports again (the program must see none of the
 * shim's), then ends with status 0 instead. argv[2] "thread": all of it (the allocations
 * included) in a thread of its own instead of the main thread, which waits for it. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *volatile sink;

__attribute__((noinline)) static int recurse(int depth)
{
    volatile char frame[256];
    frame[0] = (char)depth;
    return recurse(depth + 1) + frame[0]; /* not a tail call: a frame per level */
}

static void show(const char *what, const stack_t *s)
{
    printf("%s flags %d size %zu\n", what, s->ss_flags, s->ss_size);
}

static int run(int argc, char **argv)
{
    for (int i = 0; i < 3; i++) sink = malloc(100); /* @leak:overflow */
    puts("recursing");
    fflush(stdout);
    if (argc > 1 && !strcmp(argv[1], "altstack")) {
        stack_t old, own = { .ss_sp = malloc(65536), .ss_size = 65536, .ss_flags = 0 };
        memset(&old, 0x55, sizeof old);
        if (sigaltstack(NULL, &old) == 0) show("before", &old);
        if (sigaltstack(&own, &old) == 0) show("replaced", &old);
        if (sigaltstack(NULL, &old) == 0) show("after", &old);
        printf("own %d\n", old.ss_sp == own.ss_sp);
        return 0;
    }
    return recurse(0);
}

static int g_argc;
static char **g_argv;

static void *thread_main(void *unused)
{
    (void)unused;
    exit(run(g_argc, g_argv));
}

int main(int argc, char **argv)
{
    if (argc > 2 && !strcmp(argv[2], "thread")) {
        pthread_t thread;
        g_argc = argc, g_argv = argv;
        if (pthread_create(&thread, NULL, thread_main, NULL) != 0) return 3;
        pthread_join(thread, NULL);
        return 4;
    }
    return run(argc, argv);
}
