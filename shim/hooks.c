/* The interposed allocation API, and the shim's life cycle: start-up, fork, signals, exit.
 *
 * Rules every hook follows:
 * - the real function is glibc's own entry point (__libc_malloc, ...) or a raw system call,
 *   so the shim works before dlsym does and never recurses into itself;
 * - a per-thread `busy` flag (initial-exec TLS: no allocation on first access) makes any
 *   allocation made while the shim is working pass straight through unrecorded;
 * - no lock of ours is held while calling into the dynamic loader or the real allocator,
 *   except the regions lock around the mmap-family system calls themselves. */
/* meson defines _FILE_OFFSET_BITS=64, which renames mmap to mmap64 in the headers; both are
 * interposed here by name (off_t is 64-bit on x86-64 either way). */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <fcntl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hooked_functions.h"
#include "scan.h"
#include "shim.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
extern void *__sbrk(intptr_t);

#define SHIM_FILE_NAME "libleaktrace_shim.so"

/* Shared state of the process's tracing. Atomics are read and written from any thread; the
 * plain fields are written only while no hook can run concurrently: at start-up
 * (single-threaded), in the fork child handler (single-threaded), or by leaktrace_attach
 * before it turns tracking on. */
struct lt_counters lt_counters;   /* atomics, bumped from any thread */
_Atomic int lt_owner_pid;         /* the process these tables describe (0: none) */
bool lt_is_child;                 /* a fork child that keeps tracing */
uint64_t lt_start_mono_ns, lt_start_real_ns;
/* The coarse clock's value at start: block times are measured on that clock, which may lag
 * the precise one by a few ms (a difference of the two could go negative). */
static uint64_t start_coarse_ns;

/* tracking_on: the tables follow the program (frees, unmaps are seen). Off until start-up
 * completes, and in untraced fork children. collecting_on: new allocations are recorded
 * (off while paused, or until the first mtrace() with --start=on-mtrace). */
static _Atomic bool tracking_on, collecting_on;
_Atomic unsigned lt_generation;
_Atomic uint64_t lt_baseline_ns;
static _Atomic bool final_written; /* the end-of-process capture is written once */
static __thread int busy __attribute__((tls_model("initial-exec")));

/* Resolved once at start-up (single-threaded), read-only afterwards. */
static void *(*real_aligned_alloc)(size_t, size_t);
static int (*real_dlclose)(void *);
static void (*real_mtrace)(void), (*real_muntrace)(void);

/* For allocations: record the new block? */
static inline bool recording(void)
{
    return LT_LIKELY(atomic_load_explicit(&collecting_on, memory_order_relaxed)) && !busy;
}

/* For frees and unmaps: keep the tables in step? */
static inline bool tracking(void)
{
    return LT_LIKELY(atomic_load_explicit(&tracking_on, memory_order_relaxed)) && !busy;
}

bool lt_collecting(void) { return atomic_load(&collecting_on); }
void lt_set_collecting(bool on) { atomic_store(&collecting_on, on && atomic_load(&tracking_on)); }
void lt_mark_thread_internal(void) { busy = 1; }
void lt_set_busy(bool on) { busy += on ? 1 : -1; }

static uint64_t clock_ns(clockid_t clock);

/* Set once by the constructor: true when the shim was dlopen'd into a running process (attach
 * mode) rather than preloaded. */
static bool attach_mode;
bool lt_attach_mode(void) { return attach_mode; }

void lt_start_collecting(void)
{
    atomic_store(&tracking_on, true);
    atomic_store(&collecting_on, true);
}

/* Attach mode: whatever an earlier attach recorded is forgotten; the collection window
 * starts now. */
void lt_reset_for_attach(void)
{
    atomic_store(&collecting_on, false);
    atomic_store(&tracking_on, false);
    lt_blocks_reset();
    lt_regions_reset();
    lt_stacks_reset_totals();
    lt_series_reset();
    atomic_store(&lt_counters.dropped_blocks, 0);
    atomic_store(&lt_counters.dropped_stacks, 0);
    atomic_store(&lt_counters.truncated_stacks, 0);
    atomic_store(&lt_counters.unknown_frees, 0);
    lt_start_mono_ns = lt_now_ns();
    lt_start_real_ns = lt_realtime_ns();
    start_coarse_ns = clock_ns(CLOCK_MONOTONIC_COARSE);
    atomic_store(&lt_baseline_ns, 0);
    atomic_store(&final_written, false);
    atomic_store(&lt_owner_pid, getpid());
    lt_modules_refresh(false);
}

