/* Lost structures whose blocks point to each other, and many small leaks from one line.
 * Each structure's nodes come from one allocation line (in a loop), so which node the scan
 * picks to lead a lost group (the lowest address, as in valgrind) does not change the records.
 *
 *   ring:    3 nodes of 40 bytes in a cycle, nothing else points to them:
 *            1 definitely lost (owning the other 2), 2 indirectly lost
 *   linked:  a cycle of 2 nodes (56 bytes) pointing to another cycle of 2 (72 bytes) that does
 *            not point back: 1 definitely lost owning 3 indirectly lost, whatever the order the
 *            scan meets them in
 *   tree:    7 nodes of 48 bytes (a root, 2 children, 4 grandchildren), the root kept in a
 *            global; one child cut off: 4 still reachable, the child definitely lost, its 2
 *            children indirectly lost
 *   bytes:   1000 blocks of 1 byte from one line, all lost: one loss record of 1000 blocks
 *   zero:    malloc(0) twice, one kept and one lost: 0 bytes in 1 block each
 *   before:  a block whose only "pointer" is its address minus one: definitely lost */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scrub_stack.h"

struct node {
    struct node *link[2];
};

struct node *volatile tree_root;

/* Makes the compiler assume `p` escapes: without it, -O2 removes allocations that nothing
 * reads. */
#define ESCAPE(p) __asm__ volatile("" : : "g"(p) : "memory")

void *volatile kept_empty;
char *volatile one_before;

__attribute__((noinline)) static void make_ring(void)
{
    struct node *n[3];
    for (int i = 0; i < 3; i++) n[i] = calloc(1, 40); /* @leak:ring */
    for (int i = 0; i < 3; i++) n[i]->link[0] = n[(i + 1) % 3];
    ESCAPE(n);
}

__attribute__((noinline)) static void make_linked_cycles(void)
{
    struct node *a[2], *b[2];
    for (int i = 0; i < 2; i++) b[i] = calloc(1, 72); /* @leak:linked_b */
    for (int i = 0; i < 2; i++) a[i] = calloc(1, 56); /* @leak:linked_a */
    a[0]->link[0] = a[1];
    a[1]->link[0] = a[0];
    b[0]->link[0] = b[1];
    b[1]->link[0] = b[0];
    a[1]->link[1] = b[0]; /* a points to b; b never points back */
    ESCAPE(a);
    ESCAPE(b);
}

__attribute__((noinline)) static void make_tree(void)
{
    struct node *n[7];
    for (int i = 0; i < 7; i++) n[i] = calloc(1, 48); /* @leak:tree */
    for (int i = 0; i < 3; i++) {
        n[i]->link[0] = n[2 * i + 1];
        n[i]->link[1] = n[2 * i + 2];
    }
    tree_root = n[0];
    n[0]->link[1] = NULL; /* cut off n[2] and its children n[5], n[6] */
}

__attribute__((noinline)) static void make_bytes(void)
{
    for (int i = 0; i < 1000; i++) {
        char *p = malloc(1); /* @leak:bytes */
        *p = (char)i;
        ESCAPE(p);
    }
}

__attribute__((noinline)) static void make_empty(void)
{
    kept_empty = malloc(0); /* @leak:zero_kept */
    void *volatile lost = malloc(0); /* @leak:zero_lost */
    lost = NULL;
}

__attribute__((noinline)) static void make_one_before(void)
{
    char *p = malloc(64); /* @leak:before */
    memset(p, 7, 64);
    one_before = p - 1;
}

int main(void)
{
    below(make_ring);
    below(make_linked_cycles);
    below(make_tree);
    below(make_bytes);
    below(make_empty);
    below(make_one_before);
    scrub_stack();
    static const char done[] = "structures made\n";
    write(1, done, sizeof done - 1);
    return 0;
}
