/* A program that changes its user or groups (a daemon started as root that drops to `nobody`)
 * may afterwards be refused what the final capture needs: creating the file in the capture
 * directory, and opening the launcher's notify file (/proc/<launcher>/fd/N, another user's
 * process now). So before the first such call of the traced process, the shim opens both
 * while it still may (lt_capture_prepare_final); the capture written at exit goes into that
 * file. Only the glibc wrappers are seen: a raw setuid system call is not.
 *
 * Not in attach mode: there the capture is written at detach, by a session that has its own
 * files, and a file opened early could stay empty behind it. */
#include <unistd.h>

#include "hooked_functions.h"
#include "shim.h"

static void before_change(void)
{
    int state = atomic_load(&lt_state);
    if (lt_attach_mode() || state < LT_STATE_TRACKING || state == LT_STATE_FINAL) return;
    if (getpid() != atomic_load(&lt_owner_pid)) return;
    lt_busy++;
    lt_capture_prepare_final();
    lt_busy--;
}

typedef int (*id1_fn)(unsigned);
typedef int (*id2_fn)(unsigned, unsigned);
typedef int (*id3_fn)(unsigned, unsigned, unsigned);
typedef int (*groups_fn)(size_t, const gid_t *);

int lt_hook_setuid(uid_t uid)
{
    before_change();
    LT_NEXT(id1_fn, setuid);
    return f(uid);
}

int lt_hook_setgid(gid_t gid)
{
    before_change();
    LT_NEXT(id1_fn, setgid);
    return f(gid);
}

int lt_hook_seteuid(uid_t uid)
{
    before_change();
    LT_NEXT(id1_fn, seteuid);
    return f(uid);
}

int lt_hook_setegid(gid_t gid)
{
    before_change();
    LT_NEXT(id1_fn, setegid);
    return f(gid);
}

int lt_hook_setreuid(uid_t ruid, uid_t euid)
{
    before_change();
    LT_NEXT(id2_fn, setreuid);
    return f(ruid, euid);
}

int lt_hook_setregid(gid_t rgid, gid_t egid)
{
    before_change();
    LT_NEXT(id2_fn, setregid);
    return f(rgid, egid);
}

int lt_hook_setresuid(uid_t ruid, uid_t euid, uid_t suid)
{
    before_change();
    LT_NEXT(id3_fn, setresuid);
    return f(ruid, euid, suid);
}

int lt_hook_setresgid(gid_t rgid, gid_t egid, gid_t sgid)
{
    before_change();
    LT_NEXT(id3_fn, setresgid);
    return f(rgid, egid, sgid);
}

int lt_hook_setgroups(size_t size, const gid_t *list)
{
    before_change();
    LT_NEXT(groups_fn, setgroups);
    return f(size, list);
}

/* The exported names (see hooked_functions.h). */
#define LT_X(name) extern __typeof__(lt_hook_##name) name __attribute__((alias("lt_hook_" #name), visibility("default")));
LT_HOOKED_PRIVILEGE_FUNCTIONS(LT_X)
#undef LT_X