void lt_new_baseline(void)
{
    atomic_fetch_add(&lt_generation, 1);
    atomic_store(&lt_baseline_ns, lt_now_ns() - lt_start_mono_ns);
}

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
    return now > start_coarse_ns ? (uint32_t)((now - start_coarse_ns) / 1000000u) : 0;
}

/* ---- recording ------------------------------------------------------------------------- */
/* pre: busy set. */
static uint32_t current_stack(void)
{
    uintptr_t pcs[LT_MAX_DEPTH_LIMIT];
    bool truncated;
    int depth = lt_unwind(pcs, lt_cfg.max_depth, &truncated);
    if (truncated) atomic_fetch_add_explicit(&lt_counters.truncated_stacks, 1, memory_order_relaxed);
    return lt_stacks_intern(pcs, depth);
}

static __attribute__((noinline)) void record_block(void *p, size_t size, unsigned kind)
{
    busy++;
    lt_control_start();
    uint32_t id = current_stack();
    lt_stack_note_alloc(id, size);
    lt_blocks_insert((uintptr_t)p, size, kind, id);
    busy--;
}

static void forget_block(void *p)
{
    struct lt_block b;
    if (lt_blocks_take((uintptr_t)p, &b)) lt_stack_note_free(b.stack_id, lt_block_size(&b), true);
    else atomic_fetch_add_explicit(&lt_counters.unknown_frees, 1, memory_order_relaxed);
}

/* ---- the malloc family ----------------------------------------------------------------- */
void *lt_hook_malloc(size_t size)
{
    void *p = __libc_malloc(size);
    if (p && recording()) record_block(p, size, LT_KIND_MALLOC);
    return p;
}

void lt_hook_free(void *p)
{
    if (p && tracking()) forget_block(p);
    __libc_free(p);
}

void *lt_hook_calloc(size_t n, size_t size)
{
    void *p = __libc_calloc(n, size);
    if (p && recording()) record_block(p, n * size, LT_KIND_CALLOC);
    return p;
}

static void *realloc_as(void *old, size_t size, unsigned kind)
{
    if (!tracking()) return __libc_realloc(old, size);
    /* The old entry leaves the table before the real call: once the allocator has released
     * the old address another thread may get it back and record it. */
    struct lt_block prev;
    bool known = old && lt_blocks_take((uintptr_t)old, &prev);
    void *p = __libc_realloc(old, size);
    if (!p && (size != 0 || !old)) { /* failed: the old block is untouched */
        if (known) lt_blocks_put_back(&prev);
        return p;
    }
    if (known) lt_stack_note_free(prev.stack_id, lt_block_size(&prev), true);
    else if (old) atomic_fetch_add_explicit(&lt_counters.unknown_frees, 1, memory_order_relaxed);
    if (p && recording()) record_block(p, size, kind); /* NULL: realloc(p, 0) freed p */
    return p;
}

void *lt_hook_realloc(void *old, size_t size) { return realloc_as(old, size, LT_KIND_REALLOC); }

void *lt_hook_reallocarray(void *old, size_t n, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(n, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc_as(old, bytes, LT_KIND_REALLOCARRAY);
}

void *lt_hook_memalign(size_t alignment, size_t size)
{
    void *p = __libc_memalign(alignment, size);
    if (p && recording()) record_block(p, size, LT_KIND_MEMALIGN);
    return p;
}

int lt_hook_posix_memalign(void **out, size_t alignment, size_t size)
{
    /* glibc's rule: a power of two multiple of sizeof(void *). */
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0 || alignment == 0)
        return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p) return ENOMEM;
    *out = p;
    if (recording()) record_block(p, size, LT_KIND_POSIX_MEMALIGN);
    return 0;
}

void *lt_hook_aligned_alloc(size_t alignment, size_t size)
{
    /* glibc's own checks differ between versions: use its function once we know it. */
    void *p;
    if (real_aligned_alloc) {
        busy++;
        p = real_aligned_alloc(alignment, size);
        busy--;
    } else {
        p = __libc_memalign(alignment, size);
    }
    if (p && recording()) record_block(p, size, LT_KIND_ALIGNED_ALLOC);
    return p;
}

void *lt_hook_valloc(size_t size)
{
    void *p = __libc_valloc(size);
    if (p && recording()) record_block(p, size, LT_KIND_VALLOC);
    return p;
}

