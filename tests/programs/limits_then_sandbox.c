/* As OpenSSH's sandboxed child: leaks 77 bytes, then sets RLIMIT_FSIZE to 0 (argv[1] "f"),
 * RLIMIT_NOFILE to 0 ("n") or both ("fn"), and installs a seccomp filter (one that allows
 * everything); prints one line and exits 4. Natively nothing of this shows; under leaktrace
 * the capture, which the shim writes just before the filter goes in, cannot be written. */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

void *volatile sink;

int main(int argc, char **argv)
{
    sink = malloc(77); /* @leak:before_limits */
    sink = NULL;
    const char *which = argc > 1 ? argv[1] : "";
    struct rlimit zero = { 0, 0 };
    if (strchr(which, 'f') && setrlimit(RLIMIT_FSIZE, &zero) != 0) return 1;
    if (strchr(which, 'n') && setrlimit(RLIMIT_NOFILE, &zero) != 0) return 1;
    struct sock_filter allow[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
    struct sock_fprog program = { 1, allow };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 1;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) return 1;
    puts("sandboxed");
    return 4;
}
