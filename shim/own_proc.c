/* What the program reads of its own /proc: its thread count, without the shim's thread.
 *
 * The shim's control thread (control.c) is a thread of the process, and the kernel counts it
 * in /proc/PID/stat (field 20) and /proc/PID/status ("Threads:"). Programs read those counts
 * and act on them: Python 3.12 and later warn "This process ... is multi-threaded, use of
 * fork() may lead to deadlocks in the child" after each os.fork() of a process it finds with
 * more than one thread (multiprocessing's workers: one warning each), psutil's num_threads()
 * reads status. As valgrind does for /proc/self/cmdline and auxv, an open of one
 * of those files for reading gets a copy whose count leaves out the shim's threads: a memfd,
 * under the descriptor number the open itself got. Anything else (other files, other
 * processes, writing, a relative path, the shim's own reads) goes straight through, and so
 * does everything in a process the shim does not trace. Not hidden: the thread's entry
 * in /proc/PID/task, and what other processes (ps, top) read. The copy is the file at the
 * open: read again from its start, it does not change as the kernel's would. */
#undef _FILE_OFFSET_BITS /* open and open64 are both interposed, each under its own name */
#undef _FORTIFY_SOURCE   /* __open_2 & co are interposed, not used */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hooked_functions.h"
#include "shim.h"

#define NOT_OURS (-2)
#define TEXT_CAP 4096 /* status is about 1.5 KB, stat 300 bytes */

static bool skip(const char **p, const char *word)
{
    size_t n = strlen(word);
    if (strncmp(*p, word, n) != 0) return false;
    *p += n;
    return true;
}

/* A run of digits and then a slash; its value in *value. */
static bool skip_number(const char **p, unsigned long *value)
{
    const char *s = *p;
    unsigned long v = 0;
    while (*s >= '0' && *s <= '9') v = v * 10 + (unsigned long)(*s++ - '0');
    if (s == *p || *s != '/') return false;
    *value = v;
    *p = s + 1;
    return true;
}

/* /proc/{self,PID,thread-self}/stat or status, or a task's of this process. */
static bool names_own_count(const char *path)
{
    const char *p = path;
    if (!skip(&p, "/proc/")) return false;
    unsigned long pid;
    bool has_tasks = true;
    if (skip(&p, "thread-self/")) has_tasks = false;
    /* The traced process's pid, not getpid(): no system call for every other process's file
     * (ps and top open thousands). Only reached while this process is traced. */
    else if (!skip(&p, "self/") && !(skip_number(&p, &pid) && pid == (unsigned long)atomic_load(&lt_owner_pid)))
        return false;
    unsigned long tid;
    if (has_tasks && skip(&p, "task/") && !skip_number(&p, &tid)) return false;
    return strcmp(p, "stat") == 0 || strcmp(p, "status") == 0;
}

/* Where the thread count's digits start in the file's text, or NULL. stat: field 20, the 18th
 * after the command's closing parenthesis (the last one: a command may hold spaces and
 * parentheses); status: the "Threads:" line. */
static const char *count_digits(const char *text, size_t len, bool status)
{
    if (status) {
        const char *line = memmem(text, len, "\nThreads:\t", 10);
        return line ? line + 10 : NULL;
    }
    const char *p = memrchr(text, ')', len);
    if (!p) return NULL;
    const char *end = text + len;
    for (int spaces = 0; p < end; p++)
        if (*p == ' ' && ++spaces == 18) return p + 1 < end ? p + 1 : NULL;
    return NULL;
}

/* The text with `hidden` taken off its thread count (never below 1) into `out`; its length,
 * or 0 when the count is not where it should be. */
static size_t without_hidden_threads(const char *text, size_t len, bool status, unsigned hidden,
                                     char *out, size_t cap)
{
    const char *digits = count_digits(text, len, status);
    if (!digits) return 0;
    unsigned long count = 0;
    const char *after = digits;
    while (after < text + len && *after >= '0' && *after <= '9')
        count = count * 10 + (unsigned long)(*after++ - '0');
    if (after == digits) return 0;
    count = count > hidden ? count - hidden : 1;
    size_t head = (size_t)(digits - text), tail = len - (size_t)(after - text);
    if (head + 24 + tail > cap) return 0;
    memcpy(out, text, head);
    char *p = lt_put_uint(out + head, out + cap, count);
    memcpy(p, after, tail);
    return (size_t)(p - out) + tail;
}

/* The open of `path` with `flags` when it is one of the counts to show without the shim's
 * threads: a descriptor (or -1 and errno, as the open itself failed), NOT_OURS otherwise. */
