// A double delete glibc lets through (the fast bin's: the thread's cache of that size full,
// another block deleted between the two), in a C++ program: the heap is broken from then on,
// with no sign natively. At exit the shim has libstdc++ release its exception pool, whose free
// walked the broken fast bin and aborted the process, where natively it exits 0.
// With the argument "array", the same with new[] and delete[].
#include <cstdio>
#include <cstring>

struct Node {
    long words[2];
};

__attribute__((noinline)) static void drop(Node *n)
{
    delete n; // @call:double-delete
    asm volatile("" ::: "memory"); // not a tail call at -O2
}

__attribute__((noinline)) static void drop_array(Node *n)
{
    delete[] n; // @call:double-delete-array
    asm volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
    std::puts("completed"); // stdio's buffer before the heap breaks
    std::fflush(stdout);
    if (argc > 1 && std::strcmp(argv[1], "array") == 0) {
        Node *cache[7];
        for (Node *&n : cache) n = new Node[1];
        Node *a = new Node[1], *b = new Node[1];
        for (Node *n : cache) delete[] n;
        drop_array(a);
        drop_array(b);
        drop_array(a); // the second delete[] of a
        return 0;
    }
    Node *cache[7];
    for (Node *&n : cache) n = new Node;
    Node *a = new Node, *b = new Node;
    for (Node *n : cache) delete n;
    drop(a);
    drop(b);
    drop(a); // the second delete of a
    return 0;
}
