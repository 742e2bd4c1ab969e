/* Reading the kernel's view of this process (/proc/self, and its memory by copy) with plain
 * system calls: no stdio, no opendir (both allocate), so it works inside hooks, at exit and
 * while threads are parked. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim.h"

/* /proc's directory, kept open (O_PATH) from before the program changed its root directory
 * (lt_procfs_keep, from the chroot hook): where /proc is gone from the new root, the paths
 * under /proc/ are opened through it. -1: none kept. */
static _Atomic int kept_proc = -1;

void lt_procfs_keep(void)
{
    if (atomic_load(&kept_proc) >= 0) return;
    int saved_errno = errno;
    int fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fd = lt_fd_out_of_the_way(fd);
        int none = -1;
        if (!atomic_compare_exchange_strong(&kept_proc, &none, fd)) close(fd);
    }
    errno = saved_errno;
}

/* The kept directory and the path below it, when `path` is under /proc/ and /proc is gone. */
static bool through_kept(const char *path, int *dir, const char **rest)
{
    *dir = atomic_load(&kept_proc);
    if (*dir < 0 || errno != ENOENT || strncmp(path, "/proc/", 6) != 0) return false;
    *rest = path + 6;
    return true;
}

/* /proc/self is the main thread's: once it has ended (pthread_exit) while other threads go
 * on, the files of the process's memory read empty there (maps, cmdline, exe). So a path
 * under /proc/self/ (but its task directory) is tried as /proc/thread-self/ first, the
 * calling thread's view of the same process; /proc/self where that is missing (Linux before
 * 3.17). Fills `buf` (LT_PATH_MAX) and returns it, or NULL when `path` has no such view. */
static const char *thread_view(const char *path, char *buf)
{
    static const char self[] = "/proc/self/";
    if (strncmp(path, self, sizeof self - 1) != 0 || strncmp(path + sizeof self - 1, "task", 4) == 0)
        return NULL;
    char *end = buf + LT_PATH_MAX - 1;
    *lt_put_str(lt_put_str(buf, end, "/proc/thread-self/"), end, path + sizeof self - 1) = 0;
    return buf;
}

static int open_here(const char *path, int flags)
{
    int fd = open(path, flags);
    int dir;
    const char *rest;
    if (fd < 0 && through_kept(path, &dir, &rest)) fd = openat(dir, rest, flags);
    return fd;
}

int lt_open_proc(const char *path, int flags)
{
    char buf[LT_PATH_MAX];
    const char *own = thread_view(path, buf);
    int fd = own ? open_here(own, flags) : -1;
    return fd >= 0 ? fd : open_here(path, flags);
}

static ssize_t readlink_here(const char *path, char *dst, size_t cap)
{
    ssize_t n = readlink(path, dst, cap);
    int dir;
    const char *rest;
    if (n < 0 && through_kept(path, &dir, &rest)) n = readlinkat(dir, rest, dst, cap);
    return n;
}

ssize_t lt_readlink_proc(const char *path, char *dst, size_t cap)
{
    char buf[LT_PATH_MAX];
    const char *own = thread_view(path, buf);
    ssize_t n = own ? readlink_here(own, dst, cap) : -1;
    return n >= 0 ? n : readlink_here(path, dst, cap);
}

