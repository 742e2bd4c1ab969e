/* The interposed allocation API. The tracer's life cycle (start-up, fork, exit, the final
 * capture) is lifecycle.c's; the signal functions are signals.c's.
 *
 * Rules every hook follows:
 * - the real function is glibc's own entry point (__libc_malloc, ...) or a raw system call,
 *   so the shim works before dlsym does and never recurses into itself;
 * - a per-thread `lt_busy` counter (initial-exec TLS: no allocation on first access) makes any
 *   allocation made while the shim is working pass straight through unrecorded;
 * - no lock of ours is held while calling into the dynamic loader or the real allocator,
 *   except the regions lock around the mmap-family system calls themselves. */
/* meson defines _FILE_OFFSET_BITS=64, which renames mmap to mmap64 in the headers; both are
 * interposed here by name (off_t is 64-bit on x86-64 either way). */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <fcntl.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "hooked_functions.h"
#include "sampling.h"
#include "scan.h"
#include "mtrace_log.h"
#include "shim.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
extern void *__sbrk(intptr_t);

/* Resolved once at start-up (single-threaded), read-only afterwards. */
static void *(*real_aligned_alloc)(size_t, size_t);
static int (*real_dlclose)(void *);
static void (*real_mtrace)(void), (*real_muntrace)(void);

void lt_hooks_resolve(void)
{
    lt_allocator_init(); /* aligned_alloc of the allocator that serves __libc_malloc */
    real_aligned_alloc = lt_provider_aligned_alloc();
    lt_next_symbols_resolve();
    real_dlclose = (int (*)(void *))lt_next_symbol("dlclose");
    real_mtrace = (void (*)(void))lt_next_symbol("mtrace");
    real_muntrace = (void (*)(void))lt_next_symbol("muntrace");
}

/* For allocations: record the new block? The first hooked call of the process starts the
 * tracer (lifecycle.c): a library's constructor may allocate before the shim's runs.
 * When true, and for tracking() below, the thread is inside the tables (shim.h,
 * lt_tables_enter) until it calls lt_tables_leave(): record_block and forget_block do. */
static inline bool recording(void)
{
    int state = atomic_load_explicit(&lt_state, memory_order_relaxed);
    if (LT_LIKELY(state == LT_STATE_COLLECTING)) return !lt_busy && lt_tables_enter();
    return LT_UNLIKELY(state == LT_STATE_LOADED) && lt_start_on_first_call() && lt_tables_enter();
}

/* For frees and unmaps: keep the tables in step? */
static inline bool tracking(void)
{
    return LT_LIKELY(atomic_load_explicit(&lt_state, memory_order_relaxed) >= LT_STATE_TRACKING) &&
           !lt_busy && lt_tables_enter();
}

/* ---- recording ------------------------------------------------------------------------- */
/* Runs outside lt_busy (record_block below). `hook_frame`: the calling hook's frame address,
 * so the unwinder steps over the shim's frames from there (one step instead of four). */
static uint32_t current_stack(const void *hook_frame)
{
    uintptr_t buf[LT_MAX_DEPTH_LIMIT];
    struct lt_backtrace bt;
    lt_backtrace_take(&bt, buf, lt_cfg.max_depth, hook_frame);
    if (bt.truncated) lt_striped_add(LT_CUT_BACKTRACES);
    uint32_t id = bt.id ? bt.id : lt_stacks_intern_hashed(bt.pcs, bt.depth, bt.hash);
#ifdef LT_UNWIND_SELFCHECK /* a debugging build: every incremental backtrace against a full walk */
    {
        uintptr_t full[LT_MAX_DEPTH_LIMIT];
        bool cut;
        int d = lt_unwind(full, lt_cfg.max_depth, &cut);
        /* lt_unwind's own frame: same pcs from the hook's caller on */
        const uintptr_t *pcs = bt.pcs ? bt.pcs : lt_stack_pcs(lt_stack_get(bt.id));
        if (d != bt.depth || cut != bt.truncated || memcmp(full, pcs, sizeof(uintptr_t) * (size_t)d) != 0 ||
            (bt.id && lt_stacks_intern(full, d) != bt.id) || (bt.hash && lt_stacks_intern(full, d) != id)) {
            static const char msg[] = "leaktrace: incremental backtrace differs\n";
            (void)!write(2, msg, sizeof msg - 1);
            __builtin_trap();
        }
    }
#endif
    lt_backtrace_done(&bt, id);
    return id;
}