void *lt_hook_pvalloc(size_t size)
{
    void *p = __libc_pvalloc(size);
    /* pvalloc hands out whole pages: that is what the program holds. */
    size_t page = lt_page_size();
    if (p && recording()) record_block(p, (size + page - 1) & ~(page - 1), LT_KIND_PVALLOC);
    return p;
}

/* ---- mappings and the program break ------------------------------------------------------- */
static inline uint64_t page_round(size_t len)
{
    size_t page = lt_page_size();
    return ((uint64_t)len + page - 1) & ~(uint64_t)(page - 1);
}

static void *raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

void *lt_hook_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (off & (off_t)(lt_page_size() - 1)) { /* as glibc checks before the system call */
        errno = EINVAL;
        return MAP_FAILED;
    }
    if (!recording()) return raw_mmap(addr, len, prot, flags, fd, off);
    busy++;
    uint32_t id = current_stack();
    lt_regions_lock();
    void *p = raw_mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED) lt_regions_add((uintptr_t)p, page_round(len), LT_KIND_MMAP, id);
    lt_regions_unlock();
    busy--;
    return p;
}

void *lt_hook_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return lt_hook_mmap(addr, len, prot, flags, fd, off);
}

int lt_hook_munmap(void *addr, size_t len)
{
    if (!tracking()) return (int)syscall(SYS_munmap, addr, len);
    busy++;
    lt_regions_lock();
    int r = (int)syscall(SYS_munmap, addr, len);
    if (r == 0) lt_regions_remove((uintptr_t)addr, page_round(len));
    lt_regions_unlock();
    busy--;
    return r;
}

void *lt_hook_mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    void *new_addr = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        new_addr = va_arg(ap, void *);
        va_end(ap);
    }
    if (!tracking()) return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
    bool collect = recording();
    busy++;
    uint32_t id = collect ? current_stack() : 0;
    lt_regions_lock();
    void *p = (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
    if (p != MAP_FAILED) {
        lt_regions_remove((uintptr_t)old, page_round(old_len));
        if (collect) lt_regions_add((uintptr_t)p, page_round(new_len), LT_KIND_MREMAP, id);
    }
    lt_regions_unlock();
    busy--;
    return p;
}

/* pre: regions lock held. Records a move of the break from `from` to `to`. */
static void note_break_move(uintptr_t from, uintptr_t to, uint32_t id, bool collect)
{
    if (to > from) {
        if (collect) lt_regions_add(from, to - from, LT_KIND_BRK, id);
    }
    else if (to < from) lt_regions_remove(to, from - to);
}

void *lt_hook_sbrk(intptr_t increment)
{
    if (!tracking() || increment == 0) return __sbrk(increment);
    bool collect = recording();
    busy++;
    uint32_t id = collect ? current_stack() : 0;
    lt_regions_lock();
    void *old = __sbrk(increment);
    if (old != (void *)-1)
        note_break_move((uintptr_t)old, (uintptr_t)old + (uintptr_t)increment, id, collect);
    lt_regions_unlock();
    busy--;
    return old;
}

int lt_hook_brk(void *addr)
{
    /* brk(addr) is sbrk(addr - current break), which keeps glibc's own idea of the break
     * (__curbrk) right, as its brk does. */
    bool rec = tracking(), collect = recording();
    if (rec) busy++;
    uint32_t id = collect ? current_stack() : 0;
    if (rec) lt_regions_lock();
    void *cur = __sbrk(0);
    int r = __sbrk((intptr_t)((uintptr_t)addr - (uintptr_t)cur)) == (void *)-1 ? -1 : 0;
    if (rec) {
        if (r == 0) note_break_move((uintptr_t)cur, (uintptr_t)addr, id, collect);
        lt_regions_unlock();
        busy--;
    }
    return r;
}

/* ---- dlclose: keep the module list complete, drop cached unwind rules ------------------ */
int lt_hook_dlclose(void *handle)
{
    busy++;
    if (!real_dlclose) real_dlclose = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
    bool rec = atomic_load(&tracking_on);
    if (rec) lt_modules_refresh(false); /* make sure what is about to go is recorded */
    busy--;
    int r = real_dlclose ? real_dlclose(handle) : -1;
    if (rec) {
        busy++;
        lt_modules_refresh(true);
        lt_unwind_flush_cache(); /* the freed address range may be reused by other code */
        busy--;
    }
    return r;
}

