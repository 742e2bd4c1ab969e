// A new that fails: the program's new-handler runs (and frees its reserve the first time),
// then, with no handler left, std::bad_alloc. Run with a small RLIMIT_AS so that 1 MiB
// blocks soon fail. usage: new_handler ADDRESS_SPACE_MIB
#include <cstdio>
#include <cstdlib>
#include <new>
#include <sys/resource.h>
#include <vector>

static int handler_runs;
static char *reserve;

static void on_new_failure()
{
    handler_runs++;
    if (reserve) {
        delete[] reserve;
        reserve = nullptr;
    } else {
        std::set_new_handler(nullptr);
    }
}

int main(int argc, char **argv)
{
    std::vector<char *> held;
    held.reserve(100000);
    reserve = new char[16 << 20];
    struct rlimit limit;
    getrlimit(RLIMIT_AS, &limit);
    limit.rlim_cur = (rlim_t)std::strtoul(argc > 1 ? argv[1] : "512", nullptr, 10) << 20;
    setrlimit(RLIMIT_AS, &limit);
    std::set_new_handler(on_new_failure);
    try {
        for (;;) held.push_back(new char[1 << 20]);
    } catch (const std::bad_alloc &) {
        std::printf("new-handler ran %d times, then std::bad_alloc\n", handler_runs);
    }
    for (char *block : held) delete[] block;
    return 0;
}
