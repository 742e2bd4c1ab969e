/* Leaks whose last pointers stay behind in memory the allocator hands out again: an array of
 * pointers to strings is freed without the strings, and a new block the program writes only in
 * part takes the array's memory. The strings are lost (valgrind and LeakSanitizer say so); the
 * array's old words in the new block must not make them look reachable.
 * Exits 3 if a block's contents did not survive realloc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *volatile kept[4];

static __attribute__((noinline)) char *lost_string(void)
{
    char *s = strdup("a lost string"); /* @leak:string (14 bytes) */
    __asm__ volatile("" ::: "memory"); /* not a tail call: this frame stays in the stack */
    return s;
}

/* Returns the array's size in bytes. */
static __attribute__((noinline)) size_t drop_array(size_t n)
{
    char **strings = malloc(n * sizeof *strings);
    for (size_t i = 0; i < n; i++) strings[i] = lost_string();
    free(strings);
    return n * sizeof(char *);
}

int main(void)
{
    /* glibc's per-thread cache hands the same chunk back for the same size. */
    size_t bytes = drop_array(10);
    kept[0] = malloc(bytes); /* @leak:same_size */
    ((char *)kept[0])[0] = 1;

    /* Too large for that cache: the small block below is split off the freed array's chunk,
     * and realloc grows it in place over the rest of the array. */
    bytes = drop_array(400);
    char *grown = malloc(16);
    strcpy(grown, "fifteen chars!!");
    grown = realloc(grown, bytes); /* @leak:grown */
    if (!grown || strcmp(grown, "fifteen chars!!") != 0) return 3;
    kept[1] = grown;

    bytes = drop_array(8);
    kept[2] = aligned_alloc(16, bytes); /* @leak:aligned */
    ((char *)kept[2])[0] = 1;

    /* Over a page (nginx's epoll event list: 6 KiB, of which the kernel writes a few entries):
     * glibc hands the freed array's chunk back from its unsorted bin. */
    bytes = drop_array(800);
    kept[3] = malloc(bytes); /* @leak:over_a_page */
    ((char *)kept[3])[0] = 1;
    puts("done");
    return 0;
}
