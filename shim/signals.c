/* A capture even when a signal kills the program, without changing what the program does
 * with its signals.
 *
 * Where the program leaves a signal whose default action ends the process at SIG_DFL, the
 * shim puts a handler of its own, which writes the final capture and then lets the same signal
 * kill the process (core dump and the parent's WIFSIGNALED as without us). The program never
 * sees that handler: sigaction() and signal() (and bsd_signal, sysv_signal, sigset) report
 * SIG_DFL for it, and the program's own handler or SIG_IGN simply replaces it. So CPython,
 * which installs its SIGINT handler only where it finds SIG_DFL, gets its KeyboardInterrupt.
 * A program that puts the default back (CPython before it re-raises a Ctrl-C nobody caught,
 * a cleanup handler's `signal(sig, SIG_DFL); raise(sig)`) gets the stand-in back, as does a
 * handler installed with SA_RESETHAND (a crash reporter's; sysv_signal's) once it fires: the
 * kernel would put SIG_DFL back itself at delivery, unseen, so the shim installs the handler
 * without the flag and puts the stand-in back as the signal arrives (run_once below).
 * What is not virtualized: a raw rt_sigaction system call, and /proc/PID/status's SigCgt.
 *
 * A stack overflow raises SIGSEGV with no room left on the stack for a handler: the kernel
 * then kills at once, and there was no capture (valgrind reports those leaks). So each thread
 * gets an alternate signal stack of the shim's where the program gave it none (the main thread
 * at start-up, the others at their first allocation or free), on which the stand-in
 * (SA_ONSTACK) runs. The program does not see it either: sigaltstack() reports
 * none, and one the program sets replaces it. */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <time.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "hooked_functions.h"
#include "shim.h"

typedef void (*handler_fn)(int);
typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

/* Resolved at install (start-up, single-threaded) or on the first call (attach mode); a
 * racing second resolution stores the same values. */
static _Atomic(sigaction_fn) real_sigaction;
static _Atomic(handler_fn (*)(int, handler_fn)) real_signal, real_bsd_signal, real_sigset;

/* ours[sig]: the shim's handler stands in for the program's SIG_DFL. Set at install, cleared
 * by whichever thread replaces the disposition (atomics: the program may race itself). */
static _Atomic bool ours[_NSIG];
/* Set by lt_signals_install, at start-up; cleared for good by lt_signals_uninstall. */
static bool stand_ins_wanted;

/* With the real-time signals, SIGRTMIN to SIGRTMAX: each one's default action ends the process. */
static const int fatal_signals[] = {
    SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGUSR1, SIGSEGV,
    SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF,
    SIGIO, SIGPWR, SIGSYS,
};
#define FATAL_COUNT (sizeof fatal_signals / sizeof *fatal_signals)

/* The i-th signal whose default action ends the process, i < fatal_count(). */
static int fatal_count(void) { return (int)FATAL_COUNT + SIGRTMAX - SIGRTMIN + 1; }
static int fatal_signal(int i) { return i < (int)FATAL_COUNT ? fatal_signals[i] : SIGRTMIN + i - (int)FATAL_COUNT; }

/* The program's action for a signal it gave an SA_RESETHAND handler, while run_once stands
 * for it. Written by the thread that installs it, before run_once goes in; read by run_once
 * (a program that races itself on one signal gets one of its two actions). */
static struct sigaction one_shot[_NSIG];
/* The program's action for a signal the launcher may pass on (forwarded.c), while relay
 * stands for it. The same rules as one_shot. */
static struct sigaction relayed[_NSIG];

static sigaction_fn sigaction_real(void)
{
    sigaction_fn f = atomic_load(&real_sigaction);
    if (!f) {
        f = (sigaction_fn)lt_next_symbol("sigaction");
        atomic_store(&real_sigaction, f);
    }
    return f;
}

static bool is_ours(int sig) { return sig > 0 && sig < _NSIG && atomic_load(&ours[sig]); }

static bool is_fatal(int sig)
{
    if (sig >= SIGRTMIN && sig <= SIGRTMAX) return true;
    for (size_t i = 0; i < FATAL_COUNT; i++)
        if (fatal_signals[i] == sig) return true;
    return false;
}

