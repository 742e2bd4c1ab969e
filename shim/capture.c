/* Writes a capture file (docs/capture-format.md) with raw system calls and a buffer of our
 * own: no stdio, no malloc, so it is safe at exit, from a signal handler and while other
 * threads keep allocating. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "scan.h"
#include "sampling.h"
#include "shim.h"

#define BUF_SIZE (256u << 10)
#define SCRATCH_SIZE (128u << 10) /* for /proc/self/cmdline and paths */

struct writer {
    int fd;
    int error;           /* first errno seen */
    uint8_t *buf;
    size_t len;
    uint64_t offset;     /* file offset of buf[0] */
};

static void w_flush(struct writer *w)
{
    size_t done = 0;
    while (done < w->len && !w->error) {
        ssize_t n = write(w->fd, w->buf + done, w->len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) w->error = n < 0 ? errno : EIO;
        else done += (size_t)n;
    }
    w->offset += w->len;
    w->len = 0;
}

static inline void w_bytes(struct writer *w, const void *data, size_t n)
{
    if (n <= BUF_SIZE - w->len) { /* the common case, inlined: a fixed-size memcpy */
        memcpy(w->buf + w->len, data, n);
        w->len += n;
        return;
    }
    const uint8_t *p = data;
    while (n) {
        if (w->len == BUF_SIZE) w_flush(w);
        size_t chunk = BUF_SIZE - w->len < n ? BUF_SIZE - w->len : n;
        memcpy(w->buf + w->len, p, chunk);
        w->len += chunk;
        p += chunk;
        n -= chunk;
    }
}

/* x86-64 is little-endian, the format's byte order: integers are written as they are. */
static void w_u32(struct writer *w, uint32_t v) { w_bytes(w, &v, 4); }
static void w_u64(struct writer *w, uint64_t v) { w_bytes(w, &v, 8); }
static void w_str(struct writer *w, const char *s, size_t n)
{
    w_u32(w, (uint32_t)n);
    w_bytes(w, s, n);
}
static uint64_t w_pos(const struct writer *w) { return w->offset + w->len; }

/* Sections are written with a placeholder length, patched when the section ends. */
static uint64_t section_begin(struct writer *w, uint32_t tag)
{
    uint64_t at = w_pos(w);
    w_u32(w, tag);
    w_u32(w, 0);
    w_u64(w, 0);
    return at;
}

static void section_end(struct writer *w, uint64_t at)
{
    uint64_t length = w_pos(w) - at - 16;
    if (at >= w->offset) {
        memcpy(w->buf + (at - w->offset) + 8, &length, 8);
    } else {
        w_flush(w);
        if (pwrite(w->fd, &length, 8, (off_t)(at + 8)) != 8 && !w->error) w->error = EIO;
    }
}

static void patch_u64(struct writer *w, uint64_t at, uint64_t value)
{
    if (at >= w->offset) {
        memcpy(w->buf + (at - w->offset), &value, 8);
    } else {
        w_flush(w);
        if (pwrite(w->fd, &value, 8, (off_t)at) != 8 && !w->error) w->error = EIO;
    }
}

/* Opens a new capture file without ever overwriting one: path, then path with .1, .2, ...
 * inserted before the ".lt" suffix. Fills `path` with the name used. */
static int open_new_file(char *path, size_t cap, const char *base)
{
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
    size_t base_len = strlen(base);
    bool has_suffix = base_len > 3 && strcmp(base + base_len - 3, ".lt") == 0;
    size_t stem_len = has_suffix ? base_len - 3 : base_len;
    for (unsigned attempt = 0; attempt < 1000; attempt++) {
        char *end = path + cap - 1;
        char *p = path;
        if (attempt == 0) {
            p = lt_put_str(p, end, base);
        } else {
            size_t n = stem_len < cap - 32 ? stem_len : cap - 32;
            memcpy(p, base, n);
            p += n;
            p = lt_put_str(p, end, ".");
            p = lt_put_uint(p, end, attempt);
            if (has_suffix) p = lt_put_str(p, end, ".lt");
        }
        *p = 0;
        int fd = open(path, flags, 0644);
        if (fd >= 0 || errno != EEXIST) return fd < 0 ? -errno : fd;
    }
    return -EEXIST;
}

/* The program's name as it started (program_invocation_short_name), for default capture
 * names. Copied at start-up: the name points into argv[0], which daemons overwrite with a
 * title ("nginx: master process /etc/nginx/nginx.conf": a '/' made the capture's path name
 * a directory that does not exist). Written once, by the thread that starts the tracer. */
static char start_name[64];

void lt_capture_remember_name(void)
{
    extern char *program_invocation_short_name;
    const char *name = program_invocation_short_name;
    size_t n = 0;
    for (; name && name[n] && n < sizeof start_name - 1; n++)
        start_name[n] = name[n] == '/' ? '_' : name[n];
    start_name[n] = 0;
}

