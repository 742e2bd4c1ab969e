/* The functions that end the process from the program's code: exit, _exit, _Exit, quick_exit,
 * abort, and daemon() in its parent. Each writes (or lets the exit path write) the final
 * capture; first, the program's callee-saved registers where it called them go to the final
 * scan as roots.
 *
 * Why: the program's function that calls exit may keep a live block's only pointer in a
 * callee-saved register (rbx, rbp, r12-r15: at -O2, a pointer live across the call). The
 * C library's exit path saves that register in its own frames, and the scan leaves the
 * runtime's frames out (their other slots hold dead values: unwind.c). valgrind reads those
 * frames and finds the block still reachable; without these registers leaktrace called it
 * definitely lost. Their values at the call are the program's, whatever the callee does
 * later, so each hook is a few instructions of assembly that store them before anything
 * else runs, then jump to its C part (the exported name and the hidden lt_hook_ name the GOT
 * patcher writes are one address, as for dlsym in lookups.c). */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hooked_functions.h"
#include "shim.h"

/* The six registers of the latest call (another thread's concurrent exit may overwrite them:
 * both are the program's values). Written by the stubs below, read by the C parts. */
__attribute__((used, externally_visible)) uintptr_t lt_exit_registers[6];

#define LT_EXIT_STUB(name)                                         \
    __asm__(".text\n"                                              \
            ".globl lt_hook_" #name "\n"                           \
            ".hidden lt_hook_" #name "\n"                          \
            ".type lt_hook_" #name ", @function\n"                 \
            ".globl " #name "\n"                                   \
            ".type " #name ", @function\n"                         \
            "lt_hook_" #name ":\n" #name ":\n"                     \
            "    movq %rbx, lt_exit_registers(%rip)\n"             \
            "    movq %rbp, lt_exit_registers+8(%rip)\n"           \
            "    movq %r12, lt_exit_registers+16(%rip)\n"          \
            "    movq %r13, lt_exit_registers+24(%rip)\n"          \
            "    movq %r14, lt_exit_registers+32(%rip)\n"          \
            "    movq %r15, lt_exit_registers+40(%rip)\n"          \
            "    jmp lt_" #name "_saved\n"                         \
            ".size lt_hook_" #name ", .-lt_hook_" #name "\n"        \
            ".size " #name ", .-" #name "\n");
LT_HOOKED_EXIT_FUNCTIONS(LT_EXIT_STUB)
#undef LT_EXIT_STUB

static void keep_registers(void) { lt_scan_add_roots(lt_exit_registers, 6); }

/* The C library's own `name`, looked up once into *slot. */
static void *next_function(void *_Atomic *slot, const char *name)
{
    void *f = atomic_load(slot);
    if (!f) {
        f = lt_next_symbol(name);
        atomic_store(slot, f);
    }
    return f;
}

/* exit runs the program's exit handlers, then the shim's destructor writes the capture. */
__attribute__((used, externally_visible, noreturn)) void lt_exit_saved(int status)
{
    keep_registers();
    static void *_Atomic real_exit;
    void (*real)(int) = (void (*)(int))next_function(&real_exit, "exit");
    if (real) real(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

/* _exit and _Exit run no exit handlers: the capture is written here. */
__attribute__((used, externally_visible, noreturn)) void lt__exit_saved(int status)
{
    keep_registers();
    lt_final_at_exit();
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

__attribute__((used, externally_visible, noreturn)) void lt__Exit_saved(int status)
{
    lt__exit_saved(status);
}

/* quick_exit runs the at_quick_exit handlers, then _exit from inside libc, where no hook sees
 * it: the shim's own handler, registered at start-up, writes the capture after the program's
 * (lifecycle.c); without it (attach mode), the capture comes first. */
__attribute__((used, externally_visible, noreturn)) void lt_quick_exit_saved(int status)
{
    keep_registers();
    static void *_Atomic real_quick_exit;
    void (*real)(int) = (void (*)(int))next_function(&real_quick_exit, "quick_exit");
    if (!lt_quick_exit_handled()) lt_final_at_exit();
    if (real) real(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

/* abort raises SIGABRT: the fatal-signal handler (signals.c) writes the capture. */
__attribute__((used, externally_visible, noreturn)) void lt_abort_saved(void)
{
    keep_registers();
    static void *_Atomic real_abort;
    void (*real)(void) = (void (*)(void))next_function(&real_abort, "abort");
    if (real) real();
    syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGABRT);
    syscall(SYS_exit_group, 128 + SIGABRT);
    __builtin_unreachable();
}

/* daemon() forks, and its parent ends with the C library's own _exit, where no hook sees it:
 * that process (a child under --follow-children, or the program itself) would end without a
 * capture. So it is made here as glibc makes it, the parent ending through _exit's path. */
__attribute__((used, externally_visible)) int lt_daemon_saved(int nochdir, int noclose)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid > 0) lt__exit_saved(0);
    if (setsid() < 0) return -1;
    if (!nochdir && chdir("/") != 0) { /* glibc ignores it too */ }
    if (noclose) return 0;
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
        /* Not the real /dev/null (a chroot's file): glibc refuses it too. */
        close(fd);
        errno = ENODEV;
        return -1;
    }
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    if (fd > STDERR_FILENO) close(fd);
    return 0;
}
