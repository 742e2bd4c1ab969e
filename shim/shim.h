/* Internal interface between the shim's modules. Nothing here is exported from the library:
 * it is built with -fvisibility=hidden and only the interposed API carries LT_EXPORT. */
#ifndef LEAKTRACE_SHIM_H
#define LEAKTRACE_SHIM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>
#include <gnu/libc-version.h>

#include "capture_format.h"

#define LT_EXPORT __attribute__((visibility("default")))
#define LT_LIKELY(x) __builtin_expect(!!(x), 1)
#define LT_UNLIKELY(x) __builtin_expect(!!(x), 0)

#define LT_MAX_DEPTH_LIMIT 256
#define LT_PATH_MAX 4096

/* ---- arena.c: memory the shim maps for itself ------------------------------------------
 * Every table lives in private anonymous mappings named "[anon:leaktrace]" (where the kernel
 * supports naming) and listed in lt_own_mappings, so a reachability scan can skip them.
 * The real allocator is never used for bookkeeping. */
void *lt_map(size_t size);             /* zeroed, NORESERVE; NULL on failure */
void *lt_map_populated(size_t size);   /* lt_map with every page already faulted in */
void lt_unmap(void *addr, size_t size);
/* The mapping `*at` points to, mapped (size bytes) and installed with a CAS by the first
 * caller; NULL if the system refused. For tables mapped a piece at a time, as they grow. */
void *lt_map_once(_Atomic(void *) *at, size_t size);
size_t lt_page_size(void);
/* Per-thread records kept in tables keyed by thread pointer (%fs:0, the thread's control
 * block: unique among live threads, and given by glibc to a new thread once its owner ended,
 * so a record outlives its thread and goes to the next one there): the unwinder's trails, the
 * alternate signal stacks. A record is claimed by a CAS of the pointer, probing on from
 * lt_thread_home. x86-64, as the rest of the shim. */
static inline uintptr_t lt_thread_pointer(void)
{
    uintptr_t tp;
    __asm__("movq %%fs:0, %0" : "=r"(tp));
    return tp;
}
static inline size_t lt_thread_home(uintptr_t tp, size_t slots)
{
    return (size_t)((((uint64_t)tp >> 6) * 0x9e3779b97f4a7c15ull) >> 32) % slots;
}
/* A table read at places a hash picks, then written there (the stack table, the unwinder's
 * rule cache): a first read of an untouched page maps the kernel's zero page, and the write
 * after it must replace that entry and flush it from every CPU running the program (an
 * interrupt to each, which it waits for: tens of microseconds in a virtual machine). So each
 * 4 KiB of such a table has a bit, set once the page was made writable (MADV_POPULATE_WRITE,
 * Linux 5.14; older kernels keep the flush); call lt_ready_page before reading at `at`. */
#define LT_READY_SHIFT 12
void lt_ready_page_slow(const void *at, _Atomic uint64_t *ready, size_t bit);
static inline size_t lt_page_bit(const void *table, const void *at)
{
    return (size_t)((uintptr_t)at - (uintptr_t)table) >> LT_READY_SHIFT;
}
static inline bool lt_page_ready(const void *table, _Atomic uint64_t *ready, const void *at)
{
    size_t bit = lt_page_bit(table, at);
    return (atomic_load_explicit(&ready[bit / 64], memory_order_relaxed) >> (bit % 64)) & 1;
}
static inline void lt_ready_page(const void *table, _Atomic uint64_t *ready, const void *at)
{
    if (__builtin_expect(!lt_page_ready(table, ready, at), 0))
        lt_ready_page_slow(at, ready, lt_page_bit(table, at));
}
/* own_stack.c: fn(arg) on a fresh stack of the shim's own (the exit, signal and exec paths'
 * scan and capture must not depend on the stack the program's thread has left). */
void lt_on_own_stack(void (*fn)(void *), void *arg);
/* Fills up to max [start, end) ranges of the shim's live mappings; returns how many. */
unsigned lt_own_mappings(uintptr_t *starts, uintptr_t *ends, unsigned max);

/* ---- config.c: settings read from the environment at start-up -------------------------- */
#define LT_SESSION_MAX 64
#define LT_CLEAR_LIMIT (8u << 10) /* the largest new block hooks.c clears (the reasons there) */
#define LT_CLEAR_WHOLE 4096u /* up to here every byte; above, the pages already in memory */
struct lt_config {
    int max_depth;           /* LEAKTRACE_MAX_DEPTH, default 64 */
    bool follow_children;    /* LEAKTRACE_FOLLOW_CHILDREN=1 */
    char skip_children[LT_PATH_MAX]; /* LEAKTRACE_SKIP_CHILDREN: comma-separated name patterns */
    bool is_root;            /* this process is the one leaktrace launched, or preloaded by hand */
    bool launched;           /* started by `leaktrace run` (LEAKTRACE_LAUNCHER_PID is set) */
    pid_t launcher_pid;      /* that launcher, when this process is its child; else 0 */
    bool write_on_signal;    /* LEAKTRACE_SIGNALS, default on: capture on SIGINT/SIGTERM */
    bool scan_at_exit;       /* LEAKTRACE_SCAN, default on: reachability scan at exit */
    bool freeres_at_exit;    /* LEAKTRACE_FREERES, default on: glibc/libstdc++ release their
                                own buffers before the exit scan, as under valgrind */
    unsigned heuristics;     /* LEAKTRACE_HEURISTICS: all (default), none, or a comma list */
    bool collect_at_start;   /* LEAKTRACE_START=at-load (default) or on-mtrace */
    bool control_enabled;    /* LEAKTRACE_CONTROL, default on: the control socket */
    _Atomic uint32_t clear_limit; /* hooks.c clears new blocks up to this size; 0 when glibc
                                fills them itself (MALLOC_PERTURB_, glibc.malloc.perturb,
                                mallopt(M_PERTURB): a debugging run's pattern must stay what
                                the program reads). Atomic: mallopt may change it at run time */
    uint32_t interval_ms;    /* LEAKTRACE_INTERVAL seconds (fractions allowed); 0 = default */
    uint64_t sample_bytes;   /* LEAKTRACE_SAMPLE: mean bytes between samples; 0 = every block */
    char control_dir[LT_PATH_MAX]; /* where the control socket goes */
    bool control_dir_explicit; /* control_dir is LEAKTRACE_CONTROL_DIR's, not a default */
    uid_t control_dir_uid;   /* the user the default control_dir was chosen for */
    char output[LT_PATH_MAX];/* LEAKTRACE_OUTPUT: exact path for this process, may be empty */
    char dir[LT_PATH_MAX];   /* LEAKTRACE_DIR or the cwd at start: where default names go */
    char notify[LT_PATH_MAX];/* LEAKTRACE_NOTIFY: file that gets one line per capture */
    char mtrace_log[LT_PATH_MAX]; /* LEAKTRACE_MTRACE_LOG: run --mtrace-log (mtrace_log.c) */
    char session[LT_SESSION_MAX]; /* LEAKTRACE_SESSION: the attach session's name, chosen by
                                `leaktrace attach`; `detach NAME` ends that session only */
};
/* Written once by lt_config_load() during start-up (single-threaded), by the fork child
 * handler (single-threaded by definition), and by leaktrace_attach() before it starts the
 * control thread (the previous session's is joined first); read-only otherwise. */
extern struct lt_config lt_cfg;
void lt_config_load(void);
/* Settings from this environment array instead of `environ` (NULL: environ again); for a
 * start before libc has set environ. */
