/* A program that sandboxes itself with a seccomp filter (OpenSSH's privilege-separated child,
 * libseccomp users, browsers' renderers): once the filter is in, any system call the filter
 * does not list may kill the process with SIGSYS, and the shim cannot know the list. So just
 * before the filter goes in, the shim writes the capture (blocks classified at that moment)
 * and stops: no more recording, no control thread, the program's default signal actions back
 * (lifecycle.c, lt_before_sandbox). The program then runs as it would without us.
 *
 * Both ways in are interposed: prctl(PR_SET_SECCOMP) and syscall(SYS_seccomp) (libseccomp's
 * seccomp_load). The shim itself calls syscall() and prctl() too, which bind to these
 * definitions: so they make the system call themselves, as libc's do, and never look up the
 * next definition (dlsym allocates, and may run while the shim starts). x86-64 only, as the
 * shim is.
 *
 * syscall() is also how a program may end past glibc: SYS_exit_group, and SYS_exit from its
 * last thread, get the final capture first (lifecycle.c, lt_before_thread_exit_call); and
 * SYS_execve and SYS_execveat go through the exec hooks (environment.c: the capture of the
 * image being replaced, the settings into the next one). */
#include <errno.h>
#include <linux/seccomp.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "hooked_functions.h"
#include "shim.h"

/* Whether a seccomp call could install anything. The kernel refuses, with no effect, strict
 * mode given flags or arguments (EINVAL) and filter mode without a program (EFAULT), and
 * libseccomp probes the kernel with exactly such calls (seccomp_api_get: seccomp(STRICT, 1,
 * NULL), seccomp(FILTER, flag, NULL) for each flag); man-db's `man` probes at start-up and
 * installs its filter only in its children. A probe must not end the tracing. */
static bool may_install(long mode, unsigned long flags, const void *args)
{
    if (mode == SECCOMP_SET_MODE_STRICT) return flags == 0 && args == NULL;
    return mode == SECCOMP_SET_MODE_FILTER && args != NULL;
}

long lt_hook_syscall(long number, ...)
{
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long); /* as libc's: six, whatever was passed */
    va_end(ap);
    if (LT_UNLIKELY(number == SYS_seccomp) && may_install(a[0], (unsigned long)a[1], (const void *)a[2]))
        lt_before_sandbox(LT_REASON_SANDBOX);
    else if (LT_UNLIKELY(number == SYS_exit_group)) /* as _exit (the shim's own calls: past it) */
        lt_final_at_exit();
    else if (LT_UNLIKELY(number == SYS_exit) && lt_before_thread_exit_call((int)a[0]))
        number = SYS_exit_group; /* the program's last thread: the control thread ends too */
    else if (LT_UNLIKELY(number == SYS_execve))
        return lt_hook_execve((const char *)a[0], (char *const *)a[1], (char *const *)a[2]);
    else if (LT_UNLIKELY(number == SYS_execveat))
        return lt_hook_execveat((int)a[0], (const char *)a[1], (char *const *)a[2], (char *const *)a[3],
                                (int)a[4]);
    return lt_as_libc_returns(lt_raw_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]));
}

int lt_hook_prctl(int option, ...)
{
    va_list ap;
    va_start(ap, option);
    long a[4];
    for (int i = 0; i < 4; i++) a[i] = (long)va_arg(ap, unsigned long);
    va_end(ap);
    /* prctl's strict mode ignores the third argument (the kernel passes none on). */
    if (LT_UNLIKELY(option == PR_SET_SECCOMP) &&
        (a[0] == SECCOMP_MODE_STRICT || (a[0] == SECCOMP_MODE_FILTER && a[1] != 0)))
        lt_before_sandbox(LT_REASON_SANDBOX);
    return (int)lt_as_libc_returns(lt_raw_syscall(SYS_prctl, option, a[0], a[1], a[2], a[3], 0));
}

/* The exported names (see hooked_functions.h). */
#define LT_X(name) extern __typeof__(lt_hook_##name) name __attribute__((alias("lt_hook_" #name), visibility("default")));
LT_HOOKED_SANDBOX_FUNCTIONS(LT_X)
#undef LT_X
