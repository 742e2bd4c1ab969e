/* What dlsym leaves for the program must be what it leaves natively:
 * - a failed dlsym(RTLD_DEFAULT) names the program in dlerror() (glibc names the caller);
 * - the message is still there after calls of functions the shim interposes (a hook that
 *   looked up its real function with dlsym at its first call dropped it, and the two blocks
 *   glibc frees there were reported lost);
 * - a library dlopen'd RTLD_LOCAL finds its own function with dlsym(RTLD_DEFAULT) (glibc
 *   searches the caller's scope); argv[1] is that library.
 * Prints what it saw; exits 0 when all is as natively. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void on_usr1(int sig) { (void)sig; }

int main(int argc, char **argv)
{
    int failures = 0;
    if (dlsym(RTLD_DEFAULT, "no_such_symbol_one")) return 2;
    const char *e = dlerror();
    printf("first: %s\n", e ? e : "(none)");
    failures += !e || !strstr(e, argv[0]);

    if (dlsym(RTLD_DEFAULT, "no_such_symbol_two")) return 2;
    usleep(1);
    struct timespec nap = { 0, 1000 };
    nanosleep(&nap, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGUSR2, on_usr1);
    e = dlerror();
    printf("after hooked calls: %s\n", e ? e : "(none)");
    failures += !e || !strstr(e, "no_such_symbol_two");
    e = dlerror();
    printf("asked again: %s\n", e ? e : "(none)");
    failures += e != NULL;

    if (argc > 1) {
        void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!lib) return 3;
        void *(*find_own)(void) = (void *(*)(void))dlsym(lib, "find_own");
        void *own = find_own ? find_own() : NULL;
        printf("library's own function: %s\n", own ? "found" : "not found");
        failures += own == NULL;
        dlclose(lib);
    }
    return failures;
}