void lt_config_use_environment(char **env);
/* Attach mode: the same settings, as NAME=VALUE lines of a file. */
bool lt_config_load_file(const char *path);
void lt_env_remove_preload(const char *shim_path);
void lt_preload_drop_shim(char *entry, const char *shim_path); /* an "LD_PRELOAD=..." entry, in place */
/* Does the LD_PRELOAD list entry [entry, entry + len) name the shim (by its file name)? The
 * loader separates entries by colons or spaces. */
bool lt_preload_entry_is(const char *entry, size_t len, const char *shim_path);

/* ---- text.c: formatting without snprintf ---------------------------------------------- */
char *lt_put_str(char *dst, char *end, const char *s);
char *lt_put_uint(char *dst, char *end, uint64_t v);
char *lt_put_json_str(char *dst, char *end, const char *s);
/* `,"key":value` members, for answers that start with `{"ok":true`. */
char *lt_put_json_uint(char *dst, char *end, const char *key, uint64_t v);
char *lt_put_json_bool(char *dst, char *end, const char *key, bool v);
char *lt_put_json_text(char *dst, char *end, const char *key, const char *value);

/* ---- descriptors.c ------------------------------------------------------------------------ */
/* Moves a descriptor of the shim's own to a number at or above the soft RLIMIT_NOFILE (where
 * the program's open() never reaches), close-on-exec; returns the new number (fd itself if it
 * cannot move; negative stays negative). */
int lt_fd_out_of_the_way(int fd);
void lt_fd_table_grow_early(void); /* start-up: before threads share the table */
struct lt_fd_identity { dev_t dev; ino_t ino; }; /* the file a descriptor of the shim's names */
bool lt_fd_identify(int fd, struct lt_fd_identity *id);
bool lt_fd_still_names(int fd, const struct lt_fd_identity *id);

/* ---- procfs.c: /proc/self without allocating --------------------------------------------- */
size_t lt_read_file(const char *path, char *dst, size_t cap); /* returns the length read */
size_t lt_read_whole(int fd, char *dst, size_t cap); /* procfs.c: pread from 0 until cap or EOF */
void lt_procfs_keep_maps(void);                 /* procfs.c: kept open from now on (privileges.c) */
size_t lt_read_maps(char *dst, size_t cap);      /* /proc/self/maps, through it when kept */
/* open and readlink of a /proc path, through /proc as it was before a chroot when the new
 * root has none (lt_procfs_keep, called by the chroot hook). */
int lt_open_proc(const char *path, int flags);
ssize_t lt_readlink_proc(const char *path, char *dst, size_t cap);
void lt_procfs_keep(void);
/* Copies len bytes of this process's memory; false where any of it is not readable (an
 * unmapped or protected page: the kernel reports it instead of the process faulting). */
bool lt_copy_memory(void *dst, uintptr_t src, size_t len);
pid_t lt_own_memory_id(void); /* for process_vm_readv on this process: this thread's id */
/* Calls fn (if not NULL) for each thread of the process; returns how many, or -1. */
int lt_for_each_thread(void (*fn)(pid_t tid, void *ctx), void *ctx);
/* The thread no longer runs code of this process: gone from /proc, or it has left the address
 * space (its statm reads zeros). The kernel wakes a thread's joiner while that thread is still
 * leaving, and glibc blocks every signal in a thread's last steps: such a thread is listed a
 * moment longer but never handles a signal again. */
bool lt_thread_has_left(pid_t tid);
bool lt_thread_surely_left(pid_t tid); /* the same, but a file that cannot be read: no */
/* The control thread's repeated looks, through files it keeps open (no descriptor taken for
 * a moment under the program's feet): lt_thread_surely_left of the main thread, and
 * lt_for_each_thread's count. */
void lt_procfs_keep_for_control(void); /* opens both, before the control thread starts */
bool lt_main_thread_surely_left(void);
int lt_count_threads_again(void);
void lt_procfs_after_fork_child(void); /* the kept files are the parent's */
bool lt_under_seccomp_filter(void); /* /proc/self/status says Seccomp: 2 */
int lt_main_thread_exit_status(void); /* the main thread's, once it left; -1: not known */
/* What /proc says of another thread. blocks_signal: `sig` cannot reach a handler of the
 * thread now: its mask blocks it, or it waits in sigwait/sigtimedwait for a set that holds
 * it (sending it then would hand the program a signal it never sent itself, as a signalfd
 * would too). in_syscall: it waits in a system call, `sp` its user stack pointer there. */
struct lt_thread_state {
    bool blocks_signal, in_syscall;
    uintptr_t sp;
    uintptr_t args[6]; /* the system call's arguments: registers that may hold pointers */
};
bool lt_thread_state(pid_t tid, int sig, struct lt_thread_state *out); /* false: unknown */
/* Whether thread tid has signal sig pending (its own, or the process's). */
bool lt_thread_has_pending(pid_t tid, int sig);
uintptr_t lt_parse_hex(const char **p); /* lower-case hex digits, "0x" allowed; moves *p */

/* ---- clock ---------------------------------------------------------------------------- */
uint64_t lt_now_ns(void);        /* monotonic */
uint64_t lt_realtime_ns(void);
uint32_t lt_elapsed_ms(void);    /* since start, coarse clock: cheap on the hot path */
/* Opens a series snapshot: returns its edge (ms since start, on lt_elapsed_ms's clock), the
 * earliest time any block allocated from now on is stamped with. */
uint32_t lt_open_series_edge_ms(void);
extern uint64_t lt_start_mono_ns, lt_start_real_ns; /* set once at start-up */

/* ---- unwind.c: backtraces without frame pointers -------------------------------------- */
void lt_unwind_init(void);
/* Fills pcs with return addresses, innermost first, skipping the shim's own frames.
 * Returns the depth; *truncated is set when more frames existed than max. */
int lt_unwind(uintptr_t *pcs, int max, bool *truncated);
/* The backtrace of the code a signal interrupted, from the registers in `uc`: the interrupted
 * instruction first (as its address + 1, so that it is looked up like a return address),
 * then its callers; words are read so that a wild stack pointer cannot fault. For a fatal
 * signal's report (fatal.c). *handler_frame: where the first signal frame the walk met begins
 * (the kernel's ucontext: the code interrupted was a handler's), else 0. */
int lt_unwind_interrupted(const ucontext_t *uc, uintptr_t *pcs, int max, bool *truncated,
                          uintptr_t *handler_frame);
/* The stack pointer where the program's own frames begin on this thread: the frames below it
 * belong to the runtime (libc, the loader) and the shim, e.g. exit() and its handlers. */
uintptr_t lt_unwind_program_sp(void);
/* Where a signal handler's scan of the interrupted stack begins, from its registers: at the
 * innermost frame that is the program's or the shim's (a hook's frames are live); the
 * interrupted stack pointer less the red zone when that is the innermost one or it cannot
 * tell. */
uintptr_t lt_unwind_roots_start(uintptr_t pc, uintptr_t sp, uintptr_t bp);
void lt_unwind_flush_cache(void); /* after dlclose: cached rules may describe unmapped code */
void lt_unwind_release(void);     /* after detach: the incremental records go (lt_release_tables) */
void lt_unwind_reacquire(void);   /* the next attach maps new ones */
/* The backtrace of the hook's caller, re-walking only the frames that changed since this
 * thread's previous one (unwind.c, "incremental backtraces"); the same frames lt_unwind finds. */
