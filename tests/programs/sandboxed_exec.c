/* What man-db does to run groff and its other helpers: a child puts itself under a seccomp
 * filter and execs. Filters survive exec, so the next image (here this program again, with
 * argv[1] "helper") starts under it: mkdir and mkdirat fail with ENOSYS, as under man-db's
 * filter. The helper leaks one block (@leak:helper), prints a line and exits 5; the parent
 * waits for it and exits with its status. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define DENY(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
                 BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS)

static void *volatile sink;

__attribute__((noinline)) static void leak_in_helper(void)
{
    char *p = malloc(123); /* @leak:helper */
    memset(p, 1, 123);
    sink = p;
    sink = NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "helper") == 0) {
        leak_in_helper();
        printf("helper ran under the filter\n");
        return 5;
    }
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) return 2;
    if (child == 0) {
        struct sock_filter filter[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            DENY(SYS_mkdir), DENY(SYS_mkdirat),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog program = { sizeof filter / sizeof filter[0], filter };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0)
            _exit(2);
        execl("/proc/self/exe", argv[0], "helper", (char *)NULL);
        _exit(127);
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return 2;
    return WEXITSTATUS(status);
}
