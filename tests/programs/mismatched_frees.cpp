// Blocks released by a function that does not match their allocation (valgrind's "Mismatched
// free() / delete / delete []"): argv[1] says which. glibc lets every one of them through.
//   new-array-delete: delete of a new[] block;   new-delete-array: delete[] of a new block;
//   malloc-delete-array: delete[] of a malloc block;  new-array-free: free of a new[] block;
//   new-array-realloc: realloc of a new[] block;
//   clean: each released as it should be, a malloc'd block getting the address a delete[]
//   released just before (a note of that delete[] left behind would misname its free).
// Each bad call's line has a @call:<mode> marker. The program prints "done".
#include <cstdio>
#include <cstdlib>
#include <cstring>

struct Node {
    long words[2];
};

void *volatile sink;

__attribute__((noinline)) static void drop(Node *n)
{
    delete n; // @call:new-array-delete
    asm volatile("" ::: "memory"); // not a tail call at -O2
}

__attribute__((noinline)) static void drop_array(Node *n)
{
    delete[] n; // @call:new-delete-array @call:malloc-delete-array
    asm volatile("" ::: "memory");
}

__attribute__((noinline)) static void release(void *p)
{
    std::free(p); // @call:new-array-free
    asm volatile("" ::: "memory");
}

__attribute__((noinline)) static void *resize(void *p)
{
    void *q = std::realloc(p, 256); // @call:new-array-realloc
    sink = q;
    return q;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "clean";
    if (std::strcmp(mode, "new-array-delete") == 0) {
        drop(new Node[3]);
    } else if (std::strcmp(mode, "new-delete-array") == 0) {
        drop_array(new Node);
    } else if (std::strcmp(mode, "malloc-delete-array") == 0) {
        drop_array(static_cast<Node *>(std::malloc(sizeof(Node))));
    } else if (std::strcmp(mode, "new-array-free") == 0) {
        release(new Node[2]);
    } else if (std::strcmp(mode, "new-array-realloc") == 0) {
        std::free(resize(new Node[2]));
    } else {
        Node *nodes = new Node[2];
        sink = nodes;
        drop_array(nodes);
        void *same_size = std::malloc(2 * sizeof(Node));
        sink = same_size;
        release(same_size);
        drop(new Node);
    }
    std::puts("done");
    return 0;
}
