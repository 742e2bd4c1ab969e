/* Adds eight environment variables with setenv and binds a text domain, then returns from main
 * while a second thread still runs: leaktrace then does not call __libc_freeres, so glibc's
 * setenv bookkeeping (strings, environment array, a tsearch tree with tagged pointers) and the
 * domain's name and binding are live at exit. No leak of the program's own. */
#include <libintl.h>
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
    bindtextdomain("leaktrace-test", "/nonexistent/locale");
    textdomain("leaktrace-test");
    pthread_t thread;
    if (pthread_create(&thread, NULL, idle, NULL) != 0) return 2;
    puts("exiting with a thread still running");
    return 0;
}
