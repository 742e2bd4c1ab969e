/* Leak-checker cases in the spirit of LLVM's compiler-rt/test/lsan/TestCases, written anew as
 * plain programs (no sanitizer runtime): each puts a 1337-byte block where a root may or may
 * not see it. argv[1] picks the case; tests/test_lsan_cases.py runs each under leaktrace and
 * valgrind and checks both agree with the kind written next to the case. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <ucontext.h>
#include <unistd.h>

#define SIZE 1337
#define LARGE_SIZE (32ul << 20) /* past glibc's largest mmap threshold: a mapping of its own */

void **stale_slot;               /* where the stale pointer sits, printed after the check */
void *global_initialized = (void *)1;
void *global_uninitialized;
char unaligned_store[sizeof(void *) * 2];
__thread void *thread_local; /* not static: -O2 would drop a store nobody reads */
static atomic_int ready;
static size_t block_size = SIZE; /* the size of the case's block */

__attribute__((noinline)) static void *allocate(void)
{
    void *p = malloc(block_size); /* @leak:lsan */
    __asm__ volatile("" : : "r"(p) : "memory"); /* no tail call: this frame stays on the stack */
    return p;
}

/* Puts p far down the stack, in a frame that returns at once: a dead slot. */
__attribute__((noinline)) static void put_on_stale_stack(void *p)
{
    void *volatile locals[2048];
    locals[0] = p;
    stale_slot = (void **)&locals[0];
    __asm__ volatile("" ::: "memory");
}

static void stale_check_in_atexit(void)
{
    /* The exit handler's own frame lies over the dead one: still not a root. */
    volatile char pad[256];
    memset((char *)pad, 0, sizeof pad);
}

/* definitely lost: the only pointer is in a frame that returned before main did */
static int stale_stack(void)
{
    put_on_stale_stack(allocate());
    return 0;
}

/* definitely lost: as above, the process leaves through exit() from an atexit handler's run */
static int exit_atexit_stale_stack(void)
{
    atexit(stale_check_in_atexit);
    put_on_stale_stack(allocate());
    exit(0);
}

/* still reachable: a global with an initializer (.data) */
static int use_globals_initialized(void)
{
    global_initialized = allocate();
    return 0;
}

/* still reachable: a zero-initialized global (.bss) */
static int use_globals_uninitialized(void)
{
    global_uninitialized = allocate();
    return 0;
}

/* still reachable: the main thread's thread-local storage */
static int use_tls_static(void)
{
    thread_local = allocate();
    return 0;
}

/* definitely lost: a pointer stored at a misaligned address is not a pointer to either tool */
static int use_unaligned(void)
{
    void *p = allocate();
    memcpy(unaligned_store + 1, &p, sizeof p);
    return 0;
}

/* definitely lost: a block that points only to itself */
static int pointer_to_self(void)
{
    void **p = allocate();
    *p = p;
    return 0;
}

static void *spin_with_local(void *arg)
{
    (void)arg;
    void *volatile local = allocate();
    atomic_store(&ready, 1);
    for (;;) {
        (void)local;
        sched_yield();
    }
    return NULL;
}

/* still reachable: the stack of a thread that is still running at exit */
static int use_stacks_threaded(void)
{
    pthread_t t;
    pthread_create(&t, NULL, spin_with_local, NULL);
    while (!atomic_load(&ready)) sched_yield();
    return 0;
}

/* Ends once the second thread runs: its stack (and TLS vector) cannot be the first's, reused
 * from glibc's cache, whatever the scheduling (valgrind runs one thread at a time). */
static void *finish_at_once(void *arg)
{
    while (!atomic_load(&ready)) sched_yield();
    return arg;
}
static void *keep_running(void *arg)
{
    (void)arg;
    atomic_store(&ready, 1);
    for (;;) pause();
    return NULL;
}

static void start_detached(void *(*run)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    pthread_create(&thread, &attr, run, arg);
    pthread_attr_destroy(&attr);
}

/* definitely lost: one leak; a detached thread that has finished leaves glibc's thread data
 * (its TLS vector) behind, which is not the program's leak */
static int finished_detached_thread(void)
{
    start_detached(finish_at_once, NULL);
    start_detached(keep_running, NULL);
    while (!atomic_load(&ready)) sched_yield();
    usleep(100 * 1000); /* the first thread has certainly finished */
    put_on_stale_stack(allocate());
    return 0;
}

/* still reachable: a pthread_setspecific value of one of the first 32 keys, which glibc keeps
 * in the thread's descriptor */
static int use_tls_pthread_specific_static(void)
{
    pthread_key_t key;
    pthread_key_create(&key, NULL);
    pthread_setspecific(key, allocate());
    return 0;
}

/* still reachable: a pthread_setspecific value of a key past the first 32, which glibc keeps
 * in a second-level array it allocates with malloc */
static int use_tls_pthread_specific_dynamic(void)
{
    pthread_key_t key;
    for (int i = 0; i < 40; i++) pthread_key_create(&key, NULL);
    pthread_setspecific(key, allocate());
    return 0;
}