/* Not `busy` while unwinding and inserting: nothing there calls a hooked function, and a
 * signal handler that allocates meanwhile must be recorded too (blocks.c defers its table
 * operations until this thread leaves the table). */
static __attribute__((noinline)) void record_sampled_block(uintptr_t hidden, size_t size, unsigned kind,
                                                           const void *hook_frame)
{
    uint64_t slot_hash = lt_blocks_prefetch((uintptr_t)lt_shown_address(hidden));
    lt_control_start(); /* marks itself busy the first time, when it allocates */
    uint32_t id = current_stack(hook_frame);
    lt_stack_note_alloc(id, size);
    lt_blocks_insert((uintptr_t)lt_shown_address(hidden), slot_hash, size, kind, id);
    if (atomic_load_explicit(&lt_mtrace_log_wanted, memory_order_relaxed) != 0) /* -1: not known yet */
        lt_mtrace_log_alloc(lt_shown_address(hidden), size, kind, id);
}

/* A new block's bytes the program has not written yet are cleared, up to LT_CLEAR_LIMIT. The
 * allocator hands memory out again as the last block there left it, and a block the program
 * writes only in part (an obstack chunk, a buffer, a vector's spare room, nginx's 6 KiB epoll
 * event list) would keep that block's pointers: blocks leaked since would look reachable
 * through them (valgrind and LeakSanitizer, whose allocators hand memory out differently, call
 * them lost). Clearing changes only what a read of never-written memory returns. Up to
 * LT_CLEAR_WHOLE (a page: an obstack's default chunk, most arrays of pointers) every byte is
 * cleared inline; above, only the pages already in memory (mincore): a page the process never
 * touched reads as zeros anyway, and clearing it would grow the program's memory. Larger
 * blocks than LT_CLEAR_LIMIT are left alone: on bench/workload.c, whose 3% of blocks over
 * 4 KiB are written 65 bytes each, clearing up to 64 KiB cost 10% of native CPU, up to 16 KiB
 * 4%, up to 8 KiB (two pages) 1 to 3%. */

/* Clears bytes [from, to) of block p, both multiples of 8 (allocators round sizes up to at
 * least 8, so the last word is the block's). Stores that overlap at the ends, as libc's memset
 * makes them, so a block's size costs few mispredicted branches; memset itself is dear to
 * call this often (its AVX-512 variant slowed the C++ workload by a tenth, measured). Blocks
 * may be only 8-byte aligned (tcmalloc's smallest). */
static inline void clear_range(void *p, uint64_t from, uint64_t to)
{
    unsigned char *b = (unsigned char *)p + from;
    uint64_t n = to - from;
    if (n == 0) return;
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    if (n <= 16) {
        *(volatile uint64_t *)(void *)b = 0;
        *(volatile uint64_t *)(void *)(b + n - 8) = 0;
        return;
    }
    if (n <= 32) {
        _mm_storeu_si128((__m128i *)(void *)b, zero);
        _mm_storeu_si128((__m128i *)(void *)(b + n - 16), zero);
        return;
    }
    for (uint64_t at = 0; at + 32 < n; at += 32) {
        _mm_storeu_si128((__m128i *)(void *)(b + at), zero);
        _mm_storeu_si128((__m128i *)(void *)(b + at + 16), zero);
    }
    _mm_storeu_si128((__m128i *)(void *)(b + n - 32), zero);
    _mm_storeu_si128((__m128i *)(void *)(b + n - 16), zero);
#else
    for (uint64_t at = 0; at < n; at += 8) *(volatile uint64_t *)(void *)(b + at) = 0;
#endif
}

