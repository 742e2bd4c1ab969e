/* A thread that runs on while main returns: natively, the process ends right after the exit
 * handlers, and the thread with it. The thread writes to a shared file mapping when it last
 * ran after the program's exit handler did; the test reads how long that was. */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static atomic_int exiting, running;
static struct times {
    double exit_handler, thread_last_ran;
} *shared;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *spin(void *unused)
{
    (void)unused;
    atomic_store(&running, 1);
    for (;;)
        if (atomic_load(&exiting)) shared->thread_last_ran = now();
    return NULL;
}

static void last_exit_handler(void)
{
    shared->exit_handler = now();
    atomic_store(&exiting, 1);
}

int main(int argc, char **argv)
{
    int fd = argc > 1 ? open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600) : -1;
    if (fd < 0 || ftruncate(fd, sizeof *shared) != 0) return 1;
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (shared == MAP_FAILED) return 1;
    pthread_t thread;
    if (pthread_create(&thread, NULL, spin, NULL) != 0) return 1;
    while (!atomic_load(&running)) usleep(100);
    atexit(last_exit_handler);
    puts("main returns");
    return 0;
}