static void default_name(char *dst, size_t cap)
{
    char *end = dst + cap - 1;
    char *p = lt_put_str(dst, end, lt_cfg.dir);
    p = lt_put_str(p, end, "/leaktrace-");
    p = lt_put_str(p, end, start_name[0] ? start_name : "program");
    p = lt_put_str(p, end, ".");
    p = lt_put_uint(p, end, (uint64_t)getpid());
    p = lt_put_str(p, end, ".lt");
    *p = 0;
}

/* The base name of this process's captures: the exact output path, or the default name. */
void lt_capture_main_name(char *dst, size_t cap)
{
    if (lt_cfg.output[0] && !lt_is_child) {
        strncpy(dst, lt_cfg.output, cap - 1);
        dst[cap - 1] = 0;
    } else {
        default_name(dst, cap);
    }
}

/* The label of capture_format.h's list: its one definition (format.py mirrors it). */
static const char *reason_label(unsigned reason)
{
    switch (reason) {
#define LT_X(num, name, text) \
    case LT_REASON_##name: return text;
        LT_CAPTURE_REASONS(LT_X)
#undef LT_X
    default: return "capture";
    }
}

/* On-demand captures sit beside the main one: <main without .lt>.<reason>-<n>.lt */
static void on_demand_name(char *dst, size_t cap, unsigned reason, uint32_t sequence)
{
    char main[LT_PATH_MAX];
    lt_capture_main_name(main, sizeof main);
    size_t len = strlen(main);
    if (len > 3 && strcmp(main + len - 3, ".lt") == 0) main[len - 3] = 0;
    char *end = dst + cap - 1;
    char *p = lt_put_str(dst, end, main);
    p = lt_put_str(p, end, ".");
    p = lt_put_str(p, end, reason_label(reason));
    p = lt_put_str(p, end, "-");
    p = lt_put_uint(p, end, sequence);
    p = lt_put_str(p, end, ".lt");
    *p = 0;
}

/* The capture of an image the process replaces by exec: <main>.exec-<n>.lt, n the first
 * number free, so the images of one process (each with its own sequence) never collide. */
static int open_exec_file(char *path, size_t cap)
{
    for (uint32_t n = 1; n < 1000; n++) {
        on_demand_name(path, cap, LT_REASON_EXEC, n);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0 || errno != EEXIST) return fd < 0 ? -errno : fd;
    }
    return -EEXIST;
}

/* ---- set aside before it is needed ------------------------------------------------------
 * Memory: a program that fills its address space up to RLIMIT_AS and carries on leaves no
 * room for a new mapping at exit, so the writer's buffer and scratch are mapped at start-up
 * (address space only: no page is touched until used) and taken when lt_map fails.
 * Files: a process that changes its user or groups (setuid & co, privileges.c) may no
 * longer create its capture, nor open the launcher's notify file (/proc/<launcher>/fd/N of
 * another user's process), afterwards: both are opened just before the change. */
#define RESERVE_SIZE (BUF_SIZE + SCRATCH_SIZE)
static uint8_t *reserve;             /* mapped once at start-up; read-only after */
static _Atomic bool reserve_taken;   /* one writer at a time uses it */

enum { PREPARED_NONE, PREPARED_BUSY, PREPARED_READY };
static struct {
    _Atomic int state;               /* PREPARED_*: the CAS from NONE claims the fields */
    int pid;                         /* the process they were opened for */
    int fd, notify_fd;               /* -1 when the open failed */
    /* What each names: a program that closes every descriptor (sshd's closefrom after its
     * setgroups) may have closed them, or put a file of its own under the number. */
    struct lt_fd_identity file_id, notify_id;
    int error;                       /* errno of the capture's open */
    char path[LT_PATH_MAX];
} prepared;

void lt_capture_reserve(void)
{
    if (!reserve) reserve = lt_map(RESERVE_SIZE);
}

/* After a detach, with the other tables (lt_release_tables): no capture is being written. */
void lt_capture_release_reserve(void)
{
    if (!reserve || atomic_load(&reserve_taken)) return;
    lt_unmap(reserve, RESERVE_SIZE);
    reserve = NULL;
}

