/* The control socket and the snapshot clock: a thread of the shim's own that answers
 * commands (docs/control-protocol.md) and takes a series snapshot every interval.
 *
 * The thread is started at the first recorded allocation (never in a process that does not
 * allocate), blocks every signal, runs on a stack the shim mapped itself (so a reachability
 * scan skips it), and is invisible to the hooks (its thread is marked internal). The traced
 * program never waits for it: clients get one command per connection, with timeouts. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "scan.h"
#include "shim.h"

#define CONTROL_STACK_SIZE (1u << 20)
#define ANSWER_SIZE 8192
#define CLIENT_DEADLINE_MS 2000 /* for the whole command line, however slowly it comes */
#define REOPEN_AFTER_MS 1000    /* lost socket: opened again at most this often */

/* `started` is claimed once with an exchange; the rest is written before the thread starts
 * (by the thread that claimed `started`) and afterwards only by the control thread. */
static _Atomic bool started;
static _Atomic int listen_fd = -1;
/* The identity of the socket listen_fd was made for: a descriptor number the program has
 * closed or dup2'd over then holds another file, and is never accepted on. Written before
 * listen_fd is published (an atomic store), read after loading it. */
static struct lt_fd_identity listen_id;
/* When the socket was last lost, 0 if not: the control thread's only (and the fork child's,
 * single-threaded). */
static uint64_t lost_at_ns;
static char socket_path[108];
static _Atomic uint32_t interval_ms = 1000;
static _Atomic pid_t control_tid;
/* Between a control thread's creation and its first step, which publishes control_tid: a
 * thread that has not run yet (a loaded machine can take milliseconds) is still the control
 * thread, and a scan must not count it among the program's. Set by start_thread, cleared by
 * the thread itself (or where it no longer exists). */
static _Atomic bool control_starting;
/* The control threads the kernel may count in this process: raised before one is created,
 * lowered as it returns (and where it failed, or in a fork child, where none exists). Read by
 * own_proc.c, which leaves them out of the thread count the program reads. */
static _Atomic unsigned threads_running;

/* The thread ends at an attach session's detach, and for a while before a call that needs the
 * process single-threaded (lt_control_pause). exit_requested is set by the thread ending it;
 * wake_fd (an eventfd) cuts the thread's wait short. The thread is joinable: control_thread,
 * control_joinable and control_stack are written by start_thread and end_thread_locked, under
 * join_lock. */
static _Atomic bool exit_requested;
static _Atomic int wake_fd = -1;
static pthread_mutex_t join_lock = PTHREAD_MUTEX_INITIALIZER;

/* Held by the control thread while it works (a snapshot, patching new objects, a command),
 * never while it waits. A reachability scan on another thread takes it: the thread does not
 * stop with the others, and its snapshots and captures map and unmap memory, which must not
 * change under the scan (it reads anonymous mappings directly, as /proc/PID/maps listed them
 * when it began; a mapping of ours merged with the program's and unmapped meanwhile faulted). */
static pthread_mutex_t work_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t control_thread;
static bool control_joinable;
static void *control_stack;

uint32_t lt_snapshot_interval_ms(void) { return atomic_load(&interval_ms); }
unsigned lt_control_threads_running(void) { return atomic_load_explicit(&threads_running, memory_order_relaxed); }
pid_t lt_control_thread_id(void)
{
    /* A futex wait on control_tid, which the thread wakes once it has written it. */
    struct timespec ten_ms = { 0, 10 * 1000000L };
    for (int waited_ms = 0; waited_ms < 2000; waited_ms += 10) {
        if (!atomic_load(&control_starting) || atomic_load(&control_tid)) break;
        syscall(SYS_futex, &control_tid, FUTEX_WAIT_PRIVATE, 0, &ten_ms, NULL, 0);
    }
    return atomic_load(&control_tid);
}

/* The private directory: created 0700, and refused if it is a link, someone else's, or open
 * to others (a socket there would let them drive the traced program). */
static const char *private_dir_problem(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) return " could not be created";
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return " is not a directory (a link?)";
    if (st.st_uid != getuid()) return " belongs to another user";
    if (st.st_mode & 077) return " is open to other users";
    return NULL;
}

