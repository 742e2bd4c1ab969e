// Leaks for the suppression tests: C++ functions in a namespace (valgrind writes them mangled
// in suppressions), a C function, each kind once. noinline everywhere: every frame is a real
// call, the same under valgrind and leaktrace. Only write() is used.
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace widgets {

struct Widget {
    long id;
    char name[56];
};

__attribute__((noinline)) Widget *make_widget(long id)
{
    Widget *w = new Widget; // @leak:widget
    w->id = id;
    std::memset(w->name, 'w', sizeof w->name);
    return w;
}

__attribute__((noinline)) char *make_label(int n)
{
    return static_cast<char *>(std::calloc(static_cast<size_t>(n), 3)); // @leak:label
}

} // namespace widgets

extern "C" __attribute__((noinline)) void *make_buffer(size_t size)
{
    return std::malloc(size); // @leak:buffer
}

widgets::Widget *volatile kept_widget;
char *volatile label_inside;
volatile int made;

__attribute__((noinline)) static void make_all()
{
    widgets::make_widget(1);                  // definitely lost (64 bytes)
    kept_widget = widgets::make_widget(2);    // still reachable (64 bytes)
    label_inside = widgets::make_label(30) + 10; // possibly lost (90 bytes)
    make_buffer(512);                         // definitely lost (512 bytes)
    made = 1;
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
    below(make_all);
    scrub_stack();
    static const char done[] = "made\n";
    write(1, done, sizeof done - 1);
    return 0;
}