/* SIG_DFL, whatever the flags: with SA_SIGINFO the same word is sa_sigaction (Go's runtime
 * puts the default back so before it re-raises a signal it does not handle). */
static bool is_default(const struct sigaction *sa) { return sa->sa_handler == SIG_DFL; }

/* Only in the traced process itself: a vfork child shares `ours` with its parent, not its
 * dispositions, and an untraced child writes no capture. */
static bool may_stand_in(int sig)
{
    return stand_ins_wanted && is_fatal(sig) && getpid() == atomic_load(&lt_owner_pid);
}

static void on_fatal_signal(int sig, siginfo_t *info, void *context);
static int raw_sigaltstack(const stack_t *ss, stack_t *old);

static struct sigaction stand_in_action(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fatal_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    sigdelset(&sa.sa_mask, lt_scan_signal()); /* a scan elsewhere must be able to park us */
    return sa;
}

/* Our handler in place of SIG_DFL; `old` (may be NULL) gets what was there. */
static int stand_in(int sig, struct sigaction *old)
{
    struct sigaction sa = stand_in_action();
    atomic_store(&ours[sig], true);
    int r = sigaction_real()(sig, &sa, old);
    if (r != 0) atomic_store(&ours[sig], false);
    return r;
}

static void back_to_default(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    atomic_store(&ours[sig], false);
    sigaction_real()(sig, &dfl, NULL);
}

/* Faults that happen again when the handler returns: the default action then takes the
 * process at the faulting instruction, as it would have without us. */
static bool refaults(int sig, const siginfo_t *info)
{
    return info && info->si_code > 0 && (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE);
}

/* Where the program's own stack begins when this handler runs on an alternate stack below
 * a handler of the program's that raised the signal again (Python's faulthandler does): not
 * on the alternate stack, but where the kernel found the thread when it first switched to it
 * (else the scan reads the thread's own stack whole, dead frames included). Each frame the
 * kernel writes on the alternate stack starts with the handler's return address, libc's
 * signal trampoline (this handler's own), followed by the ucontext, whose uc_stack names the
 * alternate stack; the highest such frame is the outermost. `sp`, when no frame is found.
 * `ss`: what sigaltstack() said in the handler, before it left the stack the signal found. */
static uintptr_t sp_before_alternate_stack(uintptr_t sp, uintptr_t trampoline, const stack_t ss)
{
    if (!(ss.ss_flags & SS_ONSTACK)) return sp;
    uintptr_t lo = (uintptr_t)ss.ss_sp, hi = lo + ss.ss_size;
    if (sp < lo || sp >= hi || hi - lo < sizeof(ucontext_t) + 8) return sp;
    for (uintptr_t at = (hi - sizeof(ucontext_t) - 8) & ~(uintptr_t)7; at >= sp && at >= lo; at -= 8) {
        if (*(const uintptr_t *)at != trampoline) continue;
        const ucontext_t *uc = (const ucontext_t *)(at + 8);
        if ((uintptr_t)uc->uc_stack.ss_sp != lo || uc->uc_stack.ss_size != ss.ss_size) continue;
        const greg_t *r = uc->uc_mcontext.gregs;
        uintptr_t outer = (uintptr_t)r[REG_RSP];
        if (outer >= lo && outer < hi) return sp; /* the alternate stack was in use already */
        return lt_unwind_roots_start((uintptr_t)r[REG_RIP], outer, (uintptr_t)r[REG_RBP]);
    }
    return sp;
}

struct fatal_signal {
    int sig;
    siginfo_t *info; /* the kernel's, which forwarded.c may rewrite */
    const ucontext_t *uc;
    uintptr_t trampoline; /* the handler's return address */
    stack_t ss;           /* the alternate stack, as the handler found it */
};

