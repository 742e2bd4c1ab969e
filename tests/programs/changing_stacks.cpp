/* Backtraces that change between one allocation and the next in the ways an unwinder that
 * reuses the previous backtrace's outer frames could get wrong (shim/unwind.c, "incremental
 * backtraces"). Every leak has its own size; each scenario prints nothing, the test reads the
 * report. Built -O2 without frame pointers by the test, so every frame is found from .eh_frame.
 *
 *   101/102  the same function reached at the same stack depth by two different callers,
 *            alternating (the same return address at the same stack address, a different
 *            caller above it); 101 in the first round of main's loop, 102 in the second
 *   103/104  recursion 3 and 6 deep, alternating
 *   105/106  longjmp out of a deep call after its allocation, then a shallow allocation
 *   107/108  a C++ exception thrown through the frames of an allocation, then a shallow one
 *   109/110  a signal handler (raise() at varying depths) allocating, between allocations
 *            of the interrupted code: the handler's backtrace goes on through the signal
 *            frame into the interrupted code (raise, raise_at's frames, signals, main)
 *   111/112  threads: one after another (a new thread often gets the exited one's stack and
 *            thread control block), then three at once, each leaking along both callers */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <stdexcept>

void *volatile sink;
static volatile int opaque;

#define KEEP __attribute__((noinline))

/* Each function stores what its call returned before returning it: no call is a tail call. */
KEEP void *leaf(size_t n)
{
    void *p = malloc(n); /* @leak:leaf */
    memset(p, (int)n, n);
    return p;
}
KEEP void *common(size_t n) { void *p = leaf(n); /* @call:common */ sink = p; return p; }
KEEP void *via_a(size_t n) { void *p = common(n); /* @call:via_a */ sink = p; return p; }
KEEP void *via_b(size_t n) { void *p = common(n); /* @call:via_b */ sink = p; return p; }
KEEP void *dispatch(int which, size_t n)
{
    void *p;
    if (which) p = via_b(n); /* @call:dispatch_b */
    else p = via_a(n); /* @call:dispatch_a */
    sink = p;
    return p;
}

KEEP void same_depth_callers(size_t n)
{
    for (int i = 0; i < 30; i++) {
        sink = dispatch(i % 3 == 0, n); /* @call:same_depth */
    }
}

KEEP void *rec(int depth, size_t n)
{
    void *p;
    if (depth == 0) p = leaf(n); /* @call:rec_bottom */
    else p = rec(depth - 1, n); /* @call:rec */
    sink = p;
    return p;
}

KEEP void recursion(void)
{
    for (int i = 0; i < 20; i++) {
        sink = rec(i % 2 ? 6 : 3, 103 + (size_t)(i % 2)); /* @call:recursion */
    }
}

static jmp_buf jump;

KEEP void deep_jump(int levels, size_t n)
{
    if (levels == 0) {
        sink = leaf(n); /* @call:jump_bottom */
        longjmp(jump, 1);
    }
    deep_jump(levels - 1, n); /* @call:deep_jump */
    sink = 0;
}

KEEP void longjmps(void)
{
    for (int i = 0; i < 10; i++) {
        if (setjmp(jump) == 0) deep_jump(4, 105); /* @call:longjmps */
        sink = common(106); /* @call:after_jump */
    }
}

KEEP void thrower(int levels, size_t n)
{
    if (levels == 0) {
        sink = leaf(n); /* @call:throw_bottom */
        throw std::runtime_error("unwound");
    }
    thrower(levels - 1, n); /* @call:thrower */
    sink = 0;
}

KEEP void exceptions(void)
{
    for (int i = 0; i < 10; i++) {
        try {
            thrower(3, 107); /* @call:exceptions */
        } catch (const std::runtime_error &) {
            opaque = opaque + 1;
        }
        sink = common(108); /* @call:after_throw */
    }
}

static void on_signal(int)
{
    sink = leaf(109); /* @call:on_signal */
}

KEEP void raise_at(int levels)
{
    if (levels == 0) raise(SIGUSR1); /* @call:raise */
    else raise_at(levels - 1); /* @call:raise_at */
    sink = 0;
}

KEEP void signals(void)
{
    signal(SIGUSR1, on_signal);
    for (int i = 0; i < 12; i++) {
        raise_at(i % 4); /* @call:signals */
        sink = common(110); /* @call:after_signal */
    }
}

static void *thread_main(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    same_depth_callers(n); /* @call:thread_main */
    return NULL;
}

KEEP void threads(void)
{
    for (int i = 0; i < 4; i++) {
        pthread_t t;
        pthread_create(&t, NULL, thread_main, (void *)(uintptr_t)111);
        pthread_join(t, NULL);
    }
    pthread_t at_once[3];
    for (int i = 0; i < 3; i++) pthread_create(&at_once[i], NULL, thread_main, (void *)(uintptr_t)112);
    for (int i = 0; i < 3; i++) pthread_join(at_once[i], NULL);
}

int main(void)
{
    /* The scenarios run twice, interleaved, so each starts from another's last backtrace. */
    for (int round = 0; round < 2; round++) {
        same_depth_callers(101 + (size_t)round); /* @call:main_same_depth */
        recursion(); /* @call:main_recursion */
        longjmps(); /* @call:main_longjmps */
        exceptions(); /* @call:main_exceptions */
        signals(); /* @call:main_signals */
    }
    threads(); /* @call:main_threads */
    return 0;
}