void lt_capture_prepare_final(void)
{
    int expected = PREPARED_NONE;
    if (!atomic_compare_exchange_strong(&prepared.state, &expected, PREPARED_BUSY)) return;
    int saved_errno = errno;
    char base[LT_PATH_MAX];
    lt_capture_main_name(base, sizeof base);
    int fd = open_new_file(prepared.path, sizeof prepared.path, base);
    prepared.error = fd < 0 ? -fd : 0;
    prepared.fd = lt_fd_out_of_the_way(fd);
    if (prepared.fd >= 0) lt_fd_identify(prepared.fd, &prepared.file_id); /* else {0, 0}: names none */
    prepared.notify_fd = lt_cfg.notify[0] ? lt_fd_out_of_the_way(open(lt_cfg.notify, O_WRONLY | O_APPEND | O_CLOEXEC)) : -1;
    if (prepared.notify_fd >= 0) lt_fd_identify(prepared.notify_fd, &prepared.notify_id);
    prepared.pid = getpid();
    atomic_store(&prepared.state, PREPARED_READY);
    errno = saved_errno;
}

/* A fork child has descriptors of its parent's capture: not its own. It may prepare its own
 * before a change of its own (sshd's sandboxed child chroots after its parent dropped its
 * groups). Its only thread is the one that forked, so the reserve is free whatever another
 * thread was doing. */
void lt_capture_after_fork_child(void)
{
    atomic_store(&reserve_taken, false);
    if (atomic_load(&prepared.state) == PREPARED_READY) {
        if (lt_fd_still_names(prepared.fd, &prepared.file_id)) close(prepared.fd);
        if (lt_fd_still_names(prepared.notify_fd, &prepared.notify_id)) close(prepared.notify_fd);
    }
    prepared.fd = prepared.notify_fd = -1; /* (a thread preparing them is not in the child) */
    atomic_store(&prepared.state, PREPARED_NONE);
}

static bool prepared_here(void)
{
    return atomic_load(&prepared.state) == PREPARED_READY && prepared.pid == getpid();
}

/* The prepared notify file's descriptor while it still names that file, else -1. */
static int prepared_notify_fd(void)
{
    if (!prepared_here() || !lt_fd_still_names(prepared.notify_fd, &prepared.notify_id)) return -1;
    return prepared.notify_fd;
}

/* An exec replaces the image that would have written into the early-opened file: it goes
 * (if the new user may not remove it, it stays empty, and the launcher takes an empty file
 * for no capture and removes it). */
void lt_capture_drop_prepared(void)
{
    if (!prepared_here() || prepared.fd < 0) return;
    int saved_errno = errno;
    if (lt_fd_still_names(prepared.fd, &prepared.file_id)) close(prepared.fd);
    prepared.fd = -1;
    prepared.error = 0; /* if the exec fails, the final capture opens its file as usual */
    unlink(prepared.path);
    errno = saved_errno;
}

/* The final capture's file opened before a privilege change: its descriptor (claimed once),
 * or -errno of that open; 0 when there is none to use. */
static int take_prepared_file(char *path, size_t cap)
{
    if (!prepared_here()) return 0;
    int fd = prepared.fd;
    if (fd < 0) return prepared.error ? -prepared.error : 0;
    prepared.fd = -1;
    if (!lt_fd_still_names(fd, &prepared.file_id)) {
        /* The program closed it: the capture is opened as without a privilege change (which
         * may now fail), under the same name once the empty file is gone. */
        if (unlink(prepared.path) != 0) { /* the launcher takes an empty file for none */ }
        return 0;
    }
    size_t n = strnlen(prepared.path, cap - 1);
    memcpy(path, prepared.path, n);
    path[n] = 0;
    return fd;
}

/* One line for the launcher: "capture <pid> <path>" for a capture written, or
 * "failed <pid> <errno> <path>" when it could not be (disk full, a directory it may not write,
 * no memory left), so `leaktrace run` can say why there is no capture; "traced <pid> <parent>"
 * when a child is traced (lt_capture_notify_traced); "exec" and "execfailed" around an exec
 * (lt_capture_notify_exec); in attach mode "detached <pid> <session>"
 * when a detach ended the session (lt_capture_notify_detached). */
