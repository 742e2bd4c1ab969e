/* A program whose image takes most of its address-space limit: a bss of IMAGE_MIB MiB (set at
 * compile time). Leaks 222 bytes, exits with status 12. */
#include <stdio.h>
#include <stdlib.h>

static char image[(size_t)IMAGE_MIB << 20];
void *volatile sink;

int main(void)
{
    image[0] = 1;
    sink = malloc(222); /* @leak:large_image */
    printf("ran with a %d MiB image\n", IMAGE_MIB + image[1]);
    return 12;
}
