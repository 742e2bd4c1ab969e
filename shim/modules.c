/* The loaded objects (executable, shared libraries) and where they sit in memory, so the
 * symbolizer can map return addresses back to files. Refreshed at start-up, before every
 * dlclose and when a capture is written; entries are never removed, only flagged unloaded,
 * so frames in a library that was dlclose'd still resolve. Adding objects never waits for the
 * loader's lock (note_mapped_objects); only marking unloaded ones, around dlclose, takes it. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "shim.h"

#define MAX_MODULES 4096u

/* Guarded by `lock`, which is held only for memory operations: inside dl_iterate_phdr
 * callbacks (the loader's lock is then held outside it), by the capture writer, and by the
 * unwinder's slow path; nothing is called out to while holding it. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Set while this thread holds `lock` or waits for it: a signal handler that interrupts it and
 * unwinds a new frame (the stand-in describing a fatal signal, finding where its scan starts)
 * skips noting the object (the next capture's refresh lists it) instead of waiting for a lock
 * its own thread holds. A SIGTERM that came as a worker of multiprocessing's Pool wrote its
 * final capture (the module names, under `lock`) hung the worker, and the pool with it. */
static __thread volatile bool lock_held_here __attribute__((tls_model("initial-exec")));

void lt_modules_lock(void)
{
    lock_held_here = true;
    atomic_signal_fence(memory_order_seq_cst);
    pthread_mutex_lock(&lock);
}

bool lt_modules_trylock(void)
{
    lock_held_here = true;
    atomic_signal_fence(memory_order_seq_cst);
    if (pthread_mutex_trylock(&lock) == 0) return true;
    atomic_signal_fence(memory_order_seq_cst);
    lock_held_here = false;
    return false;
}

void lt_modules_unlock(void)
{
    pthread_mutex_unlock(&lock);
    atomic_signal_fence(memory_order_seq_cst);
    lock_held_here = false;
}
/* Serializes whole refreshes (the `seen` marks belong to one refresh at a time). Lock order:
 * refresh_lock, then the loader's lock (inside dl_iterate_phdr), then `lock`. */
static pthread_mutex_t refresh_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lt_module *modules; /* lt_map'd */
static unsigned nmodules;
static uint8_t *seen;             /* per module: found by the current refresh */

bool lt_modules_init(void)
{
    modules = lt_map(sizeof(struct lt_module) * MAX_MODULES);
    seen = lt_map(MAX_MODULES);
    return modules && seen;
}

/* Not locked around fork (the loader's lock may be taken inside ours there): the child, alone
 * in its process, starts with fresh locks instead. A module half-added at that instant is at
 * worst a wrong entry, never a hang. */
void lt_modules_after_fork_child(void)
{
    pthread_mutex_init(&lock, NULL);
    pthread_mutex_init(&refresh_lock, NULL);
}
unsigned lt_modules_count(void) { return nmodules; }
const struct lt_module *lt_module_at(unsigned i) { return &modules[i]; }

/* The GNU build-id among the notes at p..end. */
static void build_id_from_notes(struct lt_module *m, const uint8_t *p, const uint8_t *end)
{
    while (p + sizeof(ElfW(Nhdr)) <= end) {
        const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)(const void *)p;
        const uint8_t *name = p + sizeof *n;
        const uint8_t *desc = name + ((n->n_namesz + 3) & ~3u);
        if (desc + n->n_descsz > end) return;
        if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
            n->n_descsz <= sizeof m->build_id) {
            memcpy(m->build_id, desc, n->n_descsz);
            m->build_id_len = n->n_descsz;
            return;
        }
        p = desc + ((n->n_descsz + 3) & ~3u);
    }
}

/* The build-id of an object that may be going away: found without the loader's lock, it may
 * be unmapped by another thread's dlclose at any moment, so its headers and notes are read by
 * copy (lt_copy_memory), which fails instead of faulting. */
