// A lost block of 500 bytes that glibc's malloc places right before its top chunk. malloc
// rounds it up to a 512-byte chunk, so the top chunk's header starts 496 bytes into the block
// (a chunk header overlaps the end of the allocated chunk before it), and glibc's main_arena,
// in libc's writable data, points there: an interior pointer no program variable holds.
// Under valgrind, whose malloc replaces glibc's, nothing points into the block: definitely
// lost. (Linking libstdc++, as any C++ program does, gives the heap the layout this needs.)
#include <cstdlib>
#include <cstring>
#include <unistd.h>

char *volatile kept;

__attribute__((noinline)) static void lose()
{
    char *volatile lost = new char[500]; // @leak:next_to_top
    lost = nullptr;
}

// Runs `make` over 1 KiB below main's frame, inside the area scrub_stack clears afterwards:
// copies of pointers left in its frames must not be found at exit.
__attribute__((noinline)) static void below(void (*make)())
{
    volatile char pad[1024];
    pad[0] = 0;
    make();
    pad[1] = 0;
}

// Overwrites the stack below main's frame (the asm keeps the compiler from dropping the
// memset of an array nobody reads).
__attribute__((noinline)) static void scrub_stack()
{
    char area[64 * 1024];
    std::memset(area, 0, sizeof area);
    __asm__ volatile("" : : "r"(area) : "memory");
}

int main()
{
    kept = new char[64]; // @leak:kept
    below(lose);
    scrub_stack();
    static const char done[] = "lost one\n";
    write(1, done, sizeof done - 1);
    return 0;
}
