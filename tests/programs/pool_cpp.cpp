// leaktrace/annotate.h from C++ (built with -Wall -Wextra -pedantic -Werror by the test): an
// arena class whose objects are MALLOCLIKE blocks; one 72-byte object is lost.
#include <cstdlib>
#include <new>
#include <unistd.h>

#include <leaktrace/annotate.h>

#include "scrub_stack.h"

class Arena {
public:
    Arena() : slab_(static_cast<char *>(std::calloc(1, 4096))), used_(16) {}
    void *make(std::size_t size)
    {
        void *p = slab_ + used_;
        used_ += (size + 15) & ~static_cast<std::size_t>(15);
        LEAKTRACE_MALLOCLIKE_BLOCK(p, size, 0, 0); // @leak:cpp_request
        return p;
    }
    void drop(void *p) { LEAKTRACE_FREELIKE_BLOCK(p, 0); }

private:
    char *slab_;
    std::size_t used_;
};

Arena *arena;
void *volatile sink;

static void make_objects()
{
    sink = arena->make(72); // @call:cpp_lost
    arena->drop(arena->make(40));
    sink = nullptr;
}

int main()
{
    arena = new Arena;
    below(make_objects);
    scrub_stack();
    return LEAKTRACE_RUNNING() ? 0 : 3; // under leaktrace: 0
}
