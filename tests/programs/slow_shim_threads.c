/* Preloaded after the shim (LD_PRELOAD=shim:this), it interposes the shim's own call to
 * pthread_create: a thread the shim starts (its control thread) sleeps 1.5 s before its first
 * step, as on a loaded machine where it is not scheduled at once. Program threads are left
 * alone. Built with -shared -fPIC. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

/* The shim starts one control thread per process: one slot, no allocation. */
static void *(*shim_start)(void *);
static void *shim_arg;

static void *late_start(void *arg)
{
    (void)arg;
    struct timespec late = { 1, 500 * 1000000L };
    nanosleep(&late, NULL);
    return shim_start(shim_arg);
}

int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg)
{
    create_fn real = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
    Dl_info where;
    if (dladdr((void *)start, &where) && where.dli_fname && strstr(where.dli_fname, "leaktrace_shim")) {
        shim_start = start;
        shim_arg = arg;
        return real(thread, attr, late_start, NULL);
    }
    return real(thread, attr, start, arg);
}
