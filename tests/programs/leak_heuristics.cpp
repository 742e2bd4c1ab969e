// valgrind's interior-pointer heuristics: in each case the only pointer to a block points
// inside it, where C++ (or a length-prefixed buffer) puts it on purpose, so the block is
// still reachable "via heuristic" rather than possibly lost. The first argument picks one:
//   stdstring            old-ABI std::string: the object points 24 bytes into its buffer
//                        (length, capacity, refcount, then the characters)
//   length64             a buffer that starts with the 64-bit length of the rest, kept by a
//                        pointer to the rest
//   newarray             new[] of objects with a destructor: the element count, then the
//                        array the pointer points to
//   multipleinheritance  a pointer to the second base of an object with two bases
// Only write() is used: iostreams would leave buffers of their own at exit.
#define _GLIBCXX_USE_CXX11_ABI 0
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>

#include "scrub_stack.h"

struct Element {
    long value[2] = {1, 2}; // 16 bytes: the count (8 bytes) is not a length of the rest
    ~Element() { value[0] = 0; }
};

struct First {
    virtual ~First() {}
    long first = 1;
};
struct Second {
    virtual ~Second() {}
    long second = 2;
};
struct Both : First, Second {
    long both = 3;
};

std::string *volatile kept_string;
char *volatile kept_rest;
Element *volatile kept_array;
Second *volatile kept_second;

static const char *which; // the heuristic asked for

__attribute__((noinline)) static void make()
{
    if (std::strcmp(which, "stdstring") == 0) {
        kept_string = new std::string(100, 'x'); // @leak:stdstring (object and buffer)
    } else if (std::strcmp(which, "length64") == 0) {
        char *block = static_cast<char *>(std::malloc(8 + 88)); // @leak:length64
        unsigned long rest = 88;
        std::memcpy(block, &rest, sizeof rest);
        kept_rest = block + 8;
    } else if (std::strcmp(which, "newarray") == 0) {
        kept_array = new Element[5]; // @leak:newarray
    } else if (std::strcmp(which, "multipleinheritance") == 0) {
        kept_second = new Both; // @leak:multipleinheritance
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    which = argv[1];
    below(make);
    scrub_stack();
    static const char done[] = "kept\n";
    write(1, done, sizeof done - 1);
    return 0;
}
