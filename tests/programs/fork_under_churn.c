/* After LLVM's sanitizer_common allocator_fork_no_hang case, written anew: processes fork
 * while ten threads of theirs allocate and free without pause, so the fork copies whatever
 * the tracer's locks and tables held at that instant. Each forked child then allocates
 * 10,000 blocks of 4 bytes and says "done": it must neither hang nor lose count. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROCESSES 8
#define THREADS 10
#define CHILD_BLOCKS 10000

static atomic_int stop;
static void *volatile sink;

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(size_t)arg;
    while (!atomic_load(&stop)) {
        void *p = malloc(4 + (rand_r(&seed) & 255)); /* @leak:churn */
        sink = p;
        free(p);
    }
    return NULL;
}

static void child(void)
{
    for (int i = 0; i < CHILD_BLOCKS; i++) sink = malloc(4); /* @leak:child */
    (void)!write(1, "done\n", 5);
}

static void fork_under_churn(void)
{
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, churn, (void *)(size_t)i);
    usleep(20000);
    pid_t pid = fork();
    if (pid == 0) {
        child();
        _exit(0);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    waitpid(pid, NULL, 0);
}

int main(void)
{
    for (int i = 0; i < PROCESSES; i++)
        if (fork() == 0) {
            fork_under_churn();
            exit(0);
        }
    for (int i = 0; i < PROCESSES; i++) wait(NULL);
    return 0;
}
