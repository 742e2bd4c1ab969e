// Sampling mode through C++'s operators: each round one object (new) and one array (new[]) of
// 1000 bytes leak, while 20 blocks come and go through new and delete, new[] and delete[]
// (their deletes are mostly of blocks never sampled). usage: sampled_new ROUNDS
#include <cstdio>
#include <cstdlib>
#include <cstring>

struct Item {
    char bytes[1000];
};
struct Small {
    long values[4];
};

void *volatile sink;

__attribute__((noinline)) void leak_object()
{
    Item *item = new Item; // @leak:object
    std::memset(item->bytes, 1, sizeof item->bytes);
    sink = item;
}

__attribute__((noinline)) void leak_array()
{
    char *bytes = new char[1000]; // @leak:array
    std::memset(bytes, 2, 1000);
    sink = bytes;
}

__attribute__((noinline)) void churn(unsigned i)
{
    if (i % 2) {
        Small *small = new Small;
        sink = small;
        delete small;
    } else {
        char *bytes = new char[32 + i % 200];
        sink = bytes;
        delete[] bytes;
    }
}

int main(int argc, char **argv)
{
    unsigned rounds = argc > 1 ? (unsigned)std::strtoul(argv[1], nullptr, 10) : 1000;
    for (unsigned i = 0; i < rounds; i++) {
        leak_object();
        leak_array();
        for (unsigned j = 0; j < 20; j++) churn(i + j);
    }
    sink = nullptr;
    std::printf("leaked %u objects and %u arrays of 1000 bytes\n", rounds, rounds);
    return 0;
}
