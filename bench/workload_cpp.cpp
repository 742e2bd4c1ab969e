// leaktrace benchmark workload, C++ flavour: deep template call chains allocating through
// operator new/delete and the standard containers, as C++ services do.
//
// Each thread runs ITERATIONS steps. A step picks one of 12 allocation sites (weighted, with a
// per-thread xorshift PRNG and a fixed seed) and reaches it through a chain of Chain<N>::step
// template instances, 3 to 12 frames deep, so every (site, depth) pair has its own backtrace.
// A site builds an object (a std::string, a std::vector grown by push_back, a std::map, a
// std::unordered_map, a std::list, a std::shared_ptr, a node from plain new, ...) and puts it
// into a per-thread ring of RING_SLOTS live objects, destroying the one it replaces, so memory
// stays bounded. Every LEAK_PERIOD-th step a 12-frame chain reaches leak_site(), which
// allocates LEAK_SIZE bytes with new[] and drops the pointer. At the end the rings are emptied;
// the expected total is printed to stderr as "expected leak: N blocks, M bytes", and the
// number of heap calls made as "heap calls: N" (counted by the program, not by a tracer).
//
// Built like a distribution's C++ binary: -O2 without frame pointers, -g.
//
// usage: workload_cpp [-n ITERATIONS_PER_THREAD] [-t THREADS] [-s SEED]
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <pthread.h>
#include <string>
#include <unistd.h>
#include <unordered_map>
#include <vector>

#define NOINLINE __attribute__((noinline, noclone))

namespace {

constexpr unsigned RING_SLOTS = 4096;
constexpr unsigned LEAK_PERIOD = 1000;
constexpr size_t LEAK_SIZE = 100;
constexpr int LEAK_DEPTH = 12;

volatile uintptr_t sink; // everything read from the objects ends up here

struct Item {
    virtual ~Item() = default;
    virtual size_t weight() const = 0;
};

struct ThreadState {
    uint64_t rng;
    unsigned long iterations = 0, leaked_blocks = 0;
    unsigned head = 0;
    std::unique_ptr<Item> ring[RING_SLOTS];

    uint64_t next()
    {
        uint64_t x = rng; // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        rng = x;
        return x * 0x2545F4914F6CDD1DULL;
    }
    size_t small_size() { return 8 + next() % 120; }

