/* The reachability scan: classifies every live heap block the way valgrind memcheck does
 * (definitely, indirectly, possibly lost, still reachable), from inside the process.
 *
 * 1. Freeze the tables: take the regions lock and every block-shard lock, and copy the live
 *    blocks into an address-sorted array (no allocation: lt_map'd memory only).
 * 2. Stop the world without ptrace: a real-time signal to every other thread, whose handler
 *    publishes its registers and stack pointer and waits on a futex until the scan is done.
 *    Threads blocked on our locks are in a futex wait, so they stop too. Nothing below calls
 *    malloc or takes a lock a stopped thread could hold.
 * 3. Roots: the registers of each stopped thread, each thread's stack from its stack
 *    pointer (minus the 128-byte red zone, unless it waits in a system call) up, and every
 *    other readable, writable mapping except the heap ([heap], glibc arena heaps, mappings
 *    holding heap blocks) and the shim's own tables. Memory that may be unreadable is read
 *    with process_vm_readv, which reports a bad page instead of faulting. Pages of private
 *    anonymous memory the program never touched (neither in memory nor in swap) read as
 *    zeros: they are skipped, not read.
 * 4. Mark as valgrind does: a start pointer from a definite node makes a block reachable, an
 *    interior pointer (unless a heuristic says it is really a start) only possibly lost; then
 *    unreached blocks, in address order, each lead a clique and own what they reach, which
 *    becomes indirectly lost. */
#include <cpuid.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "sampling.h"
#include "scan.h"

#define MAX_PARKED 8192
#define MAX_MAPPINGS (1u << 17)
#define MAX_OWN 4096
#define MAPS_BUF (32u << 20)
#define RED_ZONE 128
#define READ_CHUNK (64u << 10)
#define ARENA_HEAP_SIZE ((uintptr_t)64 << 20) /* glibc's HEAP_MAX_SIZE on 64-bit */
#define PAGEMAP_BATCH 512u                    /* /proc/self/pagemap entries read at once */
#define PAGE_PRESENT (UINT64_C(1) << 63)       /* pagemap: the page is in memory */
#define PAGE_SWAPPED (UINT64_C(1) << 62)       /* pagemap: the page is in swap */

enum { UNREACHED = 0, POSSIBLE = 1, REACHABLE = 2, INDIRECT = 3 };

/* ---- vector registers ----------------------------------------------------------------------
 * A pointer may be held only in a vector register: a struct of pointers copied through xmm or
 * ymm, a value the compiler keeps there. Their words are roots too, as LeakSanitizer counts
 * them (its use_registers_extra case); valgrind reads only the general-purpose registers.
 * The signal frame holds them: xmm0-15 in the legacy area, then, in XSAVE's standard format,
 * the upper halves of ymm0-15 (component 2), of zmm0-15 (6) and zmm16-31 (7), each present
 * when its bit of the frame's XSTATE_BV says the registers are in use. */
#define XMM_WORDS 32
#define VECTOR_WORDS (XMM_WORDS + 32 + 64 + 128)
struct vector_part { uint32_t offset, words, component; };
/* Set by stop_world from CPUID before the first stop signal is sent, read-only afterwards. */
static struct vector_part vector_parts[3];
static int nvector_parts;

static void find_vector_parts(void)
{
    static const uint32_t components[3] = { 2, 6, 7 };
    nvector_parts = 0;
    for (int i = 0; i < 3; i++) {
        unsigned size, offset, ecx, edx;
        if (!__get_cpuid_count(0xd, components[i], &size, &offset, &ecx, &edx) || !size || !offset)
            continue;
        vector_parts[nvector_parts++] = (struct vector_part){ offset, size / 8, components[i] };
    }
}

/* From a stop signal's handler: copies the interrupted thread's vector registers. */
static int copy_vector_words(const ucontext_t *uc, uintptr_t *out)
{
    const uint8_t *fx = (const uint8_t *)uc->uc_mcontext.fpregs;
    if (!fx) return 0;
    __builtin_memcpy(out, fx + 160, XMM_WORDS * 8); /* the FXSAVE image's xmm0-15 */
    int n = XMM_WORDS;
    /* The kernel's software bytes, at the end of the legacy area, say whether an XSAVE image
     * follows (both magic numbers) and how long it is. */
    struct _fpx_sw_bytes sw;
    uint32_t magic2;
    uint64_t in_use;
    __builtin_memcpy(&sw, fx + 464, sizeof sw);
    if (sw.magic1 != FP_XSTATE_MAGIC1 || sw.extended_size < sw.xstate_size + 4) return n;
    __builtin_memcpy(&magic2, fx + sw.xstate_size, 4);
    if (magic2 != FP_XSTATE_MAGIC2) return n;
    __builtin_memcpy(&in_use, fx + 512, 8); /* the XSAVE header's XSTATE_BV */
    for (int i = 0; i < nvector_parts; i++) {
        const struct vector_part *v = &vector_parts[i];
        if (!((in_use >> v->component) & 1) || v->offset + v->words * 8 > sw.xstate_size ||
            n + (int)v->words > VECTOR_WORDS)
            continue;
        __builtin_memcpy(out + n, fx + v->offset, v->words * 8);
        n += (int)v->words;
    }
    return n;
}

/* ---- stopping the world ------------------------------------------------------------------ */
struct parked {
    pid_t tid;
    uintptr_t sp;
    uintptr_t ip;    /* where it was stopped: at a system call, it has no live red zone */
    uintptr_t thread_pointer; /* its struct pthread, %fs:0 */
    uintptr_t regs[16];
    uintptr_t go_stack_from; /* a Go thread running a goroutine: its own stack's live part */
    uintptr_t alt_dead[2];   /* the dead part of its alternate signal stack (dead_alternate_stack) */
    int nvector;
    uintptr_t vector[VECTOR_WORDS];
};

/* Mapped at the first scan and never unmapped: a late signal handler may still write to it.
 * scan_lock serializes scans; the counters are atomics shared with the signal handlers. */
static struct parked *parked;
static _Atomic int parked_slots, parked_ready, parked_resumed;
static _Atomic int world_stopped; /* futex word */
/* The threads of the current scan that did not stop: written by stop_world, read by
 * scan_roots, under scan_lock. sp 0: not known (the thread runs). */
struct unstopped {
    pid_t tid;
    uintptr_t sp;
    uintptr_t args[6]; /* of the system call it waits in: roots, as registers are */
};
static struct unstopped *unstopped;
static int nunstopped;
static pthread_mutex_t scan_lock = PTHREAD_MUTEX_INITIALIZER;

/* The scan's signal: SIGRTMAX-1, or the next real-time signal down that the program leaves
 * at its default. A program with a handler of its own for it keeps that handler: the scan
 * takes another, and does again when the program later puts its own handler over the scan's
 * (signals.c reports the scan's as SIG_DFL, so the program never sees it). Written under
 * scan_lock, read by any thread. */
static _Atomic int scan_signal;

int lt_scan_signal(void)
{
    int sig = atomic_load_explicit(&scan_signal, memory_order_relaxed);
    return sig ? sig : SIGRTMAX - 1;
}

static void park(int sig, siginfo_t *info, void *context);

void *lt_scan_handler(void) { return (void *)park; }

/* The kernel's record of a disposition (the raw system call: sigaction() answers for the
 * program). */
static uintptr_t disposition(int sig)
{
    struct { uintptr_t handler; unsigned long flags; uintptr_t restorer; uint64_t mask; } now;
    return lt_raw_syscall(SYS_rt_sigaction, sig, 0, (long)&now, sizeof now.mask, 0, 0) == 0 ? now.handler
                                                                                          : (uintptr_t)-1;
}

/* pre: scan_lock. The scan's handler in place on a signal nobody else uses (at SIG_DFL, or the
 * shim's stand-in for it, signals.c: the program sees SIG_DFL either way). */
static void own_a_signal(void)
{
    if (disposition(lt_scan_signal()) == (uintptr_t)park) return;
    int chosen = SIGRTMAX - 1; /* all taken: as before, the program's handler gives way */
    for (int sig = SIGRTMAX - 1; sig >= SIGRTMIN; sig--)
        if (disposition(sig) == (uintptr_t)SIG_DFL || lt_signals_stands_in(disposition(sig))) {
            chosen = sig;
            break;
        }
    atomic_store(&scan_signal, chosen);
    /* Stays installed: a signal still pending after a scan must find a handler (the default
     * action of a real-time signal kills the process). Outside a scan the handler returns at
     * once. SA_ONSTACK: a thread with an alternate signal stack may run on a small stack
     * carved out of live memory (a goroutine's, in Go's heap; Go requires it of every handler
     * non-Go code installs): the kernel would push the signal frame, 1-4 KiB, below that
     * stack's pointer, over the objects there. */
    struct sigaction sa = { 0 };
    sa.sa_sigaction = park;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    sigaction(chosen, &sa, NULL); /* libc's, through the hook: it adds the return trampoline */
}

/* Register values of the ending thread that no frame the scan reads holds any more (exits.c:
 * the program's callee-saved registers where it called exit; signals.c: a fatal signal's
 * context), as valgrind reads every register of every thread. Written by the one thread that
 * ends the process, before its final scan; read by that scan. */
#define MAX_EXTRA_ROOTS 32
static uintptr_t extra_roots[MAX_EXTRA_ROOTS];
static _Atomic int nextra_roots;

void lt_scan_add_roots(const uintptr_t *words, int n)
{
    /* A vfork child shares this memory and ends without a capture of its own: not its. */
    if (getpid() != atomic_load(&lt_owner_pid)) return;
    for (int i = 0; i < n; i++) {
        int at = atomic_fetch_add(&nextra_roots, 1);
        if (at >= MAX_EXTRA_ROOTS) return;
        extra_roots[at] = words[i];
    }
}

/* lt_scan_give_back_signal: set by a thread that has the scan's signal pending. */
static void note_pending_scan_signal(pid_t tid, void *pending)
{
    if (lt_thread_has_pending(tid, lt_scan_signal())) *(bool *)pending = true;
}

void lt_scan_give_back_signal(void)
{
    pthread_mutex_lock(&scan_lock);
    int sig = atomic_load(&scan_signal);
    if (sig && disposition(sig) == (uintptr_t)park) {
        /* A scan signal still pending in some thread (one that blocked it after it was sent)
         * would kill the process under the default action: the handler then stays. */
        bool pending = false;
        if (lt_for_each_thread(note_pending_scan_signal, &pending) > 0 && !pending) {
            struct sigaction dfl = { 0 };
            dfl.sa_handler = SIG_DFL;
            sigaction(sig, &dfl, NULL);
            atomic_store(&scan_signal, 0);
        }
    }
    pthread_mutex_unlock(&scan_lock);
}

/* A signal of the program's, pending and not blocked once this handler returns: it comes
 * meanwhile (this handler blocks every other signal) and is delivered as the handler
 * returns, in the same interruption of whatever the thread was waiting in. */
static bool program_signal_follows(const ucontext_t *uc)
{
    sigset_t pending;
    if (sigpending(&pending) != 0) return false;
    for (int s = 1; s < _NSIG; s++)
        if (s != lt_scan_signal() && sigismember(&pending, s) == 1 && sigismember(&uc->uc_sigmask, s) != 1)
            return true;
    return false;
}

/* A handler of the program's that the kernel entered just before this one, in the same
 * interruption: a signal sent to this thread (tgkill, raise, pthread_kill) before the scan's
 * is taken first (the lowest number first), and the scan's is delivered on top of it, so this
 * handler interrupts that one at its first instruction, the signal's number its argument.
 * That handler ends the wait too. The kernel's own record of the disposition (the raw
 * system call) is asked: sigaction() would answer for the program. */
