/* Loads and unloads a library in a loop on two threads, for the attach tests: an attach or
 * detach must never patch or restore the GOT of an object the loader is still relocating
 * (its RELRO page is made read-only at the end), nor of one already unloaded. The library
 * (argv[1]) exports plugin_alloc and plugin_free. Prints "ready", then runs until killed. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *library;

static void *churn(void *unused)
{
    (void)unused;
    for (;;) {
        void *handle = dlopen(library, RTLD_NOW);
        if (!handle) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            exit(3);
        }
        void *(*alloc)(void) = (void *(*)(void))dlsym(handle, "plugin_alloc");
        void (*release)(void *) = (void (*)(void *))dlsym(handle, "plugin_free");
        release(alloc());
        dlclose(handle);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    library = argv[1];
    pthread_t thread;
    for (int i = 0; i < 2; i++) pthread_create(&thread, NULL, churn, NULL);
    printf("ready\n");
    fflush(stdout);
    pause();
    return 0;
}
