#include <stdlib.h>

void *volatile plugin_sink;

__attribute__((noinline)) static void *plugin_alloc(int i)
{
    void *p = malloc(200 + (size_t)i); /* @leak:plugin */
    plugin_sink = p; /* not a tail call: plugin_alloc keeps its frame */
    return p;
}

void plugin_leak(int n)
{
    for (int i = 0; i < n; i++) plugin_sink = plugin_alloc(0);
}
