/* What the C library says of its heap (mallinfo2's arena, chunks and bytes in use and free),
 * in the program and in a forked child: the same numbers natively and under the shim, whose
 * thread's vector glibc allocates with calloc. No thread of the program's own: each would have
 * 16 bytes more of vector, for the shim's thread-local data. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

static void say(const char *who)
{
    struct mallinfo2 m = mallinfo2();
    printf("%s: arena %zu chunks %zu in use %zu free %zu top %zu\n", who, m.arena, m.ordblks,
           m.uordblks, m.fordblks, m.keepcost);
    fflush(stdout);
}

int main(void)
{
    sink = malloc(100);
    void *first = sink;
    say("program");
    pid_t child = fork();
    if (child == 0) {
        sink = malloc(50);
        say("child");
        _exit(0);
    }
    waitpid(child, NULL, 0);
    sink = malloc(200);
    free(first);
    say("program at its end");
    return 0;
}
