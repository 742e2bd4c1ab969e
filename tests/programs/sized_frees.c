/* Frees blocks with C23's free_sized and free_aligned_sized, as a program built against
 * glibc 2.43 or later does (and GLib's g_free_sized there): 10 of each, none left live. Then
 * keeps one block reachable and loses another. The references are weak: where the C library
 * has neither function (glibc < 2.43) only the shim defines them, and without it the program
 * says so and exits with 3. */
#include <stdio.h>
#include <stdlib.h>

extern void free_sized(void *p, size_t size) __attribute__((weak));
extern void free_aligned_sized(void *p, size_t alignment, size_t size) __attribute__((weak));

void *volatile kept;
void *volatile lost;

int main(void)
{
    if (!free_sized || !free_aligned_sized) {
        puts("no sized frees here");
        return 3;
    }
    for (int i = 0; i < 10; i++) {
        void *p = malloc(100 + (size_t)i); /* @leak:sized */
        kept = p;
        free_sized(p, 100 + (size_t)i);
        void *q = aligned_alloc(64, 256); /* @leak:aligned */
        kept = q;
        free_aligned_sized(q, 64, 256);
    }
    kept = malloc(33); /* @leak:kept */
    lost = malloc(44); /* @leak:lost */
    lost = NULL;
    return 0;
}
