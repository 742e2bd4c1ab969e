/* A program with a logging function of its own named `log`, exported (-rdynamic, as for
 * backtrace()): the shim's sampling must never call it in place of libm's logarithm, and must
 * not load libm into a program that does not use it. Prints how often its `log` ran and
 * whether libm is in the process. */
#define _GNU_SOURCE
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int calls;

void log(const char *message)
{
    (void)message;
    calls++;
}

static int find_libm(struct dl_phdr_info *info, size_t size, void *found)
{
    (void)size;
    if (strstr(info->dlpi_name, "/libm.so")) *(int *)found = 1;
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    void *volatile sink;
    for (int i = 0; i < n; i++) sink = malloc(4096); /* @leak:each_block (one a sample point) */
    (void)sink;
    log("done");
    int libm = 0;
    dl_iterate_phdr(find_libm, &libm);
    printf("log called %d time(s); libm %s\n", calls, libm ? "loaded" : "not loaded");
    return 0;
}
