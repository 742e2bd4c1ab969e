// Leaks through C++17's aligned operator new, whose sizes are not multiples of their
// alignment: libstdc++ rounds the size up before it calls aligned_alloc, and valgrind reports
// the size the program asked for. Then an aligned_alloc of the rounded size the program asks
// for itself, which must stay as asked.
#include <cstdlib>
#include <new>

void *volatile sink;

struct alignas(64) Slot {
    char bytes[24];
};

__attribute__((noinline)) void leak_explicit() { sink = ::operator new(100, std::align_val_t(256)); }  // @leak:explicit
__attribute__((noinline)) void leak_nothrow() { sink = ::operator new[](70, std::align_val_t(32), std::nothrow); }  // @leak:nothrow
__attribute__((noinline)) void leak_slots() { sink = new Slot[3]; }  // @leak:slots
__attribute__((noinline)) void leak_rounded() { sink = std::aligned_alloc(64, 128); }  // @leak:rounded
__attribute__((noinline)) void leak_failed_then_malloc()
{
    // A throwing aligned new that fails before allocating (an impossible size) leaves nothing
    // for the allocation after it to take.
    volatile size_t impossible = ~(size_t)0 - 8;
    try {
        sink = ::operator new(impossible, std::align_val_t(64));
    } catch (const std::bad_alloc &) {
    }
    sink = std::aligned_alloc(64, 64);  // @leak:after_failure
}

int main()
{
    leak_explicit();
    leak_nothrow();
    leak_slots();
    leak_rounded();
    leak_failed_then_malloc();
    sink = nullptr;
    return 0;
}