static bool program_handler_entered(const ucontext_t *uc)
{
    long signo = (long)uc->uc_mcontext.gregs[REG_RDI];
    if (signo <= 0 || signo >= _NSIG || signo == lt_scan_signal()) return false;
    uintptr_t handler = disposition((int)signo);
    return handler > (uintptr_t)SIG_IGN && handler == (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
}

/* The dead part of this thread's alternate signal stack, [lo, hi): all of it, or when the
 * thread runs on it, the part below `sp` (a handler's frame; the kernel's signal frame and
 * any handler it interrupted lie above). {0, 0} without one, or when the thread runs on it
 * but `sp` is elsewhere (a fatal signal's handler moved to a stack of the shim's). Handlers that returned left their
 * frames there, the interrupted registers of their signal frames among them: Go gives every
 * thread a 32 KiB stack in its heap for its signal handler (the M's gsignal), where the
 * preemption signal's frames kept a copy of a pointer a goroutine then dropped, and the block
 * read as still reachable; memcheck makes a handler's frames no access as it returns. */
static void dead_alternate_stack(uintptr_t sp, uintptr_t out[2])
{
    stack_t ss;
    out[0] = out[1] = 0;
    if (lt_raw_syscall(SYS_sigaltstack, 0, (long)&ss, 0, 0, 0, 0) != 0 || (ss.ss_flags & SS_DISABLE)) return;
    uintptr_t lo = (uintptr_t)ss.ss_sp, hi = lo + ss.ss_size;
    bool on_it = sp > lo && sp < hi;
    if (hi <= lo || ((ss.ss_flags & SS_ONSTACK) && !on_it)) return;
    out[0] = lo;
    out[1] = on_it ? sp : hi;
}

static void park(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)info;
    int saved_errno = errno;
    const ucontext_t *uc = context;
    lt_scan_signals_here++; /* a sleep this signal ended goes on (sleeps.c) */
    if (atomic_load(&world_stopped)) {
        int slot = atomic_fetch_add(&parked_slots, 1);
        if (slot < MAX_PARKED) {
            static const int which[16] = { REG_RAX, REG_RBX, REG_RCX, REG_RDX, REG_RSI, REG_RDI,
                                           REG_RBP, REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12,
                                           REG_R13, REG_R14, REG_R15, REG_RSP };
            for (int i = 0; i < 16; i++) parked[slot].regs[i] = (uintptr_t)uc->uc_mcontext.gregs[which[i]];
            parked[slot].sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
            parked[slot].ip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
            parked[slot].nvector = copy_vector_words(uc, parked[slot].vector);
            parked[slot].tid = (pid_t)syscall(SYS_gettid);
            parked[slot].thread_pointer = (uintptr_t)__builtin_thread_pointer();
            dead_alternate_stack((uintptr_t)__builtin_frame_address(0), parked[slot].alt_dead);
        }
        atomic_fetch_add(&parked_ready, 1);
        while (atomic_load(&world_stopped))
            syscall(SYS_futex, &world_stopped, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
        atomic_fetch_add(&parked_resumed, 1);
    }
    /* Then that wait ends, as it would have without the scan (sleeps.c). */
    if (program_handler_entered(uc) || program_signal_follows(uc)) lt_program_signals_after_scan++;
    errno = saved_errno;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { 0, ms * 1000000L };
    lt_sys_nanosleep(&ts, NULL);
}

/* The threads a scan asked to stop, and those it left alone because the signal could not
 * reach a handler of theirs (lt_thread_state). Mapped for the scan; scan_lock guards it. */
struct signalling {
    pid_t *sent;     /* signalled */
    pid_t *blocking; /* not signalled: they block the signal */
    int nsent, nblocking;
    pid_t self, control;
};

static bool listed(const pid_t *tids, int n, pid_t tid)
{
    for (int i = 0; i < n; i++)
        if (tids[i] == tid) return true;
    return false;
}

static void signal_thread(pid_t tid, void *ctx)
{
    struct signalling *sig = ctx;
    /* Not this thread; not the control thread, which blocks every signal and holds no
     * program data. */
    if (tid == sig->self || tid == sig->control || sig->nsent + sig->nblocking >= MAX_PARKED) return;
    if (listed(sig->sent, sig->nsent, tid) || listed(sig->blocking, sig->nblocking, tid)) return;
    /* A thread that blocks the signal is never sent it: it would stay pending until the
     * thread's sigwait() or signalfd took it as the program's own (a signal thread printing
     * "got signal 63", or stopping the program). The thread may check its mask again in
     * between: a tiny window, left open. */
    struct lt_thread_state state;
    if (lt_thread_state(tid, lt_scan_signal(), &state) && state.blocks_signal) {
        sig->blocking[sig->nblocking++] = tid;
        return;
    }
    if (syscall(SYS_tgkill, getpid(), tid, lt_scan_signal()) == 0) sig->sent[sig->nsent++] = tid;
}

/* Blocking threads that no longer block the signal (a thread blocks every signal for a
 * moment in pthread_create, and in its last steps) are sent it after all. */
static void signal_unblocked(struct signalling *sig)
{
    for (int i = 0; i < sig->nblocking;) {
        struct lt_thread_state state;
        pid_t tid = sig->blocking[i];
        if (lt_thread_state(tid, lt_scan_signal(), &state) && state.blocks_signal) {
            i++;
            continue;
        }
        sig->blocking[i] = sig->blocking[--sig->nblocking];
        if (syscall(SYS_tgkill, getpid(), tid, lt_scan_signal()) == 0) sig->sent[sig->nsent++] = tid;
    }
}

/* Threads that have left (lt_thread_has_left); a parked thread has not: it waits in park(). */
static int threads_that_left(const pid_t *tids, int n)
{
    int left = 0;
    for (int i = 0; i < n; i++) left += lt_thread_has_left(tids[i]);
    return left;
}

static bool parked_thread(pid_t tid, int stopped)
{
    for (int t = 0; t < stopped; t++)
        if (parked[t].tid == tid) return true;
    return false;
}

/* A thread that did not stop and is still there: its stack pointer where it waits in a
 * system call (0 where it runs), for its stack to be read from there up. */
static void note_unstopped(pid_t tid, int stopped)
{
    if (parked_thread(tid, stopped) || lt_thread_has_left(tid) || nunstopped >= MAX_PARKED) return;
    struct lt_thread_state state;
    struct unstopped *u = &unstopped[nunstopped++];
    *u = (struct unstopped){ .tid = tid };
    if (lt_thread_state(tid, lt_scan_signal(), &state) && state.in_syscall) {
        u->sp = state.sp;
        memcpy(u->args, state.args, sizeof u->args);
    }
}

static void stop_world(struct lt_scan *scan)
{
    if (!parked) parked = lt_map(sizeof(struct parked) * MAX_PARKED);
    if (!unstopped) unstopped = lt_map(sizeof(struct unstopped) * MAX_PARKED);
    nunstopped = 0;
    if (!nvector_parts) find_vector_parts();
    own_a_signal();
    atomic_store(&parked_slots, 0);
    atomic_store(&parked_ready, 0);
    atomic_store(&parked_resumed, 0);
    atomic_store(&world_stopped, 1);
    pid_t *tids = lt_map(2 * sizeof(pid_t) * MAX_PARKED);
    if (parked && unstopped && tids) {
        /* Threads may be created while we look: look again until no new one appears. */
        struct signalling sig = { tids, tids + MAX_PARKED, 0, 0, (pid_t)syscall(SYS_gettid),
                                  lt_control_thread_id() };
        for (int round = 0; round < 20; round++) {
            int before = sig.nsent + sig.nblocking;
            lt_for_each_thread(signal_thread, &sig);
            if (sig.nsent + sig.nblocking == before) break;
        }
        /* Threads that block the signal are looked at again for 20 ms (signal_unblocked);
         * signalled threads are waited for up to 2 s. Either kind that has not stopped then is
         * scanned without stopping (note_unstopped), unless it has left meanwhile: one that was
         * leaving when signalled (glibc blocks every signal in its last steps) never stops,
         * but it is gone a moment later. */
        int left = 0;
        for (int waited = 0; waited < 2000; waited++) {
            if (waited < 20 && sig.nblocking && waited % 2 == 1) signal_unblocked(&sig);
            if (atomic_load(&parked_ready) + left >= sig.nsent && (waited >= 20 || !sig.nblocking))
                break;
            sleep_ms(1);
            if (waited % 4 == 3) left = threads_that_left(sig.sent, sig.nsent); /* reads /proc */
        }
        int stopped = atomic_load(&parked_ready);
        if (stopped > MAX_PARKED) stopped = MAX_PARKED;
        for (int i = 0; i < sig.nsent; i++) note_unstopped(sig.sent[i], stopped);
        for (int i = 0; i < sig.nblocking; i++) note_unstopped(sig.blocking[i], stopped);
    }
    lt_unmap(tids, 2 * sizeof(pid_t) * MAX_PARKED);
    scan->threads_stopped = (uint32_t)atomic_load(&parked_ready);
    scan->threads_not_stopped = (uint32_t)nunstopped;
}

static void resume_world(void)
{
    int stopped = atomic_load(&parked_ready);
    atomic_store(&world_stopped, 0);
    syscall(SYS_futex, &world_stopped, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
    for (int waited = 0; atomic_load(&parked_resumed) < stopped && waited < 1000; waited++) sleep_ms(1);
}

/* ---- the process's mappings ------------------------------------------------------------- */
struct mapping {
    uintptr_t start, end;
    bool readable, writable, executable, file_backed, shared;
    char kind; /* 'h' heap, 's' main stack, 'o' other special, 'a' anonymous, 'f' file */
};

/* A heap block that holds blocks of a custom allocator (annotate.c): valgrind's rule (its leak
 * check drops a malloc'd block that holds a MALLOCLIKE or mempool block) makes it neither a
 * block nor a root. Its objects are the blocks; the rest of it (free space, the pool's own
 * headers) is ignored. */
struct superblock { uintptr_t start, end; };

/* The blocks' index (index_blocks, block_of): the sorted blocks fall into segments, runs whose
 * gaps are under SEGMENT_GAP; a segment's 4 KiB pages each say which blocks start before them
 * (first[k]: how many blocks start below start + k pages; pages + 1 entries), so a lookup
 * searches only the blocks that start in the word's page. */
#define INDEX_PAGE_SHIFT 12
#define SEGMENT_GAP ((uintptr_t)1 << 20)
struct segment {
    uintptr_t start, end;   /* start on a 4 KiB boundary; end: past the last page */
    const uint32_t *first;  /* into scan_state.index_pages */
    uint32_t last;          /* the segment's last block (for a word in the gap after it) */
};

struct scan_state {
    struct lt_scan *scan;
    struct superblock *super;  /* sorted, taken out of b */
    size_t nsuper;
    struct lt_scan_block *b;   /* sorted by address */
    size_t n;
    struct segment *segments;  /* the blocks' index, or NULL (then block_of searches all of b) */
    size_t nsegments;
    uint32_t *index_pages;     /* the segments' first[] arrays, one after the other */
    size_t index_entries;      /* in index_pages; both mapped, unmapped with the scan's state */
    uintptr_t lo, hi;          /* every block lies in [lo, hi) */
    struct mapping *maps;
    size_t nmaps;
    const struct mapping *last_mapping; /* mapping_at's: the one found last, or NULL */
    uint32_t *stack;           /* the mark stack of block indexes */
    size_t depth, stack_cap;
    uint8_t *buf;              /* READ_CHUNK bytes for process_vm_readv */
    uintptr_t *own_start, *own_end; /* MAX_OWN each, mapped: not on the caller's stack */
    unsigned nown;
    uint64_t bytes_scanned, root_bytes;
    int pagemap_fd;               /* /proc/self/pagemap, or -1 */
    uint64_t *pagemap;            /* PAGEMAP_BATCH entries, mapped (page_touched): those */
    uintptr_t pagemap_first;      /* of the pages numbered from this one on, */
    size_t pagemap_count;         /* this many */
    uintptr_t own_thread_pointer; /* the scanning thread's */
    uintptr_t (*dead)[2];         /* dead stack parts, sorted, not roots (dead_stack_parts): */
    size_t ndead, dead_cap;       /* mapped, or NULL */
    pid_t memory_id;              /* for process_vm_readv: lt_own_memory_id() */
    /* Arrays replaced during the scan (add_unrecorded_chunks), unmapped when it ends: listed in
     * maps, they must stay mapped while the scan reads it. */
    struct retired_array { void *p; size_t size; } retired[3];
    unsigned nretired;
    bool unrecorded_added; /* the walked heaps' unknown chunks are blocks: not roots */
    uintptr_t libc_start, libc_end; /* libc.so's whole image, .data and .bss (main_arena) in it */
    /* The words being read may be glibc's allocator's own links to chunk headers
     * (is_next_chunk_header): libc's data (set per mapping by scan_roots), the heaps read as
     * roots in attach mode, the first words of a block that may still hold its free-list links
     * (set by those two scanners, which put the caller's value back). */
    bool allocator_words;
};

/* pre: text is MAPS_BUF bytes, and stays mapped until the scan ends (it is itself listed). */
static size_t read_maps(struct mapping *out, size_t max, char *text)
{
    size_t len = lt_read_maps(text, MAPS_BUF - 1);
    text[len] = 0;
    size_t n = 0;
    for (const char *p = text; *p && n < max;) {
        const char *eol = strchr(p, '\n');
        if (!eol) eol = p + strlen(p);
        struct mapping m = { 0 };
        m.start = lt_parse_hex(&p);
        p++; /* '-' */
        m.end = lt_parse_hex(&p);
        p++;
        m.readable = p[0] == 'r';
        m.writable = p[1] == 'w';
        m.executable = p[2] == 'x';
        m.shared = p[3] == 's';
        /* offset, device, inode, then the path (if any) after spaces */
        int fields = 0;
        while (p < eol && fields < 4) {
            while (p < eol && *p != ' ') p++;
            while (p < eol && *p == ' ') p++;
            fields++;
        }
        const char *path = p;
        size_t plen = (size_t)(eol - p);
        if (plen == 0) m.kind = 'a';
        else if (plen == 6 && memcmp(path, "[heap]", 6) == 0) m.kind = 'h';
        else if (plen == 7 && memcmp(path, "[stack]", 7) == 0) m.kind = 's';
        else if (plen >= 6 && memcmp(path, "[anon:", 6) == 0) m.kind = plen >= 15 && memcmp(path, "[anon:leaktrace", 15) == 0 ? 'o' : 'a';
        else if (path[0] == '[') m.kind = 'o';
        else {
            m.kind = 'f';
            m.file_backed = true;
        }
        out[n++] = m;
        p = *eol ? eol + 1 : eol;
    }
    return n;
}

static const struct mapping *mapping_of(const struct scan_state *st, uintptr_t a)
{
    size_t lo = 0, hi = st->nmaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->maps[mid].end <= a) lo = mid + 1;
        else hi = mid;
    }
    return lo < st->nmaps && st->maps[lo].start <= a ? &st->maps[lo] : NULL;
}

