/* `leaktrace run --mtrace-log FILE`: a glibc MALLOC_TRACE log of the traced process, with each
 * allocation's backtrace added as `#` lines (docs/mtrace-log.md). glibc's `mtrace` script
 * reads it as a log glibc wrote; `leaktrace mtrace` groups leaks by full backtrace.
 *
 *     = Start
 *     @ ./prog:[0x11a7] + 0x55d0c2a4b2a0 0x40      allocation (`>` for realloc's new block)
 *     # 0x55d0c0c011a7 /srv/bin/prog+0x11a7       its backtrace, innermost first
 *     @ ./prog:[0x11c0] < 0x55d0c2a4b2a0           realloc's old block
 *     @ ./prog:[0x1200] - 0x55d0c2a4b2a0           free
 *
 * CALLER is written as glibc writes it (dladdr's file name, argv[0] for the program, and the
 * return address minus the start of the object's first mapping), but found with
 * _dl_find_object, which takes no lock. Lines are formatted without malloc into one buffer
 * and written with raw write system calls; an event (its `@` line and `#` lines) is written
 * under `log_lock` so that no other thread's line comes between them. Frees and realloc's
 * old block are logged before the real call, as hooks.c updates its tables: once the
 * allocator has the address back, another thread may get it and log its allocation.
 *
 * Enabled by LEAKTRACE_MTRACE_LOG=PATH (lt_cfg.mtrace_log, read with the other settings
 * before the shim hides them from the program); opened at the first event. The file is created with
 * O_EXCL, so a child with --follow-children, whose shim sees the same variable, never writes
 * into the parent's log; a child made by fork stops logging (lt_owner_pid changes). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mtrace_log.h"
#include "shim.h"

enum { LOG_UNOPENED, LOG_OPEN, LOG_OFF };

/* Guarded by log_lock: the state, the descriptor, the program's path read at the first
 * event, and the buffer every event is formatted in. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_state = LOG_UNOPENED;
static int log_fd = -1;
static char exe_path[LT_PATH_MAX];
static char buf[64 << 10];

/* Written under log_lock at the first event, read without it: whether this process logs
 * (-1 not known yet, 0 no, 1 yes; most processes never do, and return at one relaxed load)
 * and the pid the log belongs to, so a forked child returns before taking the lock, which a
 * thread that does not exist in the child may have held at the fork. */
_Atomic int lt_mtrace_log_wanted = -1;
static _Atomic pid_t log_pid;

static void write_all(const char *p, size_t len)
{
    while (len) {
        ssize_t n = syscall(SYS_write, log_fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return; /* a full disk ends the log, never the program */
        p += n;
        len -= (size_t)n;
    }
}

static char *put_hex(char *p, char *end, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    int n = 0;
    do tmp[n++] = digits[v & 15]; while ((v >>= 4) && n < 16);
    if (end - p < n + 2) return p;
    *p++ = '0';
    *p++ = 'x';
    while (n) *p++ = tmp[--n];
    return p;
}

/* glibc prints sizes with %#lx: 0x40, but 0 for zero. */
static char *put_size(char *p, char *end, uint64_t size)
{
    return size ? put_hex(p, end, size) : lt_put_str(p, end, "0");
}

/* pre: log_lock held. Opens the log at the first event; false when this process does not
 * log (no variable, not the process the log belongs to, or the file could not be made). */
static bool log_ready(void)
{
    if (log_state != LOG_UNOPENED) return log_state == LOG_OPEN;
    log_state = LOG_OFF;
    const char *path = lt_cfg.mtrace_log;
    if (!*path) return false;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC,
                          0644);
    if (fd < 0) return false;
    ssize_t n = lt_readlink_proc("/proc/self/exe", exe_path, sizeof exe_path - 1);
    exe_path[n > 0 ? n : 0] = 0;
    log_fd = fd;
    atomic_store(&log_pid, getpid());
    log_state = LOG_OPEN;
    write_all("= Start\n", 8);
    return true;
}