static void notify_line(const char *word, int error, const char *text)
{
    if (!lt_cfg.notify[0]) return;
    char line[LT_PATH_MAX + 64];
    char *end = line + sizeof line - 1;
    char *p = lt_put_str(line, end, word);
    p = lt_put_str(p, end, " ");
    p = lt_put_uint(p, end, (uint64_t)getpid());
    p = lt_put_str(p, end, " ");
    if (error) {
        p = lt_put_uint(p, end, (uint64_t)error);
        p = lt_put_str(p, end, " ");
    }
    p = lt_put_str(p, end, text);
    p = lt_put_str(p, end, "\n");
    int fd = prepared_notify_fd();
    bool own = fd < 0;
    if (own) fd = open(lt_cfg.notify, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    /* One write of less than PIPE_BUF bytes with O_APPEND: lines of concurrent writers
     * (parent and children) never interleave. */
    ssize_t ignored = write(fd, line, (size_t)(p - line));
    (void)ignored;
    if (own) close(fd);
}

static void notify(const char *path, int error)
{
    notify_line(error ? "failed" : "capture", error, path);
}

/* `leaktrace run --follow-children` learns which processes are traced, so that it can wait a
 * moment, after the program's end, for a child that outlives it. */
void lt_capture_notify_traced(void)
{
    char parent[24];
    *lt_put_uint(parent, parent + sizeof parent - 1, (uint64_t)getppid()) = 0;
    notify_line("traced", 0, parent);
}

/* The image about to exec `image` wrote its capture ("exec <pid> <file>"), or the exec failed
 * and it lives on ("execfailed <pid> <file>"): if no capture follows, the launcher checks the
 * file (setuid, static: the loader does not preload the shim into it) to say why. */
void lt_capture_notify_exec(const char *image, bool failed)
{
    int saved_errno = errno;
    notify_line(failed ? "execfailed" : "exec", 0, image[0] ? image : "?");
    errno = saved_errno;
}

/* The `leaktrace attach` that started the session learns that `leaktrace detach` ended it
 * (its own capture goes in detach's answer, not here). */
void lt_capture_notify_detached(void)
{
    notify_line("detached", 0, lt_cfg.session[0] ? lt_cfg.session : "-");
}

void lt_capture_notify_failure(int error)
{
    char path[LT_PATH_MAX];
    lt_capture_main_name(path, sizeof path);
    notify(path, error);
}

/* ---- sections -------------------------------------------------------------------------- */
static void write_header(struct writer *w, bool final)
{
    char magic[8] = LT_MAGIC;
    w_bytes(w, magic, 8);
    w_u32(w, LT_VERSION);
    w_u32(w, LT_HEADER_SIZE);
    w_u32(w, (uint32_t)getpid());
    w_u32(w, (final ? LT_FLAG_FINAL : 0) | (lt_is_child ? LT_FLAG_CHILD : 0));
    w_u64(w, lt_start_real_ns);
    w_u64(w, lt_realtime_ns());
    w_u64(w, lt_start_mono_ns);
    w_u64(w, lt_now_ns());
    w_u32(w, (uint32_t)sizeof(void *));
    w_u32(w, 0);
}

static void write_process(struct writer *w, char *scratch, size_t cap)
{
    uint64_t at = section_begin(w, LT_SECTION_PROCESS);
    w_u32(w, (uint32_t)getppid());
    w_u32(w, 0);
    ssize_t n = lt_readlink_proc("/proc/self/exe", scratch, cap);
    w_str(w, scratch, n > 0 ? (size_t)n : 0);
    size_t len = lt_read_file("/proc/self/cmdline", scratch, cap);
    if (len && scratch[len - 1] == 0) len--; /* arguments are separated, not terminated */
    w_str(w, scratch, len);
    const char *cwd = getcwd(scratch, cap);
    w_str(w, cwd ? cwd : "", cwd ? strlen(cwd) : 0);
    section_end(w, at);
}

static void write_modules(struct writer *w, bool may_wait)
{
    uint64_t at = section_begin(w, LT_SECTION_MODULES);
    /* A parked thread, or one interrupted by our signal, may hold the lock for good: then
     * read the list without it (entries are only ever appended). */
    bool locked = may_wait ? (lt_modules_lock(), true) : lt_modules_trylock();
    unsigned n = lt_modules_count();
    w_u32(w, n);
    w_u32(w, 0);
    for (unsigned i = 0; i < n; i++) {
        const struct lt_module *m = lt_module_at(i);
        w_u64(w, m->bias);
        w_u64(w, m->start);
        w_u64(w, m->end);
        w_u32(w, m->flags);
        w_u32(w, m->build_id_len);
        w_bytes(w, m->build_id, m->build_id_len);
        w_str(w, m->path, strnlen(m->path, sizeof m->path));
    }
    if (locked) lt_modules_unlock();
    section_end(w, at);
}

struct block_pass {
    struct writer *w;
    uint64_t count;
    uint64_t *live;      /* per stack id: blocks, bytes */
    uint32_t nstacks;
    unsigned generation; /* the current baseline generation */
    bool only_new;       /* write only blocks born since the baseline */
    const uint8_t *generations; /* if set: write only blocks of these generations */
};

static void emit_record(struct block_pass *bp, uintptr_t addr, uint64_t size, uint32_t stack_id,
                        uint8_t kind, uint8_t leak_kind, uint8_t heuristic, uint32_t time_ms,
                        unsigned generation)
{
    bool is_new = generation == (bp->generation & 0xffff);
    if (bp->only_new && !is_new) return;
    if (bp->generations && !(bp->generations[(generation & 0xffff) >> 3] >> (generation & 7) & 1)) return;
    /* One copy a record: at 10 M blocks, a call a field was a second of the exit path. */
    struct {
        uint64_t addr, size;
        uint32_t stack_id;
        uint8_t kind, leak_kind, heuristic, flags;
        uint64_t time_ns;
    } record = { addr, size, stack_id, kind, leak_kind, heuristic,
                 is_new ? LT_BLOCK_FLAG_SINCE_BASELINE : 0, (uint64_t)time_ms * 1000000u };
    _Static_assert(sizeof record == LT_BLOCK_RECORD_SIZE, "a BLOCKS record as the format says");
    w_bytes(bp->w, &record, sizeof record);
    bp->count++;
    if (bp->live && stack_id <= bp->nstacks) {
        bp->live[2 * stack_id] += 1;
        bp->live[2 * stack_id + 1] += size;
    }
}

static void emit_block(const struct lt_block *b, void *ctx)
{
    emit_record(ctx, b->addr, lt_block_size(b), b->stack_id, (uint8_t)lt_block_kind(b),
                LT_LEAK_UNSCANNED, LT_HEURISTIC_NONE, b->time_ms, lt_block_generation(b));
}

static unsigned write_blocks(struct writer *w, struct block_pass *bp, bool from_signal,
                             const struct lt_scan *scan)
{
    uint64_t at = section_begin(w, LT_SECTION_BLOCKS);
    uint64_t count_at = w_pos(w);
    w_u64(w, 0);
    unsigned skipped = 0;
    if (scan) { /* the heap blocks as the scan saw and classified them */
        for (size_t i = 0; i < scan->count; i++) {
            const struct lt_scan_block *b = &scan->blocks[i];
            emit_record(bp, b->addr, b->size, b->stack_id, b->kind, b->leak_kind, b->heuristic,
                        b->time_ms, b->generation);
        }
    } else {
        skipped = lt_blocks_visit(emit_block, bp, from_signal);
        skipped += lt_annotations_visit(emit_block, bp, from_signal); /* custom allocators' */
    }
    skipped += lt_regions_visit(emit_block, bp, from_signal);
    patch_u64(w, count_at, bp->count);
    section_end(w, at);
    return skipped;
}

/* The stack ids the INVALID_FREES section names (their stacks have no allocation of their own). */
struct site_ids {
    uint32_t ids[256];
    unsigned n;
};

static void add_site_id(uint32_t stack_id, unsigned api, uint64_t count, uint64_t first, void *ctx)
{
    (void)api, (void)count, (void)first;
    struct site_ids *s = ctx;
    if (s->n < sizeof s->ids / sizeof *s->ids) s->ids[s->n++] = stack_id;
}

static bool names_stack(const struct site_ids *s, uint32_t id)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->ids[i] == id) return true;
    return false;
}

