/* Adds eight environment variables with setenv, then returns from main while a second thread
 * still runs: leaktrace then does not call __libc_freeres, so glibc's setenv bookkeeping
 * (strings, environment array, a tsearch tree with tagged pointers) is live at exit. No leak
 * of the program's own. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *idle(void *unused)
{
    (void)unused;
    for (;;) pause();
    return NULL;
}

int main(void)
{
    char name[16];
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "LT_VAR%d", i);
        setenv(name, "value", 1);
    }
    pthread_t thread;
    if (pthread_create(&thread, NULL, idle, NULL) != 0) return 2;
    puts("exiting with a thread still running");
    return 0;
}
