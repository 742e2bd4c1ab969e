/* Replaces its own image by exec, without fork: the first image leaks 111 bytes (and, in
 * "fail" mode, first tries an exec that fails, which must not end its capture), the second
 * image (argv[1] == "second") leaks 222 bytes and exits with status 12. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *volatile sink;

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "second")) {
        sink = malloc(222); /* @leak:second_image */
        printf("second image\n");
        return 12;
    }
    sink = malloc(111); /* @leak:first_image */
    sink = NULL;
    printf("first image\n");
    fflush(stdout);
    if (argc > 1 && !strcmp(argv[1], "fail")) {
        execl("/nonexistent/program", "program", (char *)NULL);
        sink = malloc(333); /* @leak:after_failed_exec */
        sink = NULL;
    }
    execl("/proc/self/exe", argv[0], "second", (char *)NULL);
    perror("exec");
    return 1;
}