static void write_stacks(struct writer *w, const struct block_pass *bp)
{
    struct site_ids sites = { .n = 0 };
    lt_invalid_frees_each(add_site_id, &sites);
    uint64_t at = section_begin(w, LT_SECTION_STACKS);
    uint64_t count_at = w_pos(w);
    w_u32(w, 0);
    w_u32(w, 0);
    uint32_t written = 0;
    for (uint32_t id = 0; id <= bp->nstacks; id++) {
        struct lt_stack *s = lt_stack_get(id);
        uint64_t live_blocks = bp->live ? bp->live[2 * id] : 0;
        uint64_t live_bytes = bp->live ? bp->live[2 * id + 1] : 0;
        struct lt_stack_totals t = lt_stack_totals(id);
        /* unused id, or stack 0 with nothing live */
        if (!t.alloc_count && !live_blocks && (!sites.n || !names_stack(&sites, id))) continue;
        uint32_t depth = s ? s->depth : 0;
        struct {
            uint32_t id, depth;
            uint64_t allocs, alloc_bytes, frees, freed_bytes, live_blocks, live_bytes;
        } entry = { id, depth, t.alloc_count, t.alloc_bytes, t.free_count, t.freed_bytes,
                    live_blocks, live_bytes };
        _Static_assert(sizeof entry == LT_STACK_ENTRY_SIZE, "a STACKS entry as the format says");
        w_bytes(w, &entry, sizeof entry);
        if (depth) w_bytes(w, lt_stack_pcs(s), depth * sizeof(uintptr_t));
        written++;
    }
    /* The count is a u32 followed by a reserved u32: patch both as one u64. */
    patch_u64(w, count_at, written);
    section_end(w, at);
}

static void write_counter(struct writer *w, const char *name, uint64_t value)
{
    w_str(w, name, strlen(name));
    w_u64(w, value);
}