/* A signal sent to the process (kill, the terminal, the launcher's relay, a timer) that finds
 * its thread in the shim's own work (lt_busy, the regions lock) or inside the tables (a hook
 * between lt_tables_enter and lt_tables_leave) got a capture without the scan, which cannot
 * take a shard this thread is half-way through changing (a SIGTERM to a program that allocates
 * all the time lost its leak kinds in 20 of 70 runs), or a scan that missed the block a malloc
 * hook had just recorded, whose address only the hook's frames held (the roots begin at the
 * program's own frame): definitely lost. A program's handler behind relay or run_once that
 * ends the process (exit, _exit) met the same. Such a signal is put off instead: a one-shot
 * timer of the thread's sends it again a little later, when the thread is back in the program,
 * and the handler looks again (the program's handler then gets the first copy's siginfo).
 * Those windows run none of the program's code, so a put-off signal never interrupts a system
 * call of the program's (no EINTR it would not have seen). The thread raises it itself as it
 * leaves the tables (lt_signals_raise_put_off, from lt_tables_leave): the signal arrives as
 * the hook ends, as natively it would have on the hook's return. The timer was the only way
 * back before, and the busier the machine the later it came: a program's SIGALRM handler ran
 * after the program had stopped its timer and returned from main (pool_signals.c's, under
 * load). The timer stays for the shim's own work (lt_busy, the regions lock), which leaves no
 * table. After RETRY_BUDGET_US of retries it goes ahead as before. Faults are never put off:
 * they happen again at once. Per thread, written only by the thread's own handlers (stand-in,
 * relay, run_once; the signal is blocked in them) and by the thread as it leaves the tables. */
#define RETRY_FIRST_US 20
#define RETRY_MAX_US 5000
#define RETRY_BUDGET_US 500000
struct put_off {
    int sig;         /* the signal put off, 0 when none */
    bool raised;     /* the thread sent `sig` to itself (tgkill) as it left the tables */
    siginfo_t info;  /* its first copy's */
    int timer;       /* the kernel's timer id, when timer_sig is not 0 */
    int timer_sig;   /* the signal the timer sends (fixed when it is made) */
    long next_us, waited_us;
};
static __thread struct put_off put_off __attribute__((tls_model("initial-exec")));
__thread bool lt_signal_put_off __attribute__((tls_model("initial-exec")));

static bool from_our_timer(const siginfo_t *info)
{
    return info && info->si_code == SI_TIMER && put_off.timer_sig != 0 &&
           info->si_timerid == put_off.timer && info->si_value.sival_ptr == &put_off;
}

/* The copy lt_signals_raise_put_off sent (blocked in a handler of the program's that called
 * into the shim, it comes when that handler returns). */
static bool raised_by_us(const siginfo_t *info)
{
    return put_off.raised && info && info->si_code == SI_TKILL && info->si_pid == getpid();
}

/* Sent rather than caused by what the thread was doing: not a fault, nor abort()'s SIGABRT
 * (glibc's realloc, called inside the tables, aborts on a corrupt heap; put off, abort's second
 * raise would kill with no capture at all). */
static bool asynchronous(int sig, const siginfo_t *info)
{
    if (!info || sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
        sig == SIGTRAP || sig == SIGSYS || sig == SIGABRT)
        return false;
    return info->si_code <= 0 || info->si_code == SI_KERNEL;
}

static bool interrupted_the_shim(void)
{
    return lt_busy != 0 || lt_tables_inside_here() || lt_holds_tables_here();
}

/* From lt_tables_leave, when a signal was put off on this thread: sent again now, unless the
 * thread is still in the shim. */
void lt_signals_raise_put_off(void)
{
    if (!put_off.sig) {
        lt_signal_put_off = false;
        return;
    }
    if (interrupted_the_shim()) return; /* still inside: the next leave, or the timer */
    /* A vfork child runs on its parent's thread-locals: the signal was the parent's. */
    if (getpid() != atomic_load(&lt_owner_pid)) return;
    lt_signal_put_off = false;
    put_off.raised = true;
    lt_raw_syscall(SYS_tgkill, getpid(), lt_raw_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0), put_off.sig, 0, 0, 0);
}

/* A child of fork: the parent's retry is the parent's, and its timer id, in the child, may
 * name a timer the program makes there. */
void lt_signals_after_fork_child(void)
{
    memset(&put_off, 0, sizeof put_off);
    lt_signal_put_off = false;
}

/* Arms the thread's timer to send `sig` again; false once the budget is spent or without a
 * timer (the caller goes ahead then). */