/* `@ CALLER ` for a return address, as glibc's tr_where writes it. */
static char *put_caller(char *p, char *end, uintptr_t ra)
{
    struct dl_find_object dlfo;
    p = lt_put_str(p, end, "@ ");
    if (_dl_find_object((void *)(ra - 1), &dlfo) != 0) {
        p = lt_put_str(p, end, "[");
        p = put_hex(p, end, ra);
        return lt_put_str(p, end, "] ");
    }
    const char *name = dlfo.dlfo_link_map ? dlfo.dlfo_link_map->l_name : "";
    if (!name || !*name) name = program_invocation_name; /* dladdr names the program so */
    p = lt_put_str(p, end, name);
    p = lt_put_str(p, end, ":[");
    p = put_hex(p, end, ra - (uintptr_t)dlfo.dlfo_map_start);
    return lt_put_str(p, end, "] ");
}

/* `# ADDRESS MODULE+OFFSET` for each return address of the stack. */
static char *put_backtrace(char *p, char *end, const uintptr_t *pcs, uint32_t depth)
{
    for (uint32_t i = 0; i < depth && end - p > 64; i++) {
        struct dl_find_object dlfo;
        p = lt_put_str(p, end, "# ");
        p = put_hex(p, end, pcs[i]);
        if (_dl_find_object((void *)(pcs[i] - 1), &dlfo) == 0 && dlfo.dlfo_link_map) {
            const char *name = dlfo.dlfo_link_map->l_name;
            p = lt_put_str(p, end, " ");
            p = lt_put_str(p, end, name && *name ? name : exe_path);
            p = lt_put_str(p, end, "+");
            p = put_hex(p, end, pcs[i] - dlfo.dlfo_link_map->l_addr);
        }
        p = lt_put_str(p, end, "\n");
    }
    return p;
}

/* One event: `@ CALLER OP PTR [SIZE]`, then the backtrace for allocations. */
void lt_mtrace_log_event(char op, const void *ptr, uint64_t size, uint32_t stack_id)
{
    int wanted = atomic_load_explicit(&lt_mtrace_log_wanted, memory_order_relaxed);
    if (wanted == 0) return;
    uintptr_t hidden = lt_hide_address(ptr); /* across the calls below (the first one decides) */
    if (wanted == 1 && atomic_load(&lt_owner_pid) != atomic_load(&log_pid)) return;
    lt_set_busy(true); /* a signal handler's malloc passes straight through, never here */
    int saved_errno = errno; /* the hook's caller sees errno as the real function left it */
    pthread_mutex_lock(&log_lock);
    bool ready = log_ready();
    if (wanted < 0) atomic_store(&lt_mtrace_log_wanted, ready ? 1 : 0);
    if (ready && atomic_load(&lt_owner_pid) == atomic_load(&log_pid)) {
        char *p = buf, *end = buf + sizeof buf;
        const struct lt_stack *stack = stack_id ? lt_stack_get(stack_id) : NULL;
        const uintptr_t *pcs = stack ? lt_stack_pcs(stack) : NULL;
        uint32_t depth = stack ? stack->depth : 0;
        if (depth) p = put_caller(p, end, pcs[0]);
        char text[4] = { op, ' ', 0, 0 };
        p = lt_put_str(p, end, text);
        if (lt_hidden_null(hidden)) p = lt_put_str(p, end, "(nil)");
        else p = put_hex(p, end, (uintptr_t)lt_shown_address(hidden));
        if (op == '+' || op == '>') {
            p = lt_put_str(p, end, " ");
            p = put_size(p, end, size);
        }
        p = lt_put_str(p, end, "\n");
        if (op == '+' || op == '>') p = put_backtrace(p, end, pcs, depth);
        write_all(buf, (size_t)(p - buf));
    }
    pthread_mutex_unlock(&log_lock);
    errno = saved_errno;
    lt_set_busy(false);
}

void lt_mtrace_log_alloc(const void *p, uint64_t size, unsigned kind, uint32_t stack_id)
{
    bool moved = kind == LT_KIND_REALLOC || kind == LT_KIND_REALLOCARRAY;
    lt_mtrace_log_event(moved ? '>' : '+', p, size, stack_id);
}
