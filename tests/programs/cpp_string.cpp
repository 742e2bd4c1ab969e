// A C++ leak: new std::string, never deleted. The string's text is longer than the small
// string buffer, so it owns a second heap block (also leaked).
#include <string>

namespace app {
struct Holder { std::string *name; };
volatile Holder *sink;

__attribute__((noinline)) std::string *make_name(int i)
{
    return new std::string(std::string(40, 'x') + std::to_string(i)); // @leak:new_string
}
}  // namespace app

int main()
{
    static app::Holder h;
    for (int i = 0; i < 3; i++) {
        h.name = app::make_name(i);
        app::sink = &h;
    }
    return 0;
}