static inline uint64_t whole_words(uint64_t bytes) { return (bytes + 7) & ~(uint64_t)7; }

/* Bytes [from, to) of block p (multiples of 8) where they lie on pages in memory; none when
 * mincore fails. The pages' bounds are 16-byte multiples off p, as clear_range needs. */
static __attribute__((noinline)) void clear_resident(void *p, uint64_t from, uint64_t to)
{
    const uintptr_t page = 4096, base = (uintptr_t)p;
    uintptr_t lo = (base + from) & ~(page - 1), hi = (base + to + page - 1) & ~(page - 1);
    unsigned char in_memory[LT_CLEAR_LIMIT / 4096 + 2];
    size_t pages = (hi - lo) / page;
    if (pages > sizeof in_memory ||
        lt_raw_syscall(SYS_mincore, (long)lo, (long)(hi - lo), (long)in_memory, 0, 0, 0) != 0)
        return;
    for (size_t i = 0; i < pages;) {
        if (!(in_memory[i] & 1)) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < pages && (in_memory[j] & 1)) j++; /* a run of pages in memory */
        uintptr_t start = lo + i * page, end = lo + j * page;
        if (start < base + from) start = base + from;
        if (end > base + to) end = base + to;
        clear_range(p, start - base, end - base);
        i = j;
    }
}

/* pre: recording_block() was true; leaves the tables. `hidden`: the new block's address as
 * lt_hide_address gives it, which the hook makes as soon as the allocator returns and uses
 * from then on, so that no register a callee saves holds the address itself. Bytes from
 * `written` on are the ones the program has not written (the whole block, but for calloc and
 * realloc). Inlined into the hook, so the frame address is the hook's (were it not inlined,
 * its own: the unwinder goes on along the rbp chain). */
static inline __attribute__((always_inline)) void record_block(uintptr_t hidden, size_t size, unsigned kind,
                                                               size_t written)
{
    if (LT_LIKELY(lt_thread_generation != LT_QUIET_GENERATION)) {
        if (written < size && size <= atomic_load_explicit(&lt_cfg.clear_limit, memory_order_relaxed)) {
            void *p = lt_shown_address(hidden);
            if (size <= LT_CLEAR_WHOLE) clear_range(p, whole_words(written), whole_words(size));
            else clear_resident(p, whole_words(written), whole_words(size));
        }
        record_sampled_block(hidden, size, kind, __builtin_frame_address(0));
    }
    lt_tables_leave();
    lt_scrub_scratch_registers(); /* the hook returns next */
}

/* Record a new block of `size` bytes? In sampling mode the common answer, not sampled, comes
 * before the tables are entered, and the hook has nothing more to do then (nothing to scrub
 * either: the shim made no copy of an address it records). When true, record_block follows. */
static inline bool recording_block(size_t size) { return !lt_sample_skip(size) && recording(); }

/* A free the table's answer makes suspect (forget_block): of a block never allocated or
 * freed already, or one whose release does not match its allocation, valgrind's "Mismatched
 * free() / delete / delete []": delete[] of a block new[] did not make, free or delete of
 * one it did (the only kind the table tells apart: new's blocks are malloc's). `deleting`:
 * lt_deleting as the hook found it (a later plain free of an address the thread deleted last,
 * with no delete between, is named a delete too). */
static __attribute__((noinline, cold)) void note_suspect_free(void *p, unsigned kind, uintptr_t deleting)
{
    if (!lt_invalid_frees_checking()) return;
    unsigned api = LT_FREE_API_FREE;
    if ((deleting & ~(uintptr_t)1) == (uintptr_t)p) api = deleting & 1 ? LT_FREE_API_DELETE_ARRAY : LT_FREE_API_DELETE;
    lt_invalid_frees_note((uintptr_t)p, kind == LT_FORGET_MISSED ? api : api | LT_FREE_API_MISMATCHED);
}

