/* An on-demand scan stops every thread with a signal (scan.c), and a signal that runs a
 * handler ends a sleep early with EINTR, SA_RESTART or not: a program doing `sleep(300)`
 * would carry on at the first scan. So the sleeps the program calls go back to sleep for
 * what is left when a scan's signal ended them, and end early only for a signal of the
 * program's own; pause and sigsuspend likewise wait on. What is not covered: libc's own internal sleeps, poll, select and
 * epoll_wait (they see EINTR, as under strace or gdb), and a signal of the program's that
 * arrives during the very sleep a scan interrupted (that sleep then goes on). */
#include <errno.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "hooked_functions.h"
#include "shim.h"

/* How many times the scan's signal has run on this thread (scan.c's handler counts). */
_Thread_local unsigned lt_scan_signals_here;

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
        unsigned scans = lt_scan_signals_here;
        int r = f(req, out);
        if (r == 0 || errno != EINTR || lt_scan_signals_here == scans) return r;
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
        unsigned scans = lt_scan_signals_here;
        int r = f(clock, flags, req, out);
        if (r != EINTR || lt_scan_signals_here == scans) return r;
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
        unsigned scans = lt_scan_signals_here;
        int r = f();
        if (errno != EINTR || lt_scan_signals_here == scans) return r;
    }
}

int lt_hook_sigsuspend(const sigset_t *mask)
{
    LT_NEXT(sigsuspend_fn, sigsuspend);
    for (;;) {
        unsigned scans = lt_scan_signals_here;
        int r = f(mask);
        if (errno != EINTR || lt_scan_signals_here == scans) return r;
    }
}

/* The exported names (see hooked_functions.h). */
#define LT_X(name) extern __typeof__(lt_hook_##name) name __attribute__((alias("lt_hook_" #name), visibility("default")));
LT_HOOKED_SLEEP_FUNCTIONS(LT_X)
#undef LT_X
