/* The tracer's life cycle, in one place: one explicit state, and every transition below.
 *
 *   LOADED ──first hooked call or constructor (preloaded)──► STARTING ──► COLLECTING
 *      │                                                          │   └─► TRACKING (--start=on-mtrace)
 *      │                                                          └─► OFF (a child that is not traced,
 *      │                                                                   or the tables could not be mapped)
 *      └──leaktrace_attach() (dlopen'd by `leaktrace attach`)──► OFF ──► COLLECTING
 *   COLLECTING ◄──► TRACKING      pause/resume, mtrace()/muntrace()
 *   COLLECTING, TRACKING ──► FINAL   the final capture is claimed: return from main, exit(),
 *                                     _exit(), a signal that kills the program
 *   COLLECTING, TRACKING ──► OFF     detach; a fork child that is not followed
 *   COLLECTING, TRACKING: exec       the image's capture (lt_capture_before_exec), state kept:
 *                                     the exec may fail
 *   FINAL is terminal; it still follows frees (glibc's and libstdc++'s buffers, freed before
 *   the exit scan as under valgrind), but records nothing new.
 *
 * TRACKING and above: the tables follow the program (frees, unmaps are seen). COLLECTING: new
 * allocations are recorded too. The hot path reads the state with one relaxed load.
 *
 * How the shim was loaded decides launch vs attach (never a symbol lookup, which a non-PIE
 * program's PLT or a program's own malloc would fool): preloaded objects precede libc in the
 * loader's list of objects, a dlopen'd one follows it. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sampling.h"
#include "scan.h"
#include "shim.h"

/* The shim's file name, as LD_PRELOAD lists it: the installed one's, or whatever name
 * $LEAKTRACE_SHIM gave another build (it is then hidden from the program all the same).
 * Set at start-up (single-threaded). */
static const char *shim_file_name = "libleaktrace_shim.so";

/* The state (enum lt_state): written by the transitions below, read relaxed by every hook. */
_Atomic int lt_state;
__thread int lt_busy __attribute__((tls_model("initial-exec")));

/* Shared state of the process's tracing, written only by the transitions here while no hook
 * can run concurrently (start-up before other threads exist, the fork child handler, or
 * leaktrace_attach before it turns tracking on); read from any thread. */
struct lt_counters lt_counters;   /* atomics, bumped from any thread */
_Atomic int lt_owner_pid;         /* the process these tables describe (0: none) */
bool lt_is_child;                 /* a fork child that keeps tracing */
uint64_t lt_start_mono_ns, lt_start_real_ns;
_Atomic unsigned lt_generation;
_Atomic uint64_t lt_baseline_ns;
/* The coarse clock's value at start: block times are measured on that clock, which may lag
 * the precise one by a few ms (a difference of the two could go negative). */
static uint64_t start_coarse_ns;
/* No block is stamped earlier than this (ms on the coarse clock): the edge of the series'
 * latest snapshot, set as it begins reading the totals. The coarse clock ticks every few ms,
 * so without it a block allocated after a snapshot read its stack's totals could carry a
 * time before the snapshot's edge, and `growth` would count it in an interval whose totals
 * left it out. Written by the control thread (lt_open_series_edge_ms), read relaxed by every
 * allocation; back to 0 with the clocks. */
static _Atomic uint32_t time_floor_ms;
static bool attach_mode;          /* set once, at the first look at how we were loaded */
static _Atomic bool ready_for_threads; /* the constructor ran: the control thread may start */
/* The signal that ended the process (written by the thread that claimed FINAL, before the
 * capture), and whether that capture is complete. */
static int final_signal;
static _Atomic bool final_done;
/* Set once, by the thread about to install a seccomp filter (lt_before_sandbox); read in fork
 * children, which inherit the filter. */
static _Atomic bool sandboxed;
/* This thread claimed the final capture (from the claim on: a signal between the claim and
 * the writing found the capture claimed by another thread, and waited 30 s for it, then died
 * without one) and is writing it; a fatal signal it gets meanwhile (the parent's SIGTERM to a
 * child at its exit, multiprocessing's pool) waits until the capture is written
 * (deferred_signal, this thread's only). */
static _Thread_local bool writing_final;
static _Thread_local int deferred_signal;

/* ---- clock ---------------------------------------------------------------------------- */
static uint64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
uint64_t lt_now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
uint64_t lt_realtime_ns(void) { return clock_ns(CLOCK_REALTIME); }
uint32_t lt_elapsed_ms(void)
{
    /* The coarse clock is a vDSO read with no system call: cheap enough for every malloc. */
    uint64_t now = clock_ns(CLOCK_MONOTONIC_COARSE);
    uint32_t ms = now > start_coarse_ns ? (uint32_t)((now - start_coarse_ns) / 1000000u) : 0;
    uint32_t floor = atomic_load_explicit(&time_floor_ms, memory_order_relaxed);
    return ms > floor ? ms : floor;
}