/* pre: tracking() was true; leaves the tables. */
static inline void forget_block(void *p)
{
    lt_mtrace_log_free(p, false);
    /* which skips, as the hook did, a block never sampled */
    unsigned kind = lt_blocks_forget((uintptr_t)p);
    uintptr_t deleting = lt_deleting;
    bool array_delete = deleting == ((uintptr_t)p | 1);
    if (array_delete) lt_deleting = 0; /* used up: the address may come back from malloc */
    bool mismatched = kind != LT_FORGET_UNTOLD && (kind == LT_KIND_NEW_ARRAY) != array_delete;
    if (LT_UNLIKELY(kind == LT_FORGET_MISSED || mismatched)) note_suspect_free(p, kind, deleting);
    lt_tables_leave();
}

/* A new block of the malloc family (none of its bytes written); when it is the C++ runtime's
 * for an operator new, recorded at the size asked, and an array's as such
 * (lt_allocation_kind). alignment: 0 for malloc. */
static inline void record_allocated(uintptr_t hidden, size_t alignment, size_t size, unsigned kind)
{
    kind = lt_allocation_kind(alignment, &size, kind);
    if (recording_block(size)) record_block(hidden, size, kind, 0);
}

/* ---- the malloc family ----------------------------------------------------------------- */
/* malloc, free, calloc (and realloc, below): in sampling mode a block not sampled, or the free
 * of one, is a tail call to the allocator, decided first: the hook itself then has no frame, no
 * saved register, and reads three words besides the allocator's. The rest, exact mode's path,
 * is a function of its own, reached by a jump (its frame is the hook's for the unwinder). */
static __attribute__((noinline)) void *malloc_and_record(size_t size)
{
    void *volatile held = __libc_malloc(size); /* the scan's root while the hook runs */
    uintptr_t hidden = lt_hide_address(held);
    if (lt_hidden_null(hidden)) return NULL;
    record_allocated(hidden, 0, size, LT_KIND_MALLOC);
    return lt_let_go(&held, hidden);
}

void *lt_hook_malloc(size_t size)
{
    if (lt_sample_skip_at_once(size)) return __libc_malloc(size);
    return malloc_and_record(size);
}

/* The C library's free, but for a block of the shim's own thread (own_allocations.c), which
 * glibc frees when that thread is joined, and for the runtime's buffers released at exit
 * (lt_divert_frees). Checked here, past the hook's entry: at the entry the check slowed the
 * C workload's frees by 2-3%. */
static inline void free_for_real(void *p)
{
    if (LT_UNLIKELY(lt_free_diverted(p))) return lt_diverted_free(p);
    __libc_free(p);
}

static __attribute__((noinline)) void free_and_forget(void *p)
{
    if (p && tracking()) forget_block(p);
    free_for_real(p);
}

void lt_hook_free(void *p)
{
    if (lt_sample_free_unrecorded(p)) return free_for_real(p);
    free_and_forget(p);
}

/* C23's sized frees (glibc 2.43, and GLib's g_free_sized where the C library has them): the
 * size and alignment only help an allocator that can use them, the effect is free()'s. Where
 * the C library lacks them (before 2.43), only a program that looks them up finds these. */
void lt_hook_free_sized(void *p, size_t size)
{
    (void)size;
    lt_hook_free(p);
}

void lt_hook_free_aligned_sized(void *p, size_t alignment, size_t size)
{
    (void)alignment;
    (void)size;
    lt_hook_free(p);
}

static __attribute__((noinline)) void *calloc_and_record(size_t n, size_t size)
{
    void *volatile held = __libc_calloc(n, size); /* the scan's root while the hook runs */
    uintptr_t hidden = lt_hide_address(held);
    if (!lt_hidden_null(hidden) && recording_block(n * size)) record_block(hidden, n * size, LT_KIND_CALLOC, n * size);
    return lt_let_go(&held, hidden);
}

