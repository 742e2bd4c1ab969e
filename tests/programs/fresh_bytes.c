/* Prints bytes of new blocks the program has not written: what glibc's MALLOC_PERTURB_ fills
 * them with in a debugging run (leaktrace must leave that pattern alone). With an argument N,
 * the program sets the pattern itself first: mallopt(M_PERTURB, N). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc > 1 && !mallopt(M_PERTURB, atoi(argv[1]))) return 2;
    unsigned char *small = malloc(64);
    unsigned char *grown = realloc(malloc(8), 200);
    printf("%02x %02x %02x\n", small[8], small[40], grown[100]);
    free(small);
    free(grown);
    return 0;
}