static bool put_off_once_more(int sig, const siginfo_t *info)
{
    if (put_off.sig != sig) {
        put_off.sig = sig;
        put_off.info = *info;
        put_off.next_us = RETRY_FIRST_US;
        put_off.waited_us = 0;
    }
    if (put_off.waited_us >= RETRY_BUDGET_US) return false;
    if (put_off.timer_sig != sig) {
        if (put_off.timer_sig) lt_raw_syscall(SYS_timer_delete, put_off.timer, 0, 0, 0, 0, 0);
        put_off.timer_sig = 0;
        struct sigevent ev;
        memset(&ev, 0, sizeof ev);
        ev.sigev_notify = SIGEV_THREAD_ID;
        ev.sigev_signo = sig;
        ev.sigev_value.sival_ptr = &put_off;
        ev._sigev_un._tid = (pid_t)lt_raw_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0);
        if (lt_raw_syscall(SYS_timer_create, CLOCK_MONOTONIC, (long)&ev, (long)&put_off.timer, 0, 0, 0) != 0)
            return false;
        put_off.timer_sig = sig;
    }
    struct itimerspec when = { { 0, 0 }, { 0, put_off.next_us * 1000 } };
    if (lt_raw_syscall(SYS_timer_settime, put_off.timer, 0, (long)&when, 0, 0, 0) != 0) return false;
    put_off.waited_us += put_off.next_us;
    if ((put_off.next_us *= 2) > RETRY_MAX_US) put_off.next_us = RETRY_MAX_US;
    lt_signal_put_off = true;
    return true;
}

/* What a delivery of `sig` to the stand-in, relay or run_once is to act on: NULL when there is
 * nothing to do now (the launcher's second copy, forwarded.c; a signal put off; a retry no
 * longer wanted), else its siginfo (for a retry, the first copy's). */
static siginfo_t *to_act_on(int sig, siginfo_t *info)
{
    bool raised = raised_by_us(info);
    if (raised) put_off.raised = false;
    bool retry = raised || from_our_timer(info);
    if (retry && put_off.sig != sig) return NULL; /* armed before a copy got through */
    /* The second copy of a signal the launcher passed on, after the program's handler had the
     * first (make's, before it kills its jobs and re-raises): the program had it already. */
    if (!retry && lt_forwarded_drops(sig, info)) return NULL;
    /* One signal at a time: another one that comes meanwhile is acted on at once, as before. */
    if ((retry || asynchronous(sig, info)) && (put_off.sig == 0 || put_off.sig == sig) &&
        interrupted_the_shim() && !lt_final_writing_here() && put_off_once_more(sig, info))
        return NULL;
    if (put_off.sig == sig) {
        /* Acted on now: a retry still armed is not wanted. The timer stays, one a thread:
         * deleted, an expiry already queued would come as a new signal; disarmed, it comes as
         * a stale retry, dropped above. Without a timer (timer_create failed) nothing is
         * disarmed: timer id 0 may be the program's. */
        if (retry) info = &put_off.info;
        put_off.sig = 0;
        lt_signal_put_off = false;
        struct itimerspec never;
        memset(&never, 0, sizeof never);
        if (put_off.timer_sig) lt_raw_syscall(SYS_timer_settime, put_off.timer, 0, (long)&never, 0, 0, 0);
    }
    return info;
}

/* Sends `sig` to this thread, to end it by the default action (now, or once the handler it
 * is blocked in returns). A copy already pending would swallow it, a standard signal being
 * queued once, and that copy may be our timer's retry, queued just before the retry was
 * disarmed: Linux (6.13 on) drops the signal of a timer re-armed or disarmed since it was
 * queued, and the program lived on after its SIGTERM. The pending copies go first. */
static void raise_for_good(int sig)
{
    sigset_t just;
    sigemptyset(&just);
    sigaddset(&just, sig);
    struct timespec now = { 0, 0 };
    while (lt_raw_syscall(SYS_rt_sigtimedwait, (long)&just, 0, (long)&now, _NSIG / 8, 0, 0) == sig) {
    }
    lt_raw_syscall(SYS_tgkill, getpid(), lt_raw_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0), sig, 0, 0, 0);
}