/* The directory of this process's socket: the configured one, unless that was a default
 * chosen for another user (the process changed its user since, as a child of root's that
 * became `man` or `www-data`: root's directory is closed to it); then that of its own user,
 * /tmp/leaktrace-<uid>, where `leaktrace status` looks for another user's process. */
static const char *socket_dir(void)
{
    /* Written by whoever opens the socket: the thread that starts the control thread, then
     * only the control thread (attach mode, whose directory is explicit, never writes it). */
    static char own_user_dir[64];
    if (lt_cfg.control_dir_explicit || lt_cfg.control_dir_uid == getuid()) return lt_cfg.control_dir;
    char *end = own_user_dir + sizeof own_user_dir - 1;
    *lt_put_uint(lt_put_str(own_user_dir, end, "/tmp/leaktrace-"), end, (uint64_t)getuid()) = 0;
    return own_user_dir;
}

/* One line on the program's stderr: the user asked for a control socket and has none. Not
 * under a seccomp filter, which the process inherited across exec (man-db runs groff and its
 * other helpers so) or put in itself: no directory would help there, and the program's stderr
 * must stay as it is natively. */
static void say_no_socket(const char *why)
{
    if (lt_under_seccomp_filter()) return;
    char line[LT_PATH_MAX + 256];
    char *end = line + sizeof line - 1;
    char *p = lt_put_str(line, end, "leaktrace: no control socket for process ");
    p = lt_put_uint(p, end, (uint64_t)getpid());
    p = lt_put_str(p, end, ": the directory ");
    p = lt_put_str(p, end, socket_dir());
    p = lt_put_str(p, end, why);
    p = lt_put_str(p, end, " (status, report --pid, scan and detach cannot reach it; set "
                           "LEAKTRACE_CONTROL_DIR to a directory of your own)\n");
    ssize_t ignored = write(2, line, (size_t)(p - line));
    (void)ignored;
}

static bool is_listen_socket(int fd)
{
    return lt_fd_still_names(fd, &listen_id);
}

/* `say`: explain a failure on stderr. Only at start-up: later, descriptor 2 may be a file
 * of a daemon's own. */
