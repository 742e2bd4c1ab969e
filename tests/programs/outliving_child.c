/* The parent forks a child and exits at once: the child ends 0.3 s later, after leaking 4,000
 * bytes (as multiprocessing's resource tracker ends after the program). With argv[1] "daemon"
 * the child runs on for 30 s instead (a daemon the program started, its output closed) and
 * leaks nothing. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *volatile sink;

int main(int argc, char **argv)
{
    int daemon = argc > 1 && strcmp(argv[1], "daemon") == 0;
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) {
        usleep(300000);
        if (daemon) {
            close(1); /* as daemons do: whoever reads the program's output is not held */
            close(2);
            sleep(30);
            return 0;
        }
        sink = malloc(4000); /* @leak:outliving */
        sink = NULL;
        return 0;
    }
    printf("parent %s\n", daemon ? "leaves a daemon" : "done");
    return 0;
}