uint32_t lt_open_series_edge_ms(void)
{
    uint32_t edge = lt_elapsed_ms() + 1;
    atomic_store(&time_floor_ms, edge);
    return edge;
}

static void reset_clocks(void)
{
    lt_start_mono_ns = lt_now_ns();
    lt_start_real_ns = lt_realtime_ns();
    start_coarse_ns = clock_ns(CLOCK_MONOTONIC_COARSE);
    atomic_store(&time_floor_ms, 0);
}

/* ---- small accessors the other modules use -------------------------------------------- */
bool lt_attach_mode(void) { return attach_mode; }
bool lt_collecting(void) { return atomic_load(&lt_state) == LT_STATE_COLLECTING; }
void lt_mark_thread_internal(void) { lt_busy = 1; }
void lt_set_busy(bool on) { lt_busy += on ? 1 : -1; }
bool lt_may_start_threads(void) { return atomic_load(&ready_for_threads); }
int lt_final_signal(void) { return final_signal; }

/* COLLECTING <-> TRACKING; nothing else changes. */
void lt_set_collecting(bool on)
{
    if (!on) lt_invalid_frees_stop(); /* frees of what is allocated meanwhile would look invalid */
    int from = on ? LT_STATE_TRACKING : LT_STATE_COLLECTING;
    atomic_compare_exchange_strong(&lt_state, &from, on ? LT_STATE_COLLECTING : LT_STATE_TRACKING);
}

void lt_new_baseline(void)
{
    atomic_fetch_add(&lt_generation, 1);
    atomic_store(&lt_baseline_ns, lt_now_ns() - lt_start_mono_ns);
}

/* ---- starting --------------------------------------------------------------------------- */
static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

/* The final capture at exit is written after every library's destructor has run, as
 * valgrind's leak check is: libraries free their data there (curl's TLS library does). The
 * loader runs all destructors from one exit handler, _dl_fini, which libc registers after the
 * constructors ran; exit handlers run last-registered first, so one registered now, from a
 * constructor or an allocation made before main, runs after it. Registered without a DSO
 * handle: one with ours would run from the shim's own destructor. */
extern int __cxa_atexit(void (*fn)(void *), void *arg, void *dso_handle);
static bool late_exit_handler;    /* written at start-up only */

static void write_final_at_exit(bool after_exit);

static void final_after_destructors(void *unused)
{
    (void)unused;
    write_final_at_exit(true);
}

/* quick_exit runs the at_quick_exit handlers, last-registered first, then ends the process
 * from inside libc: one registered now runs after the program's (which may free or leak).
 * Not in attach mode, where the program's are registered already: exits.c's hook writes the
 * capture before them then. */
extern int __cxa_at_quick_exit(void (*fn)(void *), void *dso_handle);
static bool quick_exit_handler;   /* written at start-up only */

static void final_at_quick_exit(void *unused)
{
    (void)unused;
    write_final_at_exit(false);
}

bool lt_quick_exit_handled(void) { return quick_exit_handler; }

static void register_late_exit_handler(void)
{
    late_exit_handler = __cxa_atexit(final_after_destructors, NULL, NULL) == 0;
    if (!attach_mode) quick_exit_handler = __cxa_at_quick_exit(final_at_quick_exit, NULL) == 0;
}

/* pre: lt_busy set; state STARTING, so no other thread records. */
static bool init_tables(void)
{
    if (!(lt_stacks_init() && lt_blocks_init() && lt_regions_init() && lt_modules_init())) return false;
    lt_inflight_init(); /* without it the tables are simply never released after a detach */
    lt_unwind_init();
    lt_hooks_resolve();
    lt_capture_reserve();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    return true;
}

/* Whether the shim started before the C library's own start-up: an executable's
 * .preinit_array functions run first, before libc has set `environ` (which holds our
 * settings) and the program's name. Written once at start-up (single-threaded). */
static bool started_before_libc;

/* The settings in `environ`: kept for the children followed (copied), and hidden from the
 * program that `run` launched and from each child it follows. */
static void adopt_environment(void)
{
    if (lt_cfg.follow_children) lt_env_keep_settings(shim_file_name);
    if (lt_cfg.launched) lt_env_hide_settings(shim_file_name);
}