/* mapping_of, asking first the mapping the last lookup found: the words a scan reads in a
 * row mostly lie in one mapping (the block, the heap). */
static const struct mapping *mapping_at(struct scan_state *st, uintptr_t a)
{
    const struct mapping *m = st->last_mapping;
    if (m && a - m->start < m->end - m->start) return m;
    m = mapping_of(st, a);
    if (m) st->last_mapping = m;
    return m;
}

/* Whether page number `pn` may hold data (in memory or in swap); true when pagemap cannot
 * tell. Entries are read PAGEMAP_BATCH at a time and kept, so a range of many short runs
 * costs a system call per batch, not per run. */
static bool page_touched(struct scan_state *st, uintptr_t pn)
{
    if (pn - st->pagemap_first >= st->pagemap_count) {
        ssize_t got = pread(st->pagemap_fd, st->pagemap, PAGEMAP_BATCH * sizeof(uint64_t),
                            (off_t)(pn * sizeof(uint64_t)));
        if (got < (ssize_t)sizeof(uint64_t)) { /* from now on every range is read whole */
            if (st->pagemap_fd >= 0) close(st->pagemap_fd);
            st->pagemap_fd = -1;
            st->pagemap_count = 0;
            return true;
        }
        st->pagemap_first = pn;
        st->pagemap_count = (size_t)got / sizeof(uint64_t);
    }
    return (st->pagemap[pn - st->pagemap_first] & (PAGE_PRESENT | PAGE_SWAPPED)) != 0;
}

/* The first run [*run_start, *run_end) in [from, to) of memory that may hold data. In private
 * anonymous memory (a mapping of its own, [heap]) a page the program never touched is in
 * neither memory nor swap (/proc/self/pagemap) and reads as zeros, so it holds no pointer:
 * skipped, reserved memory (a buffer mapped large and filled little, an allocator's released
 * spans) then costs an 8-byte entry a page instead of a page fault and a read (a 4 GiB
 * mapping: 1.5 s). Elsewhere, or when pagemap cannot be read, the whole range. False when
 * nothing is left. */
static bool next_touched_run(struct scan_state *st, const struct mapping *m, uintptr_t from, uintptr_t to,
                             uintptr_t *run_start, uintptr_t *run_end)
{
    if (from >= to) return false;
    if (st->pagemap_fd < 0 || (m->kind != 'a' && m->kind != 'h') || m->shared || m->file_backed) {
        *run_start = from;
        *run_end = to;
        return true;
    }
    size_t page = lt_page_size();
    uintptr_t p = from & ~(uintptr_t)(page - 1);
    while (p < to && !page_touched(st, p / page)) p += page;
    if (p >= to) return false;
    *run_start = p < from ? from : p;
    for (p += page; p < to && page_touched(st, p / page); p += page) {}
    *run_end = p < to ? p : to;
    return true;
}

/* ---- finding blocks ---------------------------------------------------------------------- */
/* Index of the block that `v` points into (a zero-sized block counts as one byte), or -1. */
static inline long block_of(const struct scan_state *st, uintptr_t v)
{
    if (v - st->lo >= st->hi - st->lo) return -1;
    /* The last block starting at or below v (b[0] does: v >= lo), found without branches: a
     * scan looks up every word that may be a heap address, and which half it goes on in is a
     * coin toss the branch predictor loses half the time (perl's 170 MiB heap: 0.75 s). With
     * the index, among the blocks that start in v's page only. */
    const struct lt_scan_block *b = st->b;
    size_t len = st->n;
    if (st->segments) {
        const struct segment *g = st->segments;
        for (size_t n = st->nsegments; n > 1;) {
            size_t half = n / 2;
            g = g[half].start <= v ? g + half : g;
            n -= half;
        }
        if (v >= g->end) {
            b = &st->b[g->last]; /* in the gap after g: none starts in between */
            len = 1;
        } else {
            size_t k = (v - g->start) >> INDEX_PAGE_SHIFT;
            uint32_t from = g->first[k], to = g->first[k + 1];
            /* None in the page at or below v: the last one before the page (from >= 1 then,
             * as b[0] <= v). */
            if (from == to || st->b[from].addr > v) from--, to = from + 1;
            b = &st->b[from];
            len = to - from;
        }
    }
    for (; len > 1;) {
        size_t half = len / 2;
        b = b[half].addr <= v ? b + half : b;
        len -= half;
    }
    uint64_t size = b->size ? b->size : 1;
    return v >= b->addr && v - b->addr < size ? (long)(b - st->b) : -1;
}

static uintptr_t block_end(const struct lt_scan_block *b) { return b->addr + (b->size ? b->size : 1); }

/* The segments of the blocks: calls fn (if any) for each, with its first and last block, its
 * start page and end; returns how many, or 0 if they would need more than max_entries index
 * entries in all (*entries: how many they need). */
typedef void segment_fn(struct scan_state *st, size_t first, size_t last, uintptr_t start, uintptr_t end);
static size_t for_each_segment(struct scan_state *st, segment_fn *fn, size_t max_entries, size_t *entries)
{
    const uintptr_t page_mask = ((uintptr_t)1 << INDEX_PAGE_SHIFT) - 1;
    size_t count = 0;
    *entries = 0;
    for (size_t i = 0; i < st->n;) {
        uintptr_t end = block_end(&st->b[i]);
        size_t j = i + 1;
        for (; j < st->n && (st->b[j].addr < end || st->b[j].addr - end < SEGMENT_GAP); j++)
            if (block_end(&st->b[j]) > end) end = block_end(&st->b[j]);
        uintptr_t start = st->b[i].addr & ~page_mask;
        end = (end + page_mask) & ~page_mask;
        if (end < start) return 0; /* wrapped at the top of the address space: no index */
        *entries += ((end - start) >> INDEX_PAGE_SHIFT) + 1;
        if (*entries > max_entries) return 0;
        if (fn) fn(st, i, j - 1, start, end);
        count++;
        i = j;
    }
    return count;
}

static void fill_segment(struct scan_state *st, size_t first, size_t last, uintptr_t start, uintptr_t end)
{
    struct segment *g = &st->segments[st->nsegments++];
    uint32_t *pages = st->index_pages + st->index_entries;
    size_t npages = (end - start) >> INDEX_PAGE_SHIFT, at = first;
    for (size_t k = 0; k <= npages; k++) {
        uintptr_t page = start + ((uintptr_t)k << INDEX_PAGE_SHIFT);
        while (at <= last && st->b[at].addr < page) at++;
        pages[k] = (uint32_t)at;
    }
    st->index_entries += npages + 1;
    *g = (struct segment){ start, end, pages, (uint32_t)last };
}

/* Builds block_of's index, unless it would take more than 4 entries a block (blocks far apart,
 * or a few huge ones: the search over them all is short then) or memory runs out. */
static void index_blocks(struct scan_state *st)
{
    size_t max_entries = 4 * st->n > (1u << 16) ? 4 * st->n : (1u << 16), entries;
    if (st->n < 64 || st->n >= UINT32_MAX) return;
    size_t nsegments = for_each_segment(st, NULL, max_entries, &entries);
    if (!nsegments) return;
    st->segments = lt_map(nsegments * sizeof *st->segments);
    st->index_pages = lt_map(entries * sizeof *st->index_pages);
    if (!st->segments || !st->index_pages) {
        lt_unmap(st->segments, nsegments * sizeof *st->segments);
        lt_unmap(st->index_pages, entries * sizeof *st->index_pages);
        st->segments = NULL;
        st->index_pages = NULL;
        return;
    }
    for_each_segment(st, fill_segment, max_entries, &entries);
}

static void unindex_blocks(struct scan_state *st)
{
    if (!st->segments) return;
    lt_unmap(st->segments, st->nsegments * sizeof *st->segments);
    lt_unmap(st->index_pages, st->index_entries * sizeof *st->index_pages);
    st->segments = NULL;
}

/* First superblock that ends above a. */
static size_t first_superblock_from(const struct scan_state *st, uintptr_t a)
{
    size_t lo = 0, hi = st->nsuper;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->super[mid].end <= a) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void swap_ranges(uintptr_t (*r)[2], size_t a, size_t b)
{
    uintptr_t start = r[a][0], end = r[a][1];
    r[a][0] = r[b][0], r[a][1] = r[b][1];
    r[b][0] = start, r[b][1] = end;
}

/* Max-heap by start over r[0, n): r[k] moves down to its place. */
static void sift_down(uintptr_t (*r)[2], size_t k, size_t n)
{
    for (size_t child; (child = 2 * k + 1) < n; k = child) {
        if (child + 1 < n && r[child + 1][0] > r[child][0]) child++;
        if (r[k][0] >= r[child][0]) return;
        swap_ranges(r, k, child);
    }
}