    void keep(std::unique_ptr<Item> item)
    {
        sink += item->weight();
        ring[head] = std::move(item); // destroys the oldest object
        head = (head + 1) % RING_SLOTS;
    }
};

// ---- the objects the sites build ---------------------------------------------------------
struct StringItem : Item {
    std::string text;
    explicit StringItem(size_t n) : text(n, 'x') {}
    size_t weight() const override { return text.size(); }
};

struct VectorItem : Item {
    std::vector<uint32_t> values;
    size_t weight() const override { return values.size(); }
};

struct MapItem : Item {
    std::map<uint32_t, std::string> entries;
    size_t weight() const override { return entries.size(); }
};

struct HashItem : Item {
    std::unordered_map<uint64_t, uint64_t> entries;
    size_t weight() const override { return entries.size(); }
};

struct ListItem : Item {
    std::list<uint64_t> values;
    size_t weight() const override { return values.size(); }
};

struct Node {
    Node *next;
    uint64_t payload[6];
};

struct NodeChain : Item {
    Node *first = nullptr;
    size_t count = 0;
    ~NodeChain() override
    {
        while (first) {
            Node *n = first->next;
            delete first;
            first = n;
        }
    }
    size_t weight() const override { return count; }
};

struct SharedItem : Item {
    std::shared_ptr<std::vector<char>> data;
    size_t weight() const override { return data->size(); }
};

struct BufferItem : Item {
    std::unique_ptr<char[]> bytes;
    size_t size;
    explicit BufferItem(size_t n) : bytes(new char[n]), size(n) { bytes[n - 1] = 1; }
    size_t weight() const override { return size; }
};

// ---- the 12 allocation sites -------------------------------------------------------------
NOINLINE void site_string(ThreadState &t) { t.keep(std::make_unique<StringItem>(16 + t.small_size())); }

NOINLINE void site_short_string(ThreadState &t)
{
    auto item = std::make_unique<StringItem>(t.small_size() / 8); // fits the SSO buffer: 1 new
    t.keep(std::move(item));
}

NOINLINE void site_vector_growth(ThreadState &t)
{
    auto item = std::make_unique<VectorItem>();
    size_t n = 1 + t.next() % 40;
    for (size_t i = 0; i < n; i++) item->values.push_back((uint32_t)i);
    t.keep(std::move(item));
}

NOINLINE void site_vector_reserved(ThreadState &t)
{
    auto item = std::make_unique<VectorItem>();
    item->values.reserve(t.small_size());
    item->values.push_back(1);
    t.keep(std::move(item));
}

NOINLINE void site_map(ThreadState &t)
{
    auto item = std::make_unique<MapItem>();
    size_t n = 1 + t.next() % 6;
    for (size_t i = 0; i < n; i++) item->entries.emplace((uint32_t)t.next(), std::string(20 + i * 4, 'm'));
    t.keep(std::move(item));
}

NOINLINE void site_hash(ThreadState &t)
{
    auto item = std::make_unique<HashItem>();
    size_t n = 1 + t.next() % 8;
    for (size_t i = 0; i < n; i++) item->entries[t.next()] = i;
    t.keep(std::move(item));
}

NOINLINE void site_list(ThreadState &t)
{
    auto item = std::make_unique<ListItem>();
    size_t n = 1 + t.next() % 5;
    for (size_t i = 0; i < n; i++) item->values.push_back(i);
    t.keep(std::move(item));
}

NOINLINE void site_nodes(ThreadState &t)
{
    auto item = std::make_unique<NodeChain>();
    size_t n = 1 + t.next() % 4;
    for (size_t i = 0; i < n; i++) {
        Node *node = new Node{item->first, {i}};
        item->first = node;
        item->count++;
    }
    t.keep(std::move(item));
}

NOINLINE void site_shared(ThreadState &t)
{
    auto item = std::make_unique<SharedItem>();
    item->data = std::make_shared<std::vector<char>>(t.small_size());
    t.keep(std::move(item));
}

NOINLINE void site_buffer(ThreadState &t) { t.keep(std::make_unique<BufferItem>(t.small_size() * 8)); }

NOINLINE void site_big_buffer(ThreadState &t) { t.keep(std::make_unique<BufferItem>(4096 + t.next() % 28672)); }

NOINLINE void site_temporary(ThreadState &t)
{
    // Allocates and frees at once: a temporary string concatenation, as parsers do.
    std::string a(24 + t.next() % 40, 'a'), b(24, 'b');
    std::string joined = a + b;
    sink += joined.size();
    t.keep(std::make_unique<StringItem>(17));
}

// The one deliberate leak: written, read and dropped.
NOINLINE void leak_site(ThreadState &t)
{
    char *p = new char[LEAK_SIZE];
    std::memset(p, 0x5A, LEAK_SIZE);
    sink += (unsigned char)p[LEAK_SIZE / 2];
    t.leaked_blocks++;
}

using SiteFn = void (*)(ThreadState &);

struct Site {
    SiteFn fn;
    int depth;       // frames from the thread's loop to the site function, inclusive
    unsigned weight; // relative frequency
};

const Site sites[] = {
    {site_string, 3, 160},       {site_short_string, 4, 60}, {site_vector_growth, 5, 80},
    {site_vector_reserved, 6, 60}, {site_map, 7, 40},        {site_hash, 8, 40},
    {site_list, 9, 40},          {site_nodes, 10, 60},       {site_shared, 11, 60},
    {site_buffer, 12, 100},      {site_big_buffer, 6, 10},   {site_temporary, 9, 80},
};
constexpr unsigned NSITES = sizeof sites / sizeof *sites;

// ---- the call chains: Chain<N>::step calls Chain<N-1>::step; Chain<2> calls the site ------
template <int N> struct Chain {
    static NOINLINE void step(ThreadState &t, SiteFn fn)
    {
        Chain<N - 1>::step(t, fn);
        sink += N; // keeps the call from becoming a tail call
    }
};

template <> struct Chain<2> {
    static NOINLINE void step(ThreadState &t, SiteFn fn)
    {
        fn(t);
        sink += t.head;
    }
};

using ChainFn = void (*)(ThreadState &, SiteFn);
// entry[d] puts the site function d frames below the loop (the site, Chain<2>, ..., Chain<d>).
const ChainFn entry[13] = {
    nullptr, nullptr, nullptr, Chain<2>::step, Chain<3>::step, Chain<4>::step, Chain<5>::step,
    Chain<6>::step, Chain<7>::step, Chain<8>::step, Chain<9>::step, Chain<10>::step,
    Chain<11>::step,
};

void *worker(void *arg)
{
    auto &t = *static_cast<ThreadState *>(arg);
    unsigned total_weight = 0;
    for (const Site &s : sites) total_weight += s.weight;
    for (unsigned long i = 1; i <= t.iterations; i++) {
        unsigned r = (unsigned)(t.next() % total_weight), k = 0;
        while (r >= sites[k].weight) r -= sites[k++].weight;
        entry[sites[k].depth](t, sites[k].fn);
        if (i % LEAK_PERIOD == 0) entry[LEAK_DEPTH](t, leak_site);
    }
    for (auto &slot : t.ring) slot.reset();
    return nullptr;
}

long peak_rss_kib()
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    const char *line = std::strstr(buf, "VmHWM:");
    return line ? std::strtol(line + 6, nullptr, 10) : -1;
}