static void start_preloaded(void)
{
    shim_file_name = lt_shim_file_name(shim_file_name);
    reset_clocks();
    lt_config_load();
    if (!init_tables()) { /* no address space for the tables (RLIMIT_AS): the launcher is told */
        atomic_store(&lt_state, LT_STATE_OFF);
        if (lt_cfg.is_root) lt_capture_notify_failure(ENOMEM);
        return;
    }
    lt_modules_refresh(false);
    lt_allocator_check();
    lt_allocator_allow_direct();
    if (!lt_cfg.is_root && !lt_cfg.follow_children) {
        /* A child that inherited LD_PRELOAD (vfork, posix_spawn, its own envp). */
        lt_env_remove_preload(shim_file_name);
        atomic_store(&lt_state, LT_STATE_OFF);
        return;
    }
    if (!lt_cfg.is_root && lt_cfg.skip_children[0] && lt_env_child_skipped(lt_cfg.skip_children)) {
        /* run --skip-children: not traced, but LD_PRELOAD stays, so its children may be. */
        atomic_store(&lt_state, LT_STATE_OFF);
        return;
    }
    lt_is_child = !lt_cfg.is_root;
    if (lt_is_child) lt_capture_notify_traced(); /* a spawned child's new image */
    lt_fd_table_grow_early();
    /* Sampling mode's scans walk the heap for the blocks not sampled (scan.c), which must
     * tell the chunks glibc keeps in its thread caches from those in use. */
    if (lt_sample_mean_bytes) lt_scan_learn_heap_marks(true);
    if (!started_before_libc) adopt_environment();
    if (lt_cfg.write_on_signal) lt_signals_install();
    lt_capture_remember_name();
    register_late_exit_handler();
    lt_go_exit_redirect();
    if (lt_cfg.write_on_signal) lt_signals_give_threads_stacks(); /* after the Go check */
    atomic_store(&lt_owner_pid, getpid());
    atomic_store(&lt_state, lt_cfg.collect_at_start ? LT_STATE_COLLECTING : LT_STATE_TRACKING);
}

/* The environment the process started with, where the kernel put it: after argv's NULL on the
 * initial stack, whose start (argc) the loader keeps in __libc_stack_end. libc will point
 * `environ` at the same array. */
static char **initial_environment(void)
{
    extern void *__libc_stack_end;
    const long *argc = __libc_stack_end;
    if (!argc || *argc < 0 || *argc > (1 << 20)) return NULL;
    char **argv = (char **)(uintptr_t)(argc + 1);
    return argv[*argc] == NULL ? argv + *argc + 1 : NULL;
}

/* LOADED -> STARTING -> ...: on the first hooked call, which may come from a library's
 * constructor long before ours runs, or from the executable's .preinit_array before libc's
 * own start-up. Returns whether the caller may record. */
bool lt_start_on_first_call(void)
{
    extern char **environ;
    if (lt_busy) return false;
    char **initial = !environ ? initial_environment() : NULL;
    if (!environ && !initial) return false;
    int expected = LT_STATE_LOADED;
    if (!atomic_compare_exchange_strong(&lt_state, &expected, LT_STATE_STARTING))
        return expected == LT_STATE_COLLECTING; /* another thread is starting, or did */
    lt_busy++;
    int saved_errno = errno; /* start-up makes many system calls; the hook's caller sees none */
    attach_mode = !lt_loaded_by_preload();
    if (attach_mode) {
        atomic_store(&lt_state, LT_STATE_LOADED); /* leaktrace_attach() starts */
    } else {
        started_before_libc = initial != NULL;
        lt_config_use_environment(initial); /* environ stays as libc will set it */
        start_preloaded();
        lt_config_use_environment(NULL);
    }
    errno = saved_errno;
    lt_busy--;
    return atomic_load(&lt_state) == LT_STATE_COLLECTING;
}

__attribute__((constructor)) static void leaktrace_constructor(void)
{
    lt_busy++;
    if (atomic_load(&lt_state) == LT_STATE_LOADED) {
        attach_mode = !lt_loaded_by_preload();
        if (attach_mode) { /* dlopen'd: nothing starts until leaktrace_attach() */
            reset_clocks();
            if (!init_tables()) atomic_store(&lt_state, LT_STATE_OFF);
        } else {
            int expected = LT_STATE_LOADED;
            if (atomic_compare_exchange_strong(&lt_state, &expected, LT_STATE_STARTING)) start_preloaded();
        }
    } else if (started_before_libc) { /* libc has set environ and the name now */
        if (atomic_load(&lt_state) != LT_STATE_OFF) {
            adopt_environment();
            lt_capture_remember_name();
        } else if (!lt_cfg.is_root && !lt_cfg.follow_children) {
            lt_env_remove_preload(shim_file_name);
        }
    }
    atomic_store(&ready_for_threads, true);
    lt_busy--;
}

/* ---- attach mode ------------------------------------------------------------------------ */
/* Whether the last detach gave the tables back. Written by attach and detach, which attach.c
 * serializes (its patch_lock). */
static bool tables_released;

/* Whatever an earlier attach recorded is forgotten; the collection window starts now. */
bool lt_reset_for_attach(void)
{
    atomic_store(&lt_state, LT_STATE_OFF); /* hooks pass through until collecting starts */
    if (tables_released) {
        if (!(lt_stacks_init() && lt_blocks_init() && lt_regions_init() && lt_modules_init())) return false;
        lt_capture_reserve();
        lt_unwind_reacquire();
        tables_released = false;
    }
    lt_inflight_prepare();
    /* Code may have been unloaded and other code loaded in its place while detached (the
     * dlclose hook passes through then): cached unwind rules may describe what is gone. */
    lt_unwind_flush_cache();
    lt_blocks_reset();
    lt_annotations_reset();
    lt_regions_reset();
    lt_stacks_reset_totals();
    lt_series_reset();
    atomic_store(&lt_counters.dropped_blocks, 0);
    atomic_store(&lt_counters.dropped_stacks, 0);
    reset_clocks();
    atomic_store(&lt_baseline_ns, 0);
    atomic_store(&lt_owner_pid, getpid());
    lt_modules_refresh(false);
    lt_capture_remember_name(); /* argv[0] may hold a title by now: its '/'s become '_' */
    return true;
}

