// A double delete glibc lets through (the fast bin's: the thread's cache of that size full,
// another block deleted between the two), in a C++ program: the heap is broken from then on,
// with no sign natively. At exit the shim has libstdc++ release its exception pool, whose free
// walked the broken fast bin and aborted the process, where natively it exits 0.
#include <cstdio>

struct Node {
    long words[2];
};

__attribute__((noinline)) static void drop(Node *n)
{
    delete n; // @call:double-delete
    asm volatile("" ::: "memory"); // not a tail call at -O2
}

int main()
{
    std::puts("completed"); // stdio's buffer before the heap breaks
    std::fflush(stdout);
    Node *cache[7];
    for (Node *&n : cache) n = new Node;
    Node *a = new Node, *b = new Node;
    for (Node *n : cache) delete n;
    drop(a);
    drop(b);
    drop(a); // the second delete of a
    return 0;
}
