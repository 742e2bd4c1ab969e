// A leak through each of the eight forms of C++'s operator new, an array of none, and malloc:
// valgrind names each form as the record's API, its backtrace starting at the `new`.
#include <cstdlib>
#include <new>

struct Counted {
    ~Counted() {}  // a destructor: new[] stores the element count before the array
    int value;
};
struct alignas(64) Wide {
    char bytes[100];
};

void *volatile sink;

__attribute__((noinline)) void scalar() { sink = new long(3); }                          // @leak:scalar
__attribute__((noinline)) void array() { sink = new int[10]; }                           // @leak:array
__attribute__((noinline)) void counted_array() { sink = new Counted[4]; }                // @leak:counted_array
__attribute__((noinline)) void empty_array() { sink = new char[0]; }                     // @leak:empty_array
__attribute__((noinline)) void nothrow_scalar() { sink = new (std::nothrow) short; }     // @leak:nothrow_scalar
__attribute__((noinline)) void nothrow_array() { sink = new (std::nothrow) char[33]; }   // @leak:nothrow_array
__attribute__((noinline)) void aligned_scalar() { sink = new Wide; }                     // @leak:aligned_scalar
__attribute__((noinline)) void aligned_array() { sink = new Wide[2]; }                   // @leak:aligned_array
__attribute__((noinline)) void aligned_nothrow_scalar() { sink = new (std::nothrow) Wide; }     // @leak:aligned_nothrow_scalar
__attribute__((noinline)) void aligned_nothrow_array() { sink = new (std::nothrow) Wide[3]; }   // @leak:aligned_nothrow_array
__attribute__((noinline)) void plain_malloc() { sink = std::malloc(7); }                 // @leak:plain_malloc

int main()
{
    scalar();
    array();
    counted_array();
    empty_array();
    nothrow_scalar();
    nothrow_array();
    aligned_scalar();
    aligned_array();
    aligned_nothrow_scalar();
    aligned_nothrow_array();
    plain_malloc();
    sink = nullptr;
    return 0;
}
