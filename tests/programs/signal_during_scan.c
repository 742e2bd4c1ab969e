/* Waits in sigsuspend for SIGUSR1 while a scan holds it: the signal comes while the thread
 * is parked, and the wait must end with it, as it would without the scan. Many live blocks
 * make the scan last long enough to send the signal in the middle of it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static volatile sig_atomic_t got;
static void on_usr1(int sig) { (void)sig; got = 1; }
int main(void)
{
    enum { BLOCKS = 500000 };
    void **keep = malloc(BLOCKS * sizeof *keep);
    for (int i = 0; i < BLOCKS; i++) keep[i] = malloc(16);
    signal(SIGUSR1, on_usr1);
    sigset_t none;
    sigemptyset(&none);
    printf("ready\n");
    fflush(stdout);
    int r = sigsuspend(&none);
    printf("woke %d %d\n", r, (int)got);
    return keep[0] == NULL;
}