/* The parts of stacks that hold only dead frames, not roots though they lie in live memory:
 * those of the goroutines no thread runs and Go's free stacks (go_exit.c), and the threads'
 * alternate signal stacks below their live frames (dead_alternate_stack). With the world
 * stopped; sorted by start, overlaps merged (the scan looks them up by their ends, which must
 * rise with their starts). */
static void dead_stack_parts(struct scan_state *st, uintptr_t scanner_sp)
{
    int stopped = atomic_load(&parked_ready);
    if (stopped > MAX_PARKED) stopped = MAX_PARKED;
    size_t n = lt_go_dead_stack_parts(st->dead, st->dead_cap);
    uintptr_t mine[2];
    dead_alternate_stack(scanner_sp, mine);
    for (int t = -1; t < stopped && n < st->dead_cap; t++) {
        const uintptr_t *d = t < 0 ? mine : parked[t].alt_dead;
        if (d[1] <= d[0]) continue;
        st->dead[n][0] = d[0];
        st->dead[n][1] = d[1];
        n++;
    }
    /* A heap sort: in place, without allocating, with the world stopped. */
    for (size_t k = n / 2; k-- > 0;) sift_down(st->dead, k, n);
    for (size_t end = n; end > 1; end--) {
        swap_ranges(st->dead, 0, end - 1);
        sift_down(st->dead, 0, end - 1);
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (kept && st->dead[i][0] <= st->dead[kept - 1][1]) {
            if (st->dead[i][1] > st->dead[kept - 1][1]) st->dead[kept - 1][1] = st->dead[i][1];
            continue;
        }
        st->dead[kept][0] = st->dead[i][0];
        st->dead[kept][1] = st->dead[i][1];
        kept++;
    }
    st->ndead = kept;
}

/* First dead stack part that ends above a. */
static size_t first_dead_from(const struct scan_state *st, uintptr_t a)
{
    size_t lo = 0, hi = st->ndead;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->dead[mid][1] <= a) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* First block at or above a. */
static size_t first_block_from(const struct scan_state *st, uintptr_t a)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->b[mid].addr < a) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* ---- reading memory safely --------------------------------------------------------------- */
typedef void (*word_fn)(struct scan_state *st, uintptr_t word, void *ctx);

/* Calls fn for each aligned word of [start, end) that can be read; unreadable pages are
 * skipped. Memory inside a readable mapping is read directly, the rest through
 * process_vm_readv, which fails on a bad page instead of faulting. */
static void scan_range(struct scan_state *st, uintptr_t start, uintptr_t end, word_fn fn, void *ctx)
{
    start = (start + 7) & ~(uintptr_t)7;
    end &= ~(uintptr_t)7;
    if (end <= start) return;
    const struct mapping *m = mapping_at(st, start);
    /* Most words are not heap addresses: the range test, inlined here, spares them the call. */
    const uintptr_t lo = st->lo, span = st->hi - st->lo;
    if (m && m->readable && !m->file_backed && end <= m->end) {
        for (const uintptr_t *w = (const uintptr_t *)start; w < (const uintptr_t *)end; w++)
            if (*w - lo < span) fn(st, *w, ctx);
        st->bytes_scanned += end - start;
        return;
    }
    size_t page = lt_page_size();
    for (uintptr_t at = start; at < end;) {
        size_t want = end - at < READ_CHUNK ? end - at : READ_CHUNK;
        struct iovec local = { st->buf, want }, remote = { (void *)at, want };
        ssize_t got = process_vm_readv(st->memory_id, &local, 1, &remote, 1, 0);
        if (got <= 0) { /* skip to the next page */
            at = (at + page) & ~(uintptr_t)(page - 1);
            continue;
        }
        for (size_t i = 0; i + 8 <= (size_t)got; i += 8) {
            uintptr_t w;
            memcpy(&w, st->buf + i, 8);
            if (w - lo < span) fn(st, w, ctx);
        }
        st->bytes_scanned += (uint64_t)got;
        at += (uintptr_t)got;
    }
}

static bool read_word(struct scan_state *st, uintptr_t a, uintptr_t *out)
{
    const struct mapping *m = mapping_at(st, a);
    if (!m || !m->readable || a + 8 > m->end) return false;
    if (!m->file_backed) {
        memcpy(out, (const void *)a, 8);
        return true;
    }
    return lt_copy_memory(out, a, 8);
}

/* ---- valgrind's interior-pointer heuristics ------------------------------------------------ */
static bool is_vtable(struct scan_state *st, uintptr_t a)
{
    const struct mapping *m = mapping_at(st, a);
    if (!m || !m->file_backed || (a & 7)) return false;
    /* A table of function pointers: only NULLs or code addresses, at least two of them. */
    int functions = 0;
    for (int i = 0; i < 20; i++) {
        uintptr_t w;
        if (!read_word(st, a + 8 * (uintptr_t)i, &w)) break;
        if (w == 0) continue;
        const struct mapping *target = mapping_at(st, w);
        if (!target || !target->executable) break;
        functions++;
    }
    return functions >= 2;
}

/* A block's first_word, found once per scan (the world is stopped: it cannot change). */
enum { FIRST_WORD_UNKNOWN, FIRST_WORD_VTABLE, FIRST_WORD_OTHER };

/* Whether the block's first word points to a vtable (multipleinheritance needs it), asked of
 * the memory once per block: a heap of objects reached only through interior pointers (perl's
 * arenas) otherwise read the first word and searched the mappings for every such pointer. */
static bool first_word_is_vtable(struct scan_state *st, struct lt_scan_block *b)
{
    if (b->first_word == FIRST_WORD_UNKNOWN) {
        uintptr_t w0;
        bool vtable = b->size >= 8 && read_word(st, b->addr, &w0) && w0 && is_vtable(st, w0);
        b->first_word = vtable ? FIRST_WORD_VTABLE : FIRST_WORD_OTHER;
    }
    return b->first_word == FIRST_WORD_VTABLE;
}

static uint8_t heuristic_for(struct scan_state *st, uintptr_t v, struct lt_scan_block *b)
{
    unsigned enabled = st->scan->heuristics;
    /* Only these offsets, and only an aligned pointer into an object whose first word is a
     * vtable's address, can match: anything else is no pointer to the start. */
    bool at_8 = v == b->addr + 8 && (enabled & (1u << LT_HEURISTIC_LENGTH64 | 1u << LT_HEURISTIC_NEWARRAY));
    bool at_24 = v == b->addr + 24 && (enabled & (1u << LT_HEURISTIC_STDSTRING));
    bool inheriting = (enabled & (1u << LT_HEURISTIC_MULTIPLEINHERITANCE)) && (v & 7) == 0 &&
                      first_word_is_vtable(st, b);
    if (!at_8 && !at_24 && !inheriting) return LT_HEURISTIC_NONE;
    uintptr_t w0 = 0, w1 = 0;
    bool have0 = b->size >= 8 && read_word(st, b->addr, &w0);
    /* Old-ABI std::string: {length, capacity, refcount} then the characters. */
    if ((enabled & (1u << LT_HEURISTIC_STDSTRING)) && v == b->addr + 24 && have0 &&
        read_word(st, b->addr + 8, &w1) && 24 + w1 + 1 == b->size && w0 <= w1)
        return LT_HEURISTIC_STDSTRING;
    /* A block that starts with the 64-bit length of the rest. */
    if ((enabled & (1u << LT_HEURISTIC_LENGTH64)) && v == b->addr + 8 && have0 && w0 > 0 && b->size - 8 == w0)
        return LT_HEURISTIC_LENGTH64;
    /* new[] of objects with a destructor: the element count, then the array. */
    if ((enabled & (1u << LT_HEURISTIC_NEWARRAY)) && v == b->addr + 8 && have0 && w0 > 0 && (b->size - 8) % w0 == 0)
        return LT_HEURISTIC_NEWARRAY;
    /* A base-class sub-object of a multiply inheriting object: two vtable pointers. */
    if (inheriting && have0) { /* first_word_is_vtable: w0 is a vtable's address */
        uintptr_t inner;
        if (read_word(st, v, &inner) && inner && is_vtable(st, inner)) return LT_HEURISTIC_MULTIPLEINHERITANCE;
    }
    return LT_HEURISTIC_NONE;
}

/* glibc's own bookkeeping points at chunk headers: main_arena.top, the bins, and a free chunk's
 * links to its neighbours in a bin. The header of the chunk after a block lies inside the
 * block's last 8 bytes when the block uses them, so such a pointer looks like an interior
 * pointer into the block (valgrind, with an allocator of its own, never sees one). A pointer to
 * exactly that spot is taken for glibc's where glibc may have written it (allocator_words);
 * elsewhere it is the program's: PostgreSQL's list of background workers points to the link
 * at the end of each 584-byte record, and valgrind calls such a record possibly lost. */
static bool is_next_chunk_header(const struct lt_scan_block *b, uintptr_t v)
{
    if (lt_kind_is_annotated(b->kind)) return false; /* not a malloc chunk: no header */
    if (v <= b->addr || v - b->addr + 8 < b->size) return false; /* only the last 8 bytes */
    size_t usable = lt_usable_size((void *)b->addr);
    return usable >= 8 && v == b->addr + usable - 8;
}

/* ---- marking ------------------------------------------------------------------------------ */
static void push(struct scan_state *st, size_t i)
{
    if (st->depth < st->stack_cap) st->stack[st->depth++] = (uint32_t)i;
}

/* From the roots, or from a block whose state is `prior` (valgrind's
 * lc_push_without_clique_if_a_chunk_ptr). */
static void mark_word(struct scan_state *st, uintptr_t v, void *ctx)
{
    bool prior_definite = ctx != NULL;
    long i = block_of(st, v);
    if (i < 0) return;
    struct lt_scan_block *b = &st->b[i];
    if (b->state == REACHABLE) {
        if (b->heuristic && v == b->addr) b->heuristic = LT_HEURISTIC_NONE;
        return;
    }
    bool as_start = v == b->addr;
    if (!as_start && st->allocator_words && is_next_chunk_header(b, v)) return;
    if (!as_start && st->scan->heuristics) {
        b->heuristic = heuristic_for(st, v, b);
        as_start = b->heuristic != LT_HEURISTIC_NONE;
    }
    if (as_start && prior_definite) {
        b->state = REACHABLE;
        push(st, (size_t)i);
    } else if (b->state == UNREACHED) {
        b->state = POSSIBLE;
        push(st, (size_t)i);
    }
}

/* Blocks from this size on are read page run by page run (next_touched_run): a program may
 * allocate a large buffer and use little of it (xz -9's 674 MiB of dictionary and tables for a
 * small input: a 312 ms scan). Below it, the pagemap read would cost more than the block. */
#define SPARSE_BLOCK_BYTES ((uint64_t)128 << 10)

#define UNRECORDED 0xfe /* kind of a block without a record (below); no lt_block_kind has it */

/* A chunk in one of glibc's bins keeps raw links to other chunks' headers in its first four
 * words (fd, bk and, in the large bins, fd_nextsize and bk_nextsize), and a block handed out
 * again keeps them until the program writes there. The shim clears new blocks up to
 * LT_CLEAR_LIMIT (hooks.c; above a page, its pages in memory: the others read as zeros); larger
 * ones, and the chunks it never saw, may still hold them. */
static uintptr_t stale_links_end(const struct lt_scan_block *b)
{
    bool uncleared = b->kind == UNRECORDED || (b->size > LT_CLEAR_LIMIT && !lt_kind_is_annotated(b->kind));
    size_t links = uncleared ? 4 * sizeof(uintptr_t) : 0;
    return b->addr + (links < b->size ? links : b->size);
}

