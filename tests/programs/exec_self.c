/* Replaces its own image by exec, without fork: the first image leaks 111 bytes (and, in
 * "fail" mode, first tries an exec that fails, which must not end its capture), the second
 * image (argv[1] == "second") leaks 222 bytes and exits with status 12. The exec is execl's;
 * argv[1] "fexecve", "execveat", "sys_execve" or "sys_execveat" makes it that way instead
 * (the last two through syscall()); "clean" keeps the first image's block reachable (its
 * report has no loss record of the kinds shown by default). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

void *volatile sink;

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "second")) {
        sink = malloc(222); /* @leak:second_image */
        printf("second image\n");
        return 12;
    }
    sink = malloc(111); /* @leak:first_image */
    if (argc < 2 || strcmp(argv[1], "clean") != 0) sink = NULL;
    printf("first image\n");
    fflush(stdout);
    if (argc > 1 && !strcmp(argv[1], "fail")) {
        execl("/nonexistent/program", "program", (char *)NULL);
        sink = malloc(333); /* @leak:after_failed_exec */
        sink = NULL;
    }
    char *second[] = { argv[0], "second", NULL };
    const char *how = argc > 1 ? argv[1] : "";
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (!strcmp(how, "fexecve")) fexecve(fd, second, environ);
    else if (!strcmp(how, "execveat")) execveat(fd, "", second, environ, AT_EMPTY_PATH);
    else if (!strcmp(how, "sys_execve")) syscall(SYS_execve, "/proc/self/exe", second, environ);
    else if (!strcmp(how, "sys_execveat")) syscall(SYS_execveat, fd, "", second, environ, AT_EMPTY_PATH);
    else execl("/proc/self/exe", argv[0], "second", (char *)NULL);
    perror("exec");
    return 1;
}
