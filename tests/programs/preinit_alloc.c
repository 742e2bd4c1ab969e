/* An executable whose .preinit_array function allocates: it runs before any library's
 * constructor, libc's too, so before libc has set `environ`. main then prints what its
 * environment holds: the same traced as natively. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;
void *volatile kept;

static void before_libc(int argc, char **argv, char **envp)
{
    (void)argc, (void)argv, (void)envp;
    void *volatile lost = malloc(111); /* @leak:preinit_lost */
    lost = NULL;
    void *volatile freed = malloc(222);
    free(freed);
    kept = malloc(333); /* @leak:preinit_kept */
}

__attribute__((section(".preinit_array"), used)) static void (*preinit)(int, char **, char **) =
    before_libc;

int main(void)
{
    int entries = 0, settings = 0;
    for (char **e = environ; *e; e++, entries++)
        settings += strncmp(*e, "LEAKTRACE_", 10) == 0 || strncmp(*e, "LD_PRELOAD=", 11) == 0;
    printf("environment: %d entries, %d of them LEAKTRACE_* or LD_PRELOAD\n", entries, settings);
    void *volatile lost = malloc(44); /* @leak:main_lost */
    lost = NULL;
    return 0;
}