static void scan_block_contents(struct scan_state *st, const struct lt_scan_block *b, word_fn fn, void *ctx)
{
    bool outer = st->allocator_words;
    uintptr_t from = stale_links_end(b);
    st->allocator_words = true;
    scan_range(st, b->addr, from, fn, ctx);
    st->allocator_words = false;
    const struct mapping *m = b->size >= SPARSE_BLOCK_BYTES ? mapping_of(st, b->addr) : NULL;
    if (!m || b->addr + b->size > m->end) scan_range(st, from, b->addr + b->size, fn, ctx);
    else
        for (uintptr_t rs, re; next_touched_run(st, m, from, b->addr + b->size, &rs, &re); from = re)
            scan_range(st, rs, re, fn, ctx);
    st->allocator_words = outer;
}

static void drain_roots(struct scan_state *st)
{
    static const int definite = 1;
    while (st->depth) {
        struct lt_scan_block *b = &st->b[st->stack[--st->depth]];
        scan_block_contents(st, b, mark_word, b->state == REACHABLE ? (void *)&definite : NULL);
    }
}

struct clique { size_t leader; };

/* Within a lost block's clique (valgrind's lc_push_with_clique_if_a_chunk_ptr). */
static void clique_word(struct scan_state *st, uintptr_t v, void *ctx)
{
    size_t leader = ((struct clique *)ctx)->leader;
    long i = block_of(st, v);
    if (i < 0 || (size_t)i == leader) return;
    struct lt_scan_block *b = &st->b[i];
    if (b->state != UNREACHED || (st->allocator_words && is_next_chunk_header(b, v))) return;
    struct lt_scan_clique *head = &st->scan->cliques[leader];
    b->state = INDIRECT;
    st->b[leader].owns = 1;
    head->indirect_bytes += b->size;
    head->indirect_blocks += 1;
    if (b->owns) { /* it led a clique of its own (lower address): that joins this one */
        struct lt_scan_clique *own = &st->scan->cliques[i];
        head->indirect_bytes += own->indirect_bytes;
        head->indirect_blocks += own->indirect_blocks;
        *own = (struct lt_scan_clique){ 0 };
        b->owns = 0;
    }
    push(st, (size_t)i);
}

/* ---- what is a root, byte range by byte range -------------------------------------------
 * The kernel merges adjacent anonymous mappings with the same protection, so one mapping can
 * hold the program's own data next to a block malloc mmap'd, a glibc arena heap or a dead
 * thread's stack. Each of those is cut out as a range, never the mapping as a whole. */
struct range { uintptr_t start, end; };
#define MAX_CUTS 64

/* A glibc arena heap (not the main arena): it starts at a 64 MiB boundary with its heap_info,
 * {arena, previous heap, size, mprotect_size, pagesize}; its read-write part holds chunks,
 * free ones included, whose stale contents must not keep blocks alive. */
static bool arena_heap_at(const struct scan_state *st, uintptr_t h, const struct mapping *m, struct range *out)
{
    if (h + 5 * sizeof(uintptr_t) > m->end) return false;
    const uintptr_t *w = (const uintptr_t *)h;
    uintptr_t arena = w[0], size = w[2], mprotect_size = w[3];
    size_t page = lt_page_size();
    (void)st;
    if (!arena || (arena & 7) || !size || size % page || size > mprotect_size ||
        mprotect_size > ARENA_HEAP_SIZE || h + mprotect_size > m->end)
        return false;
    out->start = h;
    out->end = h + mprotect_size;
    return true;
}

/* The first byte from `a` on, below `end`, outside the shim's own mappings and the cuts (end
 * if none); *stop: where that span ends. The kernel merges the shim's mappings (hundreds of
 * MiB reserved, mostly never touched) into neighbouring ones: reading them would fault in
 * every page. A span at a time: a look at every own mapping for every line cost 84 ms at the
 * exit of twelve threads' arenas. */
static uintptr_t span_outside(const struct scan_state *st, uintptr_t a, uintptr_t end,
                              const struct range *cuts, unsigned ncuts, uintptr_t *stop)
{
    for (;;) {
        uintptr_t skip_to = 0;
        *stop = end;
        for (unsigned k = 0; k < st->nown + ncuts; k++) {
            uintptr_t cs = k < st->nown ? st->own_start[k] : cuts[k - st->nown].start;
            uintptr_t ce = k < st->nown ? st->own_end[k] : cuts[k - st->nown].end;
            if (cs <= a && a < ce) {
                if (ce > skip_to) skip_to = ce;
            } else if (cs > a && cs < *stop) {
                *stop = cs;
            }
        }
        if (!skip_to) return a;
        if (skip_to >= end) {
            *stop = end;
            return end;
        }
        a = skip_to;
    }
}

/* The stack of a thread that has exited, kept by glibc for reuse: it still holds the dead
 * thread's data, which must not keep blocks alive (valgrind treats it as unaddressable). Its
 * thread control block (TCB) is recognised by the x86-64 TLS ABI's self pointers
 * (tcb->tcb == tcb, tcb->self == tcb) and either the stack and pointer guards, random values
 * every thread of the process copies from the first (at 0x28 and 0x30, read here from our
 * own TCB), or its dtv pointer, which points 16 bytes into the heap block glibc allocated
 * for the thread's TLS vector (a block the shim may not know: allocated before an attach or
 * a track() block); a live thread's TCB is its thread pointer. The stack lies below the TCB,
 * from the end of its guard page, which is where its read-write mapping starts. Above the TCB
 * is glibc's struct pthread, still in glibc's stack cache: that stays a root (it holds the
 * DTV, which valgrind finds reachable too). A TCB was written, so it lies in a page the
 * program touched, and not in the cuts (arena heaps). */
static bool dead_stack_in(struct scan_state *st, const struct mapping *m, int stopped,
                          const struct range *cuts, unsigned ncuts, struct range *out)
{
    uintptr_t guards[2];
    __asm__("mov %%fs:0x28, %0\n\tmov %%fs:0x30, %1" : "=r"(guards[0]), "=r"(guards[1]));
    for (uintptr_t from = m->start, rs, re; next_touched_run(st, m, from, m->end, &rs, &re); from = re) {
        for (uintptr_t at = rs, stop; at < re; at = stop) {
            at = span_outside(st, at, re, cuts, ncuts, &stop);
            for (uintptr_t a = (at + 63) & ~(uintptr_t)63; a + 24 <= stop; a += 64) {
                const uintptr_t *w = (const uintptr_t *)a;
                if (w[0] != a || w[2] != a) continue;
                long dtv = block_of(st, w[1]);
                bool tls_vector = dtv >= 0 && w[1] - st->b[dtv].addr == 16;
                bool guarded = a + 7 * sizeof(uintptr_t) <= stop && w[5] == guards[0] &&
                               w[6] == guards[1];
                if (!tls_vector && !guarded) continue;
                if (a == st->own_thread_pointer) return false;
                for (int t = 0; t < stopped; t++)
                    if (parked[t].thread_pointer == a) return false;
                out->start = m->start;
                out->end = a;
                return true;
            }
        }
    }
    return false;
}

static bool in_free_list(const struct lt_pool *pool, uint32_t i)
{
    return (pool->free[i / 8] >> (i % 8)) & 1;
}

/* The roots of a touched run [rs, re). In anonymous memory, a pool of CPython's small-object
 * allocator gives its header and its blocks in use only (pymalloc_pools.c): pools lie on
 * their size's boundary (16 KiB, or 4 KiB before CPython 3.10). */
static void scan_root_run(struct scan_state *st, const struct mapping *m, uintptr_t rs, uintptr_t re,
                          void *root)
{
    static const uint32_t pool_sizes[] = { 16384, 4096 };
    if (m->kind != 'a' || m->file_backed) {
        scan_range(st, rs, re, mark_word, root);
        return;
    }
    struct lt_pool pool;
    uintptr_t at = rs, p = (rs + 4095) & ~(uintptr_t)4095;
    while (p + LT_POOL_OVERHEAD <= re) {
        bool found = false;
        for (unsigned k = 0; k < sizeof pool_sizes / sizeof *pool_sizes && !found; k++)
            found = p % pool_sizes[k] == 0 && lt_pymalloc_pool_at(p, pool_sizes[k], m->end, &pool);
        if (!found) {
            p += 4096;
            continue;
        }
        scan_range(st, at, p + LT_POOL_OVERHEAD, mark_word, root); /* what precedes, the header */
        uintptr_t blocks = p + LT_POOL_OVERHEAD;
        for (uint32_t i = 0, j; i < pool.carved; i = j) {
            while (i < pool.carved && in_free_list(&pool, i)) i++;
            for (j = i; j < pool.carved && !in_free_list(&pool, j); j++) {}
            uintptr_t from = blocks + (uintptr_t)i * pool.block_size;
            uintptr_t to = blocks + (uintptr_t)j * pool.block_size;
            if (from < re) scan_range(st, from, to < re ? to : re, mark_word, root);
        }
        at = p = p + pool.size;
    }
    if (at < re) scan_range(st, at, re, mark_word, root);
}

/* Scans [from, m->end) as roots, minus the cuts (in any order), the heap blocks (scanned when
 * marked, never as roots) and the shim's own mappings. */
static void scan_root_ranges(struct scan_state *st, const struct mapping *m, uintptr_t from,
                             const struct range *cuts, unsigned ncuts)
{
    static const int definite = 1;
    void *root = (void *)&definite;
    for (uintptr_t at = from, stop; at < m->end; at = stop) {
        at = span_outside(st, at, m->end, cuts, ncuts, &stop);
        if (at >= stop) break;
        /* Heap blocks and pools' superblocks too: if `at` is inside one, skip to its end; else
         * stop before the next. */
        uintptr_t skip_to = 0;
#define LT_CUT(s, e)                                   \
    do {                                               \
        uintptr_t cs = (s), ce = (e);                  \
        if (cs <= at && at < ce) {                     \
            if (ce > skip_to) skip_to = ce;            \
        } else if (cs > at && cs < stop) {             \
            stop = cs;                                 \
        }                                              \
    } while (0)
        if (st->n) {
            size_t i = first_block_from(st, at);
            if (i > 0) { /* a block that starts below `at` may still cover it */
                const struct lt_scan_block *b = &st->b[i - 1];
                LT_CUT(b->addr, b->addr + (b->size ? b->size : 1));
            }
            if (i < st->n) LT_CUT(st->b[i].addr, st->b[i].addr + (st->b[i].size ? st->b[i].size : 1));
        }
        if (st->nsuper) {
            size_t k = first_superblock_from(st, at);
            if (k < st->nsuper) LT_CUT(st->super[k].start, st->super[k].end);
        }
        if (st->ndead) {
            size_t k = first_dead_from(st, at);
            if (k < st->ndead) LT_CUT(st->dead[k][0], st->dead[k][1]);
        }
#undef LT_CUT
        if (skip_to) {
            stop = skip_to;
            continue;
        }
        for (uintptr_t run = at, rs, re; next_touched_run(st, m, run, stop, &rs, &re); run = re) {
            st->root_bytes += re - rs;
            scan_root_run(st, m, rs, re, root);
            drain_roots(st);
        }
    }
}

/* The program's own memory in the main heap's mapping: what it took with sbrk() or brk()
 * (regions.c; glibc's main arena grows the break without the hooks). It holds the program's
 * data, so it is a root, as valgrind counts it; the arena's chunks beside it are not. */
struct own_break_ctx { struct scan_state *st; const struct mapping *m; };

static void scan_own_break(const struct lt_block *region, void *ctx)
{
    const struct own_break_ctx *c = ctx;
    if (lt_block_kind(region) != LT_KIND_BRK) return;
    uintptr_t start = region->addr, end = region->addr + lt_block_size(region);
    if (start < c->m->start) start = c->m->start;
    if (end > c->m->end) end = c->m->end;
    if (start >= end) return;
    struct mapping part = *c->m;
    part.start = start;
    part.end = end;
    scan_root_ranges(c->st, &part, start, NULL, 0);
}

