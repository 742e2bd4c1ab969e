/* What ended the program, for its report: the fatal signal, its cause (si_code, the faulting
 * address or the sender), and the thread it struck with the backtrace of the code it
 * interrupted, as valgrind prints "Process terminating with default action of signal 11
 * (SIGSEGV) ... at ...". Described by the shim's fatal-signal handler (signals.c), published
 * by the thread that then claims the final capture (lifecycle.c), which writes it as the FATAL
 * section (capture.c). */
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

/* The record of the thread that claimed the final capture (lifecycle.c publishes it then,
 * release; the capture writer reads it, acquire). Each dying thread describes its own first,
 * in a mapping of the shim's: a fault's address may be a heap address, which the scan must not
 * take for a pointer (it reads the shim's own static data as roots, not its mappings). */
static _Atomic(const struct lt_fatal *) published;

/* The kernel's faults carry the address they were about; a signal sent by a process (kill,
 * tgkill, abort's raise, sigqueue) carries its sender. */
static bool is_fault(int sig, const siginfo_t *info)
{
    return info->si_code > 0 && info->si_code != SI_KERNEL &&
           (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP);
}

/* The struck code ran in a signal handler (a crash reporter's, Python's faulthandler, Rust's
 * stack overflow handler), which often raises its signal again: the fault that handler was
 * called for is the cause worth telling. Its siginfo is in the kernel's frame only for an
 * SA_SIGINFO handler, but the saved registers always hold the CPU's trap number, error code
 * and faulting address (those of the thread's last fault). Read so that a bad frame cannot
 * fault. */
static void note_handler_frame(struct lt_fatal *f, uintptr_t ucontext)
{
    greg_t regs[NGREG];
    if (!lt_copy_memory(regs, ucontext + offsetof(ucontext_t, uc_mcontext.gregs), sizeof regs)) return;
    f->flags |= LT_FATAL_FLAG_IN_HANDLER;
    f->handler_trapno = (uint32_t)regs[REG_TRAPNO];
    f->handler_error = (uint32_t)regs[REG_ERR];
    f->handler_fault_address = (uint64_t)regs[REG_CR2];
}

const struct lt_fatal *lt_fatal_describe(int sig, const siginfo_t *info, const ucontext_t *uc,
                                         bool in_shim)
{
    struct lt_fatal *f = lt_map(sizeof *f);
    if (!f) return NULL;
    f->signal = (uint32_t)sig;
    if (info) {
        f->code = info->si_code;
        if (is_fault(sig, info)) f->address = (uint64_t)(uintptr_t)info->si_addr;
        else if (info->si_code <= 0) f->sender_pid = (uint32_t)info->si_pid;
    }
    f->tid = (uint32_t)lt_raw_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0);
    char name[17] = { 0 };
    if (prctl(PR_GET_NAME, name, 0, 0, 0) == 0) memcpy(f->thread_name, name, sizeof f->thread_name);
    bool truncated = false;
    uintptr_t handler_frame = 0;
    int max = lt_cfg.max_depth < LT_MAX_DEPTH_LIMIT ? lt_cfg.max_depth : LT_MAX_DEPTH_LIMIT;
    f->depth = uc ? (uint32_t)lt_unwind_interrupted(uc, f->pcs, max, &truncated, &handler_frame) : 0;
    f->flags = (truncated ? LT_FATAL_FLAG_TRUNCATED : 0) | (in_shim ? LT_FATAL_FLAG_IN_SHIM : 0);
    if (handler_frame) note_handler_frame(f, handler_frame);
    return f;
}

void lt_fatal_publish(const struct lt_fatal *f) { atomic_store_explicit(&published, f, memory_order_release); }

const struct lt_fatal *lt_fatal_noted(void) { return atomic_load_explicit(&published, memory_order_acquire); }