/* After a detach, with the state OFF and no thread of ours left that uses the tables (the
 * control thread has ended, or is the caller): the hooks no longer touch them once every
 * thread still inside has left (inflight.c), and the program should not keep hundreds of MB
 * of reserved address space for a session that is over. */
bool lt_release_tables(void)
{
    if (!attach_mode || tables_released) return tables_released;
    if (!lt_inflight_wait_quiet(1000)) return false;
    lt_stacks_release();
    lt_unwind_release();
    lt_blocks_release();
    lt_regions_release();
    lt_modules_release();
    lt_series_release();
    lt_annotations_release();
    lt_capture_release_reserve();
    tables_released = true;
    return true;
}

void lt_start_collecting(void) { atomic_store(&lt_state, LT_STATE_COLLECTING); }

/* COLLECTING/TRACKING -> OFF: the hooks pass everything through from now on. */
void lt_stop_tracking(void)
{
    atomic_store(&lt_state, LT_STATE_OFF);
    atomic_store(&lt_owner_pid, 0);
}

/* No reachability scan at detach unless asked (`attach --scan`, control command
 * `detach-scan`): it stops the program's threads with a signal, which ends some of their
 * blocking calls early (EINTR, as `leaktrace scan` does), and a plain detach leaves the process
 * exactly as it was. Without it the capture has the window's live blocks, no leak kinds. */
void lt_write_detach_capture(char *path, size_t cap, bool scan)
{
    lt_busy++;
    struct lt_capture_request req = { .reason = LT_REASON_DETACH };
    struct lt_scan reach = { .heuristics = lt_cfg.heuristics };
    if (scan && lt_scan_run(&reach, (uintptr_t)__builtin_frame_address(0), false) == 0) req.scan = &reach;
    if (lt_capture_write(&req) == 0) {
        strncpy(path, req.path, cap - 1);
        path[cap - 1] = 0;
    }
    lt_scan_release(&reach);
    lt_capture_notify_detached();
    lt_cfg.notify[0] = 0; /* the next attach brings its own */
    lt_busy--;
}

/* ---- fork ------------------------------------------------------------------------------ */
/* Signals wait from just before the fork until the shim's fork handlers are done (the child's
 * then knows itself: its owner pid, its notice to the launcher), then come as they would have:
 * a SIGTERM sent to a child at once (a pool terminated as it starts) found it neither the
 * traced process nor its own yet, and it died without a capture or a notice. The program's own
 * fork handlers run with its mask (ours is registered first: its prepare handler runs last,
 * its parent and child handlers first). The forking thread's mask, as it was. */
static _Thread_local sigset_t mask_before_fork;
static _Thread_local bool fork_blocked_signals; /* not in a sandbox: no system call of ours */
/* fork() from a handler over this thread's table operation (lt_holds_tables_here):
 * the locks are not taken (this thread holds one), and the child, whose tables may be half
 * changed, is not traced. */
static _Thread_local bool fork_over_tables;

static void fork_prepare(void)
{
    fork_blocked_signals = !atomic_load(&sandboxed);
    if (fork_blocked_signals) {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &mask_before_fork);
    }
    fork_over_tables = lt_holds_tables_here();
    lt_busy++;
    if (fork_over_tables) return;
    lt_regions_lock();
    lt_blocks_lock_all();
    lt_annotations_lock();
}

static void fork_parent(void)
{
    if (!fork_over_tables) {
        lt_annotations_unlock();
        lt_blocks_unlock_all();
        lt_regions_unlock();
    }
    lt_busy--;
    if (fork_blocked_signals) pthread_sigmask(SIG_SETMASK, &mask_before_fork, NULL);
}