static int open_own_count(const char *path, int flags)
{
    /* Also while none runs yet in a traced process: the next allocation (fopen's own) may
     * start one before the program reads. */
    int state = atomic_load(&lt_state);
    bool may_run = state == LT_STATE_COLLECTING || state == LT_STATE_TRACKING;
    if (!(may_run || lt_control_threads_running()) || lt_busy || !path || (flags & O_ACCMODE) != O_RDONLY ||
        (flags & (O_CREAT | O_DIRECTORY | O_PATH)) || !names_own_count(path))
        return NOT_OURS;
    int saved_errno = errno;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, flags | O_CLOEXEC);
    if (fd < 0) return -1;
    char text[TEXT_CAP], shown[TEXT_CAP];
    size_t len = lt_read_whole(fd, text, sizeof text);
    unsigned hidden = lt_control_threads_running();
    bool status = path[strlen(path) - 1] == 's';
    size_t shown_len = len < sizeof text ? without_hidden_threads(text, len, status, hidden, shown, sizeof shown) : 0;
    int copy = shown_len ? (int)syscall(SYS_memfd_create, "leaktrace-own-proc", MFD_CLOEXEC) : -1;
    /* pwrite leaves the copy's offset at 0, where the program's reads begin. */
    if (copy >= 0 && pwrite(copy, shown, shown_len, 0) == (ssize_t)shown_len &&
        dup3(copy, fd, flags & O_CLOEXEC) == fd) {
        /* The copy now sits under the number the open got, with the program's O_CLOEXEC. */
    } else if (!(flags & O_CLOEXEC)) {
        fcntl(fd, F_SETFD, 0); /* the file as it is, as the program asked for it */
    }
    if (copy >= 0) close(copy);
    errno = saved_errno;
    return fd;
}

static int mode_of(int flags, va_list ap)
{
    return __OPEN_NEEDS_MODE(flags) ? va_arg(ap, int) : 0;
}

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*open_2_fn)(const char *, int);
typedef int (*openat_2_fn)(int, const char *, int);
typedef FILE *(*fopen_fn)(const char *, const char *);

/* open and openat take a mode after the flags, for O_CREAT (never one of ours); a relative
 * path never names one of ours either (names_own_count wants "/proc/"). */
#define WITH_MODE_HOOK(name, type, params, args)                 \
    int lt_hook_##name params                                    \
    {                                                            \
        va_list ap;                                              \
        va_start(ap, flags);                                     \
        int mode = mode_of(flags, ap);                           \
        va_end(ap);                                              \
        int fd = open_own_count(path, flags);                    \
        if (fd != NOT_OURS) return fd;                           \
        LT_NEXT(type, name);                                     \
        return f args;                                           \
    }
WITH_MODE_HOOK(open, open_fn, (const char *path, int flags, ...), (path, flags, mode))
WITH_MODE_HOOK(open64, open_fn, (const char *path, int flags, ...), (path, flags, mode))
WITH_MODE_HOOK(openat, openat_fn, (int dir, const char *path, int flags, ...), (dir, path, flags, mode))
WITH_MODE_HOOK(openat64, openat_fn, (int dir, const char *path, int flags, ...), (dir, path, flags, mode))

/* The fortified programs' open (no mode: never O_CREAT). */
#define FORTIFIED_HOOK(name, type, params, args)                 \
    int lt_hook_##name params                                    \
    {                                                            \
        int fd = open_own_count(path, flags);                    \
        if (fd != NOT_OURS) return fd;                           \
        LT_NEXT(type, name);                                     \
        return f args;                                           \
    }
FORTIFIED_HOOK(__open_2, open_2_fn, (const char *path, int flags), (path, flags))
FORTIFIED_HOOK(__open64_2, open_2_fn, (const char *path, int flags), (path, flags))
FORTIFIED_HOOK(__openat_2, openat_2_fn, (int dir, const char *path, int flags), (dir, path, flags))
FORTIFIED_HOOK(__openat64_2, openat_2_fn, (int dir, const char *path, int flags), (dir, path, flags))

/* stdio opens with libc's internal open, past the hooks above: Python's check is an fopen. */
#define FOPEN_HOOK(name)                                                              \
    FILE *lt_hook_##name(const char *path, const char *mode)                          \
    {                                                                                 \
        bool reads_only = mode && mode[0] == 'r' && !strchr(mode, '+');               \
        int fd = reads_only ? open_own_count(path, O_RDONLY | O_CLOEXEC) : NOT_OURS;  \
        if (fd >= 0) {                                                                \
            if (!strchr(mode, 'e')) fcntl(fd, F_SETFD, 0);                            \
            FILE *stream = fdopen(fd, mode);                                          \
            if (stream) return stream;                                                \
            close(fd);                                                                \
        } else if (fd == -1) {                                                        \
            return NULL;                                                              \
        }                                                                             \
        LT_NEXT(fopen_fn, name);                                                      \
        return f(path, mode);                                                         \
    }
FOPEN_HOOK(fopen)
FOPEN_HOOK(fopen64)

/* The exported names (see hooked_functions.h). */
#define LT_X(name) extern __typeof__(lt_hook_##name) name __attribute__((alias("lt_hook_" #name), visibility("default")));
LT_HOOKED_OWN_PROC_FUNCTIONS(LT_X)
#undef LT_X