unsigned long parse_count(const char *text, const char *what)
{
    char *end;
    errno = 0;
    unsigned long v = std::strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || end == text || v == 0) {
        std::fprintf(stderr, "workload_cpp: bad %s: %s\n", what, text);
        std::exit(2);
    }
    return v;
}

} // namespace

int main(int argc, char **argv)
{
    unsigned long iterations = 500000, threads = 2, seed = 0x5EED;
    int opt;
    while ((opt = getopt(argc, argv, "n:t:s:")) != -1) {
        switch (opt) {
        case 'n': iterations = parse_count(optarg, "iteration count"); break;
        case 't': threads = parse_count(optarg, "thread count"); break;
        case 's': seed = parse_count(optarg, "seed"); break;
        default:
            std::fprintf(stderr, "usage: %s [-n ITERATIONS_PER_THREAD] [-t THREADS] [-s SEED]\n", argv[0]);
            return 2;
        }
    }
    if (threads > 64) {
        std::fprintf(stderr, "workload_cpp: at most 64 threads\n");
        return 2;
    }
    static ThreadState states[64];
    static pthread_t ids[64];
    for (unsigned long i = 0; i < threads; i++) {
        states[i].rng = (seed + 0x9E3779B97F4A7C15ULL * (i + 1)) | 1;
        states[i].iterations = iterations;
        int err = pthread_create(&ids[i], nullptr, worker, &states[i]);
        if (err != 0) {
            std::fprintf(stderr, "workload_cpp: pthread_create: %s\n", std::strerror(err));
            return 1;
        }
    }
    unsigned long leaked = 0;
    for (unsigned long i = 0; i < threads; i++) {
        pthread_join(ids[i], nullptr);
        leaked += states[i].leaked_blocks;
    }
    std::fprintf(stderr, "expected leak: %lu blocks, %lu bytes\n", leaked, leaked * LEAK_SIZE);
    std::fprintf(stderr, "peak rss: %ld KiB\n", peak_rss_kib());
    return 0;
}
