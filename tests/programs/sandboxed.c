/* A program that sandboxes itself as OpenSSH's privilege-separated child does: a seccomp
 * filter that kills the process on any system call it does not list. argv[1] "prctl" installs
 * it with prctl(PR_SET_SECCOMP), "syscall" with syscall(SYS_seccomp) as libseccomp does.
 * Before the filter: one block leaked (@leak:before), one kept in a global (@leak:kept), and a
 * second thread allocating in a loop. After it: one more block leaked (@leak:after), which no
 * tracer that must stop at the filter sees. Exits 3 after printing "sandboxed". argv[1]
 * "probe" only probes the kernel as libseccomp does (calls that install nothing: strict mode
 * with flags, filter mode without a program, prctl without a program or with no mode), then
 * leaks the block after the filter too and prints "probed". */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ALLOW(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

void *kept;
static volatile int stop;

__attribute__((noinline)) static void *make(size_t size)
{
    void *p = malloc(size);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

__attribute__((noinline)) static void leak_before(void)
{
    char *p = malloc(111); /* @leak:before */
    memset(p, 0, 111);
    __asm__ volatile("" : : "r"(p) : "memory");
}

__attribute__((noinline)) static void leak_after(void)
{
    char *p = malloc(222); /* @leak:after */
    memset(p, 0, 222);
    __asm__ volatile("" : : "r"(p) : "memory");
}

static void *churn(void *unused)
{
    (void)unused;
    while (!stop) free(make(64)); /* this thread's shards are its own until the filter */
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "prctl") != 0 && strcmp(argv[1], "syscall") != 0 &&
                      strcmp(argv[1], "probe") != 0))
        return 2;
    kept = malloc(333); /* @leak:kept */
    leak_before();
    pthread_t thread;
    if (pthread_create(&thread, NULL, churn, NULL) != 0) return 2;
    for (int i = 0; i < 1000; i++) free(make(32)); /* main frees while the other allocates */
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        ALLOW(SYS_read), ALLOW(SYS_write), ALLOW(SYS_close), ALLOW(SYS_fstat), ALLOW(SYS_newfstatat),
        ALLOW(SYS_mmap), ALLOW(SYS_munmap), ALLOW(SYS_mprotect), ALLOW(SYS_brk), ALLOW(SYS_madvise),
        ALLOW(SYS_futex), ALLOW(SYS_getrandom), ALLOW(SYS_exit), ALLOW(SYS_exit_group),
        ALLOW(SYS_rt_sigreturn), ALLOW(SYS_rt_sigprocmask), ALLOW(SYS_sched_yield),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    struct sock_fprog program = { sizeof filter / sizeof filter[0], filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 2;
    bool probe = strcmp(argv[1], "probe") == 0;
    if (probe) { /* every call fails, nothing is installed */
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_STRICT, 1, NULL) != -1 ||
            syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, NULL) != -1 ||
            syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_LOG, NULL) != -1 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL) != -1 ||
            prctl(PR_SET_SECCOMP, 7, &program) != -1)
            return 2;
    } else {
        long r = argv[1][0] == 'p' ? prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program)
                                   : syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program);
        if (r != 0) return 2;
    }
    for (int i = 0; i < 1000; i++) free(make(48));
    leak_after();
    stop = 1;
    pthread_join(thread, NULL);
    static const char sandboxed[] = "sandboxed\n", probed[] = "probed\n";
    if (probe) (void)!write(1, probed, sizeof probed - 1);
    else (void)!write(1, sandboxed, sizeof sandboxed - 1);
    return 3;
}
