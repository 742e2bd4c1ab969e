/* A program that changes its user or groups (a daemon started as root that drops to `nobody`)
 * may afterwards be refused what the final capture needs: creating the file in the capture
 * directory, and opening the launcher's notify file (/proc/<launcher>/fd/N, another user's
 * process now). One that changes its root directory (`chroot`, as sshd's privilege-separated
 * child, vsftpd or named do) no longer sees either path. So before the first such call of the
 * traced process, the shim opens both while it still may (lt_capture_prepare_final); the
 * capture written at exit goes into that file. Only the glibc wrappers are seen: a raw setuid
 * or chroot system call is not.
 *
 * Entering a new user namespace (`unshare(CLONE_NEWUSER)`, `setns` into one: `unshare -U`,
 * bubblewrap, rootless containers) also changes the user, and the kernel refuses it, and
 * `setns` into a mount namespace, to a process with more than one thread: the shim's control
 * thread ends for the call (joined), and starts again with the next recorded allocation.
 *
 * Not in attach mode: there the capture is written at detach, by a session that has its own
 * files, and a file opened early could stay empty behind it. */
/* meson defines _FILE_OFFSET_BITS=64, which renames setrlimit to setrlimit64 (and prlimit) in
 * the headers; both names are interposed (programs built with it call the 64 ones). */
#undef _FILE_OFFSET_BITS
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hooked_functions.h"
#include "shim.h"

/* This process is traced, not yet at its final capture, and not in attach mode. */
static bool writes_its_own_capture(void)
{
    int state = atomic_load(&lt_state);
    if (lt_attach_mode() || state < LT_STATE_TRACKING || state == LT_STATE_FINAL) return false;
    return getpid() == atomic_load(&lt_owner_pid);
}

static void before_change(void)
{
    if (!writes_its_own_capture()) return;
    lt_busy++;
    lt_capture_prepare_final();
    lt_busy--;
}

/* `leaktrace run` gives the program SIGKILL as its parent-death signal (killing leaktrace
 * with SIGKILL kills the program, as it would have killed the program itself), and the kernel
 * clears that signal when the process changes its user or group: a daemon that dropped to
 * `nobody` outlived a killed leaktrace. The launched process puts it back after the call
 * (only SIGKILL, leaktrace's: a program's own would be cleared natively too). */
static int death_signal_before(void)
{
    int sig = 0;
    if (!lt_cfg.launched || !lt_cfg.is_root || getpid() != atomic_load(&lt_owner_pid)) return 0;
    if (lt_raw_syscall(SYS_prctl, PR_GET_PDEATHSIG, (long)&sig, 0, 0, 0, 0) != 0) return 0;
    return sig == SIGKILL ? sig : 0;
}

static void death_signal_after(int sig)
{
    if (sig) lt_raw_syscall(SYS_prctl, PR_SET_PDEATHSIG, sig, 0, 0, 0, 0);
}

/* A user change: the control socket is in its user's directory (control.c), which the new
 * user may not reach and where root's `leaktrace status PID` would not look for it. The
 * control thread ends before the call, removing its socket while it still may, and starts
 * again, in the new user's directory, with the next recorded allocation. */
static bool before_user_change(void)
{
    if (!writes_its_own_capture()) return false;
    lt_control_pause();
    return true;
}

/* Around each set*id call: what to put back after it. */
struct id_change {
    int death_signal;
    bool control_paused;
};

static struct id_change begin_id_change(bool of_user)
{
    before_change();
    struct id_change c = { death_signal_before(), false };
    c.control_paused = of_user && before_user_change();
    return c;
}

static int end_id_change(struct id_change c, int result)
{
    int saved_errno = errno;
    death_signal_after(c.death_signal);
    if (c.control_paused) lt_control_resume();
    errno = saved_errno;
    return result;
}

typedef int (*id1_fn)(unsigned);
typedef int (*id2_fn)(unsigned, unsigned);
typedef int (*id3_fn)(unsigned, unsigned, unsigned);
typedef int (*groups_fn)(size_t, const gid_t *);
typedef int (*path_fn)(const char *);
typedef int (*flags_fn)(int);
typedef int (*ns_fn)(int, int);

int lt_hook_setuid(uid_t uid)
{
    struct id_change c = begin_id_change(true);
    LT_NEXT(id1_fn, setuid);
    return end_id_change(c, f(uid));
}

int lt_hook_setgid(gid_t gid)
{
    struct id_change c = begin_id_change(false);
    LT_NEXT(id1_fn, setgid);
    return end_id_change(c, f(gid));
}

int lt_hook_seteuid(uid_t uid)
{
    struct id_change c = begin_id_change(true);
    LT_NEXT(id1_fn, seteuid);
    return end_id_change(c, f(uid));
}

int lt_hook_setegid(gid_t gid)
{
    struct id_change c = begin_id_change(false);
    LT_NEXT(id1_fn, setegid);
    return end_id_change(c, f(gid));
}

int lt_hook_setreuid(uid_t ruid, uid_t euid)
{
    struct id_change c = begin_id_change(true);
    LT_NEXT(id2_fn, setreuid);
    return end_id_change(c, f(ruid, euid));
}

int lt_hook_setregid(gid_t rgid, gid_t egid)
{
    struct id_change c = begin_id_change(false);
    LT_NEXT(id2_fn, setregid);
    return end_id_change(c, f(rgid, egid));
}