struct lt_backtrace {
    const uintptr_t *pcs;            /* innermost first: buf, or the thread's own record;
                                        NULL when id is set from a recent path (unwind.c):
                                        the stack table has the frames */
    int depth;
    bool truncated;                  /* more frames existed than max */
    uint64_t hash;                   /* lt_stack_hash of pcs[0..depth), or 0: not computed */
    uint32_t id;                     /* the stack id, when known already (this thread's last
                                        backtrace again), else 0 */
    void *trail;                     /* (unwind.c) the thread's record, held until done */
    int trail_start;
    uint64_t cut_key;                /* (unwind.c) a cut backtrace's key to remember, or 0 */
};
/* `frame`: the frame address of the hook (__builtin_frame_address(0) inside it), where the
 * skipping of the shim's own frames starts; NULL: from lt_backtrace_take's own frame. */
void lt_backtrace_take(struct lt_backtrace *bt, uintptr_t *buf, int max, const void *frame);
/* Ends the use of bt.pcs; id is the stack id the caller interned them as. */
void lt_backtrace_done(const struct lt_backtrace *bt, uint32_t id);
/* The hash the stack table keys a backtrace with, built from the outermost frame inwards so
 * a backtrace that shares its outer frames with the previous one reuses their part. */
#define LT_STACK_HASH_SEED 0x9e3779b97f4a7c15ull
static inline uint64_t lt_stack_hash_step(uint64_t outer, uintptr_t pc)
{
    uint64_t h = (outer ^ pc) * 0xff51afd7ed558ccdull;
    return h ^ (h >> 32);
}

/* ---- stacks.c: deduplicated backtraces and their totals ------------------------------- */
struct lt_stack {
    uint64_t hash;
    uint32_t depth;
    uint32_t pcs_index;              /* into the pcs arena */
};
/* A stack's totals since start (or the last reset), summed over the threads' stripes. */
struct lt_stack_totals {
    uint64_t alloc_count, alloc_bytes, free_count, freed_bytes;
};
bool lt_stacks_init(void);
void lt_stacks_release(void);          /* after detach: lt_release_tables */
uint32_t lt_stacks_intern(const uintptr_t *pcs, int depth); /* 0 when the table is full */
/* The same with the hash known (0: not known). */
uint32_t lt_stacks_intern_hashed(const uintptr_t *pcs, int depth, uint64_t hash);
struct lt_stack *lt_stack_get(uint32_t id);
const uintptr_t *lt_stack_pcs(const struct lt_stack *s);
uint32_t lt_stacks_count(void);      /* ids are 1 .. count */
uint8_t lt_stack_stripe_of_slot(unsigned slot); /* a registry slot's stripe, marked in use */
void lt_stack_note_alloc(uint32_t id, uint64_t size);
void lt_stack_note_free(uint32_t id, uint64_t size, bool whole_block);
void lt_stack_note_grow(uint32_t id, uint64_t grown_by); /* a block resized in place */
/* Counts of events any thread may meet on every call (the hooks, annotations, a free deferred
 * from a signal handler), kept per stripe (as the totals) and summed by readers; reset with
 * the totals. */
enum lt_striped {
    LT_CUT_BACKTRACES, /* allocations whose backtrace was cut at the depth limit */
    LT_UNKNOWN_FREES,  /* frees of blocks the table did not hold */
    LT_STRIPED_COUNTERS
};
void lt_striped_add(enum lt_striped which);
uint64_t lt_striped_sum(enum lt_striped which);
struct lt_stack_totals lt_stack_totals(uint32_t id);
void lt_stacks_reset_totals(void);   /* ids stay valid; their totals start again at 0 */

/* ---- series.c: per-stack totals over time ------------------------------------------------ */
#define LT_MAX_SNAPSHOTS 1024
struct lt_series_entry {
    uint32_t stack_id, reserved;
    uint64_t alloc_count, alloc_bytes, live_blocks, live_bytes;
};
struct lt_snapshot {
    uint64_t time_ns;                /* since start */
    size_t first;                    /* index of its first entry */
    uint32_t count;
};
/* Takes a snapshot; returns true when older snapshots were merged (the interval should
 * double to keep the resolution even). */
bool lt_series_snapshot(void);
void lt_series_lock(void);
void lt_series_unlock(void);
/* pre: series lock held. */
size_t lt_series_count(void);
const struct lt_snapshot *lt_series_get(size_t i, const struct lt_series_entry **first_entry);
void lt_series_after_fork_child(void);
void lt_series_reset(void);
void lt_series_release(void);          /* after detach: lt_release_tables */

/* ---- blocks.c: live heap blocks, keyed by address ------------------------------------- */
struct lt_block {
    uintptr_t addr;                  /* 0 = empty slot */
    uint64_t packed;                 /* size << 24 | generation << 8 | kind (24 bytes a block) */
    uint32_t stack_id;
    uint32_t time_ms;                /* allocation time, ms since start */
};
#define LT_MAX_PACKED_SIZE ((UINT64_C(1) << 40) - 1) /* 1 TiB: no heap block is larger */
static inline uint64_t lt_block_pack(uint64_t size, unsigned generation, unsigned kind)
{
    if (size > LT_MAX_PACKED_SIZE) size = LT_MAX_PACKED_SIZE;
    return size << 24 | (uint64_t)(generation & 0xffff) << 8 | (kind & 0xff);
}
static inline uint64_t lt_block_size(const struct lt_block *b) { return b->packed >> 24; }
static inline unsigned lt_block_generation(const struct lt_block *b) { return (unsigned)(b->packed >> 8) & 0xffff; }
static inline unsigned lt_block_kind(const struct lt_block *b) { return (unsigned)(b->packed & 0xff); }

/* The baseline generation: bumped by the control command `reset` and by each mtrace() call.
 * A block remembers the generation it was born in, so "allocated since the baseline" is exact
 * (timestamps are not: several allocations share a millisecond). Written by the control thread
 * and mtrace(), read relaxed by every allocation. */
extern _Atomic unsigned lt_generation;
/* (track.c) A thread inside a leaktrace.track() block stamps its own generation instead;
 * LT_QUIET_GENERATION while track()'s own Python code does its bookkeeping: what the thread
 * allocates then is not recorded (hooks.c). */
extern __thread unsigned lt_thread_generation __attribute__((tls_model("initial-exec")));

/* What an operator new asked for (allocator.c): (size + 1) << 1, plus 1 for an array new; 0
 * when none is pending. Set as the program's call enters the runtime's operator, for the
 * array and aligned forms always, for a scalar new only at 0 bytes (the array forms call the
 * scalar ones, often as a tail call: the outermost call's value stays). Taken by the thread's
 * next allocation hook, which checks it could be the runtime's allocation: 1 byte for 0, and
 * the aligned forms round up to the alignment (C11's rule for aligned_alloc). Such a block is
 * recorded at the size asked (*size: 0 for `new char[0]`), and an array's as
 * LT_KIND_NEW_ARRAY, as valgrind reports both. A value left by a new that failed before
 * allocating is used only by an allocation it could have made. */
extern __thread size_t lt_new_asked __attribute__((tls_model("initial-exec")));
/* The block this thread's last operator delete hook freed, | 1 for delete[] (allocator.c);
 * read by the free hook that follows (hooks.c, forget_block), which clears a delete[]'s.
 * Per thread: nobody else touches it. */