static void fork_child(void)
{
    /* The child of a sandboxed process inherits its filter: only the locks go (the state is
     * OFF, so nothing more is done below), none of the system calls the rest would make. */
    bool sandboxed_parent = atomic_load(&sandboxed);
    lt_signals_after_fork_child(); /* no system call */
    if (fork_over_tables) { /* as an untraced child: nothing of the tables is touched again */
        atomic_store(&lt_state, LT_STATE_OFF);
        atomic_store(&lt_owner_pid, 0);
        lt_busy--;
        if (fork_blocked_signals) pthread_sigmask(SIG_SETMASK, &mask_before_fork, NULL);
        return;
    }
    if (!sandboxed_parent) {
        lt_inflight_after_fork_child();
        lt_capture_after_fork_child();
        lt_modules_after_fork_child();
        lt_series_after_fork_child();
        lt_control_after_fork_child();
        lt_own_allocations_after_fork_child();
        lt_procfs_after_fork_child();
        lt_invalid_frees_after_fork_child();
    }
    lt_annotations_unlock();
    lt_blocks_unlock_all();
    if (!sandboxed_parent) lt_blocks_after_fork_child();
    lt_regions_unlock();
    lt_busy--;
    int state = atomic_load(&lt_state);
    if (state >= LT_STATE_TRACKING && state != LT_STATE_FINAL) {
        if (lt_cfg.follow_children && !attach_mode) { /* trace on, into a capture of its own */
            lt_is_child = true;
            atomic_store(&lt_owner_pid, getpid());
            lt_capture_notify_traced();
        } else {
            atomic_store(&lt_state, LT_STATE_OFF);
            atomic_store(&lt_owner_pid, 0);
            if (!attach_mode) lt_env_remove_preload(shim_file_name); /* what it execs is not traced */
        }
    }
    if (fork_blocked_signals) pthread_sigmask(SIG_SETMASK, &mask_before_fork, NULL);
}

/* ---- the final capture ------------------------------------------------------------------ */
extern void __libc_freeres(void);

struct live_threads {
    pid_t self, control; /* not counted */
    bool unknown_runs;   /* a thread whose state cannot be read counts */
    int count;
};

static void count_live_thread(pid_t tid, void *ctx)
{
    struct live_threads *live = ctx;
    if (tid == live->self || tid == live->control) return;
    if (!(live->unknown_runs ? lt_thread_surely_left(tid) : lt_thread_has_left(tid))) live->count++;
}

/* Threads of the program (the control thread aside) still running, read from /proc. No
 * waiting for a count to fall: the program's threads would run on meanwhile, where natively
 * the process has ended (a thread just joined and still listed is leaving: it has left). */
static int other_program_threads(void)
{
    struct live_threads live = { .self = (pid_t)syscall(SYS_gettid),
                                 .control = lt_control_thread_id() };
    if (lt_for_each_thread(count_live_thread, &live) < 0) return -1;
    return live.count;
}

/* What valgrind does before its exit leak check: glibc and libstdc++ free the buffers they
 * keep for the life of the process (stdio buffers, locale data, the C++ exception pool), so
 * those are not reported. Both flush first; streams are then unbuffered. Only when no other
 * thread of the program runs: they might still use what is freed. */
static void release_runtime_buffers(void)
{
    if (other_program_threads() != 0) return;
    /* Not dlsym: where no object defines it (C programs) dlsym allocates an error message,
     * which __libc_freeres then frees, unknown to the shim. Every object's: a program that
     * links libstdc++ statically has its own exception pool, and exports its __freeres with
     * -rdynamic (valgrind finds it there too). */
    void *cxx_freeres[4];
    int copies = lt_exported_definitions("_ZN9__gnu_cxx9__freeresEv", cxx_freeres, 4);
    lt_divert_frees(true); /* their records go, their memory stays (own_allocations.c) */
    for (int i = 0; i < copies; i++) ((void (*)(void))cxx_freeres[i])();
    __libc_freeres();
    lt_divert_frees(false);
}

/* TRACKING/COLLECTING -> FINAL, once. Returns the state it left, or -1 when another path
 * already claimed the final capture (or this process is not the one traced). */
static int claim_final(void)
{
    int state = atomic_load(&lt_state);
    /* The state first: once sandboxed (state OFF), even getpid() may be forbidden. */
    if (state < LT_STATE_TRACKING || state == LT_STATE_FINAL) return -1;
    if (getpid() != atomic_load(&lt_owner_pid)) return -1; /* untraced child, or a vfork child */
    while (state >= LT_STATE_TRACKING && state != LT_STATE_FINAL) {
        if (atomic_compare_exchange_weak(&lt_state, &state, LT_STATE_FINAL)) {
            writing_final = true;
            return state;
        }
    }
    return -1;
}

/* The final scan, even when the program has used its address space up to RLIMIT_AS (the scan
 * needs memory in proportion to the live blocks, in sampling mode to the heap's blocks): the
 * process is ending, so its soft limit may rise to the hard one. Returns NULL, or the note
 * that says why there is no scan. */
static const char *final_scan(struct lt_scan *scan, uintptr_t program_sp)
{
    int r = lt_scan_run(scan, program_sp, true);
    struct rlimit as;
    if ((r == -ENOMEM || (r == 0 && scan->unrecorded_missed)) && getrlimit(RLIMIT_AS, &as) == 0 &&
        as.rlim_cur < as.rlim_max) {
        as.rlim_cur = as.rlim_max;
        if (setrlimit(RLIMIT_AS, &as) == 0) {
            if (r == 0) lt_scan_release(scan);
            r = lt_scan_run(scan, program_sp, true);
        }
    }
    if (r == 0) return NULL;
    if (r == -EMFILE)
        return "no reachability scan at exit: the process's memory map (/proc/self/maps) could "
               "not be read (no file descriptor was left: the program used up its RLIMIT_NOFILE); "
               "every live block is listed, without a leak kind";
    if (r != -ENOMEM) return "no reachability scan at exit: it failed; the blocks have no leak kind";
    if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY)
        return "no reachability scan at exit: no address space was left for it (the program "
               "had used its RLIMIT_AS limit); every live block is listed, without a leak kind";
    return "no reachability scan at exit: the shim could not map memory for it; every live "
           "block is listed, without a leak kind";
}

