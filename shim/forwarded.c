/* Signals the launcher passes on, delivered once.
 *
 * `leaktrace run` passes on to the program what is sent to its own pid (a supervisor's stop,
 * `docker stop`, a `kill` of leaktrace's pid), which the program would have had without it.
 * A signal sent to the whole group, or to every process of a service, reaches the program
 * itself as well: `timeout` sends its signal to its child and then to its group, `kill -TERM
 * -PGID`, systemd's stop signals every process of the unit, `pkill -f` matches both command
 * lines. Passed on, it arrived twice and the program's handler ran twice (Python's; a server's
 * "second signal: stop at once"). Only the program can tell, so the launcher passes signals on
 * with sigqueue(), tagged with the original sender's pid and uid, and the relay the shim puts
 * in front of the program's handler (signals.c) lets through the first of the two copies from
 * one sender and drops the second, within a second. A passed-on copy let through is shown to
 * the handler as its sender's kill() (SI_USER, the sender's pid and uid), as natively. */
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

/* The tag of a passed-on copy, in its sigval: TAG << 54 | uid << 22 | pid (pid_max is 2^22). */
#define TAG UINT64_C(0x2a9)
#define PAIR_WINDOW_NS 1000000000ull

/* The latest unpaired arrival of each standard signal, by kind: from its sender (`originals`)
 * or passed on by the launcher (`copies`). Written and read by the signal handlers of any
 * thread (atomics; two arrivals of one signal at the same moment on two threads may both pass,
 * as two would without the relay). */
struct arrival {
    _Atomic uint64_t at_ns; /* 0: none */
    _Atomic int sender;
};
static struct arrival originals[32], copies[32];

bool lt_forwarded_signal(int sig)
{
    switch (sig) {
    case SIGHUP: case SIGINT: case SIGQUIT: case SIGUSR1: case SIGUSR2: case SIGALRM:
    case SIGTERM: case SIGTSTP: case SIGTTIN: case SIGTTOU:
        return lt_cfg.launcher_pid != 0 && getpid() == atomic_load(&lt_owner_pid);
    default:
        return false;
    }
}

/* Takes the other copy of this one, if it came from `sender` within the window. */
static bool pair_with(struct arrival *other, int sender, uint64_t now)
{
    uint64_t at = atomic_load(&other->at_ns);
    if (!at || now - at > PAIR_WINDOW_NS || atomic_load(&other->sender) != sender) return false;
    return atomic_compare_exchange_strong(&other->at_ns, &at, 0);
}

static void note(struct arrival *a, int sender, uint64_t now)
{
    atomic_store(&a->sender, sender);
    atomic_store(&a->at_ns, now);
}

bool lt_forwarded_drops(int sig, siginfo_t *info)
{
    if (!info || sig <= 0 || sig >= 32 || !lt_forwarded_signal(sig)) return false;
    uint64_t now = lt_now_ns();
    uint64_t tag = (uint64_t)(uintptr_t)info->si_value.sival_ptr;
    if (info->si_code == SI_QUEUE && info->si_pid == lt_cfg.launcher_pid && tag >> 54 == TAG) {
        int sender = (int)(tag & ((1u << 22) - 1));
        if (pair_with(&originals[sig], sender, now)) return true;
        note(&copies[sig], sender, now);
        uid_t uid = (uid_t)(tag >> 22);
        memset(info, 0, sizeof *info); /* what kill() from the sender gives */
        info->si_signo = sig;
        info->si_code = SI_USER;
        info->si_pid = sender;
        info->si_uid = uid;
        return false;
    }
    if (info->si_code != SI_USER) return false; /* the launcher passes on only these */
    if (pair_with(&copies[sig], info->si_pid, now)) return true;
    note(&originals[sig], info->si_pid, now);
    return false;
}
