/* errno through the hooks: malloc and free leave it as the real functions do (glibc's free
 * keeps it, as POSIX 2024 requires, and programs rely on that: gnulib's free-posix). The
 * shim's own work inside them makes system calls that fail (a contended lock's futex wait,
 * mapping a table on a kernel without VMA names, start-up, a thread's first allocation); none
 * may show. Prints how many calls changed errno: 0 natively. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4
#define ROUNDS 100000

static void *volatile mailbox[64];
static _Atomic long changed_by_malloc, changed_by_free;

static void *churn(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < ROUNDS; i++) {
        errno = 4321;
        void *p = malloc(16 + (size_t)(i % 300)); /* tables grow: new mappings */
        if (errno != 4321) changed_by_malloc++;
        /* Blocks change hands between threads: the table's shards are shared and locked. */
        void *old = __atomic_exchange_n(&mailbox[(unsigned)(i * 7 + id) % 64], p, __ATOMIC_ACQ_REL);
        errno = 1234;
        free(old);
        if (errno != 1234) changed_by_free++;
    }
    return NULL;
}

int main(void)
{
    errno = 777; /* the process's first allocation starts the shim */
    void *first = malloc(10);
    if (errno != 777) changed_by_malloc++;
    errno = 888;
    free(first);
    if (errno != 888) changed_by_free++;
    pthread_t threads[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, churn, (void *)i);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    for (int i = 0; i < 64; i++) free(mailbox[i]);
    errno = 0;
    void *huge = malloc((size_t)1 << 62); /* fails: ENOMEM, as natively */
    printf("malloc changed errno %ld times, free %ld; a failed malloc: %s, errno %s\n",
           (long)changed_by_malloc, (long)changed_by_free, huge ? "a block" : "NULL",
           errno == ENOMEM ? "ENOMEM" : "other");
    return 0;
}
