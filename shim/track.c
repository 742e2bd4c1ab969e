/* In-process tracking (leaktrace.track() in Python): the program loads the shim into itself
 * with dlopen and calls these functions directly; no ptrace, no control socket needed.
 *
 * Which allocations belong to a tracked block is told by the baseline generation each block
 * is born in (blocks.c, regions.c stamp lt_generation_now()). Entering a block takes two fresh
 * generations: g, stamped by the entering thread only (its thread override), and g + 1, which
 * every other thread stamps from then on. The caller then asks for a capture of a set of
 * generations: from g up for "all threads", only its own thread's overrides for "this thread". */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "scan.h"
#include "shim.h"

/* The generation this thread stamps on its blocks instead of lt_generation (0: none). Written
 * and read only by its own thread. */
__thread unsigned lt_thread_generation __attribute__((tls_model("initial-exec")));

/* Starts tracking this process if the shim is not tracking it yet: patches the GOT of every
 * loaded object (attach.c) with the settings of config_path. Returns 0 when attached here,
 * 1 when the shim was preloaded and is already tracking this process, -1 when it was
 * preloaded but does not track this process, -2 when the settings file could not be read. */
LT_EXPORT int leaktrace_track_start(const char *config_path)
{
    if (!lt_attach_mode()) return atomic_load(&lt_owner_pid) == getpid() ? 1 : -1;
    return leaktrace_attach(config_path);
}

/* Puts every GOT entry back; nothing is recorded after this. No capture is written. */
LT_EXPORT void leaktrace_track_stop(void)
{
    if (!lt_attach_mode()) return;
    lt_set_busy(true);
    lt_detach(NULL, 0, false);
    lt_set_busy(false);
}

/* Takes two fresh generations (lt_generation was g - 1, it is now g + 1) without stamping g
 * on this thread yet (leaktrace_track_leave(g) starts that): track()'s Python code, quiet
 * meanwhile, keeps g first, and nothing it allocates to do so is in the block. */
LT_EXPORT unsigned leaktrace_track_reserve(void) { return atomic_fetch_add(&lt_generation, 2) + 1; }

/* Enters a tracked block on this thread: returns its generation g (see above) and the thread
 * override it replaces in *previous, to give back to leaktrace_track_leave. */
LT_EXPORT unsigned leaktrace_track_enter(unsigned *previous)
{
    unsigned g = leaktrace_track_reserve(); /* other threads stamp g + 1 from now on */
    *previous = lt_thread_generation;
    lt_thread_generation = g;
    return g;
}

LT_EXPORT void leaktrace_track_leave(unsigned previous) { lt_thread_generation = previous; }

/* This thread's allocations are not recorded until leaktrace_track_leave(returned value), or
 * another generation, ends it: track()'s bookkeeping (its generation numbers, sets and ranges
 * are Python objects) must not show up as the tracked code's blocks. Frees are kept as ever. */
LT_EXPORT unsigned leaktrace_track_quiet(void)
{
    unsigned previous = lt_thread_generation;
    lt_thread_generation = LT_QUIET_GENERATION;
    return previous;
}

/* The generation other threads stamp now: the last one a capture of "all threads" includes. */
LT_EXPORT unsigned leaktrace_track_generation(void) { return atomic_load(&lt_generation); }

/* Where the scan starts reading the calling thread's stack. Its live frames below the caller of
 * the tracked block were built over the dead frames of the block's own calls, and the holes
 * they leave hold stale pointers to the blocks just allocated, which would pass for roots.
 * With own_stack 0 the scan skips the calling thread's stack (the tracked code's data lives
 * in its heap and globals, not in the frames of the code that asks for the capture). */
static uintptr_t scan_start(int own_stack)
{
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (own_stack) return here;
    pthread_attr_t attr;
    void *low;
    size_t size;
    /* Before the scan: this may allocate (busy is set: unrecorded), never with the world stopped. */
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return here;
    int r = pthread_attr_getstack(&attr, &low, &size);
    pthread_attr_destroy(&attr);
    return r == 0 && size > 8 ? (uintptr_t)low + size - 8 : here;
}

/* Writes a capture, at exactly `path` (never overwritten: O_EXCL), of the live blocks whose
 * generation's bit is set in `generations` (65536 bits, one per 16-bit generation), after a
 * reachability scan when `scan` is set. Returns 0 or -errno. */
struct track_capture {
    const uint8_t *generations;
    const char *path;
    uintptr_t scanner_sp;
    bool scan;
    int result;
};

static void track_capture_here(void *request)
{
    struct track_capture *t = request;
    struct lt_scan result = { .heuristics = lt_cfg.heuristics };
    struct lt_capture_request req = { .reason = t->scan ? LT_REASON_SCAN : LT_REASON_REPORT,
                                      .generations = t->generations, .exact_path = t->path };
    int r = 0;
    if (t->scan) {
        r = lt_scan_run(&result, t->scanner_sp, false) == 0 ? 0 : -ENOMEM;
        req.scan = &result;
    }
    if (r == 0) r = lt_capture_write(&req);
    lt_scan_release(&result);
    t->result = r;
}

LT_EXPORT int leaktrace_track_capture(const uint8_t *generations, int scan, int own_stack,
                                      const char *path)
{
    if (atomic_load(&lt_owner_pid) != getpid() || !lt_tables_enter()) return -ESRCH;
    lt_set_busy(true);
    struct track_capture request = { generations, path, scan_start(own_stack), scan != 0, 0 };
    lt_on_own_stack(track_capture_here, &request);
    lt_set_busy(false);
    lt_tables_leave();
    return request.result;
}
