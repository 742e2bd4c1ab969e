/* Every thread blocks every signal, and one reads them from a signalfd, printing each: a
 * scan's signal sent to that thread would be read there as the program's own. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

static atomic_int reading;
static int signals_fd;

static void *signal_thread(void *arg)
{
    (void)arg;
    void *volatile kept = malloc(300); /* @leak:kept */
    (void)kept;
    atomic_store(&reading, 1);
    struct signalfd_siginfo info;
    while (read(signals_fd, &info, sizeof info) == sizeof info) {
        printf("signal thread read signal %u\n", info.ssi_signo);
        fflush(stdout);
    }
    return NULL;
}

int main(void)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    signals_fd = signalfd(-1, &all, SFD_CLOEXEC);
    pthread_t thread;
    if (signals_fd < 0 || pthread_create(&thread, NULL, signal_thread, NULL) != 0) return 3;
    while (!atomic_load(&reading)) sched_yield();
    struct timespec moment = { 0, 20 * 1000000L };
    nanosleep(&moment, NULL);
    puts("main done");
    return 0;
}
