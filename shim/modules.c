/* The loaded objects (executable, shared libraries) and where they sit in memory, so the
 * symbolizer can map return addresses back to files. Refreshed at start-up, before every
 * dlclose and when a capture is written; entries are never removed, only flagged unloaded,
 * so frames in a library that was dlclose'd still resolve. */
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

#define MAX_MODULES 4096u

/* Guarded by `lock`. Taken only inside dl_iterate_phdr callbacks and by the capture writer,
 * never in an allocation hook, so the loader lock is always taken before it, never after. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct lt_module *modules; /* lt_map'd */
static unsigned nmodules;
static uint8_t *seen;             /* per module: found by the current refresh */

bool lt_modules_init(void)
{
    modules = lt_map(sizeof(struct lt_module) * MAX_MODULES);
    seen = lt_map(MAX_MODULES);
    return modules && seen;
}

void lt_modules_lock(void) { pthread_mutex_lock(&lock); }
void lt_modules_unlock(void) { pthread_mutex_unlock(&lock); }
unsigned lt_modules_count(void) { return nmodules; }
const struct lt_module *lt_module_at(unsigned i) { return &modules[i]; }

static void read_build_id(struct lt_module *m, const struct dl_phdr_info *info)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
        const uint8_t *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)(const void *)p;
            const uint8_t *name = p + sizeof *n;
            const uint8_t *desc = name + ((n->n_namesz + 3) & ~3u);
            if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
                n->n_descsz <= sizeof m->build_id) {
                memcpy(m->build_id, desc, n->n_descsz);
                m->build_id_len = n->n_descsz;
                return;
            }
            p = desc + ((n->n_descsz + 3) & ~3u);
        }
    }
}

static int on_object(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    (void)ctx;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo) lo = a;
        if (a + ph->p_memsz > hi) hi = a + ph->p_memsz;
    }
    if (hi == 0) return 0;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    for (unsigned i = 0; i < nmodules; i++) {
        struct lt_module *m = &modules[i];
        if (m->bias == info->dlpi_addr && m->start == lo && !(m->flags & 1) &&
            (name[0] == 0 || strncmp(m->path, name, sizeof m->path) == 0)) {
            seen[i] = 1;
            return 0;
        }
    }
    if (nmodules == MAX_MODULES) return 0;
    struct lt_module *m = &modules[nmodules];
    m->bias = info->dlpi_addr;
    m->start = lo;
    m->end = hi;
    m->flags = 0;
    m->build_id_len = 0;
    if (name[0]) {
        strncpy(m->path, name, sizeof m->path - 1);
    } else { /* the main program has no name in the loader's list */
        ssize_t n = readlink("/proc/self/exe", m->path, sizeof m->path - 1);
        m->path[n > 0 ? n : 0] = 0;
    }
    read_build_id(m, info);
    seen[nmodules] = 1;
    nmodules++;
    return 0;
}

static int on_object_locked(struct dl_phdr_info *info, size_t size, void *ctx)
{
    pthread_mutex_lock(&lock);
    on_object(info, size, ctx);
    pthread_mutex_unlock(&lock);
    return 0;
}

/* Serializes whole refreshes (the `seen` marks belong to one refresh at a time). Lock order:
 * refresh_lock, then the loader's lock (inside dl_iterate_phdr), then `lock`. */
static pthread_mutex_t refresh_lock = PTHREAD_MUTEX_INITIALIZER;

void lt_modules_refresh(bool mark_unloaded)
{
    if (!modules) return;
    pthread_mutex_lock(&refresh_lock);
    pthread_mutex_lock(&lock);
    memset(seen, 0, nmodules);
    pthread_mutex_unlock(&lock);
    dl_iterate_phdr(on_object_locked, NULL);
    if (mark_unloaded) {
        pthread_mutex_lock(&lock);
        for (unsigned i = 0; i < nmodules; i++)
            if (!seen[i]) modules[i].flags |= 1;
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_unlock(&refresh_lock);
}
