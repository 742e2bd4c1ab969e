/* A program with a large live heap for the reachability-scan benchmark: BLOCKS blocks of
 * SIZE bytes (1 GiB by default), each holding a pointer to the next one (a chain, so the scan
 * follows pointers through the whole heap) and ordinary data; a global root keeps the chain's
 * head, and every 8th block is cut out of the chain and lost. It then exits: leaktrace scans
 * at exit and records how long it took in the capture.
 * usage: scan_heap [BLOCKS [SIZE]] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct block { struct block *next; };

struct block *volatile root;

int main(int argc, char **argv)
{
    size_t count = argc > 1 ? strtoul(argv[1], NULL, 10) : 1u << 20;
    size_t size = argc > 2 ? strtoul(argv[2], NULL, 10) : 1024;
    struct block *head = NULL;
    for (size_t i = 0; i < count; i++) {
        struct block *b = malloc(size);
        uint64_t *words = (uint64_t *)b;
        for (size_t w = 1; w < size / 8; w++) words[w] = i * 31 + w; /* not pointers */
        if (i % 8 == 7) { b->next = NULL; continue; } /* lost */
        b->next = head;
        head = b;
    }
    root = head;
    fprintf(stderr, "live heap: %zu blocks of %zu bytes (%.2f GiB)\n", count, size,
            (double)(count * size) / (1u << 30));
    return 0;
}
