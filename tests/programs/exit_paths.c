/* Leaks 77 bytes, then ends the way argv[1] says: return, exit, _exit, quick_exit,
 * thread-exit, sigterm, sigint. The capture must be written in every case. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *volatile sink;

static void *exit_from_thread(void *arg)
{
    (void)arg;
    exit(4);
}

int main(int argc, char **argv)
{
    sink = malloc(77); /* @leak:exit_paths */
    const char *how = argc > 1 ? argv[1] : "return";
    if (!strcmp(how, "exit")) exit(5);
    if (!strcmp(how, "_exit")) _exit(6);
    if (!strcmp(how, "quick_exit")) quick_exit(8);
    if (!strcmp(how, "sigterm")) raise(SIGTERM);
    if (!strcmp(how, "sigint")) raise(SIGINT);
    if (!strcmp(how, "thread")) {
        pthread_t t;
        pthread_create(&t, NULL, exit_from_thread, NULL);
        pause();
    }
    return 7;
}
