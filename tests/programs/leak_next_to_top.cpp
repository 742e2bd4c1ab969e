// A lost block of 500 bytes that glibc's malloc places right before its top chunk. malloc
// rounds it up to a 512-byte chunk, so the top chunk's header starts 496 bytes into the block
// (a chunk header overlaps the end of the allocated chunk before it), and glibc's main_arena,
// in libc's writable data, points there: an interior pointer no program variable holds.
// Under valgrind, whose malloc replaces glibc's, nothing points into the block: definitely
// lost. (Linking libstdc++, as any C++ program does, gives the heap the layout this needs.)
#include <cstdlib>
#include <cstring>
#include <unistd.h>

#include "scrub_stack.h"

char *volatile kept;

__attribute__((noinline)) static void lose()
{
    char *volatile lost = new char[500]; // @leak:next_to_top
    lost = nullptr;
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