/* ---- detach (attach mode) ------------------------------------------------------------------ */
/* No reachability scan here: it stops the program's threads with a signal, which would
 * interrupt their blocking system calls (EINTR), and detach must leave the process exactly
 * as it was. The capture has the window's live blocks; `leaktrace scan` gives leak kinds. */
void lt_write_detach_capture(char *path, size_t cap)
{
    busy++;
    struct lt_capture_request req = { .reason = LT_REASON_DETACH };
    if (lt_capture_write(&req) == 0) {
        strncpy(path, req.path, cap - 1);
        path[cap - 1] = 0;
    }
    lt_cfg.notify[0] = 0; /* the next attach brings its own */
    busy--;
}

void lt_stop_tracking(void)
{
    atomic_store(&tracking_on, false);
    atomic_store(&lt_owner_pid, 0);
}

/* ---- glibc's mtrace()/muntrace(): the program marks its own checkpoints ----------------- */
/* The first mtrace() starts collecting when the run waits for it (--start=on-mtrace); every
 * other call writes a numbered capture of what was allocated since the previous one and is
 * still live. muntrace() writes the last one and stops collecting. glibc's own functions are
 * still called, so a MALLOC_TRACE log works as before. */
static void write_since_baseline(unsigned reason)
{
    struct lt_capture_request req = { .reason = reason, .only_since_baseline = true };
    lt_capture_write(&req);
}

void lt_hook_mtrace(void)
{
    if (real_mtrace) real_mtrace();
    if (!tracking()) return;
    busy++;
    lt_control_start();
    if (atomic_load(&collecting_on)) write_since_baseline(LT_REASON_MTRACE);
    lt_new_baseline();
    lt_set_collecting(true);
    busy--;
}

void lt_hook_muntrace(void)
{
    if (real_muntrace) real_muntrace();
    if (!tracking() || !atomic_load(&collecting_on)) return;
    busy++;
    write_since_baseline(LT_REASON_MUNTRACE);
    lt_new_baseline();
    lt_set_collecting(false);
    busy--;
}

/* ---- end of the process ---------------------------------------------------------------- */
extern void __libc_freeres(void);

/* What valgrind does before its exit leak check: glibc and libstdc++ free the buffers they
 * keep for the life of the process (stdio buffers, locale data, the C++ exception pool), so
 * those are not reported. Both flush first; streams are then unbuffered. */
/* Threads of the program (the control thread aside) still running, read from /proc. */
static int other_program_threads(void)
{
    int count = lt_for_each_thread(NULL, NULL);
    return count < 0 ? -1 : count - 1 - (lt_control_thread_id() != 0);
}

static void release_runtime_buffers(void)
{
    /* Only when no other thread of the program runs: they might still use what is freed. */
    if (other_program_threads() != 0) return;
    void (*cxx_freeres)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "_ZN9__gnu_cxx9__freeresEv");
    if (cxx_freeres) cxx_freeres();
    __libc_freeres();
}

static __attribute__((noinline)) void write_final_capture(bool from_signal)
{
    if (getpid() != atomic_load(&lt_owner_pid)) return; /* untraced child, or a vfork child */
    if (atomic_exchange(&final_written, true)) return;
    int saved_errno = errno;
    /* Not from a signal handler: the interrupted code may hold locks the scan needs. */
    bool at_exit = !from_signal;
    if (at_exit && lt_cfg.freeres_at_exit) release_runtime_buffers(); /* its frees are recorded */
    busy++;
    lt_control_stop();
    struct lt_scan scan = { .heuristics = lt_cfg.heuristics };
    /* The module list first: after the scan, threads stay parked, maybe inside the loader. */
    if (at_exit) lt_modules_refresh(false);
    bool scanned = at_exit && lt_cfg.scan_at_exit &&
                   lt_scan_run(&scan, (uintptr_t)__builtin_frame_address(0), true) == 0;
    struct lt_capture_request req = { .reason = at_exit ? LT_REASON_EXIT : LT_REASON_SIGNAL,
                                      .scan = scanned ? &scan : NULL, .world_stopped = scanned };
    lt_capture_write(&req);
    lt_scan_release(&scan);
    busy--;
    errno = saved_errno;
}

