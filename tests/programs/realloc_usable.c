/* The whole usable size of a block is the program's (malloc_usable_size says so; Redis's
 * strings use it): what it wrote there must survive realloc and reallocarray, growing in
 * place or moving. Prints how many bytes survived of each; the same with and without us. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    for (size_t asked = 1; asked <= 100; asked += 11) {
        for (int how = 0; how < 2; how++) {
            unsigned char *p = malloc(asked);
            size_t usable = malloc_usable_size(p);
            memset(p, 'A', usable);
            p = how ? reallocarray(p, 2, 2048) : realloc(p, usable + 8);
            size_t kept = 0;
            while (kept < usable && p[kept] == 'A') kept++;
            printf("%zu %s: %zu of %zu\n", asked, how ? "reallocarray" : "realloc", kept, usable);
            free(p);
        }
    }
    return 0;
}
