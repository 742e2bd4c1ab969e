/* Sleeps of every kind while `leaktrace scan` stops the process again and again: each sleeps
 * its whole time and returns 0, as without scans; a signal of the program's own (SIGALRM)
 * still ends a sleep early, and pause and sigsuspend wait for it, not for a scan. Prints each call's result and the seconds it took. */
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static void on_alarm(int sig) { (void)sig; }
int main(void) {
    void * volatile keep = malloc(10); (void)keep;
    double t0 = now();
    unsigned left = sleep(2);
    printf("sleep %u %.1f\n", left, now() - t0); fflush(stdout);
    t0 = now(); int u = usleep(1000000);
    printf("usleep %d %.1f\n", u, now() - t0); fflush(stdout);
    struct timespec req = {1, 0}, rem = {0, 0};
    t0 = now(); int n = nanosleep(&req, &rem);
    printf("nanosleep %d %.1f\n", n, now() - t0); fflush(stdout);
    t0 = now(); int c = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
    printf("clock_nanosleep %d %.1f\n", c, now() - t0); fflush(stdout);
    t0 = now(); int pl = poll(NULL, 0, 1000);
    printf("poll %d %.1f\n", pl, now() - t0); fflush(stdout);
    struct timeval tv = {1, 0};
    t0 = now(); int se = select(0, NULL, NULL, NULL, &tv);
    printf("select %d %.1f\n", se, now() - t0); fflush(stdout);
    int ep = epoll_create1(0); struct epoll_event ev;
    t0 = now(); int ew = epoll_wait(ep, &ev, 1, 1000);
    printf("epoll_wait %d %.1f\n", ew, now() - t0); fflush(stdout);
    signal(SIGALRM, on_alarm); alarm(1);
    t0 = now(); left = sleep(3);
    printf("alarmed sleep %u %.1f\n", left, now() - t0); fflush(stdout);
    alarm(2);
    t0 = now(); int p = pause();
    printf("pause %d %.1f\n", p, now() - t0); fflush(stdout);
    sigset_t none; sigemptyset(&none); alarm(1);
    t0 = now(); int s = sigsuspend(&none);
    printf("sigsuspend %d %.1f\n", s, now() - t0);
    return 0;
}