static void read_build_id_safely(struct lt_module *m, uintptr_t map_start, uintptr_t bias)
{
    ElfW(Ehdr) eh;
    if (!lt_copy_memory(&eh, map_start, sizeof eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return;
    ElfW(Phdr) ph[32];
    unsigned n = eh.e_phnum < 32 ? eh.e_phnum : 32;
    if (!lt_copy_memory(ph, map_start + eh.e_phoff, n * sizeof *ph)) return;
    for (unsigned i = 0; i < n && m->build_id_len == 0; i++) {
        uint8_t notes[1024];
        size_t len = ph[i].p_memsz < sizeof notes ? ph[i].p_memsz : sizeof notes;
        if (ph[i].p_type == PT_NOTE && lt_copy_memory(notes, bias + ph[i].p_vaddr, len))
            build_id_from_notes(m, notes, notes + len);
    }
}

/* Inside dl_iterate_phdr: the loader's lock keeps the object mapped. */
static void read_build_id(struct lt_module *m, const struct dl_phdr_info *info)
{
    for (int i = 0; i < info->dlpi_phnum && m->build_id_len == 0; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
        build_id_from_notes(m, p, p + ph->p_memsz);
    }
}

/* pre: lock held. A loaded (not unloaded) module with this load bias: two objects loaded at
 * the same time never share one. */
static int find_loaded(uintptr_t bias)
{
    for (unsigned i = 0; i < nmodules; i++)
        if (modules[i].bias == bias && !(modules[i].flags & LT_MODULE_FLAG_UNLOADED)) return (int)i;
    return -1;
}

/* pre: lock held. */
static struct lt_module *add_module(uintptr_t bias, uintptr_t lo, uintptr_t hi, const char *name)
{
    if (nmodules == MAX_MODULES) return NULL;
    struct lt_module *m = &modules[nmodules];
    m->bias = bias;
    m->start = lo;
    m->end = hi;
    m->flags = 0;
    m->build_id_len = 0;
    if (name && name[0]) {
        strncpy(m->path, name, sizeof m->path - 1);
    } else { /* the main program has no name in the loader's list */
        ssize_t n = lt_readlink_proc("/proc/self/exe", m->path, sizeof m->path - 1);
        m->path[n > 0 ? n : 0] = 0;
    }
    seen[nmodules] = 1;
    nmodules++;
    return m;
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
    int known = find_loaded(info->dlpi_addr);
    if (known >= 0) {
        seen[known] = 1;
        return 0;
    }
    struct lt_module *m = add_module(info->dlpi_addr, lo, hi, info->dlpi_name);
    if (m) read_build_id(m, info);
    return 0;
}

/* The main program, which the kernel mapped and never goes away: its whole extent from its
 * program headers (AT_PHDR). _dl_find_object gives a non-PIE executable only the segment of
 * the address asked (glibc 2.36), and the first executable mapping of one whose .init/.plt
 * sit in a segment of their own (node's: .init/.plt, then .text, then lpstub) is a few
 * bytes, so every frame in its .text had no module. False if the headers are not its. */
static bool note_main_program(uintptr_t bias)
{
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)getauxval(AT_PHDR);
    unsigned long n = getauxval(AT_PHNUM);
    uintptr_t lo = UINTPTR_MAX, hi = 0, own_bias = bias;
    if (!ph) return false;
    for (unsigned long i = 0; i < n; i++)
        if (ph[i].p_type == PT_PHDR) own_bias = (uintptr_t)ph - ph[i].p_vaddr;
    if (own_bias != bias) return false;
    for (unsigned long i = 0; i < n; i++) {
        if (ph[i].p_type != PT_LOAD) continue;
        uintptr_t a = bias + ph[i].p_vaddr;
        if (a < lo) lo = a;
        if (a + ph[i].p_memsz > hi) hi = a + ph[i].p_memsz;
    }
    if (hi == 0) return false;
    struct lt_module *m = add_module(bias, lo, hi, "");
    for (unsigned long i = 0; m && i < n && m->build_id_len == 0; i++)
        if (ph[i].p_type == PT_NOTE) {
            const uint8_t *p = (const uint8_t *)(bias + ph[i].p_vaddr);
            build_id_from_notes(m, p, p + ph[i].p_memsz);
        }
    return true;
}

void lt_modules_note_object(uintptr_t map_start, uintptr_t map_end, uintptr_t bias, const char *name)
{
    if (!modules || lock_held_here) return;
    lt_modules_lock();
    if (find_loaded(bias) < 0 && !((!name || !name[0]) && note_main_program(bias))) {
        struct lt_module *m = add_module(bias, map_start, map_end, name);
        /* The ELF header and program headers are mapped at the start of the first segment. */
        if (m) read_build_id_safely(m, map_start, bias);
    }
    lt_modules_unlock();
}

static int on_object_locked(struct dl_phdr_info *info, size_t size, void *ctx)
{
    lt_modules_lock();
    on_object(info, size, ctx);
    lt_modules_unlock();
    return 0;
}


/* Calls `visit` on every object with an executable mapping in /proc/self/maps, each found with
 * _dl_find_object, which takes no lock. dl_iterate_phdr would take the loader's lock, which a
 * thread of the program may hold for as long as it likes (inside a dl_iterate_phdr callback
 * that allocates, loops or waits), and the process would hang at exit. The file is read in
 * chunks by a small state machine: only each line's start address and permissions matter.
 * False when the file cannot be read. */
static bool visit_mapped_objects(void (*visit)(const struct dl_find_object *))
{
    int fd = lt_open_proc("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    enum { START, END, PERMS, REST } field = START;
    uintptr_t start = 0;
    int perm = 0;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
        for (ssize_t i = 0; i < n; i++) {
            char c = buf[i];
            if (c == '\n') {
                field = START;
                start = 0;
                perm = 0;
            } else if (field == START) {
                if (c == '-') field = END;
                else start = start * 16 + (uintptr_t)(c <= '9' ? c - '0' : c - 'a' + 10);
            } else if (field == END) {
                if (c == ' ') field = PERMS;
            } else if (field == PERMS) {
                if (++perm == 3 && c == 'x') {
                    struct dl_find_object found;
                    if (_dl_find_object((void *)start, &found) == 0 && found.dlfo_link_map) visit(&found);
                }
                if (perm == 4) field = REST;
            }
        }
    }
    close(fd);
    return true;
}

static void note_found_object(const struct dl_find_object *found)
{
    lt_modules_note_object((uintptr_t)found->dlfo_map_start, (uintptr_t)found->dlfo_map_end,
                           found->dlfo_link_map->l_addr, found->dlfo_link_map->l_name);
}

static void check_found_object(const struct dl_find_object *found)
{
    lt_note_allocator_imports(found->dlfo_link_map->l_addr, found->dlfo_link_map->l_ld);
}

/* Whether an object mapped now imports glibc's own allocator names (lt_note_allocator_imports),
 * every object read again (a library loaded with dlopen is noted as a module only once a
 * backtrace or a capture meets it): before invalid_frees.c keeps a new site. */
void lt_modules_check_imports(void) { visit_mapped_objects(check_found_object); }

void lt_modules_refresh(bool mark_unloaded)
{
    if (!modules) return;
    /* Adding what is loaded needs no lock of the loader's; marking what is gone does. */
    if (!mark_unloaded && visit_mapped_objects(note_found_object)) return;
    pthread_mutex_lock(&refresh_lock);
    lt_modules_lock();
    memset(seen, 0, nmodules);
    lt_modules_unlock();
    dl_iterate_phdr(on_object_locked, NULL);
    if (mark_unloaded) {
        lt_modules_lock();
        for (unsigned i = 0; i < nmodules; i++)
            if (!seen[i]) modules[i].flags |= LT_MODULE_FLAG_UNLOADED;
        lt_modules_unlock();
    }
    pthread_mutex_unlock(&refresh_lock);
}

/* After a detach (lt_release_tables); lt_modules_init maps the table again. */
void lt_modules_release(void)
{
    pthread_mutex_lock(&refresh_lock);
    lt_modules_lock();
    lt_unmap(modules, sizeof(struct lt_module) * MAX_MODULES);
    lt_unmap(seen, MAX_MODULES);
    modules = NULL;
    seen = NULL;
    nmodules = 0;
    lt_modules_unlock();
    pthread_mutex_unlock(&refresh_lock);
}