/* The shim's own thread's vector (own_allocations.c) before all else. */
static __attribute__((noinline)) void *calloc_for_shim(size_t n, size_t size)
{
    void *p = lt_own_calloc(n, size);
    return p ? p : __libc_calloc(n, size);
}

void *lt_hook_calloc(size_t n, size_t size)
{
    if (LT_UNLIKELY(lt_allocating_for_shim)) return calloc_for_shim(n, size);
    size_t bytes;
    if (!__builtin_mul_overflow(n, size, &bytes) && lt_sample_skip_at_once(bytes))
        return __libc_calloc(n, size);
    return calloc_and_record(n, size);
}

static void *realloc_as(void *old, size_t size, unsigned kind)
{
    if (!tracking()) return __libc_realloc(old, size);
    /* The old entry leaves the table before the real call: once the allocator has released
     * the old address another thread may get it back and record it. */
    struct lt_block prev;
    if (old) lt_mtrace_log_free(old, true);
    bool known = old && lt_blocks_take((uintptr_t)old, &prev);
    /* The program may have written the old block's whole usable size (malloc_usable_size
     * says it may: Redis's strings do), not just what it asked for. Asked only when the block
     * grows past what it asked for: otherwise nothing of it is cleared. */
    size_t asked_before = known ? lt_block_size(&prev) : 0;
    size_t usable_before = known && size > asked_before ? lt_usable_size(old) : 0;
    void *volatile held = __libc_realloc(old, size); /* the scan's root while the hook runs */
    uintptr_t hidden = lt_hide_address(held);
    if (lt_hidden_null(hidden) && (size != 0 || !old)) { /* failed: the old block is untouched */
        if (known) lt_blocks_put_back(&prev);
        lt_tables_leave();
        return NULL;
    }
    unsigned api = kind == LT_KIND_REALLOCARRAY ? LT_FREE_API_REALLOCARRAY : LT_FREE_API_REALLOC;
    if (known) {
        lt_stack_note_free(prev.stack_id, asked_before, true);
        if (LT_UNLIKELY(lt_block_kind(&prev) == LT_KIND_NEW_ARRAY) && lt_invalid_frees_checking())
            lt_invalid_frees_note((uintptr_t)old, api | LT_FREE_API_MISMATCHED); /* new[]'s block */
    } else if (old && lt_blocks_forget((uintptr_t)old) == LT_FORGET_MISSED && lt_invalid_frees_checking())
        lt_invalid_frees_note((uintptr_t)old, api);
    /* The old bytes were copied or stayed; past them (all of an unknown block's) are unwritten. */
    size_t written = !old ? 0 : known ? (usable_before > asked_before ? usable_before : asked_before) : size;
    if (!lt_hidden_null(hidden) && recording_block(size)) /* NULL: realloc(p, 0) freed p */
        record_block(hidden, size, kind, written);
    lt_tables_leave();
    return lt_let_go(&held, hidden);
}

/* Sampling mode: a block never recorded that stays unsampled at its new size is the allocator's
 * business alone (the jump, as in malloc). */
void *lt_hook_realloc(void *old, size_t size)
{
    if (LT_UNLIKELY(lt_own_block(old))) return lt_own_realloc(old, size);
    if (lt_sample_free_unrecorded(old) && lt_sample_skip_at_once(size)) return __libc_realloc(old, size);
    return realloc_as(old, size, LT_KIND_REALLOC);
}

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
    void *volatile held = __libc_memalign(alignment, size); /* the scan's root while the hook runs */
    uintptr_t hidden = lt_hide_address(held);
    if (!lt_hidden_null(hidden)) record_allocated(hidden, alignment, size, LT_KIND_MEMALIGN);
    return lt_let_go(&held, hidden);
}

