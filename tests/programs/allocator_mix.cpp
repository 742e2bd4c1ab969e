// Leaks through malloc, new, new[] and aligned new, with every other allocation API also
// exercised (sized and aligned delete, nothrow new, malloc_usable_size): run with glibc's
// allocator, and with jemalloc or tcmalloc preloaded or linked. Blocks are zeroed so that no
// stale allocator pointer (a free-list link left in a fresh block) connects two leaks.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <new>
#include <string>

struct Node { Node *next; char pad[40]; };           // 48 bytes
struct alignas(64) Wide { char bytes[128]; };         // 128 bytes, 64-aligned

__attribute__((noinline)) void lose_malloc()
{
    char *volatile p = static_cast<char *>(malloc(100)); // @leak:malloc
    memset(p, 0, 100);
    p = nullptr;
}

__attribute__((noinline)) void lose_new()
{
    Node *volatile n = new Node(); // @leak:new
    n = nullptr;
}

__attribute__((noinline)) void lose_array()
{
    int *volatile a = new int[25](); // @leak:array
    a = nullptr;
}

__attribute__((noinline)) void lose_aligned()
{
    Wide *volatile w = new Wide(); // @leak:aligned
    w = nullptr;
}

int main()
{
    for (int i = 0; i < 3; i++) {
        lose_malloc();
        lose_new();
        lose_array();
        lose_aligned();
    }
    // Everything below is freed: each pair must meet the same allocator.
    size_t usable = 0;
    for (int i = 0; i < 200; i++) {
        void *m = malloc(24 + i);
        usable += malloc_usable_size(m);
        free(m);
        Node *n = new Node();
        usable += malloc_usable_size(n) ? 1 : 0;
        delete n;  // sized delete with -fsized-deallocation (C++14 and later)
        Wide *w = new Wide();
        delete w;  // aligned (and sized) delete
        int *a = new (std::nothrow) int[10];
        delete[] a;
        std::string *s = new std::string(100, 'x');
        delete s;
        void *r = realloc(nullptr, 10);
        r = realloc(r, 5000);
        free(r);
    }
    printf("usable %zu\n", usable > 0 ? static_cast<size_t>(1) : static_cast<size_t>(0));
    return 0;
}
