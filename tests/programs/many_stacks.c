/* 10,000 distinct backtraces, one leak each (the HTML report's size test): block i is
 * allocated 14 calls deep, each call made from one of two call sites chosen by a bit of i.
 * step_a and step_b differ (leaf size, call order) so the compiler cannot fold them into one. */
#include <stdlib.h>
#include <unistd.h>

void *volatile sink;

__attribute__((noinline)) static void *step_b(int depth, unsigned bits);

__attribute__((noinline)) static void *step_a(int depth, unsigned bits)
{
    if (depth == 0)
        return malloc(16);
    void *p = (bits & 1) ? step_a(depth - 1, bits >> 1) : step_b(depth - 1, bits >> 1);
    sink = p; /* not a tail call: this frame stays on the stack */
    return p;
}

__attribute__((noinline)) static void *step_b(int depth, unsigned bits)
{
    if (depth == 0)
        return malloc(24);
    void *p = (bits & 1) ? step_b(depth - 1, bits >> 1) : step_a(depth - 1, bits >> 1);
    sink = p;
    return p;
}

int main(void)
{
    for (unsigned i = 0; i < 10000; i++) {
#ifdef PAUSE_US /* spreads the leaks over several snapshot intervals */
        if (i % 1000 == 0) usleep(PAUSE_US);
#endif
        sink = step_a(14, i);
    }
    sink = NULL;
    return 0;
}