/* glibc (2.34 on) marks each chunk it keeps in a thread's cache (tcache) with a random key in
 * its second word, to catch double frees. Such a chunk looks in use to a walk of the heap (its
 * neighbour's PREV_INUSE bit stays set), but it is free, and what it still holds is stale: the
 * addresses of blocks freed or handed out again since. The key is learned by freeing a chunk
 * of our own; 0 while unknown (another allocator, or the tcache turned off). Written once, by
 * lt_scan_learn_heap_marks before the attach session's first scan, or at start-up in sampling
 * mode; read by the scans. */
static _Atomic uintptr_t tcache_key;

/* A chunk the learning took from the heap's top goes back into it: grown in place into the
 * top past the thread cache's sizes, so that its free merges it with the top, its bytes and
 * the grown top's old size word zeroed, as the memory was before (fresh from the kernel).
 * Only a chunk just below the top (the chunk after it ends at the program break, with room to
 * grow into): after one below a free chunk, realloc would split that chunk and the word zeroed
 * would be the remainder's size. Any other is freed (back into the cache). */
static void give_back_to_top(void *p)
{
    extern void *__libc_realloc(void *, size_t);
    extern void __libc_free(void *);
    const size_t past_cache = 2048; /* above glibc's largest cached size, 1032 bytes */
    uintptr_t chunk = (uintptr_t)p - 16, size = ((uintptr_t *)p)[-1] & ~(uintptr_t)7;
    uintptr_t next = chunk + size, next_size = ((uintptr_t *)next)[1] & ~(uintptr_t)7;
    uintptr_t brk = (uintptr_t)lt_raw_syscall(SYS_brk, 0, 0, 0, 0, 0, 0);
    void *grown = next + next_size == brk && next_size > past_cache + 64
                      ? __libc_realloc(p, past_cache) : NULL;
    if (grown != p) { /* not below the top: it did not grow (and stayed, or moved as realloc's) */
        __libc_free(grown ? grown : p);
        return;
    }
    size = ((uintptr_t *)p)[-1] & ~(uintptr_t)7;
    memset(p, 0, size - 16);
    __libc_free(p);
    /* The top's size word, written when the chunk grew into it: free memory of the top now. */
    *(volatile uintptr_t *)(chunk + size + 8) = 0;
}

void lt_scan_learn_heap_marks(bool leave_heap_as_found)
{
    extern void *__libc_malloc(size_t);
    extern void __libc_free(void *);
    if (atomic_load(&tcache_key)) return;
    /* Chunks of a few small sizes, twice each: a chunk whose cache bin is full goes to a fast
     * bin instead, which writes only the first word; a value seen twice is the key. */
    static const size_t sizes[] = { 16, 40, 56, 72 };
    uintptr_t seen[8] = { 0 };
    unsigned tried = 0;
    for (; tried < 8 && !atomic_load(&tcache_key); tried++) {
        uintptr_t *chunk = __libc_malloc(sizes[tried % 4]);
        if (!chunk) return;
        /* The address goes through an empty asm, so the compiler cannot tie the read after the
         * free to the block (a read of freed memory is undefined to it: it may fold it). */
        uintptr_t key_word = (uintptr_t)&chunk[1];
        __asm__ volatile("" : "+r"(key_word));
        *(volatile uintptr_t *)key_word = 0;
        __libc_free(chunk);
        seen[tried] = *(volatile const uintptr_t *)key_word;
        for (unsigned j = 0; j < tried; j++)
            if (seen[tried] && seen[j] == seen[tried]) atomic_store(&tcache_key, seen[tried]);
    }
    /* At start-up (sampling mode) the chunks would stay in the thread's cache: 80 bytes more in
     * use to mallinfo, and the program's next blocks of those sizes would be them. Taken back
     * out of the cache (last in, first out), then given back to the top, the last carved first.
     * Not under attach: other threads allocate meanwhile. */
    if (!leave_heap_as_found || tried > 4) return;
    void *taken[4];
    for (unsigned i = tried; i-- > 0;) taken[i] = __libc_malloc(sizes[i]);
    for (unsigned i = tried; i-- > 0;)
        if (taken[i]) give_back_to_top(taken[i]);
}

/* glibc's fast bins: a free chunk of up to 128 bytes that did not fit its thread's cache keeps
 * its neighbour's PREV_INUSE bit set too, and has no key. Its first word is the next chunk of
 * its bin, or NULL, mangled with the word's own address (safe-linking, glibc 2.32 on): a chunk
 * whose first word unmangles to NULL, or to a chunk of its own size in [lo, end), is one. A
 * live block would need a first word that happens to be such a value. */
static bool in_fast_bin(struct scan_state *st, uintptr_t at, uintptr_t size, uintptr_t lo,
                        uintptr_t end)
{
    uintptr_t fd, next_size;
    if (size > 128 || !read_word(st, at + 16, &fd)) return false;
    uintptr_t next = fd ^ ((at + 16) >> 12);
    if (next == 0) return true;
    return next % 16 == 0 && next >= lo && next < end && end - next >= size &&
           read_word(st, next + 8, &next_size) && (next_size & ~(uintptr_t)7) == size;
}

/* A chunk in use that is not a known block: [start, end) of its user bytes. */
typedef void unknown_chunk_fn(struct scan_state *st, uintptr_t start, uintptr_t end, void *ctx);

/* The heap's chunks from `at` on: calls `fn` (if any) for each chunk in use that is not a known
 * block (attach mode: allocated before the shim came; sampling mode: not sampled). Free chunks
 * are left out, and so are those parked in a thread's cache or a fast bin: what they still
 * hold points to addresses the allocator has since handed out again. glibc's layout: the chunk
 * size in the second word, bit 0 of the next chunk's size set when this one is in use, the top
 * chunk last, up to `end` (an arena heap's used end); a chunk of 16 bytes, a fence post, ends a
 * heap its arena left for a new one (or, in the main heap, a part before the program moved the
 * break itself). With fn NULL, only checks the walk. True when it ends exactly at `end` or at a
 * fence post. `*stopped`: where the walk stopped (`end` after the top chunk), the rest not
 * walked. */
static bool walk_heap_chunks(struct scan_state *st, uintptr_t at, uintptr_t end, unknown_chunk_fn *fn,
                             void *ctx, uintptr_t *stopped)
{
    uintptr_t key = atomic_load_explicit(&tcache_key, memory_order_relaxed);
    uintptr_t size_word, next_word, second, first = at;
    bool complete = false;
    while (at + 16 <= end && read_word(st, at + 8, &size_word)) {
        uintptr_t size = size_word & ~(uintptr_t)7;
        if (size == 16) {
            complete = true;
            break;
        }
        if (size < 32 || size % 16 || size > end - at) break;
        if (at + size + 16 > end) { /* the top chunk: free */
            complete = at + size == end;
            at = end;
            break;
        }
        if (!read_word(st, at + size + 8, &next_word)) break;
        if (fn && (next_word & 1)) {
            size_t i = first_block_from(st, at + 16);
            bool known = i < st->n && st->b[i].addr == at + 16;
            if (!known && st->nsuper) {
                size_t k = first_superblock_from(st, at + 16);
                known = k < st->nsuper && st->super[k].start == at + 16;
            }
            bool cached = key && read_word(st, at + 24, &second) && second == key;
            if (!known && !cached && !in_fast_bin(st, at, size, first, end)) fn(st, at + 16, at + size + 8, ctx);
        }
        at += size;
    }
    *stopped = at;
    return complete;
}

static void scan_chunk_as_root(struct scan_state *st, uintptr_t start, uintptr_t end, void *ctx)
{
    (void)ctx;
    static const int definite = 1;
    st->root_bytes += end - start;
    bool outer = st->allocator_words;
    st->allocator_words = true; /* a chunk's stale links, or a free chunk's (a failed walk) */
    scan_range(st, start, end, mark_word, (void *)&definite);
    st->allocator_words = outer;
    drain_roots(st);
}

/* Attach mode: glibc's main heap as a root, chunk by chunk (walk_heap_chunks), up to its top
 * chunk; anything unexpected, or a fence post: the rest is scanned whole. */
static void scan_main_heap(struct scan_state *st, uintptr_t at, uintptr_t end)
{
    walk_heap_chunks(st, at, end, scan_chunk_as_root, NULL, &at);
    if (at < end) scan_chunk_as_root(st, at, end, NULL);
}

/* Where an arena heap's (arena_heap_at) chunks start: after the heap_info (32 or 48 bytes, by
 * glibc's version) and, in an arena's first heap, the arena itself (struct malloc_state, 2,200
 * bytes, 2,192 before glibc 2.27): the candidate whose walk ends exactly at the heap's used end
 * is the one. 0 when none does. */
static uintptr_t arena_heap_chunks(struct scan_state *st, uintptr_t h, uintptr_t *end)
{
    const uintptr_t *info = (const uintptr_t *)h;
    uintptr_t arena = info[0], starts[2], stopped;
    *end = h + info[2];
    if (arena > h && arena < h + 64) {
        starts[0] = (arena + 2200 + 15) & ~(uintptr_t)15;
        starts[1] = (arena + 2192 + 15) & ~(uintptr_t)15;
    } else {
        starts[0] = h + 48;
        starts[1] = h + 32;
    }
    for (int c = 0; c < 2; c++)
        if (walk_heap_chunks(st, starts[c], *end, NULL, NULL, &stopped)) return starts[c];
    return 0;
}

/* Attach mode: an arena heap as a root, chunk by chunk, as the main heap: the blocks a thread
 * allocated before the shim came live in its arena's heaps, and may be the only ones that
 * point to blocks allocated since. A walk that fails: the used part is scanned whole. */
static void scan_arena_heap(struct scan_state *st, uintptr_t h)
{
    uintptr_t end, stopped, first = arena_heap_chunks(st, h, &end);
    if (first) walk_heap_chunks(st, first, end, scan_chunk_as_root, NULL, &stopped);
    else scan_chunk_as_root(st, h, end, NULL);
}

/* ---- the blocks without a record -------------------------------------------------------
 * In sampling mode the scan knows only the sampled blocks, and attached to a running process
 * only those allocated since, but the program's pointers run through all of them: a known
 * block that only unknown ones point to would be "definitely lost" (in node, ruby or gdb, most
 * of the sampled blocks), or, with the unknown ones taken as roots, "still reachable" even when
 * they are lost themselves (a leaked structure whose few sampled members hide among the
 * rest). So glibc's heaps are walked for the chunks in use that are not known blocks, and
 * these join the scan as blocks without a record (UNRECORDED): the marking goes through them
 * as through any block, a known block only they reach from a lost one is indirectly lost, and
 * they are dropped before the results are written. Their extent is the chunk's, known from its
 * header. Blocks glibc served by mmap (128 KiB on) are not in the heaps: those stay roots, and
 * so does a heap whose walk fails (attach mode; launched, such a heap adds nothing). */

struct chunk_list {
    struct lt_scan_block *out; /* NULL: count only */
    size_t n, cap;
};

static void list_chunk(struct scan_state *st, uintptr_t start, uintptr_t end, void *ctx)
{
    struct chunk_list *list = ctx;
    size_t i = first_block_from(st, start);
    if (i < st->n && st->b[i].addr < end) return; /* holds known blocks: a pool of its own */
    if (list->out && list->n < list->cap)
        list->out[list->n] = (struct lt_scan_block){ .addr = start, .size = end - start, .kind = UNRECORDED };
    list->n++;
}

/* The heaps' unknown chunks, in address order (the mappings are). Only walks that end where
 * the heap ends count: a heap some other allocator shaped (jemalloc's, tcmalloc's) adds none. */
