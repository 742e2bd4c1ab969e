/* A program that enters a user namespace and changes its root directory, as rootless
 * sandboxes do (`unshare -U`, bubblewrap): unshare(CLONE_NEWUSER) is refused to a process with
 * more than one thread, and after chroot neither the capture directory nor /proc is there.
 * One block is leaked before (@leak:before) and one after (@leak:after). argv[1]: an empty
 * directory for the new root. Exits 2 (message on stderr) if the system refuses either call. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) static void leak_before(void)
{
    char *p = malloc(100); /* @leak:before */
    memset(p, 0, 100);
    __asm__ volatile("" : : "r"(p) : "memory");
}

__attribute__((noinline)) static void leak_after(void)
{
    char *p = malloc(200); /* @leak:after */
    memset(p, 0, 200);
    __asm__ volatile("" : : "r"(p) : "memory");
}

int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    leak_before();
    if (unshare(CLONE_NEWUSER) != 0) {
        perror("unshare");
        return 2;
    }
    if (chroot(argv[1]) != 0 || chdir("/") != 0) {
        perror("chroot");
        return 2;
    }
    leak_after();
    static const char done[] = "jailed\n";
    (void)!write(1, done, sizeof done - 1);
    return 0;
}
