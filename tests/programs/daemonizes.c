/* daemon() as servers call it: the process that calls it ends inside the C library (its
 * _exit is libc's own), the daemon runs on in a new session, in /, on /dev/null.
 *   daemonizes REPORT self   the program itself calls daemon()
 *   daemonizes REPORT child  a forked child does; the program prints what the daemon saw
 * The daemon writes what it saw to REPORT (renamed into place when complete). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

__attribute__((noinline)) static void lose(size_t n)
{
    sink = malloc(n); /* @leak:before_daemon */
    sink = NULL;
}

__attribute__((noinline)) static void lose_in_daemon(size_t n)
{
    sink = malloc(n); /* @leak:in_daemon */
    sink = NULL;
}

static int on_dev_null(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
}

static void become_daemon(const char *report)
{
    lose(33);
    if (daemon(0, 0) != 0) _exit(3);
    lose_in_daemon(55);
    char cwd[256] = "?", part[4096];
    if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, "?");
    snprintf(part, sizeof part, "%s.part", report);
    FILE *f = fopen(part, "w");
    if (!f) _exit(4);
    fprintf(f, "cwd %s, session leader %d, on /dev/null %d%d%d\n", cwd, getsid(0) == getpid(),
            on_dev_null(0), on_dev_null(1), on_dev_null(2));
    fclose(f);
    rename(part, report);
    exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 3) return 2;
    if (strcmp(argv[2], "self") == 0) become_daemon(argv[1]);
    pid_t child = fork();
    if (child == 0) become_daemon(argv[1]);
    int status = 0;
    waitpid(child, &status, 0);
    for (int i = 0; i < 1000 && access(argv[1], F_OK) != 0; i++) usleep(10000);
    char line[512] = "no report\n";
    FILE *f = fopen(argv[1], "r");
    if (f && !fgets(line, sizeof line, f)) strcpy(line, "empty report\n");
    if (f) fclose(f);
    printf("daemon()'s caller exited %d; the daemon saw: %s", WEXITSTATUS(status), line);
    return 0;
}
