/* An on-demand scan stops every thread with a signal (scan.c), and a signal that runs a
 * handler ends a sleep early with EINTR, SA_RESTART or not: a program doing `sleep(300)`
 * would carry on at the first scan. So the sleeps the program calls go back to sleep for
 * what is left when a scan's signal ended them, and end early only for a signal of the
 * program's own; pause and sigsuspend likewise wait on, and poll, select and epoll_wait go
 * on with what is left of their timeout. What is not covered: libc's own internal waits,
 * ppoll, pselect and epoll_pwait (they see EINTR once, as under strace or gdb). A signal of
 * the program's that comes while the scan holds the thread still ends the wait (the scan's
 * handler blocks it, sees it pending and counts it), and so does one whose handler the kernel
 * entered just before the scan's, in the same interruption (scan.c sees it interrupted that
 * handler at its entry). One whose handler blocks the scan's signal, sent a moment before it,
 * runs to its end before the scan's handler and is not seen: that wait goes on. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "hooked_functions.h"
#include "shim.h"

/* How many times the scan's signal has run on this thread, and how many of those times a
 * signal of the program's was delivered right after it (scan.c's handler counts both). */
_Thread_local unsigned lt_scan_signals_here;
_Thread_local unsigned lt_program_signals_after_scan;

/* Where a wait began, to tell afterwards what ended it. */
struct wait_mark {
    unsigned scans, program;
};

static struct wait_mark wait_mark_now(void)
{
    return (struct wait_mark){ lt_scan_signals_here, lt_program_signals_after_scan };
}

/* Only scans interrupted the wait since `m`: no signal of the program's came. */
static bool only_scans_since(struct wait_mark m)
{
    return lt_scan_signals_here != m.scans && lt_program_signals_after_scan == m.program;
}

typedef int (*nanosleep_fn)(const struct timespec *, struct timespec *);
typedef int (*clock_nanosleep_fn)(clockid_t, int, const struct timespec *, struct timespec *);

/* nanosleep, resumed for what is left while only scans interrupt it. The caller's `rem`
 * (or ours) receives what is left; a first call gets the caller's own `req`, so a bad
 * pointer fails as it would without us. */
static int nanosleep_through_scans(const struct timespec *req, struct timespec *rem)
{
    LT_NEXT(nanosleep_fn, nanosleep);
    struct timespec left;
    struct timespec *out = rem ? rem : &left;
    for (;;) {
        struct wait_mark m = wait_mark_now();
        int r = f(req, out);
        if (r == 0 || errno != EINTR || !only_scans_since(m)) return r;
        left = *out;
        req = &left;
    }
}

int lt_hook_nanosleep(const struct timespec *req, struct timespec *rem)
{
    return nanosleep_through_scans(req, rem);
}

int lt_hook_clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
                            struct timespec *rem)
{
    LT_NEXT(clock_nanosleep_fn, clock_nanosleep);
    struct timespec left;
    struct timespec *out = rem ? rem : &left;
    for (;;) {
        struct wait_mark m = wait_mark_now();
        int r = f(clock, flags, req, out);
        if (r != EINTR || !only_scans_since(m)) return r;
        if (!(flags & TIMER_ABSTIME)) { /* an absolute deadline stays as it is */
            left = *out;
            req = &left;
        }
    }
}

/* As glibc's: nanosleep with no `rem`. */
int lt_hook_usleep(useconds_t usec)
{
    struct timespec ts = { .tv_sec = (time_t)(usec / 1000000), .tv_nsec = (long)(usec % 1000000) * 1000 };
    return nanosleep_through_scans(&ts, NULL);
}

/* As glibc's: the whole seconds not slept when a signal ended it, errno kept otherwise. */
unsigned lt_hook_sleep(unsigned seconds)
{
    int saved_errno = errno;
    struct timespec ts = { .tv_sec = (time_t)seconds, .tv_nsec = 0 };
    if (nanosleep_through_scans(&ts, &ts) < 0) return (unsigned)ts.tv_sec;
    errno = saved_errno;
    return 0;
}

typedef int (*pause_fn)(void);
typedef int (*sigsuspend_fn)(const sigset_t *);

/* Waits for a signal of the program's: a scan's signal does not end them. */
int lt_hook_pause(void)
{
    LT_NEXT(pause_fn, pause);
    for (;;) {
        struct wait_mark m = wait_mark_now();
        int r = f();
        if (errno != EINTR || !only_scans_since(m)) return r;
    }
}

int lt_hook_sigsuspend(const sigset_t *mask)
{
    LT_NEXT(sigsuspend_fn, sigsuspend);
    for (;;) {
        struct wait_mark m = wait_mark_now();
        int r = f(mask);
        if (errno != EINTR || !only_scans_since(m)) return r;
    }
}

/* The milliseconds left until `deadline` (CLOCK_MONOTONIC), rounded up, for a wait to go on. */
static int ms_left(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ns = (long long)(deadline->tv_sec - now.tv_sec) * 1000000000LL + (deadline->tv_nsec - now.tv_nsec);
    return ns <= 0 ? 0 : (int)((ns + 999999) / 1000000);
}

static struct timespec deadline_in(int timeout_ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += timeout_ms / 1000;
    t.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
    }
    return t;
}

typedef int (*poll_fn)(struct pollfd *, nfds_t, int);
typedef int (*select_fn)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
typedef int (*epoll_wait_fn)(int, struct epoll_event *, int, int);

/* poll and epoll_wait with a timeout in ms (-1: none) go on with what is left of it. */
int lt_hook_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    LT_NEXT(poll_fn, poll);
    struct timespec deadline = timeout > 0 ? deadline_in(timeout) : (struct timespec){ 0, 0 };
    for (;;) {
        struct wait_mark m = wait_mark_now();
        int r = f(fds, nfds, timeout);
        if (r >= 0 || errno != EINTR || !only_scans_since(m)) return r;
        if (timeout > 0) timeout = ms_left(&deadline);
    }
}

int lt_hook_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    LT_NEXT(epoll_wait_fn, epoll_wait);
    struct timespec deadline = timeout > 0 ? deadline_in(timeout) : (struct timespec){ 0, 0 };
    for (;;) {
        struct wait_mark m = wait_mark_now();
        int r = f(epfd, events, maxevents, timeout);
        if (r >= 0 || errno != EINTR || !only_scans_since(m)) return r;
        if (timeout > 0) timeout = ms_left(&deadline);
    }
}

/* Linux's select leaves the sets as they were when a signal ends it and writes what is left
 * of the timeout back, so calling it again goes on where it stopped. */
int lt_hook_select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
                   struct timeval *timeout)
{
    LT_NEXT(select_fn, select);
    for (;;) {
        struct wait_mark m = wait_mark_now();
        int r = f(nfds, readfds, writefds, exceptfds, timeout);
        if (r >= 0 || errno != EINTR || !only_scans_since(m)) return r;
    }
}

/* The exported names (see hooked_functions.h). */
#define LT_X(name) extern __typeof__(lt_hook_##name) name __attribute__((alias("lt_hook_" #name), visibility("default")));
LT_HOOKED_SLEEP_FUNCTIONS(LT_X)
#undef LT_X
