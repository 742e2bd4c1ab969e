/* The nine pointer-chain shapes of valgrind's manual (memcheck, "Looking for Memory Leaks"):
 * roots R (globals), heap blocks A and B, start pointers ---> and interior pointers -?->.
 *
 *   1  R ---> A                 A still reachable
 *   2  R ---> A ---> B          A, B still reachable
 *   3         A                 A definitely lost
 *   4         A ---> B          A definitely lost, B indirectly lost
 *   5  R -?-> A                 A possibly lost
 *   6  R ---> A -?-> B          A still reachable, B possibly lost
 *   7  R -?-> A ---> B          A, B possibly lost
 *   8  R -?-> A -?-> B          A, B possibly lost
 *   9         A -?-> B          A definitely lost, B indirectly lost
 *
 * Every block has a size of its own (A of case n: 32 + 16n bytes, B: 24 + 16n), so a block in
 * the wrong kind changes the totals. Interior pointers point 8 bytes in, where no valgrind
 * heuristic applies (the first word is a pointer or NULL, not a length). Only write() is
 * used: stdio would leave buffers of its own at exit. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scrub_stack.h"

struct node {
    struct node *next; /* first word: a start or interior pointer to the next block */
};

#define A_SIZE(n) (32 + 16 * (n))
#define B_SIZE(n) (24 + 16 * (n))

/* The roots. */
struct node *volatile root1, *volatile root2, *volatile root5, *volatile root6;
struct node *volatile root7, *volatile root8;
volatile int cases_made; /* written after the last case, so its call is not a tail call */

__attribute__((noinline)) static struct node *node(size_t size, struct node *next)
{
    struct node *n = memset(malloc(size), 0, size); /* @leak:node */
    n->next = next;
    return n;
}

/* Interior pointer: 8 bytes into `n`. */
static struct node *inside(struct node *n) { return (struct node *)((char *)n + 8); }

__attribute__((noinline)) static void make_cases(void)
{
    root1 = node(A_SIZE(1), NULL); /* @call:a1 */

    root2 = node(A_SIZE(2), node(B_SIZE(2), NULL)); /* @call:a2 */

    (void)node(A_SIZE(3), NULL); /* @call:a3 */

    (void)node(A_SIZE(4), node(B_SIZE(4), NULL)); /* @call:a4 */

    root5 = inside(node(A_SIZE(5), NULL)); /* @call:a5 */

    root6 = node(A_SIZE(6), inside(node(B_SIZE(6), NULL))); /* @call:a6 */

    root7 = inside(node(A_SIZE(7), node(B_SIZE(7), NULL))); /* @call:a7 */

    root8 = inside(node(A_SIZE(8), inside(node(B_SIZE(8), NULL)))); /* @call:a8 */

    (void)node(A_SIZE(9), inside(node(B_SIZE(9), NULL))); /* @call:a9 */
    cases_made = 9;
}

int main(void)
{
    below(make_cases);
    scrub_stack();
    static const char done[] = "cases made\n";
    write(1, done, sizeof done - 1);
    return 0;
}
