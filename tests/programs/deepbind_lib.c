/* A plugin for deepbind_main.c: it frees what the program allocated and leaks its own. */
#include <stdlib.h>

void plugin_free(void *p) { free(p); }

void *plugin_alloc(size_t n)
{
    return malloc(n); /* @leak:plugin */
}