static void write_counters(struct writer *w, unsigned skipped_shards, const struct lt_scan *scan)
{
    bool unrecorded = scan && (lt_sample_mean_bytes || lt_attach_mode());
    uint64_t at = section_begin(w, LT_SECTION_COUNTERS);
    w_u32(w, 7 + (lt_sample_mean_bytes ? 1 : 0) + (unrecorded ? 2 : 0));
    w_u32(w, 0);
    write_counter(w, "dropped_blocks", atomic_load(&lt_counters.dropped_blocks));
    write_counter(w, "dropped_stacks", atomic_load(&lt_counters.dropped_stacks));
    write_counter(w, "truncated_stacks", lt_striped_sum(LT_CUT_BACKTRACES));
    write_counter(w, "unknown_frees", lt_striped_sum(LT_UNKNOWN_FREES));
    write_counter(w, "max_depth", (uint64_t)lt_cfg.max_depth);
    write_counter(w, "skipped_shards", skipped_shards);
    write_counter(w, "fatal_signal", (uint64_t)lt_final_signal());
    if (lt_sample_mean_bytes) write_counter(w, "sample_mean_bytes", lt_sample_mean_bytes);
    if (unrecorded) {
        write_counter(w, "scan_unrecorded_blocks", scan->unrecorded_blocks);
        write_counter(w, "scan_unrecorded_missed", scan->unrecorded_missed);
    }
    section_end(w, at);
}

/* What the shim knows the report must say about what it could not see. */
static void write_notes(struct writer *w, const char *request_note)
{
    const char *foreign = lt_foreign_allocator_note();
    const char *deep = lt_deepbind_note();
    if (!foreign && !request_note && !deep) return;
    static const char tail[] = ": calls to those functions are not traced";
    uint64_t at = section_begin(w, LT_SECTION_NOTES);
    w_u32(w, (foreign != NULL) + (request_note != NULL) + (deep != NULL));
    w_u32(w, 0);
    if (foreign) {
        size_t len = strlen(foreign);
        w_u32(w, (uint32_t)(len + sizeof tail - 1));
        w_bytes(w, foreign, len);
        w_bytes(w, tail, sizeof tail - 1);
    }
    if (request_note) w_str(w, request_note, strlen(request_note));
    if (deep) w_str(w, deep, strlen(deep));
    section_end(w, at);
}

static void write_invalid_free(uint32_t stack_id, unsigned api, uint64_t count, uint64_t first, void *ctx)
{
    struct writer *w = ctx;
    w_u32(w, stack_id);
    w_u32(w, api);
    w_u64(w, count);
    w_u64(w, first);
}

/* Frees of addresses never allocated or freed already (invalid_frees.c): present when every
 * block was known until now (the final capture's FINAL state aside). */
static void write_invalid_frees(struct writer *w)
{
    /* Those found are not told once __libc_malloc's blocks (which look like them) may be about. */
    if (!lt_invalid_frees_checked()) return;
    uint64_t at = section_begin(w, LT_SECTION_INVALID_FREES);
    uint64_t count_at = w_pos(w);
    uint64_t unrecorded = lt_invalid_frees_unrecorded();
    w_u64(w, 0);
    uint64_t before = w_pos(w);
    lt_invalid_frees_each(write_invalid_free, w);
    /* u32 count (what was written: a site may be claimed between the two passes), u32 the
     * calls whose site did not fit. */
    uint64_t count = (w_pos(w) - before) / LT_INVALID_FREE_RECORD_SIZE;
    patch_u64(w, count_at, count | (unrecorded > UINT32_MAX ? UINT32_MAX : unrecorded) << 32);
    section_end(w, at);
}

/* The fatal signal that ended the program, and where it struck (fatal.c). */
static void write_fatal(struct writer *w)
{
    const struct lt_fatal *f = lt_fatal_noted();
    if (!f || !lt_final_signal()) return;
    uint64_t at = section_begin(w, LT_SECTION_FATAL);
    w_u32(w, f->signal);
    w_u32(w, (uint32_t)f->code);
    w_u64(w, f->address);
    w_u32(w, f->sender_pid);
    w_u32(w, f->tid);
    w_u32(w, f->flags);
    w_u32(w, f->depth);
    w_bytes(w, f->thread_name, sizeof f->thread_name);
    w_u32(w, f->handler_trapno);
    w_u32(w, f->handler_error);
    w_u64(w, f->handler_fault_address);
    _Static_assert(4 * 8 + 8 * 2 + sizeof f->thread_name == LT_FATAL_PAYLOAD_SIZE, "FATAL as the format says");
    w_bytes(w, f->pcs, f->depth * sizeof *f->pcs);
    section_end(w, at);
}