int lt_hook_posix_memalign(void **out, size_t alignment, size_t size)
{
    /* glibc's rule: a power of two multiple of sizeof(void *). */
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0 || alignment == 0)
        return EINVAL;
    void *volatile held = __libc_memalign(alignment, size); /* the scan's root while the hook runs */
    uintptr_t hidden = lt_hide_address(held);
    if (lt_hidden_null(hidden)) return ENOMEM;
    record_allocated(hidden, alignment, size, LT_KIND_POSIX_MEMALIGN);
    *out = lt_let_go(&held, hidden);
    return 0;
}

void *lt_hook_aligned_alloc(size_t alignment, size_t size)
{
    /* glibc's own checks differ between versions: use its function once we know it. */
    void *volatile held; /* the scan's root while the hook runs */
    if (real_aligned_alloc) {
        lt_busy++;
        held = real_aligned_alloc(alignment, size);
        lt_busy--;
    } else {
        held = __libc_memalign(alignment, size);
    }
    uintptr_t hidden = lt_hide_address(held);
    if (!lt_hidden_null(hidden)) record_allocated(hidden, alignment, size, LT_KIND_ALIGNED_ALLOC);
    return lt_let_go(&held, hidden);
}

/* mallopt(M_PERTURB, v): from now on glibc fills new and freed blocks with the program's
 * pattern, which must stay what the program reads: clearing new blocks stops (and starts
 * again with v = 0). */
int lt_hook_mallopt(int param, int value)
{
    int done = lt_provider_mallopt(param, value);
    if (param == M_PERTURB && done)
        atomic_store_explicit(&lt_cfg.clear_limit, value ? 0 : LT_CLEAR_LIMIT, memory_order_relaxed);
    return done;
}

void *lt_hook_valloc(size_t size)
{
    void *volatile held = __libc_valloc(size); /* the scan's root while the hook runs */
    uintptr_t hidden = lt_hide_address(held);
    if (!lt_hidden_null(hidden) && recording_block(size)) record_block(hidden, size, LT_KIND_VALLOC, 0);
    return lt_let_go(&held, hidden);
}

void *lt_hook_pvalloc(size_t size)
{
    void *volatile held = __libc_pvalloc(size); /* the scan's root while the hook runs */
    uintptr_t hidden = lt_hide_address(held);
    /* pvalloc hands out whole pages: that is what the program holds. */
    size_t page = lt_page_size();
    size_t pages = (size + page - 1) & ~(page - 1);
    if (!lt_hidden_null(hidden) && recording_block(pages)) record_block(hidden, pages, LT_KIND_PVALLOC, 0);
    return lt_let_go(&held, hidden);
}

/* ---- mappings and the program break -------------------------------------------------------
 * The regions lock is held around the system call, so that the table follows the order the
 * kernel made the changes in. While it is held, the thread's mapping hooks (a signal handler's
 * mmap) pass straight through: `lt_in_regions`, not `lt_busy`, so that a handler's malloc and
 * free, which never take the regions lock, are still recorded (a SIGPROF profiler's handler
 * fires on the way out of system calls, inside these hooks). */
__thread int lt_in_regions __attribute__((tls_model("initial-exec")));

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
    if (lt_in_regions || !recording()) return raw_mmap(addr, len, prot, flags, fd, off);
    lt_in_regions++;
    uint32_t id = current_stack(__builtin_frame_address(0));
    lt_regions_lock();
    void *p = raw_mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED) lt_regions_add((uintptr_t)p, page_round(len), LT_KIND_MMAP, id);
    lt_regions_unlock();
    lt_in_regions--;
    lt_tables_leave();
    return p;
}

void *lt_hook_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return lt_hook_mmap(addr, len, prot, flags, fd, off);
}