extern __thread uintptr_t lt_deleting __attribute__((tls_model("initial-exec")));
static inline unsigned lt_allocation_kind(size_t alignment, size_t *size, unsigned kind)
{
    size_t pending = lt_new_asked;
    if (LT_LIKELY(pending == 0)) return kind;
    lt_new_asked = 0;
    size_t asked = (pending >> 1) - 1, made = asked ? asked : 1;
    if (made > *size || *size - made >= (alignment ? alignment : 1)) return kind;
    *size = asked;
    return pending & 1 ? LT_KIND_NEW_ARRAY : kind;
}
#define LT_QUIET_GENERATION UINT_MAX
static inline unsigned lt_generation_now(void)
{
    unsigned own = lt_thread_generation;
    return own ? own : atomic_load_explicit(&lt_generation, memory_order_relaxed);
}
bool lt_blocks_init(void);
bool lt_blocks_held_here(void);          /* this thread holds a shard lock */
void lt_blocks_release(void);          /* after detach: lt_release_tables */
void lt_blocks_after_fork_child(void); /* after lt_blocks_unlock_all in a fork child */
void lt_blocks_stop_owning(void);      /* before a seccomp filter: no membarrier after it */
/* hash: lt_blocks_prefetch's for addr (computed once on the malloc path). */
void lt_blocks_insert(uintptr_t addr, uint64_t hash, uint64_t size, unsigned kind, uint32_t stack_id);
/* Remove and return. False when unknown, and also, doing nothing, when called from a signal
 * handler that interrupted its thread inside this table: the caller then uses forget. */
bool lt_blocks_take(uintptr_t addr, struct lt_block *out);
void lt_blocks_put_back(const struct lt_block *b);
/* Remove and count the block as freed (or the free as unknown); from a signal handler that
 * interrupted its thread inside this table, done as soon as the thread leaves it. */
/* The removed block's kind (LT_KIND_*); LT_FORGET_MISSED: not in the table; LT_FORGET_UNTOLD:
 * never sampled, or queued (a signal handler's, applied later): its kind is not known here. */
unsigned lt_blocks_forget(uintptr_t addr);
#define LT_FORGET_MISSED 0u
#define LT_FORGET_UNTOLD 0x100u
/* A hint: the insertion of addr comes soon (the caller unwinds meanwhile). Returns addr's
 * hash, for lt_blocks_insert. */
uint64_t lt_blocks_prefetch(uintptr_t addr);
typedef void (*lt_block_visitor)(const struct lt_block *b, void *ctx);
/* Visits every live block, one shard locked at a time. With try_only, shards whose lock is
 * held (e.g. by a thread interrupted by the signal that asked for this) are skipped and
 * counted in the return value. */
unsigned lt_blocks_visit(lt_block_visitor fn, void *ctx, bool try_only);
void lt_blocks_lock_all(void);
void lt_blocks_reset(void);          /* forgets every block (attach mode) */
/* pre: lt_blocks_lock_all() held. */
size_t lt_blocks_count_locked(void);
void lt_blocks_visit_locked(lt_block_visitor fn, void *ctx);
void lt_blocks_unlock_all(void);

/* ---- annotate.c: blocks of custom allocators (leaktrace/annotate.h) ------------------------
 * Kinds LT_KIND_MALLOCLIKE and LT_KIND_MEMPOOL, in a table of their own, guarded by one lock
 * (taken after the block-shard locks, before nothing else of the shim). */
static inline bool lt_kind_is_annotated(unsigned kind)
{
    return kind == LT_KIND_MALLOCLIKE || kind == LT_KIND_MEMPOOL;
}
unsigned lt_annotations_visit(lt_block_visitor fn, void *ctx, bool try_only);
void lt_annotations_lock(void);
void lt_annotations_unlock(void);
void lt_annotations_reset(void);     /* forgets every annotated block and pool (attach mode) */
void lt_annotations_release(void);   /* after detach: lt_release_tables */
bool lt_annotations_held_here(void); /* this thread is inside the table (a handler interrupted it) */
/* pre: lt_annotations_lock() held. */
size_t lt_annotations_count_locked(void);
void lt_annotations_visit_locked(lt_block_visitor fn, void *ctx);

/* ---- regions.c: mmap'd ranges and program-break growth ------------------------------- */
bool lt_regions_init(void);
void lt_regions_release(void);         /* after detach: lt_release_tables */
void lt_regions_lock(void);
void lt_regions_unlock(void);
/* pre: regions lock held. */
void lt_regions_add(uintptr_t start, uint64_t len, unsigned kind, uint32_t stack_id);
void lt_regions_remove(uintptr_t start, uint64_t len);
void lt_regions_reset(void);
unsigned lt_regions_visit(lt_block_visitor fn, void *ctx, bool try_only);
void lt_regions_visit_locked(lt_block_visitor fn, void *ctx); /* pre: lt_regions_lock held */

/* ---- modules.c: loaded objects, kept after dlclose ----------------------------------- */
bool lt_modules_init(void);
void lt_modules_release(void);         /* after detach: lt_release_tables */
void lt_modules_refresh(bool mark_unloaded);
/* Records an object the unwinder met (from _dl_find_object), without calling the loader: this
 * is what keeps the module list complete for captures written from a signal handler. */
void lt_modules_note_object(uintptr_t map_start, uintptr_t map_end, uintptr_t bias, const char *name);
void lt_modules_lock(void);
bool lt_modules_trylock(void);
void lt_modules_unlock(void);
void lt_modules_after_fork_child(void);
struct lt_module {
    uint64_t bias, start, end;
    uint32_t flags;                  /* LT_MODULE_FLAG_* */
    uint32_t build_id_len;
    uint8_t build_id[32];
    char path[512];
};
/* pre: modules lock held. */
unsigned lt_modules_count(void);
const struct lt_module *lt_module_at(unsigned i);

/* ---- capture.c: the capture file ------------------------------------------------------ */
/* enum lt_capture_reason (LT_REASON_*): capture_format.h */
int lt_scan_signal(void);            /* (scan.c) the signal that parks threads for a scan */
void *lt_scan_handler(void);         /* (scan.c) its handler: reported as SIG_DFL (signals.c) */
void lt_scan_give_back_signal(void); /* (scan.c) at detach: that signal's default action back */
/* (scan.c) Roots for the final scan that only registers held: the ending thread's. */
void lt_scan_add_roots(const uintptr_t *words, int n);
/* (capture.c) The base name of this process's captures: its final capture's, but for a
 * ".N" before ".lt" when a file of that name exists already. */
void lt_capture_main_name(char *dst, size_t cap);
struct lt_scan;
struct lt_capture_request {
    unsigned reason;                 /* exit and signal captures are final, the rest on-demand */
    const struct lt_scan *scan;      /* heap blocks as a scan classified them, or NULL */
    bool only_since_baseline;        /* only blocks born since the last reset/mtrace() */
    bool world_stopped;              /* other threads are parked for good: take no lock they
                                        could hold (loader, module list) */
    bool in_signal_handler;          /* written from a signal handler: only try-locks */
    const uint8_t *generations;      /* if set: only blocks whose generation's bit is set */
    const char *exact_path;          /* if set: the file to create, and no notify line */
    const char *note;                /* if set: one more line for the NOTES section */
    char path[LT_PATH_MAX];          /* out: the file written */
};
/* Writes a capture; returns 0 or -errno. */
int lt_capture_write(struct lt_capture_request *req);
void lt_capture_reserve(void);       /* at start-up: the writer's memory, for when none is left */
void lt_capture_release_reserve(void); /* attach mode, after detach */
/* Before the process changes its user or groups: the final capture's file and the notify
 * file are opened now, while it still may (once per process). */