/* Definitely lost blocks that own others: what their clique holds. */
static void write_leak_groups(struct writer *w, const struct lt_scan *scan)
{
    uint64_t at = section_begin(w, LT_SECTION_LEAK_GROUPS);
    uint64_t count_at = w_pos(w);
    w_u64(w, 0);
    uint64_t n = 0;
    for (size_t i = 0; i < scan->count; i++) {
        const struct lt_scan_block *b = &scan->blocks[i];
        if (b->leak_kind != LT_LEAK_DEFINITELY_LOST || !b->owns) continue;
        const struct lt_scan_clique *c = &scan->cliques[i];
        w_u64(w, b->addr);
        w_u64(w, c->indirect_bytes);
        w_u64(w, c->indirect_blocks);
        n++;
    }
    patch_u64(w, count_at, n);
    section_end(w, at);
}

static void write_scan_stats(struct writer *w, const struct lt_scan *scan)
{
    uint64_t at = section_begin(w, LT_SECTION_SCAN);
    w_u64(w, scan->duration_ns);
    w_u64(w, scan->bytes_scanned);
    w_u64(w, scan->root_bytes);
    w_u32(w, scan->threads_stopped);
    w_u32(w, scan->threads_not_stopped);
    w_u32(w, scan->heuristics);
    w_u32(w, 0);
    section_end(w, at);
}

static void write_session(struct writer *w, const struct lt_capture_request *req, uint32_t sequence)
{
    uint64_t at = section_begin(w, LT_SECTION_SESSION);
    w_u64(w, atomic_load(&lt_baseline_ns));
    w_u32(w, sequence);
    w_u32(w, req->reason);
    w_u32(w, lt_collecting() ? 1 : 0);
    w_u32(w, lt_snapshot_interval_ms());
    section_end(w, at);
}

static void write_series(struct writer *w)
{
    uint64_t at = section_begin(w, LT_SECTION_SERIES);
    lt_series_lock();
    size_t n = lt_series_count();
    w_u32(w, (uint32_t)n);
    w_u32(w, 0);
    for (size_t i = 0; i < n; i++) {
        const struct lt_series_entry *e;
        const struct lt_snapshot *s = lt_series_get(i, &e);
        w_u64(w, s->time_ns);
        w_u32(w, s->count);
        w_u32(w, 0);
        for (uint32_t k = 0; k < s->count; k++) {
            w_u32(w, e[k].stack_id);
            w_u32(w, 0);
            w_u64(w, e[k].alloc_count);
            w_u64(w, e[k].alloc_bytes);
            w_u64(w, e[k].live_blocks);
            w_u64(w, e[k].live_bytes);
        }
    }
    lt_series_unlock();
    section_end(w, at);
}

/* On-demand captures are numbered in one sequence per process. */
static _Atomic uint32_t on_demand_sequence;

/* The writer's buffer and scratch: fresh mappings, else the reserve (one writer at a time). */
struct buffers {
    uint8_t *buf;
    char *scratch;
    bool reserved;
};

static bool get_buffers(struct buffers *b)
{
    b->buf = lt_map(BUF_SIZE);
    b->scratch = lt_map(SCRATCH_SIZE);
    b->reserved = false;
    if (b->buf && b->scratch) return true;
    lt_unmap(b->buf, BUF_SIZE);
    lt_unmap(b->scratch, SCRATCH_SIZE);
    bool expected = false;
    if (!reserve || !atomic_compare_exchange_strong(&reserve_taken, &expected, true)) return false;
    b->buf = reserve;
    b->scratch = (char *)reserve + BUF_SIZE;
    b->reserved = true;
    return true;
}

static void put_buffers(struct buffers *b)
{
    if (b->reserved) {
        atomic_store(&reserve_taken, false);
        return;
    }
    lt_unmap(b->buf, BUF_SIZE);
    lt_unmap(b->scratch, SCRATCH_SIZE);
}