/* The whole file from its start (a /proc file's text is made anew by a read there). */
size_t lt_read_whole(int fd, char *dst, size_t cap)
{
    size_t len = 0;
    while (len < cap) {
        ssize_t n = pread(fd, dst + len, cap - len, (off_t)len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    return len;
}

size_t lt_read_file(const char *path, char *dst, size_t cap)
{
    int fd = lt_open_proc(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t len = lt_read_whole(fd, dst, cap);
    close(fd);
    return len;
}

pid_t lt_own_memory_id(void)
{
    /* The calling thread's id, not the process's: the kernel finds the memory through that
     * task, and the main thread's has none once it has ended (pthread_exit). */
    return (pid_t)syscall(SYS_gettid);
}

bool lt_copy_memory(void *dst, uintptr_t src, size_t len)
{
    struct iovec local = { dst, len }, remote = { (void *)src, len };
    return process_vm_readv(lt_own_memory_id(), &local, 1, &remote, 1, 0) == (ssize_t)len;
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static int list_threads(int fd, void (*fn)(pid_t tid, void *ctx), void *ctx)
{
    char buf[4096];
    int count = 0;
    long n;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
            const struct linux_dirent64 *d = (const struct linux_dirent64 *)(const void *)(buf + off);
            off += d->d_reclen;
            if (d->d_name[0] < '0' || d->d_name[0] > '9') continue;
            pid_t tid = 0;
            for (const char *c = d->d_name; *c; c++) tid = tid * 10 + (*c - '0');
            count++;
            if (fn) fn(tid, ctx);
        }
    }
    return n < 0 ? -1 : count;
}

int lt_for_each_thread(void (*fn)(pid_t tid, void *ctx), void *ctx)
{
    int fd = lt_open_proc("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int count = list_threads(fd, fn, ctx);
    close(fd);
    return count;
}

/* "/proc/self/task/TID/FILE" in path (64 bytes). */
static void task_file(char path[64], pid_t tid, const char *file)
{
    char *end = path + 63;
    *lt_put_str(lt_put_uint(lt_put_str(path, end, "/proc/self/task/"), end, (uint64_t)tid), end,
                file) = '\0';
}

/* The kernel sets PF_EXITING first thing when a thread ends (do_exit), before it wakes a
 * joiner: a thread just joined may still be listed for a moment, and a main thread that called
 * pthread_exit stays listed as a zombie, both with the flag. */
#define PF_EXITING 0x4u

/* The thread's stat line into `stat` (cap bytes, NUL-terminated); its length, 0 when the
 * thread is gone, -1 when the file could not be read for another reason (no descriptor left). */
static ssize_t read_stat_from(int fd, char *stat, size_t cap)
{
    ssize_t len;
    do len = pread(fd, stat, cap - 1, 0);
    while (len < 0 && errno == EINTR);
    if (len < 0) return errno == ESRCH ? 0 : -1; /* ESRCH: the thread went after the open */
    stat[len] = 0;
    return len;
}

static ssize_t read_stat(pid_t tid, char *stat, size_t cap)
{
    char path[64];
    task_file(path, tid, "/stat");
    int fd = lt_open_proc(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT || errno == ESRCH ? 0 : -1;
    ssize_t len = read_stat_from(fd, stat, cap);
    close(fd);
    return len;
}

/* Field `n` (from 1) of a stat line: its comm (field 2) may hold spaces and parentheses, the
 * fields after it are numbers. NULL past the end. */
static const char *stat_field(const char *stat, int n)
{
    const char *at = strrchr(stat, ')'); /* the end of field 2 */
    for (int field = 2; field < n && at; field++) at = strchr(at + 1, ' ');
    return at && at[1] >= '0' && at[1] <= '9' ? at + 1 : NULL;
}

static unsigned stat_number(const char *at)
{
    unsigned v = 0;
    for (; at && *at >= '0' && *at <= '9'; at++) v = v * 10 + (unsigned)(*at - '0');
    return v;
}

/* 1: the thread has left (gone, or its flags say so), 0: it runs, -1: not known. */
static int left_by_stat(ssize_t len, const char *stat)
{
    if (len <= 0) return len == 0 ? 1 : -1;
    return (stat_number(stat_field(stat, 9)) & PF_EXITING) != 0;
}

static int thread_left(pid_t tid)
{
    char stat[512];
    ssize_t len = read_stat(tid, stat, sizeof stat);
    return left_by_stat(len, stat);
}

bool lt_thread_has_left(pid_t tid) { return thread_left(tid) != 0; }

/* The same, but a file that cannot be read counts as a running thread: the caller acts on a
 * yes (the control thread ends the process). */
bool lt_thread_surely_left(pid_t tid) { return thread_left(tid) == 1; }

/* ---- files the control thread reads again and again -------------------------------------
 * open() gives the lowest free descriptor number. The control thread's look at the main
 * thread every 200 ms, and at the thread list every 50 ms once it has left, took one for a
 * moment: a program thread that opened a file meanwhile got a higher number than natively, or
 * EMFILE at its limit (a loop of open and close: 697 of its opens in 3 s did not get 3). These
 * two files stay open instead, out of the way, and are read again from their start. Before
 * each read the descriptor is checked to be still ours (a daemon closes every descriptor and
 * may put a file of its own under the number): if not, the file is opened again, once per
 * loss. A fork child's copies name its parent's threads: closed in the child. Both are opened
 * before the control thread starts, in the program thread whose allocation starts it (which
 * does not open files meanwhile), not at the first look: the thread list's first look comes
 * once the main thread has left, while the program's other threads run.
 * Guarded by the control thread's life: written by the thread that starts it (before it
 * runs) and by the control thread, and in a fork child's handler (the only thread there). */
struct kept_file {
    int fd; /* -1: none yet; -2: none, for want of room (kept_open) */
    struct lt_fd_identity id;
};
static struct kept_file main_stat_file = { .fd = -1 }, task_dir_file = { .fd = -1 };

static void forget(struct kept_file *k)
{
    if (lt_fd_still_names(k->fd, &k->id)) close(k->fd);
    if (k->fd != -2) k->fd = -1;
}

/* The memory map, kept once the program lowers its hard descriptor limit (privileges.c): at
 * its limit, with every number below it in use, the exit scan could open nothing, and without
 * the map it has no roots. Written by the thread lowering the limit and in a fork child's
 * handler (its copy names the parent's memory); read by the scan. */
static struct kept_file maps_file = { .fd = -1 };

void lt_procfs_after_fork_child(void)
{
    forget(&main_stat_file);
    forget(&task_dir_file);
    forget(&maps_file);
}

/* The kept descriptor of `path`, or -1. With no room above the soft limit (`ulimit -n N` sets
 * both limits) lt_fd_out_of_the_way puts it at 3/4 of the limit: there it would take one of
 * the program's numbers for good under a small limit (1,024 or less), so under one the file is
 * opened for each look instead. */
static int kept_open(struct kept_file *k, const char *path, int flags)
{
    if (k->fd == -2) return -1;
    if (lt_fd_still_names(k->fd, &k->id)) return k->fd;
    k->fd = -1;
    int fd = lt_fd_out_of_the_way(lt_open_proc(path, flags));
    if (fd < 0) return -1;
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) != 0 || ((rlim_t)fd < nofile.rlim_cur && nofile.rlim_cur <= 1024)) {
        close(fd);
        k->fd = -2;
        return -1;
    }
    if (!lt_fd_identify(fd, &k->id)) {
        close(fd);
        return -1;
    }
    k->fd = fd;
    return fd;
}

static int main_stat_fd(void)
{
    char path[64];
    task_file(path, getpid(), "/stat");
    return kept_open(&main_stat_file, path, O_RDONLY | O_CLOEXEC);
}

static int task_dir_fd(void)
{
    return kept_open(&task_dir_file, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

void lt_procfs_keep_for_control(void)
{
    main_stat_fd();
    task_dir_fd();
}

void lt_procfs_keep_maps(void) { kept_open(&maps_file, "/proc/self/maps", O_RDONLY | O_CLOEXEC); }

/* /proc/self/maps into dst (up to cap bytes): through the kept descriptor when there is one,
 * else opened now. */
size_t lt_read_maps(char *dst, size_t cap)
{
    if (!lt_fd_still_names(maps_file.fd, &maps_file.id)) return lt_read_file("/proc/self/maps", dst, cap);
    return lt_read_whole(maps_file.fd, dst, cap);
}

bool lt_main_thread_surely_left(void)
{
    char stat[512];
    int fd = main_stat_fd();
    if (fd < 0) return lt_thread_surely_left(getpid());
    return left_by_stat(read_stat_from(fd, stat, sizeof stat), stat) == 1;
}

int lt_count_threads_again(void)
{
    int fd = task_dir_fd();
    if (fd < 0) return lt_for_each_thread(NULL, NULL);
    if (lseek(fd, 0, SEEK_SET) != 0) return -1;
    return list_threads(fd, NULL, NULL);
}

/* Field 52 of the main thread's stat, its exit status as wait() gives it. Its task file, not
 * /proc/self/stat, which reads as the caller's own. */
int lt_main_thread_exit_status(void)
{
    char stat[1024];
    if (read_stat(getpid(), stat, sizeof stat) <= 0) return -1;
    const char *at = stat_field(stat, 52);
    return at ? (int)((stat_number(at) >> 8) & 0xff) : -1;
}

uintptr_t lt_parse_hex(const char **p)
{
    if ((*p)[0] == '0' && (*p)[1] == 'x') *p += 2;
    uintptr_t v = 0;
    for (;; (*p)++) {
        char c = **p;
        if (c >= '0' && c <= '9') v = v * 16 + (uintptr_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v = v * 16 + (uintptr_t)(c - 'a' + 10);
        else return v;
    }
}

/* The set a sigwait-family call waits for (rt_sigtimedwait's first argument) holds `sig`. */
static bool waits_for_signal(uintptr_t set, int sig)
{
    uint64_t words;
    return lt_copy_memory(&words, set, sizeof words) && (words >> (sig - 1)) & 1;
}

/* The value of `field` ("\nName:\t") in the status file at `path`, read into text[cap];
 * NULL when it is not there or the file cannot be read. */
static const char *status_field(const char *path, const char *field, char *text, size_t cap)
{
    size_t len = lt_read_file(path, text, cap - 1);
    text[len] = '\0';
    const char *at = strstr(text, field);
    return at ? at + strlen(field) : NULL;
}

/* Whether the thread's mask (SigBlk of its status) holds `sig`; false when unreadable. */
static bool mask_blocks(const char *status_path, int sig, bool *readable)
{
    char text[2048];
    const char *blocked = status_field(status_path, "\nSigBlk:\t", text, sizeof text);
    *readable = blocked != NULL;
    return blocked && (lt_parse_hex(&blocked) >> (sig - 1)) & 1;
}

/* Whether this process runs under a seccomp filter (the Seccomp field of its status: 2), as
 * one it inherited across exec. False when unreadable. */
bool lt_under_seccomp_filter(void)
{
    char text[4096];
    const char *mode = status_field("/proc/self/status", "\nSeccomp:\t", text, sizeof text);
    return mode && *mode == '2';
}

bool lt_thread_has_pending(pid_t tid, int sig)
{
    char path[64], text[2048];
    task_file(path, tid, "/status");
    size_t len = lt_read_file(path, text, sizeof text - 1);
    text[len] = '\0';
    for (const char *field = text; (field = strstr(field, "Pnd:\t")) != NULL;) { /* SigPnd, ShdPnd */
        field += 5;
        if ((lt_parse_hex(&field) >> (sig - 1)) & 1) return true;
    }
    return false;
}

bool lt_thread_state(pid_t tid, int sig, struct lt_thread_state *out)
{
    *out = (struct lt_thread_state){ 0 };
    char status[64], syscall_path[64], text[512];
    task_file(status, tid, "/status");
    task_file(syscall_path, tid, "/syscall");
    bool readable;
    out->blocks_signal = mask_blocks(status, sig, &readable);
    if (!readable) return false;
    /* "NR ARG1 .. ARG6 SP PC" in a system call, "-1 SP PC" blocked outside one, "running". */
    size_t len = lt_read_file(syscall_path, text, sizeof text - 1);
    text[len] = '\0';
    long nr = -1;
    uintptr_t field[8];
    int n = 0;
    if (text[0] >= '0' && text[0] <= '9') {
        const char *p = text;
        for (nr = 0; *p >= '0' && *p <= '9'; p++) nr = nr * 10 + (*p - '0');
        for (; n < 8 && *p == ' '; n++) {
            p++;
            field[n] = lt_parse_hex(&p);
        }
    }
    if (n == 8) {
        out->in_syscall = true;
        out->sp = field[6];
        for (int i = 0; i < 6; i++) out->args[i] = field[i];
        /* Waiting for signals that include ours: sent, it would be taken as the program's. */
        if (nr == SYS_rt_sigtimedwait && waits_for_signal(field[0], sig)) out->blocks_signal = true;
    }
    /* In sigwait the mask reads without the signals waited for; a thread that left sigwait
     * between the two reads above has its own mask back by now. */
    if (!out->blocks_signal) out->blocks_signal = mask_blocks(status, sig, &readable);
    return true;
}
