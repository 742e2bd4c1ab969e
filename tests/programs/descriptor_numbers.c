/* Opens and closes /dev/null over and over for a second and counts the opens that did not get
 * descriptor 3, the lowest free one (natively: none). argv[1] says where the loop runs:
 * "plain" in main; "closefrom" after closing every descriptor from 3 on (a daemon's start,
 * which closes the shim's too) and a pause; "fork" in the parent, then in a child; "mainexit" in a worker
 * thread after main called pthread_exit. Leaks 10 bytes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void *volatile sink;

static void *open_and_close(void *arg)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long elsewhere = 0;
    do {
        int fd = open("/dev/null", O_RDONLY);
        if (fd != 3) elsewhere++;
        close(fd);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 1000000000L);
    printf("%s: %ld opens not at 3\n", (const char *)arg, elsewhere);
    fflush(stdout);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "plain";
    sink = malloc(10); /* @leak:numbers */
    sink = NULL;
    if (!strcmp(mode, "closefrom")) {
        closefrom(3);
        /* The shim opens again what it lost, once (its control socket a second later): the
         * loop measures the looks after that. */
        usleep(1500 * 1000);
        open_and_close("closefrom");
    } else if (!strcmp(mode, "fork")) {
        open_and_close("parent");
        pid_t child = fork();
        if (child == 0) {
            open_and_close("child");
            _exit(0);
        }
        waitpid(child, NULL, 0);
    } else if (!strcmp(mode, "mainexit")) {
        /* pthread_exit loads libgcc_s for its unwinding, opening a file while the worker runs:
         * loaded first, so that natively too every open gets 3. */
        dlopen("libgcc_s.so.1", RTLD_NOW);
        pthread_t worker;
        pthread_create(&worker, NULL, open_and_close, "worker");
        pthread_exit(NULL);
    } else {
        open_and_close("plain");
    }
    return 0;
}
