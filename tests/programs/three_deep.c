/* A leak made three calls below main: 10 blocks of 100 bytes. */
#include <stdlib.h>
#include <string.h>

void *volatile sink;

__attribute__((noinline)) static void *level3(size_t n)
{
    void *p = malloc(n); /* @leak:level3 */
    memset(p, 1, n);
    return p;
}
__attribute__((noinline)) static void *level2(size_t n) { void *p = level3(n); sink = p; return p; } /* @call:level2 */
__attribute__((noinline)) static void *level1(size_t n) { void *p = level2(n + 1); sink = p; return p; } /* @call:level1 */

int main(void)
{
    for (int i = 0; i < 10; i++) level1(99); /* @call:main */
    void *freed = malloc(50);
    sink = freed;
    free(freed);
    return 3;
}