static void list_unrecorded_chunks(struct scan_state *st, struct chunk_list *list)
{
    for (size_t mi = 0; mi < st->nmaps; mi++) {
        const struct mapping *m = &st->maps[mi];
        if (!m->readable || !m->writable) continue;
        uintptr_t stopped;
        if (m->kind == 'h') { /* listed as walked; a walk that does not end right takes none */
            size_t before = list->n;
            if (!walk_heap_chunks(st, m->start, m->end, list_chunk, list, &stopped)) list->n = before;
            continue;
        }
        if (m->kind != 'a') continue;
        struct range heap;
        for (uintptr_t h = (m->start + ARENA_HEAP_SIZE - 1) & ~(ARENA_HEAP_SIZE - 1);
             h < m->end && h >= m->start; h += ARENA_HEAP_SIZE) {
            uintptr_t end, first = arena_heap_at(st, h, m, &heap) ? arena_heap_chunks(st, h, &end) : 0;
            if (first) walk_heap_chunks(st, first, end, list_chunk, list, &stopped);
        }
    }
}

/* The world stopped: the unknown chunks join the sorted blocks, in new arrays (mapped now,
 * after the mappings were read: the scan does not read them). False when there is no memory
 * for them: the scan goes on with the known blocks alone. */
static bool add_unrecorded_chunks(struct scan_state *st)
{
    struct chunk_list count = { NULL, 0, 0 };
    list_unrecorded_chunks(st, &count);
    if (!count.n) return true;
    struct lt_scan *scan = st->scan;
    size_t cap = st->n + count.n + 16;
    size_t blocks_size = cap * sizeof(struct lt_scan_block), cliques_size = cap * sizeof(struct lt_scan_clique);
    size_t stack_cap = 3 * cap + 16;
    struct chunk_list list = { lt_map(count.n * sizeof(struct lt_scan_block)), 0, count.n };
    struct lt_scan_block *blocks = lt_map(blocks_size);
    struct lt_scan_clique *cliques = lt_map(cliques_size);
    uint32_t *stack = lt_map(stack_cap * sizeof(uint32_t));
    if (list.out) list_unrecorded_chunks(st, &list);
    if (!list.out || !blocks || !cliques || !stack || list.n != count.n) {
        scan->unrecorded_missed = true;
        lt_unmap(list.out, count.n * sizeof(struct lt_scan_block));
        lt_unmap(blocks, blocks_size);
        lt_unmap(cliques, cliques_size);
        lt_unmap(stack, stack_cap * sizeof(uint32_t));
        return false;
    }
    size_t i = 0, j = 0, k = 0;
    while (i < st->n || j < list.n)
        blocks[k++] = j == list.n || (i < st->n && st->b[i].addr <= list.out[j].addr) ? st->b[i++] : list.out[j++];
    lt_unmap(list.out, count.n * sizeof(struct lt_scan_block));
    st->retired[st->nretired++] = (struct retired_array){ scan->blocks, scan->blocks_size };
    st->retired[st->nretired++] = (struct retired_array){ scan->cliques, scan->cliques_size };
    st->retired[st->nretired++] = (struct retired_array){ st->stack, st->stack_cap * sizeof(uint32_t) };
    scan->blocks = st->b = blocks;
    scan->cliques = cliques;
    scan->blocks_size = blocks_size;
    scan->cliques_size = cliques_size;
    st->stack = stack;
    st->stack_cap = stack_cap;
    st->n = k;
    scan->unrecorded_blocks = list.n;
    return true;
}

/* After the marking: the unknown chunks leave the results (cliques move with their blocks). */
static void drop_unrecorded_chunks(struct scan_state *st)
{
    size_t kept = 0;
    for (size_t i = 0; i < st->n; i++) {
        if (st->b[i].kind == UNRECORDED) continue;
        if (kept != i) {
            st->b[kept] = st->b[i];
            st->scan->cliques[kept] = st->scan->cliques[i];
        }
        kept++;
    }
    st->n = kept;
}

/* Whether a thread stopped at ip was at a system call instruction (`syscall`, 0f 05): just
 * after it (the call returned or was interrupted) or on it (the kernel moves the thread
 * back onto it to restart the call after our handler). A thread blocked in read() or a
 * futex wait is there, in a libc wrapper that keeps nothing in the red zone below its
 * stack pointer; what lies there is dead stack of the thread's deeper calls before it,
 * the malloc path among them, whose stale copies of block addresses would pass for roots.
 * The code is copied, not read: it may be execute-only (a protection key), or end a page. */
static bool at_syscall_instruction(uintptr_t ip)
{
    uint8_t code[2];
    if (lt_copy_memory(code, ip, 2) && code[0] == 0x0f && code[1] == 0x05) return true;
    return ip >= 2 && lt_copy_memory(code, ip - 2, 2) && code[0] == 0x0f && code[1] == 0x05;
}

/* Whether m is thread t's own stack, whose part below its stack pointer is dead: the main
 * thread's, or one that holds the thread's own struct pthread (glibc puts it at the top of
 * every thread's stack). A stack pointer elsewhere may lie in a stack carved out of a larger
 * mapping (a goroutine's, in Go's heap, beside live objects that hold C pointers): that
 * mapping is scanned whole. A thread that did not stop has no known thread pointer: its
 * stack is taken for its own, but in a Go program. */
static bool is_own_stack(const struct mapping *m, int t, int stopped)
{
    if (m->kind == 's') return true;
    if (t >= stopped) return !lt_go_program;
    uintptr_t tp = parked[t].thread_pointer;
    return tp >= m->start && tp < m->end;
}

static void scan_roots(struct scan_state *st, uintptr_t scanner_sp)
{
    static const int definite = 1;
    void *root = (void *)&definite;
    int stopped = atomic_load(&parked_ready);
    if (stopped > MAX_PARKED) stopped = MAX_PARKED;
    /* A thread that did not stop and runs has a stack we cannot tell from a dead one; one
     * that waits in a system call has its stack pointer in /proc. */
    bool all_stopped = true;
    for (int u = 0; u < nunstopped; u++)
        if (!unstopped[u].sp) all_stopped = false;
    /* Registers of the stopped threads, vector ones included; of the others, those /proc
     * shows: a system call's arguments (a read() into a block may be its only pointer). */
    for (int t = 0; t < stopped; t++) {
        parked[t].go_stack_from = lt_go_live_stack_from(parked[t].regs[13] /* %r14 */, parked[t].sp, parked[t].ip);
        for (int r = 0; r < 16; r++) mark_word(st, parked[t].regs[r], root);
        for (int w = 0; w < parked[t].nvector; w++) mark_word(st, parked[t].vector[w], root);
    }
    for (int u = 0; u < nunstopped; u++)
        for (int r = 0; r < 6; r++) mark_word(st, unstopped[u].args[r], root);
    int nextra = atomic_load(&nextra_roots);
    for (int i = 0; i < nextra && i < MAX_EXTRA_ROOTS; i++) mark_word(st, extra_roots[i], root);
    drain_roots(st);
    /* Attached to a running process, the main heap and the arenas' heaps hold blocks
     * allocated before the shim came, which it does not know: they may point to its blocks.
     * A heap whose walk listed them as blocks without a record (add_unrecorded_chunks) is
     * marked through; one whose walk fails is a root instead. */
    bool heap_is_root = lt_attach_mode();
    for (size_t mi = 0; mi < st->nmaps; mi++) {
        const struct mapping *m = &st->maps[mi];
        st->allocator_words = m->start < st->libc_end && st->libc_start < m->end;
        if (heap_is_root && m->kind == 'h' && m->readable && m->writable) {
            uintptr_t stopped;
            if (!st->unrecorded_added || !walk_heap_chunks(st, m->start, m->end, NULL, NULL, &stopped))
                scan_main_heap(st, m->start, m->end);
            continue;
        }
        if (m->kind == 'h' && m->readable && m->writable) { /* regions' lock: held by lt_scan */
            struct own_break_ctx c = { st, m };
            lt_regions_visit_locked(scan_own_break, &c);
            continue;
        }
        if (!m->readable || !m->writable || m->kind == 'h' || m->kind == 'o') continue;
        /* A thread's stack is scanned from its stack pointer up, not whole. */
        uintptr_t from = m->start;
        bool is_stack = m->kind == 's';
        if (scanner_sp >= m->start && scanner_sp < m->end) {
            from = scanner_sp;
            is_stack = true;
        }
        for (int t = 0; t < stopped + nunstopped; t++) {
            uintptr_t go_from = t < stopped ? parked[t].go_stack_from : 0;
            if (go_from >= m->start && go_from < m->end) { /* a Go thread's own stack (go_exit.c) */
                from = go_from;
                is_stack = true;
                continue;
            }
            uintptr_t sp = t < stopped ? parked[t].sp : unstopped[t - stopped].sp;
            if (sp && sp >= m->start && sp < m->end && is_own_stack(m, t, stopped)) {
                /* A thread that waits in a system call (the unstopped ones with a known
                 * stack pointer all do) has no live red zone. */
                bool at_syscall = t >= stopped || at_syscall_instruction(parked[t].ip);
                uintptr_t low = at_syscall ? sp : sp - RED_ZONE;
                from = low > m->start ? low : m->start;
                is_stack = true;
            }
        }
        struct range cuts[MAX_CUTS];
        unsigned ncuts = 0;
        if (m->kind == 'a') {
            for (uintptr_t h = (m->start + ARENA_HEAP_SIZE - 1) & ~(ARENA_HEAP_SIZE - 1);
                 h < m->end && h >= m->start && ncuts < MAX_CUTS; h += ARENA_HEAP_SIZE)
                if (arena_heap_at(st, h, m, &cuts[ncuts])) {
                    ncuts++;
                    uintptr_t end;
                    if (heap_is_root && (!st->unrecorded_added || !arena_heap_chunks(st, h, &end)))
                        scan_arena_heap(st, h);
                }
            if (!is_stack && all_stopped && ncuts < MAX_CUTS && dead_stack_in(st, m, stopped, cuts, ncuts, &cuts[ncuts]))
                ncuts++;
        }
        scan_root_ranges(st, m, from, cuts, ncuts);
    }
}

static void find_cliques(struct scan_state *st)
{
    for (size_t i = 0; i < st->n; i++) {
        if (st->b[i].state != UNREACHED) continue;
        struct clique c = { i };
        push(st, i);
        while (st->depth) {
            const struct lt_scan_block *b = &st->b[st->stack[--st->depth]];
            scan_block_contents(st, b, clique_word, &c);
        }
    }
}

/* ---- snapshot ------------------------------------------------------------------------------
 * The block tables stay locked for the whole scan, so the snapshot keeps (address, entry)
 * pairs: 16 bytes a block to sort rather than the 32-byte scan records. The pairs and the
 * sort's second array are the two halves of the records' own memory, and the records are
 * filled from the sorted pairs in place, in address order: no other array in proportion to
 * the blocks is written (fresh memory costs page faults and the kernel's zeroing: at 10 M
 * blocks, more than the sort itself). */
struct sort_pair {
    uintptr_t addr;
    const struct lt_block *blk;
};
_Static_assert(2 * sizeof(struct sort_pair) == sizeof(struct lt_scan_block), "two pairs a record");

struct snapshot_ctx {
    struct sort_pair *pairs;
    size_t n, cap;
    uintptr_t min, max; /* of the addresses: the sort looks only at the bits that differ */
};

static void take_block(const struct lt_block *blk, void *ctx)
{
    struct snapshot_ctx *s = ctx;
    if (s->n == s->cap) return;
    s->pairs[s->n++] = (struct sort_pair){ blk->addr, blk };
    if (blk->addr < s->min) s->min = blk->addr;
    if (blk->addr > s->max) s->max = blk->addr;
}

static void fill_block(struct lt_scan_block *b, const struct lt_block *blk)
{
    *b = (struct lt_scan_block){ .addr = blk->addr, .size = lt_block_size(blk),
                                 .stack_id = blk->stack_id, .time_ms = blk->time_ms,
                                 .generation = (uint16_t)lt_block_generation(blk),
                                 .kind = (uint8_t)lt_block_kind(blk) };
}