static int write_capture(struct lt_capture_request *req)
{
    bool final = req->reason == LT_REASON_EXIT || req->reason == LT_REASON_SIGNAL ||
                 req->reason == LT_REASON_DETACH || req->reason == LT_REASON_EXEC ||
                 req->reason == LT_REASON_SANDBOX || req->reason == LT_REASON_FILE_LIMIT;
    bool from_signal = req->in_signal_handler;
    const struct lt_scan *scan = req->scan;
    char *path = req->path;
    char base[LT_PATH_MAX];
    uint32_t sequence = 0;
    int fd = 0;
    /* Named in the notify file, unless the caller chose the path or the answer to `detach`
     * carries it (to the notify file's reader it is not a capture at exit). */
    bool announce = !req->exact_path && req->reason != LT_REASON_DETACH;
    if (req->exact_path) {
        strncpy(base, req->exact_path, sizeof base - 1);
        base[sizeof base - 1] = 0;
    } else if (req->reason == LT_REASON_EXEC) {
        fd = open_exec_file(path, LT_PATH_MAX);
    } else if (final) {
        lt_capture_main_name(base, sizeof base);
        fd = req->reason == LT_REASON_DETACH ? 0 : take_prepared_file(path, LT_PATH_MAX);
    } else {
        sequence = atomic_fetch_add(&on_demand_sequence, 1) + 1;
        on_demand_name(base, sizeof base, req->reason, sequence);
    }
    if (fd == 0 && req->reason != LT_REASON_EXEC) fd = open_new_file(path, LT_PATH_MAX, base);
    if (fd < 0) {
        if (announce) notify(path, -fd);
        return fd;
    }

    struct buffers mem;
    if (!get_buffers(&mem)) {
        if (unlink(path) != 0 && ftruncate(fd, 0) != 0) { /* an empty file: no capture */ }
        close(fd);
        if (announce) notify(path, ENOMEM);
        return -ENOMEM;
    }
    struct writer w = { .fd = fd, .buf = mem.buf };
    /* Module list first: it may take the loader's lock, which must not be taken from a
     * signal handler that interrupted the loader. */
    if (!from_signal && !req->world_stopped) lt_modules_refresh(false);
    write_header(&w, final);
    write_process(&w, mem.scratch, SCRATCH_SIZE);
    write_modules(&w, !from_signal && !req->world_stopped);
    struct block_pass bp = { .w = &w, .nstacks = lt_stacks_count(),
                             .generation = atomic_load(&lt_generation), .only_new = req->only_since_baseline,
                             .generations = req->generations };
    size_t live_size = ((size_t)bp.nstacks + 1) * 2 * sizeof(uint64_t);
    bp.live = lt_map(live_size); /* NULL: the STACKS section's live totals stay 0 */
    unsigned skipped = write_blocks(&w, &bp, from_signal, scan);
    write_stacks(&w, &bp);
    if (scan) {
        write_leak_groups(&w, scan);
        write_scan_stats(&w, scan);
    }
    write_session(&w, req, sequence);
    if (!from_signal) write_series(&w);
    write_counters(&w, skipped, scan);
    write_notes(&w, req->note);
    if (final) write_fatal(&w);
    write_invalid_frees(&w);
    section_end(&w, section_begin(&w, LT_SECTION_END));
    w_flush(&w);
    lt_unmap(bp.live, live_size);
    put_buffers(&mem);
    int err = w.error;
    if (err && unlink(path) != 0 && ftruncate(fd, 0) != 0) { /* an empty file: no capture */ }
    close(fd);
    if (err) {
        if (announce) notify(path, err);
        return -err;
    }
    if (announce) notify(path, 0);
    return 0;
}

/* A program may limit the size of the files it writes (RLIMIT_FSIZE; OpenSSH's sandboxed
 * child sets it to 0): a write past the limit raises SIGXFSZ, whose default action kills the
 * program. Around a capture under such a limit: at exit (the process is ending) the soft
 * limit rises to the hard one; while writing, SIGXFSZ is blocked, so a write past the limit
 * fails (EFBIG: no capture, and `run` says why), and the SIGXFSZ the kernel queued for it is
 * taken back, unless one was already pending for the program. */
struct size_guard {
    bool active, was_pending;
    sigset_t old_mask;
};

static void size_guard_begin(struct size_guard *g, bool ending)
{
    g->active = false;
    struct rlimit fsize;
    if (getrlimit(RLIMIT_FSIZE, &fsize) != 0 || fsize.rlim_cur == RLIM_INFINITY) return;
    if (ending && fsize.rlim_cur < fsize.rlim_max) {
        fsize.rlim_cur = fsize.rlim_max;
        if (setrlimit(RLIMIT_FSIZE, &fsize) == 0 && fsize.rlim_cur == RLIM_INFINITY) return;
    }
    sigset_t xfsz, pending;
    sigemptyset(&xfsz);
    sigaddset(&xfsz, SIGXFSZ);
    pthread_sigmask(SIG_BLOCK, &xfsz, &g->old_mask);
    g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGXFSZ);
    g->active = true;
}

static void size_guard_end(struct size_guard *g)
{
    if (!g->active) return;
    sigset_t xfsz, pending;
    sigemptyset(&xfsz);
    sigaddset(&xfsz, SIGXFSZ);
    static const struct timespec now = { 0, 0 };
    if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGXFSZ))
        sigtimedwait(&xfsz, NULL, &now);
    pthread_sigmask(SIG_SETMASK, &g->old_mask, NULL);
}

int lt_capture_write(struct lt_capture_request *req)
{
    int saved_errno = errno;
    struct size_guard guard;
    size_guard_begin(&guard, req->reason == LT_REASON_EXIT || req->reason == LT_REASON_SIGNAL);
    int r = write_capture(req);
    size_guard_end(&guard);
    errno = saved_errno;
    return r;
}
