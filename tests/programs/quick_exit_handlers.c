/* quick_exit runs the at_quick_exit handlers before it ends the process: what they free is
 * gone from the report and what they leak is in it, as in valgrind's check, which runs after
 * them. Ends with status 3. */
#include <stdlib.h>

void *volatile kept;
void *volatile sink;

__attribute__((noinline)) static void leak_in_handler(void)
{
    sink = malloc(33); /* @leak:in_handler */
    sink = NULL;
}

static void on_quick_exit(void)
{
    free(kept);
    leak_in_handler();
}

int main(void)
{
    kept = malloc(1000);
    at_quick_exit(on_quick_exit);
    quick_exit(3);
}