/* pre: the n sorted pairs fill the second half of the array of cap records `blocks` (from
 * byte 16 cap on), n <= cap. Record i overwrites only pairs before pair i + 1 (its bytes end
 * at 32 i + 32 <= 16 cap + 16 (i + 1)), and pair i is read before record i is written. */
static void fill_blocks_in_place(struct lt_scan_block *blocks, const struct sort_pair *sorted, size_t n)
{
    enum { AHEAD = 32 }; /* the table entries are read in random order: ask for them early */
    for (size_t i = 0; i < n; i++) {
        struct sort_pair p;
        if (i + AHEAD < n) __builtin_prefetch(sorted[i + AHEAD].blk);
        memcpy(&p, &sorted[i], sizeof p);
        fill_block(&blocks[i], p.blk);
    }
}

/* pre: st->b sorted by address. Moves the superblocks (above) out of st->b into st->super.
 * Only called when annotated blocks exist; a heap block is one when an annotated block starts
 * inside it (blocks at its own address may sort on either side of it). */
#define SUPERBLOCK 0xff
static void split_superblocks(struct scan_state *st)
{
    for (size_t i = 0; i < st->n; i++) {
        struct lt_scan_block *b = &st->b[i];
        if (lt_kind_is_annotated(b->kind)) continue;
        uintptr_t end = b->addr + (b->size ? b->size : 1);
        bool holds = false;
        for (size_t j = i; j-- > 0 && st->b[j].addr == b->addr && !holds;)
            holds = lt_kind_is_annotated(st->b[j].kind);
        for (size_t j = i + 1; j < st->n && st->b[j].addr < end && !holds; j++)
            holds = lt_kind_is_annotated(st->b[j].kind);
        if (holds) b->state = SUPERBLOCK;
    }
    size_t kept = 0;
    for (size_t i = 0; i < st->n; i++) {
        if (st->b[i].state == SUPERBLOCK) {
            uintptr_t start = st->b[i].addr;
            st->super[st->nsuper++] = (struct superblock){ start, start + (st->b[i].size ? st->b[i].size : 1) };
        } else {
            st->b[kept++] = st->b[i];
        }
    }
    st->n = kept;
}

/* LSD radix sort of the pairs by address, RADIX_BITS a pass over the bits in which the
 * addresses differ (address - min: 3 passes for a heap of up to 8 GiB). Every pass's counts
 * come from one read of the input; a pass whose digit every address shares is skipped. The
 * two arrays take turns as source and destination; returns the one that holds the result. */
#define RADIX_BITS 11
#define RADIX (1u << RADIX_BITS)
#define MAX_PASSES ((64 + RADIX_BITS - 1) / RADIX_BITS)
static struct sort_pair *sort_by_address(struct sort_pair *p, struct sort_pair *tmp, size_t n,
                                         uintptr_t min, uintptr_t max)
{
    unsigned passes = 0;
    for (uintptr_t span = max - min; span; span >>= RADIX_BITS) passes++;
    static size_t count[MAX_PASSES][RADIX]; /* guarded by scan_lock, like every scan */
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < n; i++) {
        uintptr_t key = p[i].addr - min;
        for (unsigned k = 0; k < passes; k++) count[k][(key >> (k * RADIX_BITS)) & (RADIX - 1)]++;
    }
    for (unsigned k = 0; k < passes; k++) {
        size_t *c = count[k], at = 0;
        bool constant = false;
        for (unsigned d = 0; d < RADIX && !constant; d++) constant = c[d] == n;
        if (constant) continue;
        for (unsigned d = 0; d < RADIX; d++) {
            size_t here = c[d];
            c[d] = at;
            at += here;
        }
        unsigned shift = k * RADIX_BITS;
        for (size_t i = 0; i < n; i++) tmp[c[((p[i].addr - min) >> shift) & (RADIX - 1)]++] = p[i];
        struct sort_pair *swap = p;
        p = tmp;
        tmp = swap;
    }
    return p;
}

/* [lo, hi): where the blocks lie (mark_word's first test). */
static void find_bounds(struct scan_state *st)
{
    st->lo = st->n ? st->b[0].addr : 0;
    st->hi = st->lo;
    for (size_t i = 0; i < st->n; i++) { /* a big block early may end after a later start */
        uintptr_t e = st->b[i].addr + (st->b[i].size ? st->b[i].size : 1);
        if (e > st->hi) st->hi = e;
    }
}

static uint8_t leak_kind(uint8_t state)
{
    switch (state) {
    case REACHABLE: return LT_LEAK_STILL_REACHABLE;
    case POSSIBLE: return LT_LEAK_POSSIBLY_LOST;
    case INDIRECT: return LT_LEAK_INDIRECTLY_LOST;
    default: return LT_LEAK_DEFINITELY_LOST;
    }
}

int lt_scan_run(struct lt_scan *scan, uintptr_t scanner_sp, bool keep_stopped)
{
    /* A signal handler (a fatal signal's capture) on a thread inside the annotation table,
     * or holding a shard lock of the block table (the recording path runs outside lt_busy,
     * so that handlers' allocations are seen), would wait for itself: no scan then (the
     * capture is written without one, skipping the locked shard, and says so). */
    if (lt_annotations_held_here() || lt_blocks_held_here()) return -EDEADLK;
    uint64_t t0 = lt_now_ns();
    scan->unrecorded_blocks = 0;
    scan->unrecorded_missed = false;
    bool holding_control = lt_control_hold_still();
    pthread_mutex_lock(&scan_lock);
    struct scan_state st = { .scan = scan, .own_thread_pointer = (uintptr_t)__builtin_thread_pointer(),
                             .memory_id = lt_own_memory_id() };
    struct dl_find_object libc; /* lock-free and async-signal-safe */
    if (_dl_find_object((void *)(uintptr_t)lt_libc_address(), &libc) == 0) {
        st.libc_start = (uintptr_t)libc.dlfo_map_start;
        st.libc_end = (uintptr_t)libc.dlfo_map_end;
    }
    int err = 0;

    lt_regions_lock();
    lt_blocks_lock_all();
    lt_annotations_lock();
    size_t annotated = lt_annotations_count_locked(); /* with pools: an upper bound */
    size_t cap = lt_blocks_count_locked() + annotated + 16;
    scan->blocks_size = cap * sizeof(struct lt_scan_block);
    scan->cliques_size = cap * sizeof(struct lt_scan_clique);
    scan->blocks = lt_map(scan->blocks_size);
    scan->cliques = lt_map(scan->cliques_size); /* zero; only cliques' leaders touch it */
    st.stack_cap = 3 * cap + 16;
    st.stack = lt_map(st.stack_cap * sizeof(uint32_t));
    st.maps = lt_map(MAX_MAPPINGS * sizeof(struct mapping));
    st.buf = lt_map(READ_CHUNK);
    st.pagemap = lt_map(PAGEMAP_BATCH * sizeof(uint64_t));
    st.pagemap_fd = st.pagemap ? lt_open_proc("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) : -1;
    char *maps_text = lt_map(MAPS_BUF);
    st.own_start = lt_map(2 * MAX_OWN * sizeof(uintptr_t));
    if (st.own_start) st.own_end = st.own_start + MAX_OWN;
    if (annotated) st.super = lt_map(cap * sizeof(struct superblock));
    /* Goroutines made, and stacks freed, until the world stops beyond these are not looked
     * at: scanned whole. A dead part for each thread's alternate signal stack. */
    size_t goroutines = lt_go_goroutines();
    st.dead_cap = MAX_PARKED + 1 + (goroutines ? goroutines + lt_go_free_stacks() + 256 : 0);
    st.dead = lt_map(st.dead_cap * sizeof *st.dead);
    if ((annotated && !st.super) || !scan->blocks || !scan->cliques || !st.stack || !st.maps ||
        !st.buf || !maps_text || !st.own_start) {
        err = -ENOMEM;
        goto unlock;
    }
    struct sort_pair *pairs = (struct sort_pair *)scan->blocks, *upper = pairs + cap;
    struct snapshot_ctx snap = { pairs, 0, cap, UINTPTR_MAX, 0 };
    lt_blocks_visit_locked(take_block, &snap);
    size_t heap_blocks = snap.n;
    lt_annotations_visit_locked(take_block, &snap);
    st.n = snap.n;
    struct sort_pair *sorted = st.n ? sort_by_address(pairs, upper, st.n, snap.min, snap.max) : upper;
    if (sorted != upper) memcpy(upper, sorted, st.n * sizeof *sorted);
    fill_blocks_in_place(scan->blocks, upper, st.n);
    st.b = scan->blocks;
    if (st.n > heap_blocks) split_superblocks(&st);
    find_bounds(&st);
    /* Sampling mode and attach mode add the blocks without a record once the world is
     * stopped, and index them all then. The index is mapped either before the mappings are
     * read or after: never listed in them, it is not scanned. */
    bool with_unrecorded = lt_sample_mean_bytes != 0 || lt_attach_mode();
    if (!with_unrecorded) index_blocks(&st);

    stop_world(scan);
    st.nmaps = read_maps(st.maps, MAX_MAPPINGS, maps_text);
    if (st.nmaps == 0) {
        /* No memory map, no roots: every block would read as lost. /proc/self/maps could not
         * be opened: no descriptor left (a program at its RLIMIT_NOFILE), or no /proc. */
        if (!keep_stopped) resume_world();
        err = -EMFILE;
        goto unlock;
    }
    if (with_unrecorded) {
        st.unrecorded_added = add_unrecorded_chunks(&st);
        find_bounds(&st);
        index_blocks(&st);
    }
    st.nown = lt_own_mappings(st.own_start, st.own_end, MAX_OWN);
    if (st.dead) dead_stack_parts(&st, scanner_sp);
    scan_roots(&st, scanner_sp);
    find_cliques(&st);
    if (with_unrecorded) drop_unrecorded_chunks(&st);
    /* At exit the other threads stay parked until the process ends: resumed, they would see
     * their pause(), poll() or sleep interrupted (EINTR) and could run on into exit paths of
     * their own while the program is already exiting. */
    if (!keep_stopped) resume_world();

    for (size_t i = 0; i < st.n; i++) st.b[i].leak_kind = leak_kind(st.b[i].state);
    scan->count = st.n;
    scan->bytes_scanned = st.bytes_scanned;
    scan->root_bytes = st.root_bytes;
unlock:
    lt_annotations_unlock();
    lt_blocks_unlock_all();
    lt_regions_unlock();
    unindex_blocks(&st);
    lt_unmap(st.stack, st.stack_cap * sizeof(uint32_t));
    lt_unmap(st.maps, MAX_MAPPINGS * sizeof(struct mapping));
    lt_unmap(st.buf, READ_CHUNK);
    if (st.pagemap_fd >= 0) close(st.pagemap_fd);
    lt_unmap(st.pagemap, PAGEMAP_BATCH * sizeof(uint64_t));
    lt_unmap(maps_text, MAPS_BUF);
    if (st.own_start) lt_unmap(st.own_start, 2 * MAX_OWN * sizeof(uintptr_t));
    if (st.super) lt_unmap(st.super, cap * sizeof(struct superblock));
    if (st.dead) lt_unmap(st.dead, st.dead_cap * sizeof *st.dead);
    for (unsigned r = 0; r < st.nretired; r++) lt_unmap(st.retired[r].p, st.retired[r].size);
    if (err) lt_scan_release(scan);
    pthread_mutex_unlock(&scan_lock);
    /* At exit the control thread stays held too: the final capture follows. */
    if (holding_control && !keep_stopped) lt_control_let_go();
    scan->duration_ns = lt_now_ns() - t0;
    return err;
}

void lt_scan_release(struct lt_scan *scan)
{
    lt_unmap(scan->blocks, scan->blocks_size);
    lt_unmap(scan->cliques, scan->cliques_size);
    scan->blocks = NULL;
    scan->cliques = NULL;
    scan->count = 0;
}
