/* Which threads are inside the shim's tables, so that detach can give the tables back.
 *
 * After a detach the GOT entries are put back and the state is OFF, but a thread that read
 * the state just before may still be recording, and a function pointer the program took
 * from a patched GOT still leads to a hook later (which then passes through). The tables may
 * be unmapped only once no thread is inside them. Each thread counts its own entries in a slot
 * of a registry (an asymmetric Dekker pair, as userspace RCU does): a hook raises its count,
 * then reads the state; detach writes the state, issues membarrier(), which orders every
 * running thread's memory accesses as a full fence would, then waits for every count to be
 * zero. A thread whose raised count detach did not see reads OFF after it, and leaves. The
 * hook pays a plain increment and decrement of its own slot, never a fence or an atomic
 * read-modify-write (except a thread that found no free slot: it shares one, atomically).
 *
 * The registry itself stays mapped for the life of the process (a slot pointer lives in
 * every thread's TLS); 512 KiB reserved, a few pages touched. A slot is not given back when its
 * thread ends (that would take a pthread key, one of the program's PTHREAD_KEYS_MAX): a thread
 * that finds none free takes over the slot of a thread that no longer exists. */
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define MAX_SLOTS 8192u

/* Slot 0 is the shared one, for threads that found no free slot. The others belong to one
 * thread each (struct lt_thread_slot, shim.h). */
_Static_assert(sizeof(struct lt_thread_slot) == 64, "one cache line per slot");

static struct lt_thread_slot *slots;       /* lt_map'd once (lt_inflight_init, start-up) */
static _Atomic unsigned slots_used = 1;    /* slots below it have been claimed */
static _Atomic unsigned reclaim_cursor;    /* where the next search for an ended owner starts */
static bool expedited;                     /* MEMBARRIER_CMD_PRIVATE_EXPEDITED registered */

/* This thread's slot; NULL until its first entry. Initial-exec: no allocation on access. */
__thread struct lt_thread_slot *lt_my_slot __attribute__((tls_model("initial-exec")));

bool lt_inflight_init(void)
{
    if (slots) return true;
    slots = lt_map(MAX_SLOTS * sizeof *slots);
    if (!slots) return false;
    slots[0].shared = true;
    slots[0].stripe = lt_stack_stripe_of_slot(0);
    return true;
}

/* Registers the process for the cheap membarrier (attach time, when the tables are made). */
void lt_inflight_prepare(void)
{
    if (!expedited)
        expedited = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

/* The owner of a slot has ended (its thread id names no thread of this process). A thread
 * ends with its count at zero; the id may since name a new thread, whose slot is then
 * left alone until that thread ends too. */
static bool owner_gone(pid_t owner, pid_t pid)
{
    return owner != 0 && lt_raw_syscall(SYS_tgkill, pid, owner, 0, 0, 0, 0) == -ESRCH;
}

static struct lt_thread_slot *take_slot(void);

/* A thread's first entry into the tables: its slot, and (signals.c) its alternate signal stack. */
struct lt_thread_slot *lt_inflight_claim(void)
{
    if (lt_my_slot) return lt_my_slot;
    if (!slots) return NULL;
    lt_my_slot = take_slot();
    lt_signals_give_this_thread_a_stack();
    return lt_my_slot;
}

static struct lt_thread_slot *take_slot(void)
{
    pid_t me = (pid_t)syscall(SYS_gettid);
    /* Slots are never given back, so the free ones are those never claimed. Counted in
     * slots_used before the slot's first count: a waiter that sees the count sees it. */
    unsigned fresh = atomic_load(&slots_used);
    while (fresh < MAX_SLOTS)
        if (atomic_compare_exchange_weak(&slots_used, &fresh, fresh + 1)) {
            slots[fresh].stripe = lt_stack_stripe_of_slot(fresh); /* kept by later owners */
            atomic_store(&slots[fresh].owner, me);
            return &slots[fresh];
        }
    /* Full: take over the slot of a thread that has ended, searching on from where the last
     * search stopped (the oldest slots are the likeliest to have ended). */
    pid_t pid = getpid();
    for (unsigned n = 1; n < MAX_SLOTS; n++) {
        unsigned at = atomic_fetch_add_explicit(&reclaim_cursor, 1, memory_order_relaxed);
        unsigned i = at % (MAX_SLOTS - 1) + 1;
        pid_t owner = atomic_load_explicit(&slots[i].owner, memory_order_relaxed);
        if (!owner_gone(owner, pid) || atomic_load(&slots[i].inside) != 0 ||
            !atomic_compare_exchange_strong(&slots[i].owner, &owner, me))
            continue;
        return &slots[i];
    }
    return &slots[0];
}

/* In a fork child: this thread's slot names the parent's thread, which other threads of the
 * child would take for ended. */
void lt_inflight_after_fork_child(void)
{
    if (lt_my_slot && !lt_my_slot->shared) atomic_store(&lt_my_slot->owner, (pid_t)syscall(SYS_gettid));
}

/* pre: the state is no longer one in which hooks touch the tables. True once no thread is
 * inside them; false when that cannot be known (no membarrier) or takes over timeout_ms. */
bool lt_inflight_wait_quiet(unsigned timeout_ms)
{
    if (!slots) return false;
    int cmd = expedited ? MEMBARRIER_CMD_PRIVATE_EXPEDITED : MEMBARRIER_CMD_GLOBAL;
    if (syscall(SYS_membarrier, cmd, 0, 0) != 0) return false;
    struct timespec nap = { 0, 1000000 }; /* 1 ms */
    unsigned used = atomic_load(&slots_used);
    for (unsigned waited = 0;; waited++) {
        bool quiet = true;
        for (unsigned i = 0; i < used && quiet; i++)
            quiet = atomic_load(&slots[i].inside) == 0;
        if (quiet) return true;
        if (waited >= timeout_ms) return false;
        lt_sys_nanosleep(&nap, NULL);
    }
}