void lt_capture_prepare_final(void);
void lt_capture_after_fork_child(void);
void lt_capture_drop_prepared(void); /* before an exec: the early-opened final file goes */
void lt_capture_notify_failure(int error); /* tells the launcher no final capture will come */
void lt_capture_notify_detached(void);   /* tells `leaktrace attach` a detach ended its session */
void lt_capture_notify_traced(void);     /* tells `leaktrace run` a child is traced */
void lt_capture_notify_exec(const char *image, bool failed); /* ... which file an exec runs */
void lt_capture_remember_name(void);     /* the program's name as it started, for capture names */

/* ---- counters (lifecycle.c) ------------------------------------------------------------ */
/* Rare events; the per-call ones (cut backtraces, unknown frees) are lt_striped_add's. */
struct lt_counters {
    _Atomic uint64_t dropped_blocks, dropped_stacks;
};
extern struct lt_counters lt_counters;
/* ---- the hook table (hooks.c, from hooked_functions.h) --------------------------------- */
struct lt_hook {
    const char *name;
    void *function;
};
extern const struct lt_hook lt_hooks[]; /* ends with { NULL, NULL } */
void *lt_hook_named(const char *name); /* any table's hook for that name; NULL: none */
void lt_hooks_resolve(void);         /* dlsym(RTLD_NEXT) of the few functions called by name */
/* ---- lifecycle.c: the tracer's one state and its transitions ------------------------------ */
enum lt_state {
    LT_STATE_LOADED = 0,     /* nothing started: preloaded before the first hooked call, or
                                dlopen'd by attach before leaktrace_attach() */
    LT_STATE_STARTING = 1,   /* one thread is setting up; hooks pass through */
    LT_STATE_OFF = 2,        /* not tracing: untraced child, detached, or set-up failed */
    LT_STATE_TRACKING = 3,   /* the tables follow frees and unmaps; nothing new is recorded */
    LT_STATE_FINAL = 4,      /* the final capture is claimed (being written or written); frees
                                are still followed (the runtime's own buffers are freed first) */
    LT_STATE_COLLECTING = 5, /* every allocation is recorded */
};
extern _Atomic int lt_state;         /* written by lifecycle.c's transitions only */
/* Per thread: > 0 while the shim works on this thread, so what it allocates is not recorded.
 * Initial-exec TLS: reading it never allocates. */
extern __thread int lt_busy;
extern __thread int lt_in_regions; /* inside a mapping hook, the regions lock held (hooks.c) */

/* ---- inflight.c: which threads are inside the tables (so detach can unmap them) ----------
 * A hook that will touch the tables calls lt_tables_enter() first and, when it returned true,
 * lt_tables_leave() when done. Entering raises the thread's own count, then confirms the
 * state still lets hooks in; detach sets the state OFF, then waits for every count to fall
 * to zero (lt_inflight_wait_quiet) before it unmaps anything. */
struct lt_thread_slot {
    _Atomic unsigned inside;  /* written by the owner only, unless `shared` */
    _Atomic pid_t owner;      /* 0: free; claimed with a CAS */
    bool shared;              /* slot 0: threads that found no free slot, updated atomically */
    uint8_t stripe;           /* the stack totals' stripe its owner adds to (stacks.c); set once */
    char pad[54];
};
extern __thread struct lt_thread_slot *lt_my_slot __attribute__((tls_model("initial-exec")));
bool lt_inflight_init(void);         /* at start-up: the registry (never unmapped) */
void lt_inflight_prepare(void);      /* at attach: registers for the cheap membarrier */
struct lt_thread_slot *lt_inflight_claim(void); /* this thread's slot; NULL without a registry */
void lt_inflight_after_fork_child(void);
bool lt_inflight_wait_quiet(unsigned timeout_ms);

static inline void lt_tables_leave_slot(struct lt_thread_slot *s)
{
    if (LT_UNLIKELY(s->shared)) atomic_fetch_sub(&s->inside, 1);
    else atomic_store_explicit(&s->inside, atomic_load_explicit(&s->inside, memory_order_relaxed) - 1,
                               memory_order_relaxed);
}

/* A block's address carried across a call in a form no scan takes for a pointer (its bits
 * flipped: a kernel address): callees save the registers they use in their frames, and those
 * frames stay behind on the program's stack below its stack pointer, where a later frame's
 * unwritten slot, or a copy the program makes of its stack (a struct's padding), would find
 * it. The empty asm hides the relation from the compiler, which would otherwise keep p. */
static inline uintptr_t lt_hide_address(const void *p)
{
    uintptr_t hidden = ~(uintptr_t)p;
    __asm__("" : "+r"(hidden));
    return hidden;
}
static inline void *lt_shown_address(uintptr_t hidden)
{
    __asm__ volatile("" : "+r"(hidden)); /* each use its own: one kept across a call is p again */
    return (void *)~hidden;
}
static inline bool lt_hidden_null(uintptr_t hidden) { return hidden == ~(uintptr_t)0; }
/* What an allocation hook returns: the block's address, in a register, once `held` is cleared.
 * `held`, a volatile slot of the hook's own frame, keeps the block reachable for a scan that
 * stops the thread inside the hook (the flipped form is no pointer to it); cleared, it leaves
 * no copy behind either. */
static inline void *lt_let_go(void *volatile *held, uintptr_t hidden)
{
    void *p = lt_shown_address(hidden);
    __asm__ volatile("" : "+r"(p));
    *held = NULL;
    return p;
}

/* Zeroes the registers a call may clobber, but %rax (the hook's result), so that no copy of a
 * block's address the shim's recording made there outlives the hook. A thread that next waits
 * in a system call keeps whatever those registers held, and the scan reads a stopped thread's
 * registers as roots: a record copied through %xmm3 kept a leaked block "still reachable" while
 * its thread waited on a condition variable. The ABI lets a call clobber all of them; zeroing
 * idioms cost next to nothing. Call it last before returning to the program. */