/* The final capture. `program_sp`: where the program's live stack begins on this thread;
 * below it lie only the frames of exit handlers, the loader, a signal handler and ours, whose
 * dead slots must not keep leaked blocks alive. `safe_to_scan`: no lock the scan needs can be
 * held by the code this thread interrupted. */
/* A program that used up its descriptors (RLIMIT_NOFILE) and exits leaves none for the
 * capture's file, its /proc reads and the launcher's notice: the process is ending, so its
 * soft limit may rise towards the hard one, and a privileged process's hard limit (a daemon
 * started as root that lowered both: OpenSSH's sandbox sets 0). Else the control thread ends and
 * gives back its socket and wake-up descriptor (which sit below the limit when it left no
 * room above: `ulimit -n N`, systemd's LimitNOFILE=N); not from a signal handler, which may
 * have interrupted a thread the control thread waits for. */
static void room_for_descriptors(bool in_handler)
{
    int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (probe >= 0) {
        close(probe);
        return;
    }
    struct rlimit nofile;
    if (errno != EMFILE || getrlimit(RLIMIT_NOFILE, &nofile) != 0) return;
    if (nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max - nofile.rlim_cur > 16 ? nofile.rlim_cur + 16 : nofile.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &nofile) == 0) return;
    } else if (nofile.rlim_max != RLIM_INFINITY) { /* a privileged process (CAP_SYS_RESOURCE) may */
        nofile.rlim_cur = nofile.rlim_max += 16;
        if (setrlimit(RLIMIT_NOFILE, &nofile) == 0) return;
    }
    if (!in_handler) lt_control_pause(); /* else no capture: the launcher says why */
}

struct final_request {
    unsigned reason;
    uintptr_t program_sp;
    bool safe_to_scan, in_handler;
    bool after_exit; /* the C library's exit ran (stdio flushed): its buffers may be freed */
};

static void write_final_here(void *request)
{
    const struct final_request *r = request;
    unsigned reason = r->reason;
    uintptr_t program_sp = r->program_sp;
    bool safe_to_scan = r->safe_to_scan, in_handler = r->in_handler;
    int saved_errno = errno;
    /* Not after _exit, quick_exit or Go's exit: __libc_freeres flushes stdio, which those do
     * not (a forked daemon's parent would print its buffered lines twice). */
    /* The module list first: __libc_freeres frees what _dl_find_object knows of the objects
     * loaded with dlopen (a library no backtrace met would be missing), and after the scan
     * threads stay parked, maybe inside the loader. */
    if (!in_handler) lt_modules_refresh(false);
    if (!in_handler && lt_cfg.freeres_at_exit && reason == LT_REASON_EXIT && r->after_exit)
        release_runtime_buffers(); /* its frees are recorded */
    lt_busy++;
    lt_control_stop();
    /* A series ends with the process's state at exit: the control thread stays held from
     * the scan on. (A run shorter than one interval keeps no series: one point is no growth.)
     * Not from a signal handler: the series lock may be held by the code it interrupted. */
    if (!in_handler && lt_control_thread_id() != 0 && lt_series_count() > 0) lt_series_snapshot();
    if (reason == LT_REASON_EXIT || reason == LT_REASON_SIGNAL) room_for_descriptors(in_handler);
    struct lt_scan scan = { .heuristics = lt_cfg.heuristics };
    const char *note = NULL;
    bool scanned = false;
    if (safe_to_scan && lt_cfg.scan_at_exit) {
        note = final_scan(&scan, program_sp);
        scanned = note == NULL;
    } else if (lt_cfg.scan_at_exit) {
        note = "no reachability scan at exit: the process ended while a signal handler had "
               "interrupted the shim's work (inside malloc or free) on the same thread, half-way "
               "through its table; every live block is listed, without a leak kind";
    }
    struct lt_capture_request req = { .reason = reason, .scan = scanned ? &scan : NULL,
                                      .world_stopped = scanned, .in_signal_handler = in_handler,
                                      .note = note };
    lt_capture_write(&req);
    lt_scan_release(&scan);
    atomic_store(&final_done, true);
    lt_busy--;
    writing_final = false;
    errno = saved_errno;
    if (deferred_signal) lt_signals_die_of(deferred_signal);
}

static void write_final(unsigned reason, uintptr_t program_sp, bool safe_to_scan, bool in_handler,
                        bool after_exit)
{
    struct final_request request = { reason, program_sp, safe_to_scan, in_handler, after_exit };
    lt_on_own_stack(write_final_here, &request);
}

/* Exec without fork: the image being replaced gets its capture first (its memory ends here
 * as at exit), with a scan from which the other threads resume: the exec may still fail, and
 * the program then carries on (the capture is removed). Only the traced process itself, while
 * it traces: a vfork child shares our memory but is not it. */
