/* Runaway recursion on the main thread: SIGSEGV on a full stack. Leaks 200 bytes in two
 * blocks and keeps 100 bytes in a global before it. argv[1] "altstack": first prints what
 * sigaltstack() reports, sets a stack of its own and prints what it reports again (the
 * program must see none of the shim's), then ends with status 0 instead. */
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

int main(int argc, char **argv)
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