static inline __attribute__((always_inline)) void lt_scrub_scratch_registers(void)
{
#if defined(__x86_64__)
    __asm__ volatile("xor %%ecx, %%ecx\n\txor %%edx, %%edx\n\txor %%esi, %%esi\n\txor %%edi, %%edi\n\t"
                     "xor %%r8d, %%r8d\n\txor %%r9d, %%r9d\n\txor %%r10d, %%r10d\n\txor %%r11d, %%r11d\n\t"
                     "pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\tpxor %%xmm3, %%xmm3\n\t"
                     "pxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\tpxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\t"
                     "pxor %%xmm8, %%xmm8\n\tpxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
                     "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\tpxor %%xmm15, %%xmm15"
                     ::: "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
                         "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                         "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc");
#endif
}

/* True when the caller may touch the tables (then lt_tables_leave() must follow). No fence:
 * the waiter's membarrier() orders this thread's count before its read of the state. */
static inline bool lt_tables_enter(void)
{
    struct lt_thread_slot *s = lt_my_slot;
    if (LT_UNLIKELY(!s) && !(s = lt_inflight_claim()))
        return atomic_load_explicit(&lt_state, memory_order_relaxed) >= LT_STATE_TRACKING;
    if (LT_UNLIKELY(s->shared)) atomic_fetch_add(&s->inside, 1);
    else atomic_store_explicit(&s->inside, atomic_load_explicit(&s->inside, memory_order_relaxed) + 1,
                               memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    if (LT_LIKELY(atomic_load_explicit(&lt_state, memory_order_relaxed) >= LT_STATE_TRACKING)) return true;
    lt_tables_leave_slot(s);
    return false;
}

/* Whether this thread is inside the tables now (a signal handler asks what it interrupted).
 * A thread on the shared slot cannot tell its count from others': it answers by its locks. */
static inline bool lt_tables_inside_here(void)
{
    struct lt_thread_slot *s = lt_my_slot;
    if (!s || s->shared) return lt_blocks_held_here();
    return atomic_load_explicit(&s->inside, memory_order_relaxed) != 0;
}

/* A signal handler runs on this thread over a table operation of the shim's that it
 * interrupted (the thread holds a shard, the annotations' table or the regions lock): what
 * would wait for those locks would wait for ever (a capture, fork, exec or exit from there). */
static inline bool lt_holds_tables_here(void)
{
    return lt_in_regions != 0 || lt_blocks_held_here() || lt_annotations_held_here();
}

/* A signal the program would have had while this thread was inside the tables, put off
 * until it leaves them (signals.c). */
extern __thread bool lt_signal_put_off __attribute__((tls_model("initial-exec")));
void lt_signals_raise_put_off(void);

static inline void lt_tables_leave(void)
{
    struct lt_thread_slot *s = lt_my_slot;
    if (LT_LIKELY(s != NULL)) lt_tables_leave_slot(s); /* NULL: no registry, nothing counted */
    /* The flag is read after the count is down: a signal put off until then has set it (the
     * count's store is relaxed, which would let the compiler read the flag before it). */
    atomic_signal_fence(memory_order_seq_cst);
    if (LT_UNLIKELY(lt_signal_put_off)) lt_signals_raise_put_off();
}
extern const struct lt_hook lt_allocator_hooks[]; /* (allocator.c) likewise */
extern const struct lt_hook lt_annotation_hooks[]; /* (annotate.c) likewise */

/* ---- allocator.c: the allocator behind the hooks ------------------------------------------ */
void lt_allocator_init(void);        /* at start-up, busy set */
size_t lt_usable_size(void *p);      /* the provider's malloc_usable_size, never the PLT's */
int lt_provider_mallopt(int param, int value); /* the provider's mallopt, as the program would call it */
/* dlsym found `definition` for `name` (lookups.c): the hook, if the definition is the function
 * that hook forwards to; else `definition`. */
void *lt_allocation_hook_for(const char *name, void *definition);
/* The same for a word whose name is not known (a variable the executable copied, R_X86_64_COPY):
 * the hook of the C library's allocation function `value` is, else `value`. */
void *lt_allocation_hook_for_value(void *value);
void *(*lt_provider_aligned_alloc(void))(size_t, size_t); /* NULL if it has none */

extern _Atomic int lt_owner_pid;     /* the pid whose capture these tables are */
extern bool lt_is_child;             /* set in a fork child that keeps tracing */
extern _Atomic uint64_t lt_baseline_ns; /* monotonic ns since start of the last reset/mtrace() */
bool lt_start_on_first_call(void);   /* LOADED -> STARTING -> ...; true when it now collects */
bool lt_may_start_threads(void);     /* the shim's constructor has run */
bool lt_collecting(void);            /* new allocations are being recorded */
void lt_set_collecting(bool on);     /* COLLECTING <-> TRACKING */
/* Starts a new baseline generation: what is allocated from now on is "since the baseline". */
void lt_new_baseline(void);
void lt_final_at_exit(void);         /* the final capture of _exit(), quick_exit(), Go's exit */
void lt_final_at_exit_from(uintptr_t program_sp); /* the same, the live stack given */
bool lt_before_thread_exit_call(int status); /* a program thread calls SYS_exit: the last? */
bool lt_program_threads_gone(void);          /* control thread: the program's threads all left */
_Noreturn void lt_end_after_program_threads(bool others_outlived_main); /* final capture, exit */
bool lt_go_exit_redirect(void);      /* go_exit.c: runtime.exit writes the final capture too */
bool lt_go_detect(void);             /* go_exit.c: at attach, only whether this is Go */
extern bool lt_go_program;           /* go_exit.c: a Go executable (lt_go_exit_redirect, lt_go_detect) */
/* A Go thread's own stack is live from here (0: not known); g is its %r14. */
uintptr_t lt_go_live_stack_from(uintptr_t g, uintptr_t sp, uintptr_t ip);
/* Goroutines Go keeps (0: not known), the free stacks of Go's pool, and the dead parts of
 * the stacks of the goroutines no thread runs and those free stacks, sorted [start, end)
 * ranges: for the scan, with the world stopped. */
size_t lt_go_goroutines(void);
size_t lt_go_free_stacks(void);
size_t lt_go_dead_stack_parts(uintptr_t (*out)[2], size_t max);
/* From a fatal signal's handler: the final capture (once; a second thread waits for it).
 * False: the signal interrupted this thread's own final capture and ends the process after it. */
struct lt_fatal; /* fatal.c: what ended the program, published by the claimant */
bool lt_final_on_signal(int sig, uintptr_t program_sp, bool interrupted_in_shim, bool refaults,
                        const struct lt_fatal *fatal);
bool lt_final_writing_here(void); /* this thread is writing the final capture */
void lt_signals_die_of(int sig);     /* the default action of `sig`, now */
int lt_final_signal(void);           /* the signal that ended the process, or 0 */
/* ---- invalid_frees.c: frees of addresses never allocated or freed already -------------- */
bool lt_invalid_frees_checked(void);   /* every block of the process was known until now */
bool lt_invalid_frees_checking(void);  /* ... and is: collecting now */
/* linkmap.c: whether an object imports glibc's own allocator names (__libc_malloc, ...), whose
 * blocks pass by the hooks; read by copy from its dynamic section (an object found without the
 * loader's lock, which another thread's dlclose may unmap meanwhile). Once seen, for good. */
void lt_note_allocator_imports(uintptr_t base, const void *dynamic);
bool lt_libc_allocations_imported(void);
void lt_modules_check_imports(void); /* modules.c: every object mapped now, no lock taken */
void lt_invalid_frees_stop(void);      /* collecting paused: no longer (for good) */
/* pre: lt_invalid_frees_checking(); inside the tables. api: LT_FREE_API_*. */
void lt_invalid_frees_note(uintptr_t addr, unsigned api);
/* Calls fn for each (stack id, API) site; returns how many there are. fn may be NULL. */
unsigned lt_invalid_frees_each(void (*fn)(uint32_t stack_id, unsigned api, uint64_t count,
                                          uint64_t first_address, void *ctx), void *ctx);
uint64_t lt_invalid_frees_unrecorded(void); /* calls whose site did not fit */
void lt_invalid_frees_after_fork_child(void);

/* ---- fatal.c: what ended the program (the FATAL section) ------------------------------ */
struct lt_fatal {
    uint32_t signal;
    int32_t code;              /* si_code */
    uint64_t address;          /* a fault's si_addr, else 0 */
    uint32_t sender_pid;       /* a sent signal's si_pid, else 0 */
    uint32_t tid;              /* the thread the signal struck */
    uint32_t flags;            /* LT_FATAL_FLAG_* */
    uint32_t depth;
    char thread_name[16];      /* its name (PR_GET_NAME), NUL-padded */
    /* LT_FATAL_FLAG_IN_HANDLER: the struck code ran in a signal handler, whose frame held: */
    uint32_t handler_trapno;          /* the CPU's trap number of the thread's last fault */
    uint32_t handler_error;           /* its error code */
    uint64_t handler_fault_address;   /* its address (cr2) */
    uintptr_t pcs[LT_MAX_DEPTH_LIMIT]; /* lt_unwind_interrupted's backtrace */
};
/* From the fatal-signal handler: the thread's own record (NULL: no memory for it). */
const struct lt_fatal *lt_fatal_describe(int sig, const siginfo_t *info, const ucontext_t *uc,
                                         bool in_shim);
void lt_fatal_publish(const struct lt_fatal *f); /* by the thread that claimed the final capture */
const struct lt_fatal *lt_fatal_noted(void);     /* the published record, or NULL */
bool lt_quick_exit_handled(void);    /* lifecycle.c: its at_quick_exit handler writes the capture */
/* ---- signals.c: fatal-signal handlers the program does not see ------------------------ */
void lt_signals_install(void);
/* forwarded.c: whether this arrival of `sig` is the second copy of a signal the launcher
 * passed on (drop it); a passed-on copy let through is made to look as its sender sent it. */
bool lt_forwarded_drops(int sig, siginfo_t *info);
bool lt_forwarded_signal(int sig); /* one the launcher may pass on, to this process */
void lt_signals_give_threads_stacks(void);      /* alternate signal stacks, hidden: at start-up */
void lt_signals_give_this_thread_a_stack(void); /* (inflight.c) a thread's first entry */
bool lt_signals_stands_in(uintptr_t handler); /* the shim's handler in place of SIG_DFL */
/* lookups.c: dlsym(RTLD_NEXT, name) of every hooked name, once at start-up; then the answer. */
void lt_next_symbols_resolve(void);
/* Assembly text for a hook's rare first call: calls `resolver` (which returns the next
 * definition, or NULL) keeping the caller's first two argument registers, then jumps to what
 * it returned with the stack as the caller left it; without one, returns 0 (NULL). Two pushes
 * and 8 bytes: the call's 16-byte alignment. */
#define LT_ASM_RESOLVE_THEN_JUMP(resolver)                                                    \
    "    pushq %rdi\n"                                                                         \
    "    pushq %rsi\n"                                                                         \
    "    subq $8, %rsp\n"                                                                      \
    "    call " resolver "\n"                                                                  \
    "    addq $8, %rsp\n"                                                                      \
    "    popq %rsi\n"                                                                          \
    "    popq %rdi\n"                                                                          \
    "    testq %rax, %rax\n"                                                                   \
    "    jz 3f\n"                                                                              \
    "    jmp *%rax\n"                                                                          \
    "3:  xorl %eax, %eax\n"                                                                    \
    "    ret\n"
void *lt_next_symbol(const char *name);
/* In a hook: `f`, the next definition of `name` (of function type `type`), looked up at its
 * first call (racing lookups agree). */
#define LT_NEXT(type, name)                                      \
    static _Atomic(type) next_##name;                            \
    type f = atomic_load(&next_##name);                          \
    if (!f) {                                                    \
        f = (type)lt_next_symbol(#name);                         \
        atomic_store(&next_##name, f);                           \
    }                                                            \
    (void)0
/* Exec without fork: the image about to be replaced writes its capture (lifecycle.c);
 * `path` gets its name, to be removed if the exec fails. Returns whether one was written. */
bool lt_exec_capture_wanted(void);  /* this process traces, and is the traced one */
bool lt_capture_before_exec(char *path, size_t cap);
void lt_discard_exec_capture(const char *path);
/* environment.c's exec hooks, also reached by syscall(SYS_execve / SYS_execveat) (sandbox.c). */
int lt_hook_execve(const char *path, char *const argv[], char *const envp[]);
int lt_hook_execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags);
/* ---- privileges.c: setuid & co. ------------------------------------------------------- */
#include <grp.h>
#include <sys/resource.h>
int lt_hook_setuid(uid_t uid);
int lt_hook_setgid(gid_t gid);
int lt_hook_seteuid(uid_t uid);
int lt_hook_setegid(gid_t gid);
int lt_hook_setreuid(uid_t ruid, uid_t euid);
int lt_hook_setregid(gid_t rgid, gid_t egid);
int lt_hook_setresuid(uid_t ruid, uid_t euid, uid_t suid);
int lt_hook_setresgid(gid_t rgid, gid_t egid, gid_t sgid);
int lt_hook_setgroups(size_t size, const gid_t *list);
int lt_hook_chroot(const char *path);
int lt_hook_setrlimit(__rlimit_resource_t resource, const struct rlimit *limit);
int lt_hook_setrlimit64(__rlimit_resource_t resource, const struct rlimit64 *limit);
int lt_hook_prlimit(pid_t pid, enum __rlimit_resource resource, const struct rlimit *limit,
                    struct rlimit *old);
int lt_hook_prlimit64(pid_t pid, enum __rlimit_resource resource, const struct rlimit64 *limit,
                      struct rlimit64 *old);
int lt_hook_unshare(int flags);
int lt_hook_setns(int fd, int nstype);
/* ---- sleeps.c: sleeps go on through scans ---------------------------------------------- */
/* The shim's own waits: system calls, never the hooks below (whose first call looks up the
 * next definition, which could wait for the loader's lock a parked thread holds). */
#include <errno.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>
/* A system call of the shim's own, made with the instruction itself: it never sets errno (a
 * hook's caller sees errno as the real function left it) and never goes through the shim's
 * own syscall() hook (sandbox.c). Returns the kernel's value: -errno on failure. x86-64. */
static inline long lt_raw_syscall(long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
/* A raw system call's result as libc returns it, for a hook that stands for libc's function:
 * -1 and errno for a value in [-4095, -1]. */
static inline long lt_as_libc_returns(long ret)
{
    if ((unsigned long)ret > -4096ul) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
}
static inline int lt_sys_nanosleep(const struct timespec *req, struct timespec *rem)
{
    return (int)lt_raw_syscall(SYS_nanosleep, (long)req, (long)rem, 0, 0, 0, 0);
}
static inline int lt_sys_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    return (int)syscall(SYS_poll, fds, nfds, timeout);
}
#include <time.h>
extern _Thread_local unsigned lt_scan_signals_here; /* this thread's count of scan signals */
/* ... and of those a signal of the program's followed (delivered as the scan's handler ended) */
extern _Thread_local unsigned lt_program_signals_after_scan;
/* own_proc.c: opens of the process's own stat and status. */
#include <stdio.h>
int lt_hook_open(const char *path, int flags, ...);
int lt_hook_open64(const char *path, int flags, ...);
int lt_hook_openat(int dir, const char *path, int flags, ...);
int lt_hook_openat64(int dir, const char *path, int flags, ...);
int lt_hook___open_2(const char *path, int flags);
int lt_hook___open64_2(const char *path, int flags);
int lt_hook___openat_2(int dir, const char *path, int flags);
int lt_hook___openat64_2(int dir, const char *path, int flags);
FILE *lt_hook_fopen(const char *path, const char *mode);
FILE *lt_hook_fopen64(const char *path, const char *mode);
unsigned lt_hook_sleep(unsigned seconds);
int lt_hook_usleep(useconds_t usec);
int lt_hook_nanosleep(const struct timespec *req, struct timespec *rem);
int lt_hook_clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
                            struct timespec *rem);
int lt_hook_pause(void);
int lt_hook_sigsuspend(const sigset_t *mask);
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
int lt_hook_poll(struct pollfd *fds, nfds_t nfds, int timeout);
int lt_hook_select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
                   struct timeval *timeout);
int lt_hook_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);
/* ---- environment.c: the program sees its own environment ------------------------------- */
void lt_env_hide_settings(const char *shim_file_name); /* a launched process, at start-up */
void lt_env_keep_settings(const char *shim_file_name); /* --follow-children, at start-up */
bool lt_env_child_skipped(const char *patterns); /* run --skip-children: this program is left out */
/* ---- linkmap.c: answers read from the loader's list of objects ------------------------- */
bool lt_loaded_by_preload(void);
/* The shim's file name as the loader loaded it (LD_PRELOAD names it so): `fallback` if not
 * known. At start-up. */
const char *lt_shim_file_name(const char *fallback);
/* An address in glibc's libc.so: a function no program or allocator redefines (Chromium's
 * executable defines __libc_malloc and the rest of glibc's allocator entry points, as
 * tcmalloc does, so &__libc_malloc may lie in the program). */
static inline const void *lt_libc_address(void)
{
    return (const void *)(uintptr_t)&gnu_get_libc_version;
}
void lt_allocator_check(void);       /* notes objects before the shim that define malloc & co */
const char *lt_foreign_allocator_note(void); /* NULL when every allocation reaches the shim */
void lt_allocator_allow_direct(void); /* after lt_allocator_check: sampling mode's C++ shortcut */
/* The addresses of an object's own definitions of `names` (functions or variables), as dlsym
 * on its handle would give them, without dlopen (which makes the loader allocate): the object holding `inside`, or the
 * loaded object with that DT_SONAME. false: no such object; a name it lacks gets NULL. */
bool lt_object_symbols(const void *inside, const char *const *names, void **addresses, int count);
bool lt_soname_symbols(const char *soname, const char *const *names, void **addresses, int count);
/* Every loaded object's own exported definition of `name` (an executable linked with -rdynamic
 * exports what it linked statically): up to max distinct addresses, in load order. */
int lt_exported_definitions(const char *name, void **addresses, int max);
extern void *__libc_malloc(size_t);
/* ---- control.c: the control socket and the snapshot clock --------------------------------- */
void lt_control_start(void);         /* idempotent; cheap when already started */
/* Attach mode, before anything is patched: opens the socket `leaktrace detach` will need.
 * 0, or the errno of the call that failed (a seccomp filter may deny socket()). */
int lt_control_open_for_attach(void);
void lt_control_stop(void);          /* removes the socket file */
void lt_control_pause(void);         /* the control thread ends (joined) until resumed */
void lt_control_resume(void);
/* lifecycle.c: the capture now, and the shim stops for good: a seccomp filter is about to go
 * in (LT_REASON_SANDBOX), or a limit after which no file can be written (LT_REASON_FILE_LIMIT,
 * privileges.c). */
void lt_before_sandbox(unsigned reason);
void lt_signals_uninstall(void);     /* signals.c: the program's default actions back */
void lt_signals_after_fork_child(void); /* signals.c: no retry of the parent's put-off signal */
void lt_control_after_fork_child(void);
/* own_allocations.c: what glibc's pthread_create allocates for the shim's thread (its DTV,
 * through the calloc hook) comes from the shim's memory, not the program's heap. */
#define LT_OWN_POOL_BYTES (4u * 4096u)
#define LT_NO_OWN_POOL ((uintptr_t)0xffff800000000000ull) /* above user space */
/* The line to itself: every free reads it. [free_base, free_base + free_span): the addresses
 * free hands to lt_diverted_free instead of the C library: the pool's, and while the runtime's
 * buffers are released at exit (lifecycle.c), all. */
struct lt_own_pool_line {
    _Alignas(64) _Atomic uintptr_t base;
    _Atomic uintptr_t free_base, free_span;
};
extern struct lt_own_pool_line lt_own_pool;
extern __thread bool lt_allocating_for_shim __attribute__((tls_model("initial-exec")));
static inline bool lt_own_block(const void *p)
{
    return (uintptr_t)p - atomic_load_explicit(&lt_own_pool.base, memory_order_relaxed) <
           LT_OWN_POOL_BYTES;
}
static inline bool lt_free_diverted(const void *p)
{
    return (uintptr_t)p - atomic_load_explicit(&lt_own_pool.free_base, memory_order_relaxed) <
           atomic_load_explicit(&lt_own_pool.free_span, memory_order_relaxed);
}
void lt_diverted_free(void *p);       /* pre: lt_free_diverted(p) */
void lt_divert_frees(bool all);       /* all: every free, while the runtime's buffers go */
void lt_own_allocations_begin(void); /* around the shim's pthread_create */
void lt_own_allocations_end(void);
void *lt_own_calloc(size_t n, size_t size); /* NULL: take it from the C library */
void lt_own_free(void *p);                  /* pre: lt_own_block(p) */
void *lt_own_realloc(void *old, size_t size);
void lt_own_allocations_after_fork_child(void);
uint32_t lt_snapshot_interval_ms(void);
pid_t lt_control_thread_id(void);    /* 0 when no control thread runs */
unsigned lt_control_threads_running(void); /* the shim's threads in the kernel's count: 0 or 1 */
bool lt_control_hold_still(void);    /* a scan keeps the control thread from changing mappings */
void lt_control_let_go(void);        /* after lt_control_hold_still() returned true */
void lt_mark_thread_internal(void);  /* (lifecycle.c) this thread's allocations are the shim's */
void lt_set_busy(bool on);           /* (lifecycle.c) enter/leave the shim's own work */

/* ---- attach.c and its support in lifecycle.c ------------------------------------------------- */
bool lt_attach_mode(void);           /* dlopen'd into a running process, not preloaded */
bool lt_attached(void);              /* between leaktrace_attach() and detach */
void lt_attach_poll_new_objects(void);
/* Preload mode: points the GOT entries of the objects a deep-bound dlopen loaded (those whose
 * load bias is not in `known`) at `hooks` (per lt_hooks entry, the hook its slots get, or
 * NULL: deepbind.c decides; attach.c patches). */
void lt_patch_deep_bound(const uintptr_t *known, size_t nknown, void *const *hooks);
#define LT_MAX_HOOKS 160 /* entries of lt_hooks, its end included, at most */
const char *lt_deepbind_note(void); /* a library deep-bound by name, unseen; NULL: none */
/* Puts back the patched GOT entries, writes the capture of the session into capture_path
 * (NULL: no capture), ends the control thread and gives the tables back. Returns whether the
 * tables were given back. */
bool lt_detach(char *capture_path, size_t cap, bool scan);
int leaktrace_attach(const char *config_path);
bool lt_reset_for_attach(void);       /* false when the tables could not be made again */
/* After a detach: unmaps the tables once no thread is inside them (inflight.c); false when
 * they stay (a thread still inside, or no membarrier). The next attach makes them again. */
bool lt_release_tables(void);
void lt_control_join_previous(void);  /* (control.c) waits for a detached session's thread */
void lt_control_request_exit(void);   /* (control.c) the thread ends its session and exits */
void lt_start_collecting(void);
void lt_write_detach_capture(char *path, size_t cap, bool scan);
void lt_stop_tracking(void);
void lt_control_apply_config(void);  /* (control.c) interval and socket from lt_cfg */
uintptr_t lt_own_load_bias(void);    /* (unwind.c) the shim's own load address */

#endif
