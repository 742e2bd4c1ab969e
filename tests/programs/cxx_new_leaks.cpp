// Leaks through each form of C++'s operator new, and malloc beside them, for matching a
// capture with valgrind's XML of the same run: both name the form as the allocating function
// (the record's API) and start the backtrace at the program's `new`.
#include <cstdlib>
#include <cstring>
#include <new>

struct Node {
    Node *next;
    long value;
};

void *volatile sink;

__attribute__((noinline)) void leak_node() { sink = new Node{nullptr, 1}; }             // @leak:node
__attribute__((noinline)) void leak_array() { sink = new int[100]; }                     // @leak:array
__attribute__((noinline)) void leak_nothrow() { sink = new (std::nothrow) char[333]; }   // @leak:nothrow
__attribute__((noinline)) void leak_malloc() { sink = std::memset(std::malloc(77), 0, 77); }  // @leak:malloc

int main()
{
    leak_node();
    leak_array();
    leak_nothrow();
    leak_malloc();
    sink = nullptr;
    return 0;
}