static void handle_fatal_signal(void *arg)
{
    const struct fatal_signal *f = arg;
    int sig = f->sig;
    const siginfo_t *info = to_act_on(sig, f->info);
    if (!info) return;
    const ucontext_t *uc = f->uc;
    bool in_shim = lt_busy != 0 || lt_in_regions != 0;
    const greg_t *r = uc->uc_mcontext.gregs;
    uintptr_t program_sp = lt_unwind_roots_start((uintptr_t)r[REG_RIP], (uintptr_t)r[REG_RSP], (uintptr_t)r[REG_RBP]);
    program_sp = sp_before_alternate_stack(program_sp, f->trampoline, f->ss);
    if (!in_shim) { /* the interrupted registers, as valgrind reads a thread's (exits.c) */
        static const int registers[] = { REG_RAX, REG_RBX, REG_RCX, REG_RDX, REG_RSI, REG_RDI,
                                         REG_RBP, REG_R8, REG_R9, REG_R10, REG_R11, REG_R12,
                                         REG_R13, REG_R14, REG_R15 };
        uintptr_t values[sizeof registers / sizeof *registers];
        for (size_t i = 0; i < sizeof registers / sizeof *registers; i++)
            values[i] = (uintptr_t)uc->uc_mcontext.gregs[registers[i]];
        lt_scan_add_roots(values, (int)(sizeof values / sizeof *values));
    }
    const struct lt_fatal *fatal = lt_fatal_describe(sig, info, uc, interrupted_the_shim());
    if (!lt_final_on_signal(sig, program_sp, in_shim, refaults(sig, info), fatal))
        return; /* it came during this thread's final capture, which ends with it (lifecycle.c) */
    back_to_default(sig);
    if (refaults(sig, info)) return;
    /* Pending until this handler returns (the signal is blocked in it), then fatal. */
    raise_for_good(sig);
}

/* Runs on whatever stack the signal found: an alternate stack of the program's may have only
 * a few hundred bytes left (a handler of its own on it raised this signal, and the kernel's
 * frames grow with the CPU's vector state: 12 KiB each on a CPU with AMX), so everything,
 * the unwinding of the interrupted frames included, runs on a stack of the shim's. */
static void on_fatal_signal(int sig, siginfo_t *info, void *context)
{
    struct fatal_signal f = { sig, info, context, (uintptr_t)__builtin_return_address(0), { 0 } };
    if (raw_sigaltstack(NULL, &f.ss) != 0) f.ss.ss_flags = SS_DISABLE;
    lt_on_own_stack(handle_fatal_signal, &f);
}

bool lt_signals_stands_in(uintptr_t handler) { return handler == (uintptr_t)on_fatal_signal; }

/* The shim stops for good (a seccomp filter is coming): the stand-ins go, SIG_DFL is back. */
void lt_signals_uninstall(void)
{
    stand_ins_wanted = false;
    for (int i = 0; i < fatal_count(); i++)
        if (is_ours(fatal_signal(i))) back_to_default(fatal_signal(i));
}

void lt_signals_die_of(int sig)
{
    back_to_default(sig);
    raise_for_good(sig);
}

/* ---- the threads' alternate signal stacks -------------------------------------------------- */
/* Roomy: a handler of the program's with SA_ONSTACK (and no stack of its own) runs there too,
 * where it would have run on the thread's stack; pages are touched only as used, and the
 * capture itself runs on a stack of its own (own_stack.c). */
#define OWN_SIGNAL_STACK_SIZE (256u * 1024)
#define THREAD_STACKS 1024u      /* slots; a thread with none free gets no stack */
#define THREAD_STACK_PROBES 8u

/* A thread's stack lives in a slot keyed by its thread pointer (shim.h, lt_thread_home) and is
 * kept when the thread ends: the thread that later gets the same control block takes the slot
 * and its stack back, so threads that come and go do not pile up mappings (20,000 short-lived
 * threads: 7 more mmaps; a slot for every new thread, as the registry of threads gives them
 * out, reserved 2 GiB of address space). */
struct thread_stack {
    _Atomic uintptr_t owner;
    _Atomic(void *) stack;    /* lt_map_once'd by the first owner */
};
/* Mapped at start-up (one thread) when threads get stacks, never unmapped (a thread's stack
 * must outlive the tables: it stays the kernel's alternate stack for that thread). */
static struct thread_stack *thread_stacks;
/* The stack the shim gave this thread, which sigaltstack() reports as none. */
static __thread void *my_signal_stack __attribute__((tls_model("initial-exec")));

