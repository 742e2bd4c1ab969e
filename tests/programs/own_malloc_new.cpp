// A C++ program with a malloc and free of its own (calloc is libc's): its new and delete (the
// C++ runtime's, which call malloc and free) must reach them; they count the blocks they serve
// while main loops.
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>

static char *arena, *next_free;
static unsigned long served, released;
static bool counting;

extern "C" void *malloc(std::size_t n)
{
    if (!arena)
        next_free = arena = static_cast<char *>(mmap(nullptr, 64 << 20, PROT_READ | PROT_WRITE,
                                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    char *p = next_free;
    next_free += (n + 15) & ~static_cast<std::size_t>(15);
    if (counting) served++;
    return p;
}
extern "C" void free(void *p)
{
    if (p && counting) released++;
}
extern "C" void *realloc(void *old, std::size_t n)
{
    void *p = malloc(n);
    if (old) std::memcpy(p, old, n);
    return p;
}

struct Small {
    long values[4];
};
void *volatile sink;

int main()
{
    void *zeroed = std::calloc(4, 16); // libc's, as are the blocks it serves
    sink = zeroed;
    counting = true;
    for (int i = 0; i < 1000; i++) {
        Small *small = new Small;
        sink = small;
        delete small;
        char *bytes = new char[100];
        sink = bytes;
        delete[] bytes;
    }
    counting = false;
    std::printf("the program's malloc served %lu blocks, its free took %lu\n", served, released);
    return 0;
}