static bool open_socket(bool say)
{
    if (!lt_cfg.control_dir[0]) return false;
    const char *dir = socket_dir();
    const char *problem = private_dir_problem(dir);
    if (problem) {
        if (say) say_no_socket(problem);
        return false;
    }
    char *end = socket_path + sizeof socket_path - 1;
    char *p = lt_put_str(socket_path, end, dir);
    p = lt_put_str(p, end, "/");
    p = lt_put_uint(p, end, (uint64_t)getpid());
    p = lt_put_str(p, end, ".sock");
    if (p == end) return false; /* too long for sun_path */
    *p = 0;
    struct stat st; /* a stale socket of a dead process that had our pid */
    if (lstat(socket_path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_uid == getuid()) unlink(socket_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return false;
    fd = lt_fd_out_of_the_way(fd);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    memcpy(addr.sun_path, socket_path, (size_t)(p - socket_path) + 1);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || chmod(socket_path, 0600) != 0 ||
        listen(fd, 16) != 0 || !lt_fd_identify(fd, &listen_id)) {
        close(fd);
        socket_path[0] = 0;
        if (say) say_no_socket(": could not create a socket there");
        return false;
    }
    atomic_store(&listen_fd, fd);
    return true;
}

/* ---- commands ------------------------------------------------------------------------------ */
static char *answer_status(char *p, char *end)
{
    extern char *program_invocation_short_name;
    uint64_t live_blocks = 0, live_bytes = 0;
    uint32_t nstacks = lt_stacks_count();
    for (uint32_t id = 1; id <= nstacks; id++) {
        struct lt_stack_totals t = lt_stack_totals(id);
        live_blocks += t.alloc_count > t.free_count ? t.alloc_count - t.free_count : 0;
        live_bytes += t.alloc_bytes > t.freed_bytes ? t.alloc_bytes - t.freed_bytes : 0;
    }
    p = lt_put_json_uint(p, end, "pid", (uint64_t)getpid());
    p = lt_put_json_text(p, end, "program", program_invocation_short_name ? program_invocation_short_name : "");
    p = lt_put_json_uint(p, end, "uptime_ms", (lt_now_ns() - lt_start_mono_ns) / 1000000u);
    p = lt_put_json_bool(p, end, "collecting", lt_collecting());
    if (lt_attached()) p = lt_put_json_text(p, end, "session", lt_cfg.session);
    p = lt_put_json_uint(p, end, "live_blocks", live_blocks);
    p = lt_put_json_uint(p, end, "live_bytes", live_bytes);
    p = lt_put_json_uint(p, end, "stacks", nstacks);
    p = lt_put_json_uint(p, end, "dropped_blocks", atomic_load(&lt_counters.dropped_blocks));
    p = lt_put_json_uint(p, end, "dropped_stacks", atomic_load(&lt_counters.dropped_stacks));
    p = lt_put_json_uint(p, end, "snapshot_interval_ms", atomic_load(&interval_ms));
    lt_series_lock();
    p = lt_put_json_uint(p, end, "snapshots", lt_series_count());
    lt_series_unlock();
    char capture[LT_PATH_MAX];
    lt_capture_main_name(capture, sizeof capture);
    p = lt_put_json_text(p, end, "capture", capture);
    return lt_put_json_uint(p, end, "baseline_ms", atomic_load(&lt_baseline_ns) / 1000000u);
}

static char *answer_capture(char *p, char *end, unsigned reason, char **error)
{
    struct lt_capture_request req = { .reason = reason };
    struct lt_scan scan = { .heuristics = lt_cfg.heuristics };
    if (reason == LT_REASON_SCAN) {
        if (lt_scan_run(&scan, (uintptr_t)__builtin_frame_address(0), false) != 0) {
            *error = "the scan ran out of memory";
            return p;
        }
        req.scan = &scan;
    }
    int r = lt_capture_write(&req);
    lt_scan_release(&scan);
    if (r != 0) {
        *error = "could not write the capture";
        return p;
    }
    return lt_put_json_text(p, end, "capture", req.path);
}

/* "0.25" -> 250 ms, without strtod (which may allocate). */
static long parse_seconds_ms(const char *s)
{
    long ms = 0, scale = 1000;
    bool digits = false;
    for (; *s >= '0' && *s <= '9'; s++, digits = true) ms = ms * 10 + (*s - '0') * 1000;
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9'; s++, digits = true) ms += (*s - '0') * (scale /= 10);
    return digits && ms < 86400000L * 365 ? ms : -1;
}

/* "detach", "detach-scan", each alone or followed by " SESSION" (left in *rest). */
static bool detach_command(const char *cmd, const char **rest, bool *scan)
{
    static const char plain[] = "detach", scanned[] = "detach-scan";
    *scan = strncmp(cmd, scanned, sizeof scanned - 1) == 0;
    size_t len = *scan ? sizeof scanned - 1 : sizeof plain - 1;
    if (strncmp(cmd, plain, sizeof plain - 1) != 0 || (cmd[len] != 0 && cmd[len] != ' ')) return false;
    *rest = cmd + len;
    return true;
}

static void handle(int client, const char *cmd)
{
    const char *rest;
    bool scan;
    char answer[ANSWER_SIZE];
    char *end = answer + sizeof answer - 3;
    char *p = lt_put_str(answer, end, "{\"ok\":true");
    char *error = NULL;
    if (strcmp(cmd, "status") == 0) {
        p = answer_status(p, end);
    } else if (lt_attach_mode() && !lt_attached() && strcmp(cmd, "status") != 0) {
        error = "not attached: leaktrace is not collecting in this process (attach again first)";
    } else if (strcmp(cmd, "report") == 0) {
        p = answer_capture(p, end, LT_REASON_REPORT, &error);
    } else if (strcmp(cmd, "scan") == 0) {
        p = answer_capture(p, end, LT_REASON_SCAN, &error);
    } else if (strcmp(cmd, "reset") == 0) {
        lt_new_baseline();
        p = lt_put_json_uint(p, end, "baseline_ms", atomic_load(&lt_baseline_ns) / 1000000u);
    } else if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0) {
        lt_set_collecting(cmd[0] == 'r');
        p = lt_put_json_bool(p, end, "collecting", lt_collecting());
    } else if (detach_command(cmd, &rest, &scan)) {
        /* "detach NAME": the `leaktrace attach` that started session NAME ending it; another
         * session since (after a `leaktrace detach`) is not its to end. "detach-scan": the
         * capture gets a reachability scan first (attach --scan). */
        char path[LT_PATH_MAX];
        if (!lt_attached()) {
            error = "not attached (a process started with leaktrace run traces until it exits)";
        } else if (*rest == ' ' && strcmp(rest + 1, lt_cfg.session) != 0) {
            error = "that attach session has ended; another one runs now";
        } else {
            bool released = lt_detach(path, sizeof path, scan);
            p = lt_put_json_text(p, end, "capture", path);
            p = lt_put_json_bool(p, end, "tables_released", released);
        }
    } else if (strncmp(cmd, "interval ", 9) == 0) {
        long ms = parse_seconds_ms(cmd + 9);
        if (ms < 10) error = "interval needs a number of seconds, at least 0.01";
        else atomic_store(&interval_ms, (uint32_t)ms);
        p = lt_put_json_uint(p, end, "snapshot_interval_ms", atomic_load(&interval_ms));
    } else {
        error = "unknown command (try status, report, scan, reset, pause, resume, interval SECONDS, detach [SESSION], detach-scan [SESSION])";
    }
    if (error) {
        p = lt_put_str(answer, end, "{\"ok\":false,\"error\":");
        p = lt_put_json_str(p, end, error);
    }
    *p++ = '}';
    *p++ = '\n';
    send(client, answer, (size_t)(p - answer), MSG_NOSIGNAL);
}