static int raw_sigaltstack(const stack_t *ss, stack_t *old)
{
    return (int)lt_as_libc_returns(lt_raw_syscall(SYS_sigaltstack, (long)ss, (long)old, 0, 0, 0, 0));
}

/* At start-up of a preloaded shim, on the main thread. Not for Go's runtime, which reads the
 * signal stack with a raw system call and would take ours for one of its own. Not in attach
 * mode either: the stacks would have to be taken back at detach, from every thread. */
void lt_signals_give_threads_stacks(void)
{
    if (lt_go_program) return;
    thread_stacks = lt_map(THREAD_STACKS * sizeof *thread_stacks);
    lt_signals_give_this_thread_a_stack();
}

/* A thread's first entry into the tables, when it takes its slot in the registry of threads
 * (inflight.c: its first allocation or free; in sampling mode its first sampling decision),
 * and the main thread at start-up: a stack where the thread has none (the kernel starts every
 * thread without one). Only system calls: safe inside a hook and in a signal handler. */
void lt_signals_give_this_thread_a_stack(void)
{
    stack_t current;
    if (!thread_stacks || my_signal_stack) return;
    if (raw_sigaltstack(NULL, &current) != 0 || !(current.ss_flags & SS_DISABLE)) return;
    uintptr_t tp = lt_thread_pointer();
    size_t home = lt_thread_home(tp, THREAD_STACKS);
    for (unsigned i = 0; i < THREAD_STACK_PROBES; i++) {
        struct thread_stack *slot = &thread_stacks[(home + i) % THREAD_STACKS];
        uintptr_t owner = atomic_load_explicit(&slot->owner, memory_order_relaxed);
        if (owner != tp && !(owner == 0 && atomic_compare_exchange_strong(&slot->owner, &owner, tp)))
            continue;
        void *stack = lt_map_once(&slot->stack, OWN_SIGNAL_STACK_SIZE);
        stack_t ss = { .ss_sp = stack, .ss_flags = 0, .ss_size = OWN_SIGNAL_STACK_SIZE };
        if (stack && raw_sigaltstack(&ss, NULL) == 0) my_signal_stack = stack;
        return;
    }
}

/* The stack the kernel reports is the calling thread's (it keeps one for each): the shim's is
 * reported as none. */
int lt_hook_sigaltstack(const stack_t *ss, stack_t *old)
{
    int r = raw_sigaltstack(ss, old);
    if (r == 0 && old && my_signal_stack && old->ss_sp == my_signal_stack) {
        memset(old, 0, sizeof *old);
        old->ss_flags = SS_DISABLE;
    }
    return r;
}

void lt_signals_install(void)
{
    sigaction_fn act = sigaction_real();
    if (!act) return;
    stand_ins_wanted = true;
    for (int i = 0; i < fatal_count(); i++) {
        int sig = fatal_signal(i);
        struct sigaction old;
        /* Only where the program left the default action: SIG_IGN stays ignored. */
        if (act(sig, NULL, &old) != 0 || !is_default(&old)) continue;
        stand_in(sig, NULL);
    }
}

/* ---- what the program sees --------------------------------------------------------------- */
/* The scan's handler (scan.c) on its signal is reported as the default: the program never
 * sees it, and a handler of its own simply replaces it (the next scan takes another signal). */
static void hide_scan_handler(struct sigaction *old)
{
    if (old && (void *)old->sa_sigaction == lt_scan_handler()) {
        memset(old, 0, sizeof *old);
        old->sa_handler = SIG_DFL;
    }
}

/* The program's handler, called as it asked (with SA_SIGINFO, three arguments). */
static void call_program(const struct sigaction *program, int sig, siginfo_t *info, void *context)
{
    if (program->sa_flags & SA_SIGINFO) program->sa_sigaction(sig, info, context);
    else program->sa_handler(sig);
}

/* Runs in place of a program's SA_RESETHAND handler: the kernel would have put SIG_DFL back
 * as it delivered the signal; the stand-in goes back instead, then the handler runs. */
