/* Reads its own thread count the ways programs do (Python 3.12's fork warning: fopen of
 * /proc/self/stat; psutil: open of /proc/PID/status), through fopen, open, openat, the
 * fortified __open_2 and a task's own file, and prints each count. argv[1]: threads to start
 * first (they wait in pause()). stderr: the entries of /proc/self/task, which the shim's
 * thread is among. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

void *volatile sink;
volatile int read_only = O_RDONLY; /* not a constant: the fortified open calls __open_2 */

static int stat_count(const char *text)
{
    const char *p = strrchr(text, ')');
    for (int spaces = 0; p && *p; p++)
        if (*p == ' ' && ++spaces == 18) return atoi(p + 1);
    return -1;
}

static int status_count(const char *text)
{
    const char *p = strstr(text, "\nThreads:\t");
    return p ? atoi(p + 10) : -1;
}

static void show(const char *how, const char *path, const char *label)
{
    char text[4096] = { 0 };
    ssize_t n = -1;
    if (strcmp(how, "fopen") == 0) {
        FILE *f = fopen(path, "re");
        if (f) {
            n = (ssize_t)fread(text, 1, sizeof text - 1, f);
            fclose(f);
        }
    } else {
        int fd = strcmp(how, "open") == 0 ? open(path, read_only)
                                          : openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            n = read(fd, text, sizeof text - 1);
            close(fd);
        }
    }
    const char *base = strrchr(path, '/') + 1;
    if (n < 0) printf("%s %s: cannot read\n", how, label);
    else printf("%s %s: %d\n", how, label, strcmp(base, "stat") == 0 ? stat_count(text) : status_count(text));
}

static void *waiter(void *arg)
{
    (void)arg;
    pause();
    return NULL;
}

int main(int argc, char **argv)
{
    sink = malloc(64); /* the shim's thread starts with the first allocation */
    for (int i = 0; i < (argc > 1 ? atoi(argv[1]) : 0); i++) {
        pthread_t thread;
        pthread_create(&thread, NULL, waiter, NULL);
    }
    char by_pid[64], by_tid[96];
    snprintf(by_pid, sizeof by_pid, "/proc/%d/status", (int)getpid());
    snprintf(by_tid, sizeof by_tid, "/proc/self/task/%d/stat", (int)syscall(SYS_gettid));
    const char *paths[][2] = { { "/proc/self/stat", "self/stat" }, { "/proc/self/status", "self/status" },
                               { "/proc/thread-self/stat", "thread-self/stat" },
                               { by_pid, "PID/status" }, { by_tid, "task/TID/stat" } };
    const char *hows[] = { "fopen", "open", "openat" };
    for (size_t h = 0; h < sizeof hows / sizeof *hows; h++)
        for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) show(hows[h], paths[i][0], paths[i][1]);
    DIR *tasks = opendir("/proc/self/task");
    int entries = 0;
    for (struct dirent *e; tasks && (e = readdir(tasks));) entries += e->d_name[0] != '.';
    if (tasks) closedir(tasks);
    fprintf(stderr, "tasks %d\n", entries);
    return 0;
}