/* The program closed our socket (daemons close every descriptor) or put a file of its own
 * under its number: forget the number without touching it (it is the program's now), and
 * open a new socket at the same path a little later. */
static void lose_socket(void)
{
    atomic_store(&listen_fd, -1);
    lost_at_ns = lt_now_ns();
}

static void maybe_reopen(void)
{
    if (atomic_load(&listen_fd) >= 0 || !lost_at_ns || !lt_cfg.control_enabled) return;
    if (lt_now_ns() - lost_at_ns < (uint64_t)REOPEN_AFTER_MS * 1000000u) return;
    lost_at_ns = 0;
    lt_set_busy(true);
    open_socket(false);
    lt_set_busy(false);
}

/* Reads the command line within CLIENT_DEADLINE_MS in all (a client sending a byte at a
 * time cannot hold the thread); returns its length, 0 if none came. */
static size_t read_command(int client, char *line, size_t cap)
{
    uint64_t deadline = lt_now_ns() + (uint64_t)CLIENT_DEADLINE_MS * 1000000u;
    size_t n = 0;
    while (n < cap - 1) {
        uint64_t now = lt_now_ns();
        if (now >= deadline) break;
        struct pollfd pfd = { client, POLLIN, 0 };
        int ready = lt_sys_poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) break;
        ssize_t got = recv(client, line + n, cap - 1 - n, MSG_DONTWAIT);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) break;
        n += (size_t)got;
        if (memchr(line, '\n', n)) break;
    }
    line[n] = 0;
    return n;
}