void lt_hook__exit(int status)
{
    write_final_capture(false);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

void lt_hook__Exit(int status) { lt_hook__exit(status); }

static void on_terminating_signal(int sig)
{
    write_final_capture(true);
    /* Then die of the same signal, as the program would have without us. */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signal_handlers(void)
{
    static const int sigs[] = { SIGINT, SIGTERM };
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction old;
        /* Only where the program left the default action: its own handlers always win. */
        if (sigaction(sigs[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL) continue;
        struct sigaction sa = { 0 };
        sa.sa_handler = on_terminating_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(sigs[i], &sa, NULL);
    }
}

/* ---- fork ------------------------------------------------------------------------------ */
static void fork_prepare(void)
{
    busy++;
    lt_regions_lock();
    lt_blocks_lock_all();
}

static void fork_parent(void)
{
    lt_blocks_unlock_all();
    lt_regions_unlock();
    busy--;
}

static void fork_child(void)
{
    lt_modules_after_fork_child();
    lt_series_after_fork_child();
    lt_control_after_fork_child();
    lt_blocks_unlock_all();
    lt_regions_unlock();
    busy--;
    if (lt_cfg.follow_children) { /* trace on, into a capture of the child's own */
        lt_is_child = true;
        atomic_store(&lt_owner_pid, getpid());
        atomic_store(&final_written, false);
    } else {
        atomic_store(&collecting_on, false);
        atomic_store(&tracking_on, false);
        atomic_store(&lt_owner_pid, 0);
        lt_env_remove_preload(SHIM_FILE_NAME); /* whatever this child execs is not traced */
    }
}

/* ---- start-up and normal exit ---------------------------------------------------------- */
__attribute__((constructor)) static void leaktrace_start(void)
{
    busy++;
    /* Preloaded, the global scope finds our malloc first; dlopen'd by `leaktrace attach`, it
     * finds libc's, and nothing starts until leaktrace_attach() is called. */
    attach_mode = dlsym(RTLD_DEFAULT, "malloc") != (void *)lt_hook_malloc;
    if (attach_mode) {
        lt_start_mono_ns = lt_now_ns();
        start_coarse_ns = clock_ns(CLOCK_MONOTONIC_COARSE);
        if (lt_stacks_init() && lt_blocks_init() && lt_regions_init() && lt_modules_init()) {
            lt_unwind_init();
            real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
            real_dlclose = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
            real_mtrace = (void (*)(void))dlsym(RTLD_NEXT, "mtrace");
            real_muntrace = (void (*)(void))dlsym(RTLD_NEXT, "muntrace");
            pthread_atfork(fork_prepare, fork_parent, fork_child);
        }
        busy--;
        return;
    }
    lt_start_mono_ns = lt_now_ns();
    start_coarse_ns = clock_ns(CLOCK_MONOTONIC_COARSE);
    lt_start_real_ns = lt_realtime_ns();
    lt_config_load();
    if (lt_stacks_init() && lt_blocks_init() && lt_regions_init() && lt_modules_init()) {
        lt_unwind_init();
        lt_modules_refresh(false);
        real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
        real_dlclose = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
        real_mtrace = (void (*)(void))dlsym(RTLD_NEXT, "mtrace");
        real_muntrace = (void (*)(void))dlsym(RTLD_NEXT, "muntrace");
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        if (lt_cfg.is_root || lt_cfg.follow_children) {
            lt_is_child = !lt_cfg.is_root;
            if (lt_cfg.write_on_signal) install_signal_handlers();
            atomic_store(&lt_owner_pid, getpid());
            atomic_store(&tracking_on, true);
            atomic_store(&collecting_on, lt_cfg.collect_at_start);
        } else { /* a child that inherited LD_PRELOAD (vfork, posix_spawn, own envp) */
            lt_env_remove_preload(SHIM_FILE_NAME);
        }
    }
    busy--;
}

__attribute__((destructor)) static void leaktrace_stop(void) { write_final_capture(false); }

/* ---- the exported names ------------------------------------------------------------------
 * Each interposed symbol is an alias of its lt_hook_ implementation: in preload mode the
 * dynamic linker binds the program to these; the hidden names are what the GOT patcher
 * writes (attach mode) and what tells the two modes apart. */
#define LT_X(name) extern __typeof__(lt_hook_##name) name __attribute__((alias("lt_hook_" #name), visibility("default")));
LT_HOOKED_FUNCTIONS(LT_X)
#undef LT_X

const struct lt_hook lt_hooks[] = {
#define LT_X(name) { #name, (void *)lt_hook_##name },
    LT_HOOKED_FUNCTIONS(LT_X)
#undef LT_X
    { NULL, NULL },
};