int lt_hook_munmap(void *addr, size_t len)
{
    if (lt_in_regions || !tracking()) return (int)syscall(SYS_munmap, addr, len);
    lt_in_regions++;
    lt_regions_lock();
    int r = (int)syscall(SYS_munmap, addr, len);
    if (r == 0) lt_regions_remove((uintptr_t)addr, page_round(len));
    lt_regions_unlock();
    lt_in_regions--;
    lt_tables_leave();
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
    if (lt_in_regions || !tracking())
        return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
    bool collect = recording();
    lt_in_regions++;
    uint32_t id = collect ? current_stack(__builtin_frame_address(0)) : 0;
    lt_regions_lock();
    void *p = (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
    if (p != MAP_FAILED) {
        lt_regions_remove((uintptr_t)old, page_round(old_len));
        if (collect) lt_regions_add((uintptr_t)p, page_round(new_len), LT_KIND_MREMAP, id);
    }
    lt_regions_unlock();
    lt_in_regions--;
    if (collect) lt_tables_leave();
    lt_tables_leave();
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
    if (increment == 0 || lt_in_regions || !tracking()) return __sbrk(increment);
    bool collect = recording();
    lt_in_regions++;
    uint32_t id = collect ? current_stack(__builtin_frame_address(0)) : 0;
    lt_regions_lock();
    void *old = __sbrk(increment);
    if (old != (void *)-1)
        note_break_move((uintptr_t)old, (uintptr_t)old + (uintptr_t)increment, id, collect);
    lt_regions_unlock();
    lt_in_regions--;
    if (collect) lt_tables_leave();
    lt_tables_leave();
    return old;
}

int lt_hook_brk(void *addr)
{
    /* brk(addr) is sbrk(addr - current break), which keeps glibc's own idea of the break
     * (__curbrk) right, as its brk does. */
    bool rec = !lt_in_regions && tracking(), collect = !lt_in_regions && recording();
    if (rec) lt_in_regions++;
    uint32_t id = collect ? current_stack(__builtin_frame_address(0)) : 0;
    if (rec) lt_regions_lock();
    void *cur = __sbrk(0);
    int r = __sbrk((intptr_t)((uintptr_t)addr - (uintptr_t)cur)) == (void *)-1 ? -1 : 0;
    if (rec) {
        if (r == 0) note_break_move((uintptr_t)cur, (uintptr_t)addr, id, collect);
        lt_regions_unlock();
        lt_in_regions--;
        lt_tables_leave();
    }
    if (collect) lt_tables_leave();
    return r;
}

/* ---- dlclose: keep the module list complete, drop cached unwind rules ------------------ */
int lt_hook_dlclose(void *handle)
{
    lt_busy++;
    if (!real_dlclose) real_dlclose = (int (*)(void *))lt_next_symbol("dlclose");
    bool rec = atomic_load(&lt_state) >= LT_STATE_TRACKING && lt_tables_enter();
    if (rec) {
        lt_modules_refresh(false); /* make sure what is about to go is recorded */
        lt_tables_leave();
    }
    lt_busy--;
    /* Outside the tables: the library's destructors are the program's code, and a signal that
     * finds its thread inside the tables waits until it has left them (signals.c). */
    int r = real_dlclose ? real_dlclose(handle) : -1;
    if (rec && lt_tables_enter()) { /* not once detached meanwhile: the tables are gone */
        lt_busy++;
        lt_modules_refresh(true);
        lt_unwind_flush_cache(); /* the freed address range may be reused by other code */
        lt_busy--;
        lt_tables_leave();
    }
    return r;
}

/* ---- glibc's mtrace()/muntrace(): the program marks its own checkpoints ----------------- */
/* The first mtrace() starts collecting when the run waits for it (--start=on-mtrace); every
 * other call writes a numbered capture of what was allocated since the previous one and is
 * still live. muntrace() writes the last one and stops collecting. glibc's own functions are
 * still called, so a MALLOC_TRACE log works as before. */
static void write_since_baseline_here(void *reason)
{
    struct lt_capture_request req = { .reason = *(unsigned *)reason, .only_since_baseline = true };
    lt_capture_write(&req);
}

static void write_since_baseline(unsigned reason)
{
    lt_on_own_stack(write_since_baseline_here, &reason); /* the caller's stack may be small */
}

void lt_hook_mtrace(void)
{
    if (real_mtrace) real_mtrace();
    if (!tracking()) return;
    lt_busy++;
    lt_control_start();
    if (lt_collecting()) write_since_baseline(LT_REASON_MTRACE);
    lt_new_baseline();
    lt_set_collecting(true);
    lt_busy--;
    lt_tables_leave();
}

void lt_hook_muntrace(void)
{
    if (real_muntrace) real_muntrace();
    if (!tracking()) return;
    if (lt_collecting()) {
        lt_busy++;
        write_since_baseline(LT_REASON_MUNTRACE);
        lt_new_baseline();
        lt_set_collecting(false);
        lt_busy--;
    }
    lt_tables_leave();
}

/* ---- the exported names ------------------------------------------------------------------
 * Each interposed symbol is an alias of its lt_hook_ implementation: in preload mode the
 * dynamic linker binds the program to these; the hidden names are what the GOT patcher
 * writes (attach mode). */
#define LT_X(name) extern __typeof__(lt_hook_##name) name __attribute__((alias("lt_hook_" #name), visibility("default")));
LT_HOOKED_ALLOCATION_FUNCTIONS(LT_X)
#undef LT_X

/* The signal functions' hooks (signals.c). */
int lt_hook_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
__sighandler_t lt_hook_signal(int sig, __sighandler_t handler);
__sighandler_t lt_hook_bsd_signal(int sig, __sighandler_t handler);
__sighandler_t lt_hook_sysv_signal(int sig, __sighandler_t handler);
__sighandler_t lt_hook_sigset(int sig, __sighandler_t handler);
int lt_hook_sigaltstack(const stack_t *ss, stack_t *old);
/* The exec functions' hooks (environment.c). */
int lt_hook_execve(const char *path, char *const argv[], char *const envp[]);
int lt_hook_execv(const char *path, char *const argv[]);
int lt_hook_execvp(const char *file, char *const argv[]);
int lt_hook_execvpe(const char *file, char *const argv[], char *const envp[]);
int lt_hook_execl(const char *path, const char *arg, ...);
int lt_hook_execlp(const char *file, const char *arg, ...);
int lt_hook_execle(const char *path, const char *arg, ...);
int lt_hook_fexecve(int fd, char *const argv[], char *const envp[]);
int lt_hook_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);
int lt_hook_posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                         const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);
int lt_hook_system(const char *command);
FILE *lt_hook_popen(const char *command, const char *mode);
long lt_hook_syscall(long number, ...);
int lt_hook_prctl(int option, ...);
/* dlsym (lookups.c, in assembly). */
void *lt_hook_dlsym(void *handle, const char *name);
/* exit & co (exits.c, in assembly). */
void lt_hook_exit(int status);
void lt_hook__exit(int status);
void lt_hook__Exit(int status);
void lt_hook_quick_exit(int status);
void lt_hook_abort(void);
int lt_hook_daemon(int nochdir, int noclose);

const struct lt_hook lt_hooks[] = {
#define LT_X(name) { #name, (void *)lt_hook_##name },
    LT_HOOKED_FUNCTIONS(LT_X)
#undef LT_X
    { NULL, NULL },
};
_Static_assert(sizeof lt_hooks / sizeof *lt_hooks <= LT_MAX_HOOKS, "raise LT_MAX_HOOKS");

void *lt_hook_named(const char *name)
{
    for (const struct lt_hook *h = lt_hooks; h->name; h++)
        if (strcmp(h->name, name) == 0) return h->function;
    for (const struct lt_hook *h = lt_allocator_hooks; h->name; h++)
        if (strcmp(h->name, name) == 0) return h->function;
    for (const struct lt_hook *h = lt_annotation_hooks; h->name; h++)
        if (strcmp(h->name, name) == 0) return h->function;
    return NULL;
}
