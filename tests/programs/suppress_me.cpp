// Leaks for the suppression tests: C++ functions in a namespace (valgrind writes them mangled
// in suppressions), a C function, each kind once. noinline everywhere: every frame is a real
// call, the same under valgrind and leaktrace. Only write() is used.
#include <cstdlib>
#include <cstring>
#include <unistd.h>

#include "scrub_stack.h"

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

int main()
{
    below(make_all);
    scrub_stack();
    static const char done[] = "made\n";
    write(1, done, sizeof done - 1);
    return 0;
}