bool lt_exec_capture_wanted(void)
{
    int state = atomic_load(&lt_state);
    if (state < LT_STATE_TRACKING || state == LT_STATE_FINAL || lt_attach_mode()) return false;
    return getpid() == atomic_load(&lt_owner_pid);
}

struct exec_capture {
    uintptr_t program_sp;
    char *path;
    size_t cap;
    bool over_tables; /* exec from a handler over this thread's table operation: no scan,
                       * try-locks */
    bool written;
};

static void capture_before_exec_here(void *request)
{
    struct exec_capture *e = request;
    struct lt_scan scan = { .heuristics = lt_cfg.heuristics };
    bool scanned = lt_cfg.scan_at_exit && !e->over_tables &&
                   lt_scan_run(&scan, e->program_sp, false) == 0;
    struct lt_capture_request req = { .reason = LT_REASON_EXEC, .scan = scanned ? &scan : NULL,
                                      .in_signal_handler = e->over_tables };
    if (lt_cfg.scan_at_exit && e->over_tables)
        req.note = "no reachability scan before exec: the program called exec from a signal handler "
                   "that had interrupted the shim's work (inside malloc or free) on the same thread";
    else if (lt_cfg.scan_at_exit && !scanned)
        req.note = "no reachability scan before exec: the shim could not map memory for it";
    e->written = lt_capture_write(&req) == 0;
    lt_scan_release(&scan);
    if (e->written) {
        lt_capture_drop_prepared();
        strncpy(e->path, req.path, e->cap - 1);
        e->path[e->cap - 1] = 0;
    }
}

bool lt_capture_before_exec(char *path, size_t cap)
{
    if (!lt_exec_capture_wanted()) return false;
    int saved_errno = errno;
    lt_busy++;
    struct exec_capture request = { lt_unwind_program_sp(), path, cap, lt_holds_tables_here(),
                                    false };
    lt_on_own_stack(capture_before_exec_here, &request);
    lt_busy--;
    errno = saved_errno;
    return request.written;
}

/* The exec failed: the image lives on, and its capture would say it ended. The launcher
 * skips an exec capture whose file is gone. */
void lt_discard_exec_capture(const char *path)
{
    int saved_errno = errno;
    unlink(path);
    errno = saved_errno;
}

/* A seccomp filter is about to go in (sandbox.c): past it, a system call of the shim's may
 * kill the program. The capture is written now, with a scan from which the other threads
 * resume (the program goes on); then the shim stops: no control thread, nothing recorded or
 * looked up (state OFF), the program's default signal actions back, no membarrier. In attach
 * mode only the last: the session ends at its detach. */
struct sandbox_capture {
    uintptr_t program_sp;
    unsigned reason; /* LT_REASON_SANDBOX or LT_REASON_FILE_LIMIT */
};

static void capture_before_sandbox_here(void *request)
{
    const struct sandbox_capture *r = request;
    lt_control_stop();
    lt_modules_refresh(false);
    struct lt_scan scan = { .heuristics = lt_cfg.heuristics };
    bool scanned = lt_cfg.scan_at_exit && lt_scan_run(&scan, r->program_sp, false) == 0;
#define STOPPED ": tracing stopped, and the blocks live then are listed as they were then (leaks " \
                "made after it are not seen)"
    const char *note = r->reason == LT_REASON_FILE_LIMIT
                           ? "the program set its file size limit (RLIMIT_FSIZE) to 0 here, after "
                             "which no capture can be written" STOPPED
                           : "the program installed a seccomp filter here" STOPPED;
#undef STOPPED
    struct lt_capture_request req = { .reason = r->reason, .scan = scanned ? &scan : NULL,
                                      .note = note };
    lt_capture_write(&req);
    lt_scan_release(&scan);
}

void lt_before_sandbox(unsigned reason)
{
    int saved_errno = errno;
    /* Not started yet (no allocation so far): started now, while it still may. */
    if (atomic_load(&lt_state) == LT_STATE_LOADED) lt_start_on_first_call();
    lt_blocks_stop_owning();
    if (!lt_attach_mode() && claim_final() >= 0) {
        lt_busy++;
        struct sandbox_capture request = { lt_unwind_program_sp(), reason };
        lt_on_own_stack(capture_before_sandbox_here, &request);
        lt_control_pause(); /* ended before the filter, never resumed */
        lt_signals_uninstall();
        atomic_store(&sandboxed, true);
        atomic_store(&final_done, true);
        atomic_store(&lt_state, LT_STATE_OFF);
        lt_busy--;
        writing_final = false;
        if (deferred_signal) lt_signals_die_of(deferred_signal); /* it came meanwhile */
    }
    errno = saved_errno;
}

/* The end of a normal run: the shim's destructor (return from main, exit(), the last thread
 * exiting) and _exit(). */
