// Leaks for the suppression round trips with valgrind where C++ and the build make the names
// differ: operator new[] (libstdc++'s calls operator new, as a tail call), a constructor (two
// aliases, C1 and C2, at one address), an inlined call (valgrind names it by the debug info's
// short name, "make"), and the same program stripped (no name for main: valgrind ends its
// stacks at "(below main)"). noinline: every other frame is a real call.
#include <cstring>
#include <unistd.h>

#include "scrub_stack.h"

namespace shapes {

struct Holder {
    char *data;
    __attribute__((noinline)) Holder() : data(new char[48]) // @leak:ctor_array
    {
        std::memset(data, 1, 48);
    }
};

__attribute__((noinline)) int *make_numbers(int n)
{
    return new int[n]; // @leak:numbers
}

__attribute__((noinline)) Holder *make_holder()
{
    return new Holder; // @leak:holder
}

template <typename T> struct Box {
    __attribute__((always_inline)) static inline T *make(int n)
    {
        return new T[n]; // @leak:inlined
    }
};

__attribute__((noinline)) int *make_boxed()
{
    return Box<int>::make(5);
}

} // namespace shapes

int *volatile kept;

__attribute__((noinline)) static void make_all()
{
    shapes::make_numbers(25);       // definitely lost, 100 bytes
    shapes::make_holder();          // definitely lost, 8 bytes, owning 48 indirectly lost
    shapes::make_boxed();           // definitely lost, 20 bytes, from an inlined call
    kept = shapes::make_numbers(3); // still reachable, 12 bytes
}

int main()
{
    below(make_all);
    scrub_stack();
    static const char done[] = "made\n";
    write(1, done, sizeof done - 1);
    return 0;
}