/* still reachable: a local on the stack of a suspended ucontext (swapcontext), a stack that is
 * itself a heap block a global points to */
static ucontext_t main_context, side_context;
void *side_stack;
static void on_side_stack(void)
{
    void *volatile local = allocate();
    (void)local;
    swapcontext(&side_context, &main_context);
}

static int use_swapcontext_stack(void)
{
    enum { STACK_SIZE = 64 * 1024 };
    side_stack = malloc(STACK_SIZE);
    getcontext(&side_context);
    side_context.uc_stack.ss_sp = side_stack;
    side_context.uc_stack.ss_size = STACK_SIZE;
    side_context.uc_link = NULL;
    makecontext(&side_context, on_side_stack, 0);
    swapcontext(&main_context, &side_context);
    return 0;
}

/* still reachable: a thread that moved onto a context stack it allocated (makecontext), as
 * coroutine libraries do, and spins there at exit (LSan's Linux/guard-page.c). Its stack
 * pointer is in a heap block, not in its thread stack; the stack it left still holds its
 * context, which points to the start of that block. */
static pthread_mutex_t heap_stack_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t heap_stack_started = PTHREAD_COND_INITIALIZER;
static int on_heap_stack_running;

static void spin_on_heap_stack(void)
{
    void *volatile local = allocate();
    (void)local;
    pthread_mutex_lock(&heap_stack_lock);
    on_heap_stack_running = 1;
    pthread_cond_signal(&heap_stack_started);
    pthread_mutex_unlock(&heap_stack_lock);
    for (;;) __asm__ volatile("");
}

static void *move_to_heap_stack(void *arg)
{
    (void)arg;
    enum { STACK_SIZE = 16 * 1024 };
    ucontext_t context;
    getcontext(&context);
    context.uc_stack.ss_sp = malloc(STACK_SIZE);
    context.uc_stack.ss_size = STACK_SIZE;
    context.uc_link = NULL;
    makecontext(&context, spin_on_heap_stack, 0);
    setcontext(&context);
    return NULL;
}

static int thread_on_heap_stack(void)
{
    pthread_t thread;
    pthread_mutex_lock(&heap_stack_lock);
    pthread_create(&thread, NULL, move_to_heap_stack, NULL);
    while (!on_heap_stack_running) pthread_cond_wait(&heap_stack_started, &heap_stack_lock);
    pthread_mutex_unlock(&heap_stack_lock);
    return 0;
}

/* still reachable: the argument of a detached thread that main's exit may find not yet
 * started, or waiting for a lock main never lets go of (LSan's
 * leak_check_before_thread_started.cpp) */
static pthread_mutex_t never_unlocked = PTHREAD_MUTEX_INITIALIZER;

static void *free_under_lock(void *arg)
{
    pthread_mutex_lock(&never_unlocked);
    free(arg);
    pthread_mutex_unlock(&never_unlocked);
    return NULL;
}

static int thread_starting_at_exit(void)
{
    void *arg = allocate();
    pthread_mutex_lock(&never_unlocked);
    start_detached(free_under_lock, arg);
    return 0;
}

/* still reachable: a pointer held only in a vector register of a running thread (LSan's
 * use_registers_extra.cpp: xmm0; here also the upper half of ymm1, and zmm17). The thread
 * takes the block from `handover` and clears it, in one asm block that then spins. */
void *volatile handover;

/* asm that loads the block from handover into a register (`load`, operand 0 the address of
 * handover), clears handover, says it holds the block and spins for good; xmm0-2 may change. */
#define HOLD_AND_SPIN(load)                                                                    \
    __asm__ volatile(load "movq $0, (%0)\n\t"                                                 \
                          "movl $1, (%1)\n\t"                                                 \
                          "1: pause\n\t"                                                      \
                          "jmp 1b"                                                           \
                     :                                                                       \
                     : "r"(&handover), "r"(&ready)                                           \
                     : "xmm0", "xmm1", "xmm2", "memory")

static void *hold_in_xmm(void *unused)
{
    (void)unused;
    HOLD_AND_SPIN("movq (%0), %%xmm0\n\t");
    return NULL;
}

/* AVX: the lower half of ymm1 is zero, the upper holds the pointer. */
static void *hold_in_ymm_upper(void *unused)
{
    (void)unused;
    HOLD_AND_SPIN("vmovq (%0), %%xmm1\n\t"
                  "vpxor %%xmm2, %%xmm2, %%xmm2\n\t"
                  "vinsertf128 $1, %%xmm1, %%ymm2, %%ymm1\n\t"
                  "vpxor %%xmm2, %%xmm2, %%xmm2\n\t");
    return NULL;
}

/* AVX-512: zmm17, one of the 16 registers past xmm0-15. */
static void *hold_in_zmm17(void *unused)
{
    (void)unused;
    HOLD_AND_SPIN("vmovq (%0), %%xmm17\n\t");
    return NULL;
}

static int hold_in_vector_register(void *(*hold)(void *))
{
    handover = allocate();
    pthread_t t;
    pthread_create(&t, NULL, hold, NULL);
    while (!atomic_load(&ready)) sched_yield();
    return 0;
}

