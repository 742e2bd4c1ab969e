/* Loads a library that leaks, then unloads it: its frames must still resolve. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    void (*leak)(int) = (void (*)(int))dlsym(lib, "plugin_leak");
    leak(7);
    dlclose(lib);
    return 0;
}