static void serve_one(void)
{
    int fd = atomic_load(&listen_fd);
    if (!is_listen_socket(fd)) { /* checked just before accepting: never the program's */
        lose_socket();
        return;
    }
    int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (client < 0) {
        if (errno == EBADF || errno == ENOTSOCK || errno == EINVAL) lose_socket();
        return;
    }
    struct ucred cred;
    socklen_t len = sizeof cred;
    struct timeval timeout = { 2, 0 }; /* a stalled client must not stall the thread */
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    bool allowed = getsockopt(client, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
                   (cred.uid == getuid() || cred.uid == 0);
    char line[256];
    size_t n = read_command(client, line, sizeof line);
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    /* The line is read even from a refused peer, so that its send never fails (EPIPE). */
    if (!allowed) {
        static const char refused[] = "{\"ok\":false,\"error\":\"permission denied: another user\"}\n";
        send(client, refused, sizeof refused - 1, MSG_NOSIGNAL);
    } else if (n && nl) {
        handle(client, line); /* a client gone mid-command just gets nothing */
    }
    close(client);
}

/* The wake-up descriptor is still an eventfd (the program may close any descriptor, and get
 * the number back for a file of its own). */
static bool is_eventfd(int fd)
{
    char path[32], target[32];
    char *end = path + sizeof path - 1;
    *lt_put_uint(lt_put_str(path, end, "/proc/self/fd/"), end, (uint64_t)fd) = 0;
    ssize_t n = fd >= 0 ? lt_readlink_proc(path, target, sizeof target - 1) : -1;
    if (n <= 0) return false;
    target[n] = 0;
    return strcmp(target, "anon_inode:[eventfd]") == 0;
}

/* Attach mode, after detach: the socket and the wake-up descriptor are closed (the socket
 * only if the number still holds it), its file removed; the thread then returns. */
static void end_session(void)
{
    int fd = atomic_exchange(&listen_fd, -1);
    if (is_listen_socket(fd)) close(fd);
    if (socket_path[0]) unlink(socket_path);
    socket_path[0] = 0;
    lost_at_ns = 0;
    int wake = atomic_exchange(&wake_fd, -1);
    if (is_eventfd(wake)) close(wake);
    atomic_store(&control_tid, 0);
}

/* glibc ends the process with exit(0) when its last thread ends (returning from its start
 * routine or in pthread_exit, main's included), and counts them in __nptl_nthreads. The
 * control thread must not count: a program whose main thread calls pthread_exit would never
 * end, its last thread never being the last. So the count is lowered once the thread is made
 * (by the program's thread that made it, alive then) and raised again just before it ends,
 * and glibc's own decrement as it ends then balances. Looked up in libc's symbol table (it is
 * GLIBC_PRIVATE, so never linked) each time, twice a thread: without it, nothing is done. */
static void count_control_thread(bool counted)
{
    static const char *const name[] = { "__nptl_nthreads" };
    void *count = NULL;
    lt_object_symbols((const void *)(uintptr_t)&pthread_create, name, &count, 1);
    if (count) atomic_fetch_add((_Atomic unsigned *)count, counted ? 1u : (unsigned)-1);
}

static void *control_main(void *arg)
{
    (void)arg;
    lt_mark_thread_internal();
    atomic_store(&control_tid, (pid_t)syscall(SYS_gettid));
    atomic_store(&control_starting, false);
    syscall(SYS_futex, &control_tid, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
    uint64_t next_snapshot = lt_now_ns() + (uint64_t)atomic_load(&interval_ms) * 1000000u;
    bool others_outlived_main = false; /* seen running after the main thread had left */
    for (;;) {
        pthread_mutex_lock(&work_lock);
        uint64_t now = lt_now_ns();
        if (now >= next_snapshot) {
            if ((!lt_attach_mode() || lt_attached()) && lt_series_snapshot()) /* merged: keep the resolution even */
                atomic_store(&interval_ms, atomic_load(&interval_ms) * 2);
            next_snapshot = now + (uint64_t)atomic_load(&interval_ms) * 1000000u;
        }
        lt_attach_poll_new_objects();
        maybe_reopen();
        int fd = atomic_load(&listen_fd);
        if (fd >= 0 && !is_listen_socket(fd)) {
            lose_socket(); /* closed, or another file under the number: not ours to poll */
            fd = -1;
        }
        int wait_ms = (int)((next_snapshot - now) / 1000000u) + 1;
        if (lt_attached() && wait_ms > 100) wait_ms = 100; /* notice dlopen'd objects soon */
        if (fd < 0 && lost_at_ns && wait_ms > REOPEN_AFTER_MS) wait_ms = REOPEN_AFTER_MS;
        int wake = atomic_load(&wake_fd);
        if (wake < 0 && wait_ms > 250) wait_ms = 250; /* nothing can wake it: notice an end soon */
        /* The process ends with its last thread, which may leave by the exit system call where
         * no hook sees it (lifecycle.c, lt_end_after_program_threads). While the main thread
         * runs, none is the last: a look every 200 ms, one read of /proc; once it has left,
         * whether any is left, every 50 ms (one directory read). */
        bool main_left = lt_main_thread_surely_left();
        if (wait_ms > (main_left ? 50 : 200)) wait_ms = main_left ? 50 : 200;
        /* The socket first, so that it may be left out (fd -1 is ignored by poll anyway). */
        struct pollfd pfd[2] = { { fd, POLLIN, 0 }, { wake, POLLIN, 0 } };
        pthread_mutex_unlock(&work_lock);
        if (atomic_load(&exit_requested)) break;
        if (main_left) {
            if (lt_program_threads_gone()) lt_end_after_program_threads(others_outlived_main);
            others_outlived_main = true;
        }
        if (lt_sys_poll(pfd, 2, wait_ms) > 0) {
            pthread_mutex_lock(&work_lock);
            if (pfd[0].revents & (POLLNVAL | POLLERR)) lose_socket(); /* closed under us */
            else if (pfd[0].revents & POLLIN) serve_one();
            pthread_mutex_unlock(&work_lock);
            /* Woken with no end asked for: the program closed the descriptor (maybe reusing
             * the number). Not ours any more: left alone, never polled again. */
            if (pfd[1].revents && !atomic_load(&exit_requested)) atomic_store(&wake_fd, -1);
        }
        if (atomic_load(&exit_requested)) break;
    }
    end_session();
    count_control_thread(true); /* glibc takes it off as the thread ends */
    atomic_fetch_sub(&threads_running, 1);
    return NULL;
}

static void start_thread(void);

/* Called on every recorded allocation, outside the `busy` guard (a signal handler's
 * allocations must be seen): only the first call, which allocates, marks the thread busy. */
void lt_control_start(void)
{
    if (LT_LIKELY(atomic_load_explicit(&started, memory_order_relaxed))) return;
    /* Not from an allocation made in a library's constructor, before the shim's own ran. */
    if (!lt_may_start_threads()) return;
    lt_set_busy(true);
    int saved_errno = errno; /* from an allocation hook, whose caller sees errno as malloc left it */
    start_thread();
    errno = saved_errno;
    lt_set_busy(false);
}

static void start_thread(void)
{
    if (atomic_exchange(&started, true)) return;
    /* Never from a vfork child (it shares the parent's memory) or an untraced process. */
    if (getpid() != atomic_load(&lt_owner_pid)) {
        atomic_store(&started, false);
        return;
    }
    if (lt_cfg.interval_ms) atomic_store(&interval_ms, lt_cfg.interval_ms);
    if (lt_cfg.control_enabled) open_socket(true); /* without a socket: snapshots only */
    lt_procfs_keep_for_control();
    void *stack = lt_map(CONTROL_STACK_SIZE);
    if (!stack) return;
    atomic_store(&exit_requested, false);
    int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    atomic_store(&wake_fd, wake >= 0 ? lt_fd_out_of_the_way(wake) : -1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, stack, CONTROL_STACK_SIZE);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_JOINABLE);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits a mask blocking all */
    pthread_t thread;
    pthread_mutex_lock(&join_lock);
    atomic_store(&control_starting, true);
    atomic_fetch_add(&threads_running, 1);
    lt_own_allocations_begin(); /* its DTV out of the program's heap */
    bool created = pthread_create(&thread, &attr, control_main, NULL) == 0;
    lt_own_allocations_end();
    if (!created) {
        atomic_store(&control_starting, false);
        atomic_fetch_sub(&threads_running, 1);
    }
    if (created) {
        control_thread = thread;
        control_joinable = true;
        control_stack = stack;
        count_control_thread(false);
    }
    pthread_mutex_unlock(&join_lock);
    if (!created) lt_unmap(stack, CONTROL_STACK_SIZE);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

int lt_control_open_for_attach(void)
{
    if (!lt_cfg.control_enabled || atomic_load(&listen_fd) >= 0) return 0;
    errno = 0;
    if (open_socket(false)) return 0;
    return errno ? errno : EACCES;
}

void lt_control_apply_config(void)
{
    if (lt_cfg.interval_ms) atomic_store(&interval_ms, lt_cfg.interval_ms);
    /* The control thread polls whatever listen_fd holds on its next round. */
    if (atomic_load(&listen_fd) < 0 && lt_cfg.control_enabled) open_socket(true);
}

void lt_control_stop(void)
{
    if (socket_path[0]) unlink(socket_path);
    socket_path[0] = 0;
}

/* From a scan on another thread: waits (up to 3 s) until the control thread is between two
 * pieces of work and keeps it there; true when it must be let go (lt_control_let_go). */
bool lt_control_hold_still(void)
{
    pid_t control = lt_control_thread_id();
    if (!control || (pid_t)syscall(SYS_gettid) == control) return false;
    struct timespec ms = { 0, 1000000 };
    for (int waited = 0; waited < 3000; waited++) {
        if (pthread_mutex_trylock(&work_lock) == 0) return true;
        lt_sys_nanosleep(&ms, NULL);
    }
    return false;
}

void lt_control_let_go(void) { pthread_mutex_unlock(&work_lock); }

/* Ends the session's thread: at once when another thread asks (it is joined and its stack
 * unmapped), after its answer when the thread itself asks (serving `detach`). */
void lt_control_request_exit(void)
{
    atomic_store(&exit_requested, true);
    int wake = atomic_load(&wake_fd);
    uint64_t one = 1;
    if (wake >= 0 && write(wake, &one, sizeof one) < 0) { /* already signalled: full counter */ }
    if ((pid_t)syscall(SYS_gettid) != atomic_load(&control_tid)) lt_control_join_previous();
}

/* pre: join_lock held. Ends the control thread, if there is one to join, and gives its stack
 * back; true if there was. */
static bool end_thread_locked(void)
{
    if (!control_joinable) return false;
    atomic_store(&exit_requested, true);
    int wake = atomic_load(&wake_fd);
    uint64_t one = 1;
    if (wake >= 0 && write(wake, &one, sizeof one) < 0) { /* already signalled */ }
    /* The join frees what the C library allocated for the thread (its vector, on its behalf:
     * never recorded): not the program's frees, which the tables follow. */
    lt_set_busy(true);
    pthread_join(control_thread, NULL);
    lt_set_busy(false);
    control_joinable = false;
    lt_unmap(control_stack, CONTROL_STACK_SIZE);
    control_stack = NULL;
    atomic_store(&exit_requested, false);
    return true;
}

/* Waits for a session thread that was asked to end, and gives its stack back; the next
 * session may then start its own. */
void lt_control_join_previous(void)
{
    pthread_mutex_lock(&join_lock);
    if (end_thread_locked()) atomic_store(&started, false);
    pthread_mutex_unlock(&join_lock);
}

/* Before a call the kernel refuses to a process with more than one thread (unshare or setns
 * of a user namespace): the control thread ends, and none starts until lt_control_resume. */
void lt_control_pause(void)
{
    /* Not the control thread itself (its final capture, lt_end_after_program_threads): it
     * cannot join itself. */
    if ((pid_t)syscall(SYS_gettid) == atomic_load(&control_tid)) return;
    atomic_store(&started, true); /* no allocation meanwhile (a signal handler's) starts one */
    pthread_mutex_lock(&join_lock);
    end_thread_locked();
    pthread_mutex_unlock(&join_lock);
}

/* The next recorded allocation starts the control thread again. */
void lt_control_resume(void) { atomic_store(&started, false); }

void lt_control_after_fork_child(void)
{
    /* The thread did not survive the fork; the listening socket is the parent's (unless the
     * parent lost it: then the number is the program's). */
    int fd = atomic_load(&listen_fd);
    if (is_listen_socket(fd)) close(fd);
    atomic_store(&listen_fd, -1);
    lost_at_ns = 0;
    socket_path[0] = 0;
    atomic_store(&control_tid, 0);
    atomic_store(&control_starting, false);
    atomic_store(&threads_running, 0);
    atomic_store(&started, false);
    /* The thread does not exist here: nothing to join. The eventfd is shared with the
     * parent; this process must not close or use it. */
    control_joinable = false;
    atomic_store(&wake_fd, -1);
    atomic_store(&exit_requested, false);
    pthread_mutex_init(&work_lock, NULL); /* the parent's thread may have held it */
}