static void run_once(int sig, siginfo_t *info, void *context)
{
    if (!(info = to_act_on(sig, info))) return; /* the launcher's second copy, or put off */
    struct sigaction program = one_shot[sig];
    struct sigaction now;
    if (sigaction_real()(sig, NULL, &now) == 0 && now.sa_sigaction == run_once) {
        if (may_stand_in(sig)) stand_in(sig, NULL);
        else back_to_default(sig);
    }
    call_program(&program, sig, info, context);
}

/* Runs in place of a program's handler for a signal the launcher may pass on: the second
 * copy of one is dropped (forwarded.c). */
static void relay(int sig, siginfo_t *info, void *context)
{
    struct sigaction program = relayed[sig];
    if (!(info = to_act_on(sig, info))) return;
    /* A tail call: no frame of the shim's between the signal frame and the program's handler,
     * whose allocations' backtraces pass through here (so no copy of a retry's siginfo, the
     * thread's put_off.info, which only another signal put off inside the handler reuses). */
    call_program(&program, sig, info, context);
}

/* What the program installed, where the kernel holds `wrapper` (run_once, relay) for it. */
static void show_wrapped(struct sigaction *old, void (*wrapper)(int, siginfo_t *, void *),
                         const struct sigaction *program)
{
    if (old && old->sa_sigaction == wrapper) *old = *program;
}
static void show_one_shot(struct sigaction *old, const struct sigaction *program) { show_wrapped(old, run_once, program); }
static void show_relayed(struct sigaction *old, const struct sigaction *program) { show_wrapped(old, relay, program); }

/* The program's action behind a wrapper now (one_shot, relayed), before a sigaction() may
 * replace it. */
static struct sigaction program_action(const struct sigaction *table, int sig)
{
    return sig > 0 && sig < _NSIG ? table[sig] : (struct sigaction){ 0 };
}
static struct sigaction one_shot_of(int sig) { return program_action(one_shot, sig); }
static struct sigaction relayed_of(int sig) { return program_action(relayed, sig); }

/* What the program had for `sig`, as it sees it, in `old` as the kernel gave it: not the
 * stand-in, the scan's handler, run_once or relay, but what they stand for (`was_ours`: the
 * stand-in was there). */
static void show_program_action(struct sigaction *old, bool was_ours, const struct sigaction *one_shot_before,
                                const struct sigaction *relayed_before)
{
    if (old && was_ours) {
        memset(old, 0, sizeof *old);
        old->sa_handler = SIG_DFL;
    }
    hide_scan_handler(old);
    show_one_shot(old, one_shot_before);
    show_relayed(old, relayed_before);
}

/* Installs `wrapper` (run_once, relay) for the program's `act`, which goes in *program. */
static int install_wrapper(sigaction_fn real, int sig, const struct sigaction *act, struct sigaction *old,
                           struct sigaction *program, void (*wrapper)(int, siginfo_t *, void *), int flags)
{
    struct sigaction one_shot_before = one_shot_of(sig), relayed_before = relayed_of(sig), installed = *act;
    bool was_ours = is_ours(sig);
    *program = *act;
    installed.sa_sigaction = wrapper;
    installed.sa_flags = flags;
    int r = real(sig, &installed, old);
    if (r != 0) return r;
    atomic_store(&ours[sig], false);
    show_program_action(old, was_ours, &one_shot_before, &relayed_before);
    return r;
}

int lt_hook_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    sigaction_fn real = sigaction_real();
    bool to_default = act && is_default(act);
    bool handler = act && !to_default && act->sa_handler != SIG_IGN;
    /* (an SA_RESETHAND handler of a signal the launcher passes on: run_once drops copies too) */
    if (handler && (act->sa_flags & SA_RESETHAND) && may_stand_in(sig))
        return install_wrapper(real, sig, act, old, &one_shot[sig], run_once,
                               (act->sa_flags & ~SA_RESETHAND) | SA_SIGINFO);
    if (handler && lt_forwarded_signal(sig))
        return install_wrapper(real, sig, act, old, &relayed[sig], relay, act->sa_flags | SA_SIGINFO);
    if (!is_ours(sig)) {
        struct sigaction one_shot_before = one_shot_of(sig), relayed_before = relayed_of(sig);
        int r = to_default && may_stand_in(sig) ? stand_in(sig, old) : real(sig, act, old);
        if (r == 0) show_program_action(old, false, &one_shot_before, &relayed_before);
        return r;
    }
    /* Keeping the default keeps our stand-in; anything else replaces it. */
    bool keep = to_default;
    int r = real(sig, keep ? NULL : act, old);
    if (r == 0 && act && !keep) atomic_store(&ours[sig], false);
    if (r == 0 && old) {
        memset(old, 0, sizeof *old);
        old->sa_handler = SIG_DFL;
    }
    return r;
}

