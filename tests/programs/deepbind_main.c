/* Loads plugins/libdeepbind_plugin.so with RTLD_DEEPBIND (as PHP loads its extensions), the
 * way argv[1] says: "path" (a path, RTLD_NOW), "lazy" (a path, RTLD_LAZY), "name" (a bare name,
 * found through this program's RUNPATH $ORIGIN/plugins). The program allocates 100 bytes the
 * plugin frees, and the plugin allocates 200 bytes the program loses. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    char self[4096], path[4200];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(path, sizeof path, "%s/plugins/libdeepbind_plugin.so", dirname(self));
    void *plugin;
    if (strcmp(argv[1], "name") == 0)
        plugin = dlopen("libdeepbind_plugin.so", RTLD_NOW | RTLD_DEEPBIND);
    else
        plugin = dlopen(path, (strcmp(argv[1], "lazy") == 0 ? RTLD_LAZY : RTLD_NOW) | RTLD_DEEPBIND);
    if (!plugin) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    void (*plugin_free)(void *) = (void (*)(void *))dlsym(plugin, "plugin_free");
    void *(*plugin_alloc)(size_t) = (void *(*)(size_t))dlsym(plugin, "plugin_alloc");
    plugin_free(malloc(100)); /* @leak:freed_by_plugin */
    void *volatile lost = plugin_alloc(200); /* @call:main */
    lost = NULL;
    puts("loaded");
    return 0;
}
