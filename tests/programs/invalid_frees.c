/* Frees glibc lets through (it aborts on most double frees itself): argv[1] says which.
 * fastbin-dup: a block freed twice with another freed between, once the thread's cache of
 *   that size is full (glibc checks only the fast bin's top);
 * realloc-freed: realloc of a block already freed;
 * clean: no invalid free at all;
 * fork: realloc-freed, then a child that frees only what it allocated (the parent waits);
 * reuse: fastbin-dup, then the address freed twice handed out again, to a block leaked.
 * Each bad call's line has a @call:<mode> marker. The program prints "completed" first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void *volatile sink;

__attribute__((noinline)) static void release(void *p)
{
    free(p); /* @call:fastbin-dup */
    sink = NULL; /* not a tail call at -O2 */
}

__attribute__((noinline)) static void *resize(void *p, size_t n)
{
    void *q = realloc(p, n); /* @call:realloc-freed */
    sink = q;
    return q;
}

void *drained[7];

/* After fastbin-dup: the next blocks of that size are the 7 of the thread's cache, then the
 * fast bin's first, the address freed twice, which is leaked here (this frame, which holds
 * it, is gone by the exit). */
__attribute__((noinline)) static void *reuse_the_address(void)
{
    for (int i = 0; i < 7; i++) drained[i] = malloc(24);
    void *again = malloc(24); /* @leak:reused */
    sink = again;
    sink = NULL;
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "clean";
    /* Printed first: stdio's buffer is allocated now, not from a heap the double free broke
     * (a large request would walk the fast bin and abort on the loop in it). */
    puts("completed");
    fflush(stdout);
    if (strcmp(mode, "fastbin-dup") == 0 || strcmp(mode, "reuse") == 0) {
        void *cache[7], *a, *b;
        for (int i = 0; i < 7; i++) cache[i] = malloc(24);
        a = malloc(24);
        b = malloc(24);
        for (int i = 0; i < 7; i++) free(cache[i]); /* the thread's cache of 32-byte chunks, full */
        release(a);
        release(b);
        release(a); /* the second free of a */
        /* Nothing is allocated after it, but in mode reuse (malloc hands `a` out again). */
        if (strcmp(mode, "reuse") == 0) reuse_the_address();
    } else if (strcmp(mode, "realloc-freed") == 0 || strcmp(mode, "fork") == 0) {
        void *p = malloc(16);
        free(p);
        free(resize(p, 32));
        if (strcmp(mode, "fork") == 0) {
            pid_t child = fork();
            if (child == 0) {
                free(malloc(40));
                _exit(0);
            }
            waitpid(child, NULL, 0);
        }
    } else {
        void *p = malloc(16);
        p = resize(p, 64);
        release(p);
    }
    return 0;
}
