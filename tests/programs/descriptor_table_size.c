/* Prints the size of the process's descriptor table (FDSize in /proc/self/status) as main
 * starts and again after two threads have allocated: a table grown while threads share it
 * makes the thread that grows it wait for an RCU grace period (10-20 ms). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long table_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long size = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "FDSize:", 7) == 0) size = strtol(line + 7, NULL, 10);
    if (f) fclose(f);
    return size;
}

void *volatile sink;

static void *allocate(void *unused)
{
    (void)unused;
    for (int i = 0; i < 1000; i++) {
        sink = malloc(4096);
        free(sink);
    }
    return NULL;
}

int main(void)
{
    long at_start = table_size();
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) pthread_create(&threads[i], NULL, allocate, NULL);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    printf("%ld %ld\n", at_start, table_size());
    return 0;
}