static handler_fn replace(_Atomic(handler_fn (*)(int, handler_fn)) *real, const char *name, int sig,
                          handler_fn handler)
{
    handler_fn (*f)(int, handler_fn) = atomic_load(real);
    if (!f) {
        f = (handler_fn (*)(int, handler_fn))lt_next_symbol(name);
        atomic_store(real, f);
    }
    if (!is_ours(sig)) {
        struct sigaction one_shot_before = one_shot_of(sig), relayed_before = relayed_of(sig);
        handler_fn previous = f(sig, handler);
        /* The real call first: sigset() also unblocks the signal. */
        if (previous != SIG_ERR && handler == SIG_DFL && may_stand_in(sig)) stand_in(sig, NULL);
        if ((void *)previous == (void *)run_once) return one_shot_before.sa_handler;
        if ((void *)previous == (void *)relay) return relayed_before.sa_handler;
        return (void *)previous == lt_scan_handler() ? SIG_DFL : previous;
    }
    if (handler == SIG_DFL) return SIG_DFL;
    handler_fn previous = f(sig, handler);
    if (previous == SIG_ERR) return SIG_ERR;
    atomic_store(&ours[sig], false);
    return SIG_DFL;
}

/* A signal()-family call made as glibc makes it, through the sigaction hook above: `h` with
 * `flags`, blocking its own signal while it runs unless SA_NODEFER. */
static handler_fn through_sigaction(int sig, handler_fn h, int flags)
{
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = h;
    act.sa_flags = flags;
    if (!(flags & SA_NODEFER)) sigaddset(&act.sa_mask, sig);
    return lt_hook_sigaction(sig, &act, &old) == 0 ? old.sa_handler : SIG_ERR;
}

static bool relayed_handler(int sig, handler_fn h)
{
    return h != SIG_DFL && h != SIG_IGN && h != SIG_ERR && h != SIG_HOLD && lt_forwarded_signal(sig);
}

handler_fn lt_hook_signal(int sig, handler_fn h)
{
    /* signal() and bsd_signal(): a restarting handler, for relay (a signal passed on) */
    if (relayed_handler(sig, h)) return through_sigaction(sig, h, SA_RESTART);
    return replace(&real_signal, "signal", sig, h);
}
handler_fn lt_hook_bsd_signal(int sig, handler_fn h)
{
    if (relayed_handler(sig, h)) return through_sigaction(sig, h, SA_RESTART);
    return replace(&real_bsd_signal, "bsd_signal", sig, h);
}
/* glibc's sysv_signal is sigaction with a handler that resets and does not block its signal:
 * through the hook above, so that the reset is seen. */
handler_fn lt_hook_sysv_signal(int sig, handler_fn h)
{
    if (h == SIG_ERR || sig < 1 || sig >= _NSIG) {
        errno = EINVAL;
        return SIG_ERR;
    }
    return through_sigaction(sig, h, SA_RESETHAND | SA_NODEFER);
}
handler_fn lt_hook_sigset(int sig, handler_fn h)
{
    /* SIG_HOLD only blocks the signal: the disposition stays what it was. */
    if (h == SIG_HOLD) {
        handler_fn (*f)(int, handler_fn) = atomic_load(&real_sigset);
        if (!f) {
            f = (handler_fn (*)(int, handler_fn))lt_next_symbol("sigset");
            atomic_store(&real_sigset, f);
        }
        handler_fn previous = f(sig, h);
        return is_ours(sig) && previous != SIG_ERR && previous != SIG_HOLD ? SIG_DFL : previous;
    }
    return replace(&real_sigset, "sigset", sig, h);
}

/* The exported names (see hooked_functions.h). */
#define LT_X(name) extern __typeof__(lt_hook_##name) name __attribute__((alias("lt_hook_" #name), visibility("default")));
LT_HOOKED_SIGNAL_FUNCTIONS(LT_X)
#undef LT_X