static __attribute__((noinline)) void write_final_at_exit(bool after_exit)
{
    if (claim_final() < 0) return;
    /* exit or _exit from a signal handler of the program's that interrupted this thread in the
     * shim (holding a shard, the regions lock, or in the shim's own work): waiting for what the
     * thread holds itself would wait for ever (the program hung instead of exiting). Written as
     * from a handler then: locks tried, not waited for, and no scan. */
    bool interrupted = lt_busy != 0 || lt_holds_tables_here();
    write_final(LT_REASON_EXIT, lt_unwind_program_sp(), !interrupted, interrupted, after_exit);
}

/* Attach mode (or a failed registration): the shim's own destructor is the last chance. */
__attribute__((destructor)) static void leaktrace_destructor(void)
{
    if (!late_exit_handler) write_final_at_exit(true);
}

void lt_final_at_exit(void) { write_final_at_exit(false); }

/* The exit system call made by the program itself, past glibc (syscall(SYS_exit), or inline:
 * hand-written assembly, some runtimes' threads). glibc does not count that thread out, and
 * after the program's last thread the process would live on with the control thread, never
 * ending. Natively it ends with that last thread, with that thread's status. */

/* The status of the latest such call through syscall() by a thread other than the main one
 * (-1: none). */
static _Atomic int last_exit_call_status = -1;

/* From a program thread about to make the call through syscall() (sandbox.c): true when it is
 * the program's last thread; the capture is then written, as _exit's, and the caller makes
 * exit_group instead (the same end and status, the control thread included). */
bool lt_before_thread_exit_call(int status)
{
    int state = atomic_load(&lt_state);
    if (state < LT_STATE_TRACKING || state == LT_STATE_FINAL || getpid() != atomic_load(&lt_owner_pid))
        return false;
    if ((pid_t)syscall(SYS_gettid) != getpid()) atomic_store(&last_exit_call_status, status & 0xff);
    if (other_program_threads() != 0) return false; /* the others go on */
    write_final_at_exit(false);
    return true;
}

/* From the control thread (control.c): whether no thread of the program is left, the main
 * thread having left. */
bool lt_program_threads_gone(void)
{
    /* More listed than the main thread (a zombie) and the control thread: one runs, or is
     * leaving. One directory read, not a file per thread (a server whose main thread called
     * pthread_exit keeps its workers for hours). */
    int listed = lt_count_threads_again();
    if (listed < 0 || listed > 2) return false;
    struct live_threads live = { .self = (pid_t)syscall(SYS_gettid), .control = lt_control_thread_id(),
                                 .unknown_runs = true };
    return lt_for_each_thread(count_live_thread, &live) >= 0 && live.count == 0;
}

/* The same thread, next: the last left where no hook saw it. The capture is written as _exit's
 * (no thread's stack is live), and the process ends. Its status is the last thread's, which the
 * kernel does not keep, but for the main thread (/proc): used unless other threads were seen
 * to outlive it; then that of the latest exit call made through syscall() by another thread,
 * else 0 (what a thread that returns from its start routine leaves with). */
_Noreturn void lt_end_after_program_threads(bool others_outlived_main)
{
    if (claim_final() >= 0) write_final(LT_REASON_EXIT, 0, true, false, false);
    int status = others_outlived_main ? atomic_load(&last_exit_call_status) : lt_main_thread_exit_status();
    for (;;) lt_raw_syscall(SYS_exit_group, status < 0 ? 0 : status, 0, 0, 0, 0, 0);
}

/* The same, from a thread whose live stack begins at program_sp (go_exit.c). */
void lt_final_at_exit_from(uintptr_t program_sp)
{
    if (claim_final() < 0) return;
    write_final(LT_REASON_EXIT, program_sp, true, false, false);
}

bool lt_final_writing_here(void) { return writing_final; }

/* From the handler of a signal that kills the program (signals.c). The scan runs only when
 * the interrupted code was not inside the shim (whose locks it may hold). Returns whether
 * the signal should end the process now (false: once this thread's capture is written). */
bool lt_final_on_signal(int sig, uintptr_t program_sp, bool interrupted_in_shim, bool refaults,
                        const struct lt_fatal *fatal)
{
    if (writing_final) {
        /* It interrupted this thread's own final capture: a fault there ends the process
         * now; any other signal waits until the capture is written, then ends it. */
        if (refaults) return true;
        deferred_signal = sig;
        return false;
    }
    if (claim_final() < 0) {
        /* Another thread of the traced process is writing it: die only once it is written
         * (that thread's scan may also park this one for good, which is as well). */
        bool traced = getpid() == atomic_load(&lt_owner_pid);
        for (int waited = 0; traced && !atomic_load(&final_done) && waited < 30000; waited++) {
            struct timespec ms = { 0, 1000000 };
            lt_sys_nanosleep(&ms, NULL);
        }
        return true;
    }
    final_signal = sig;
    lt_fatal_publish(fatal); /* this thread's: the signal that ends the process */
    write_final(LT_REASON_SIGNAL, program_sp, !interrupted_in_shim, true, false);
    return true;
}
