/* A forked child whose second thread ends the process with exit() while the child's main
 * thread waits for it (the thread's TLS vector, which glibc allocates, is still live then:
 * leaktrace's default suppressions leave it out, as they do in the child's own report). The
 * child also keeps a block in a thread-local: still reachable. Nothing is lost. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

__thread void *volatile kept_here;

static void *end_process(void *arg)
{
    (void)arg;
    exit(0);
}

int main(void)
{
    kept_here = malloc(1337); /* @leak:kept */
    pid_t pid = fork();
    if (pid == 0) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, end_process, NULL) != 0) return 2;
        pthread_join(thread, NULL);
        return 3;
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
