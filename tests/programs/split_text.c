/* Built non-PIE with .text moved away from .init/.plt (-Wl,--section-start=.text=0x800000),
 * so the executable has two executable segments and the first is a few bytes, as node's
 * (.init/.plt, .text, lpstub). One leak of 41 bytes two calls deep. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static void *leak_here(void)
{
    return malloc(41); /* @leak:split */
}

int main(void)
{
    void *volatile p = leak_here();
    printf("%d\n", p != NULL);
    p = NULL;
    return 0;
}