int lt_hook_setresuid(uid_t ruid, uid_t euid, uid_t suid)
{
    struct id_change c = begin_id_change(true);
    LT_NEXT(id3_fn, setresuid);
    return end_id_change(c, f(ruid, euid, suid));
}

int lt_hook_setresgid(gid_t rgid, gid_t egid, gid_t sgid)
{
    struct id_change c = begin_id_change(false);
    LT_NEXT(id3_fn, setresgid);
    return end_id_change(c, f(rgid, egid, sgid));
}

int lt_hook_setgroups(size_t size, const gid_t *list)
{
    before_change();
    LT_NEXT(groups_fn, setgroups);
    return f(size, list);
}

/* Around a call that may enter a user namespace: the process must be single-threaded for it.
 * Not in attach mode, whose session is the control thread. */
static bool before_single_threaded_call(void)
{
    before_change();
    if (lt_attach_mode()) return false;
    lt_control_pause();
    return true;
}

static void after_single_threaded_call(bool paused)
{
    int saved_errno = errno;
    if (paused) lt_control_resume();
    errno = saved_errno;
}

int lt_hook_unshare(int flags)
{
    LT_NEXT(flags_fn, unshare);
    /* What the kernel refuses to a process with more than one thread (CLONE_NEWUSER implies
     * CLONE_THREAD). */
    if (!(flags & (CLONE_NEWUSER | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM))) return f(flags);
    bool paused = before_single_threaded_call();
    int r = f(flags);
    after_single_threaded_call(paused);
    return r;
}

int lt_hook_setns(int fd, int nstype)
{
    LT_NEXT(ns_fn, setns);
    /* A user or mount namespace is refused to a process with more than one thread; 0: any kind
     * (or a pidfd's set of them). */
    if (nstype != 0 && !(nstype & (CLONE_NEWUSER | CLONE_NEWNS))) return f(fd, nstype);
    bool paused = before_single_threaded_call();
    int r = f(fd, nstype);
    after_single_threaded_call(paused);
    return r;
}

int lt_hook_chroot(const char *path)
{
    before_change();
    lt_procfs_keep(); /* the scan and the capture read /proc, which the new root may lack */
    LT_NEXT(path_fn, chroot);
    return f(path);
}

/* A resource limit that takes away what the final capture needs. The hard RLIMIT_FSIZE at 0
 * (OpenSSH's sandboxed child sets it just before its seccomp filter): no file can be written
 * after it, not even the line that would say why, so the capture is written now and the shim
 * stops, as before a seccomp filter. A lower hard RLIMIT_NOFILE: the capture's files and the
 * memory map the scan reads are opened now, while descriptors may still be had (the same
 * child then sets 0). Only the
 * process's own limits, lowered: raising a hard limit takes a privilege, and needs nothing. */
static void before_limit(int resource, uint64_t new_hard)
{
    if ((resource != RLIMIT_FSIZE && resource != RLIMIT_NOFILE) || !writes_its_own_capture()) return;
    int saved_errno = errno;
    struct rlimit64 now;
    if (lt_raw_syscall(SYS_prlimit64, 0, resource, 0, (long)&now, 0, 0) == 0 && new_hard < now.rlim_max) {
        if (resource == RLIMIT_FSIZE && new_hard == 0) lt_before_sandbox(LT_REASON_FILE_LIMIT);
        else if (resource == RLIMIT_NOFILE) {
            before_change();
            lt_procfs_keep_maps(); /* the exit scan's roots, readable with no descriptor left */
        }
    }
    errno = saved_errno;
}

typedef int (*setrlimit_fn)(__rlimit_resource_t, const struct rlimit *);
typedef int (*prlimit_fn)(pid_t, enum __rlimit_resource, const struct rlimit *, struct rlimit *);

int lt_hook_setrlimit(__rlimit_resource_t resource, const struct rlimit *limit)
{
    if (limit) before_limit((int)resource, limit->rlim_max);
    LT_NEXT(setrlimit_fn, setrlimit);
    return f(resource, limit);
}

int lt_hook_prlimit(pid_t pid, enum __rlimit_resource resource, const struct rlimit *limit,
                    struct rlimit *old)
{
    if (limit && (pid == 0 || pid == getpid())) before_limit((int)resource, limit->rlim_max);
    LT_NEXT(prlimit_fn, prlimit);
    return f(pid, resource, limit, old);
}

/* On x86-64 the 64 names take the same structure (rlim_t is 64 bits) and are glibc's aliases
 * of the others: the same hooks, and the same functions after them. */
_Static_assert(sizeof(struct rlimit) == sizeof(struct rlimit64), "one layout");

int lt_hook_setrlimit64(__rlimit_resource_t resource, const struct rlimit64 *limit)
{
    return lt_hook_setrlimit(resource, (const struct rlimit *)(const void *)limit);
}

int lt_hook_prlimit64(pid_t pid, enum __rlimit_resource resource, const struct rlimit64 *limit,
                      struct rlimit64 *old)
{
    return lt_hook_prlimit(pid, resource, (const struct rlimit *)(const void *)limit,
                           (struct rlimit *)(void *)old);
}

/* The exported names (see hooked_functions.h). */
#define LT_X(name) extern __typeof__(lt_hook_##name) name __attribute__((alias("lt_hook_" #name), visibility("default")));
LT_HOOKED_PRIVILEGE_FUNCTIONS(LT_X)
#undef LT_X