static int use_registers_extra(void) { return hold_in_vector_register(hold_in_xmm); }
static int use_registers_ymm_upper(void) { return hold_in_vector_register(hold_in_ymm_upper); }
static int use_registers_zmm17(void) { return hold_in_vector_register(hold_in_zmm17); }

/* definitely lost: a realloc that fails (the address space capped below its size) leaves the
 * block as it was, recorded with its size and its allocation's backtrace; then it is dropped */
static int realloc_failure_keeps_original(void)
{
    char *p = allocate();
    memset(p, 'a', SIZE);
    FILE *statm = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (!statm || fscanf(statm, "%lu", &pages) != 1) return 3;
    fclose(statm);
    struct rlimit as;
    getrlimit(RLIMIT_AS, &as);
    as.rlim_cur = pages * (unsigned long)getpagesize() + (64ul << 20);
    setrlimit(RLIMIT_AS, &as);
    void *volatile q = realloc(p, 512ul << 20);
    if (q || p[SIZE - 1] != 'a') return 4;
    return 0;
}

/* definitely lost: a joined thread's return value, dropped by the joiner */
static void *return_a_block(void *unused)
{
    (void)unused;
    return allocate();
}

static int joined_thread_return_value(void)
{
    pthread_t t;
    void *result = NULL;
    pthread_create(&t, NULL, return_a_block, NULL);
    pthread_join(t, &result);
    __asm__ volatile("" : : "r"(result) : "memory");
    return result ? 0 : 3;
}

/* still reachable: a thread's own thread-local data while it runs its thread-specific data
 * destructors, from which the process exits (LSan's Linux/cleanup_in_tsd_destructor.c). The
 * thread has returned from its start routine and glibc is ending it: it is still a thread. */
static pthread_key_t exiting_key;
__thread void *ending_thread_local;

static void exit_from_destructor(void *value)
{
    (void)value;
    exit(0);
}

static void *keep_in_thread_local(void *unused)
{
    (void)unused;
    ending_thread_local = allocate();
    pthread_setspecific(exiting_key, &exiting_key);
    return NULL;
}

static int exit_in_tsd_destructor(void)
{
    pthread_key_create(&exiting_key, exit_from_destructor);
    pthread_t t;
    pthread_create(&t, NULL, keep_in_thread_local, NULL);
    pthread_join(t, NULL);
    return 3; /* not reached: the destructor exits */
}

/* definitely lost: a block glibc maps on its own (LSan's large_allocation_leak.cpp): nothing
 * of the allocator's points to it */
static int large_allocation_leak(void)
{
    block_size = LARGE_SIZE;
    return allocate() ? 0 : 3;
}

/* indirectly lost: the only pointer lies in a lost 10 MiB block, past pages of it made
 * unreadable (LSan's Linux/leak_check_segv.cpp): the scan reads around them, and the part of
 * the block past them is the block's, not a root. What those pages hold, neither tool reads. */
static int pointer_past_unreadable_pages(void)
{
    enum { BIG = 10 << 20 };
    uintptr_t page = (uintptr_t)getpagesize();
    char *big = malloc(BIG);
    char *hole = (char *)(((uintptr_t)big + page - 1) & ~(page - 1));
    void *p = allocate();
    memcpy(hole + 4 * page + 64, &p, sizeof p);
    return mprotect(hole, 4 * page, PROT_NONE) ? 3 : 0;
}

int main(int argc, char **argv)
{
    static const struct { const char *name; int (*run)(void); } cases[] = {
        { "stale_stack", stale_stack },
        { "exit_atexit_stale_stack", exit_atexit_stale_stack },
        { "use_globals_initialized", use_globals_initialized },
        { "use_globals_uninitialized", use_globals_uninitialized },
        { "use_tls_static", use_tls_static },
        { "use_unaligned", use_unaligned },
        { "pointer_to_self", pointer_to_self },
        { "use_stacks_threaded", use_stacks_threaded },
        { "finished_detached_thread", finished_detached_thread },
        { "use_tls_pthread_specific_static", use_tls_pthread_specific_static },
        { "use_tls_pthread_specific_dynamic", use_tls_pthread_specific_dynamic },
        { "use_swapcontext_stack", use_swapcontext_stack },
        { "thread_on_heap_stack", thread_on_heap_stack },
        { "thread_starting_at_exit", thread_starting_at_exit },
        { "use_registers_extra", use_registers_extra },
        { "use_registers_ymm_upper", use_registers_ymm_upper },
        { "use_registers_zmm17", use_registers_zmm17 },
        { "realloc_failure_keeps_original", realloc_failure_keeps_original },
        { "joined_thread_return_value", joined_thread_return_value },
        { "exit_in_tsd_destructor", exit_in_tsd_destructor },
        { "large_allocation_leak", large_allocation_leak },
        { "pointer_past_unreadable_pages", pointer_past_unreadable_pages },
    };
    for (size_t i = 0; argc > 1 && i < sizeof cases / sizeof *cases; i++)
        if (strcmp(argv[1], cases[i].name) == 0) return cases[i].run();
    fprintf(stderr, "usage: lsan_cases CASE\n");
    return 2;
}
