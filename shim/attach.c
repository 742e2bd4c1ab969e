/* Attach mode: `leaktrace attach` made a running process dlopen the shim and call
 * leaktrace_attach(). Nobody was bound to the shim's symbols, so it routes the program to its
 * hooks by rewriting the GOT entries and data words (patch_relocations), in every loaded
 * object, of the functions in hooked_functions.h, and keeps each original value to put back
 * on detach. Objects loaded later are patched when the control thread notices them
 * (dl_iterate_phdr's load counter). */
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "scan.h"
#include "shim.h"

#define MAX_PATCHES 65536

struct patch {
    uintptr_t *slot;
    uintptr_t original;
    uintptr_t bias;          /* the load address of the object the slot belongs to */
    bool in_relro;           /* read-only after relocation: unprotect around each write */
};

/* Guarded by patch_lock; taken by the injected call, the control thread and the exit path,
 * never in an allocation hook. */
static pthread_mutex_t patch_lock = PTHREAD_MUTEX_INITIALIZER;
static struct patch *patches;
static size_t npatches;
static unsigned long long seen_loads; /* dlpi_adds at the last patching pass */
static _Atomic bool attached;

bool lt_attached(void) { return atomic_load(&attached); }

static void write_slot(uintptr_t *slot, uintptr_t value, bool in_relro)
{
    uintptr_t page = (uintptr_t)slot & ~(uintptr_t)(lt_page_size() - 1);
    if (in_relro) mprotect((void *)page, lt_page_size(), PROT_READ | PROT_WRITE);
    __atomic_store_n(slot, value, __ATOMIC_RELEASE);
    if (in_relro) mprotect((void *)page, lt_page_size(), PROT_READ);
}

static uintptr_t dyn_ptr(const struct dl_phdr_info *info, uintptr_t p)
{
    /* glibc relocates these entries of a writable .dynamic in place; the vDSO's are not. */
    return p < info->dlpi_addr ? p + info->dlpi_addr : p;
}

/* Is [slot, slot + 8) inside one of the object's writable segments (RELRO included: it is
 * writable in the file's program headers)? */
static bool in_writable_segment(const struct dl_phdr_info *info, uintptr_t slot)
{
    for (int k = 0; k < info->dlpi_phnum; k++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W) && slot >= lo &&
            slot + sizeof(uintptr_t) <= lo + ph->p_memsz)
            return true;
    }
    return false;
}

struct patch_pass {
    uintptr_t own_bias;
    bool incomplete; /* an object was left for the next pass (still being loaded) */
    /* A library just loaded with RTLD_DEEPBIND (preload mode, lt_patch_deep_bound): only
     * objects outside `known` (those loaded before it), and only slots bound past the shim.
     * Nothing is kept to put back: preloaded, the hooks stay for good. */
    bool deep;
    const uintptr_t *known;
    size_t nknown;
    void *const *hooks; /* deep: per lt_hooks entry, the hook its slots get, or NULL */
};

/* The hook a GOT slot of a deep-bound object gets (deepbind.c decided, per lt_hooks entry). */
static void *deep_bound_hook(const char *name, void *const *hooks)
{
    for (size_t i = 0; i < LT_MAX_HOOKS && lt_hooks[i].name; i++)
        if (strcmp(lt_hooks[i].name, name) == 0) return hooks[i];
    return NULL;
}

/* A hooked function's address lives in the GOT (JUMP_SLOT: calls through the PLT; GLOB_DAT:
 * code that takes its address) and, for the C library's allocation functions, in data a
 * relocation filled with it (R_X86_64_64, addend 0): allocator tables such as libxml2's
 * `xmlMalloc = malloc`, through which every allocation of the library goes. All are pointed at
 * the hook, so the program's pointers to one function still compare equal. */
static void patch_slot(const struct dl_phdr_info *info, uintptr_t *slot, void *hook, bool in_relro)
{
    if (*slot == (uintptr_t)hook || npatches == MAX_PATCHES) return;
    patches[npatches++] = (struct patch){ slot, *slot, info->dlpi_addr, in_relro };
    write_slot(slot, (uintptr_t)hook, in_relro);
}

/* A variable of a library that a position-dependent executable uses directly is copied into
 * the executable (R_X86_64_COPY), after the library's own relocations filled it; the library
 * then uses the copy. libxml2's `xmlFree` or `xmlMalloc`, named by the program, is such a copy
 * of libc's function: patching the library's original word would change nothing, and frees
 * through the copy would leave their blocks looking leaked. So each word of the copy that
 * holds one of the C library's allocation functions points at its hook too. */
static void patch_copied_words(const struct dl_phdr_info *info, const struct patch_pass *pass,
                               uintptr_t *copy, size_t size)
{
    if (pass->deep || size > 64 * sizeof(uintptr_t)) return; /* tables of pointers, not buffers */
    for (size_t k = 0; k < size / sizeof(uintptr_t); k++) {
        if (!in_writable_segment(info, (uintptr_t)&copy[k])) continue;
        void *held = (void *)copy[k];
        void *hook = lt_allocation_hook_for_value(held);
        if (hook != held) patch_slot(info, &copy[k], hook, false);
    }
}

static void patch_relocations(const struct dl_phdr_info *info, const struct patch_pass *pass,
                              const ElfW(Rela) *rel, size_t count, const ElfW(Sym) *symtab,
                              const char *strtab, uintptr_t relro_lo, uintptr_t relro_hi)
{
    for (size_t i = 0; i < count; i++) {
        unsigned long type = ELF64_R_TYPE(rel[i].r_info);
        if (type == R_X86_64_COPY && ELF64_R_SYM(rel[i].r_info)) {
            patch_copied_words(info, pass, (uintptr_t *)(info->dlpi_addr + rel[i].r_offset),
                               symtab[ELF64_R_SYM(rel[i].r_info)].st_size);
            continue;
        }
        bool data = type == R_X86_64_64;
        if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT && !(data && rel[i].r_addend == 0))
            continue;
        const ElfW(Sym) *sym = &symtab[ELF64_R_SYM(rel[i].r_info)];
        const char *name = strtab + sym->st_name;
        uintptr_t *slot = (uintptr_t *)(info->dlpi_addr + rel[i].r_offset);
        void *hook;
        if (data) {
            /* Only a word that still holds the C library's own function (the program may have
             * put its own allocator there), in memory that can be written (no text
             * relocations). C++ operators are left out: finding the runtime's would take the
             * loader's lock again. */
            if (!ELF64_R_SYM(rel[i].r_info) || name[0] == '_' ||
                !in_writable_segment(info, (uintptr_t)slot))
                continue;
            void *held = (void *)*slot;
            hook = lt_allocation_hook_for(name, held);
            if (hook == held) continue;
        } else if (pass->deep) {
            hook = deep_bound_hook(name, pass->hooks);
        } else {
            hook = lt_hook_named(name);
        }
        if (!hook) continue;
        bool in_relro = (uintptr_t)slot >= relro_lo && (uintptr_t)slot < relro_hi;
        if (pass->deep) {
            write_slot(slot, (uintptr_t)hook, in_relro);
            continue;
        }
        patch_slot(info, slot, hook, in_relro);
    }
}

static int patch_object(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    struct patch_pass *pass = ctx;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    /* Not the shim, not the loader (its allocations go straight to libc's malloc either way),
     * not the vDSO. */
    if (info->dlpi_addr == pass->own_bias || strstr(name, "ld-linux") || strstr(name, "linux-vdso")) return 0;
    for (size_t k = 0; pass->deep && k < pass->nknown; k++)
        if (pass->known[k] == info->dlpi_addr) return 0; /* loaded before: bound as usual */
    const ElfW(Dyn) *dyn = NULL;
    uintptr_t relro_lo = 0, relro_hi = 0, first_load = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && !first_load) first_load = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_DYNAMIC) dyn = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
        if (ph->p_type == PT_GNU_RELRO) {
            relro_lo = info->dlpi_addr + ph->p_vaddr;
            relro_hi = relro_lo + ph->p_memsz;
        }
    }
    if (!dyn) return 0;
    /* An object dlopen is still relocating is already in the loader's list: its relocation
     * would overwrite our GOT writes, and its RELRO page is made read-only at the end of it,
     * which our unprotect-write-protect around a write would race with (the loader then
     * crashes writing a page we made read-only). _dl_find_object knows an object only once
     * dlopen has relocated it (glibc >= 2.35: it is added after relocation): until then the
     * object waits for the next pass. */
    struct dl_find_object found;
    if (first_load && _dl_find_object((void *)first_load, &found) != 0) {
        pass->incomplete = true;
        return 0;
    }
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const ElfW(Rela) *jmprel = NULL, *rela = NULL;
    size_t jmprel_size = 0, rela_size = 0;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        switch (dyn->d_tag) {
        case DT_SYMTAB: symtab = (const ElfW(Sym) *)dyn_ptr(info, dyn->d_un.d_ptr); break;
        case DT_STRTAB: strtab = (const char *)dyn_ptr(info, dyn->d_un.d_ptr); break;
        case DT_JMPREL: jmprel = (const ElfW(Rela) *)dyn_ptr(info, dyn->d_un.d_ptr); break;
        case DT_PLTRELSZ: jmprel_size = dyn->d_un.d_val; break;
        case DT_RELA: rela = (const ElfW(Rela) *)dyn_ptr(info, dyn->d_un.d_ptr); break;
        case DT_RELASZ: rela_size = dyn->d_un.d_val; break;
        default: break;
        }
    }
    if (!symtab || !strtab) return 0;
    if (jmprel)
        patch_relocations(info, pass, jmprel, jmprel_size / sizeof *jmprel, symtab, strtab,
                          relro_lo, relro_hi);
    if (rela)
        patch_relocations(info, pass, rela, rela_size / sizeof *rela, symtab, strtab, relro_lo,
                          relro_hi);
    return 0;
}

static int count_loads(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    *(unsigned long long *)ctx = info->dlpi_adds;
    return 1; /* the first object is enough: the counter is process-wide */
}

/* pre: patch_lock held. */
static void patch_all(void)
{
    if (!patches) patches = lt_map(MAX_PATCHES * sizeof *patches);
    if (!patches) return;
    struct patch_pass pass = { .own_bias = lt_own_load_bias() };
    unsigned long long loads = 0;
    dl_iterate_phdr(count_loads, &loads);
    dl_iterate_phdr(patch_object, &pass);
    /* Left out objects still being loaded: the control thread's next poll tries again. */
    if (!pass.incomplete) seen_loads = loads;
}

void lt_patch_deep_bound(const uintptr_t *known, size_t nknown, void *const *hooks)
{
    struct patch_pass pass = { .own_bias = lt_own_load_bias(), .deep = true, .known = known,
                               .nknown = nknown, .hooks = hooks };
    dl_iterate_phdr(patch_object, &pass);
}

void lt_attach_poll_new_objects(void)
{
    if (!atomic_load(&attached)) return;
    unsigned long long loads = 0;
    dl_iterate_phdr(count_loads, &loads);
    if (loads == seen_loads) return;
    pthread_mutex_lock(&patch_lock);
    if (atomic_load(&attached)) patch_all();
    pthread_mutex_unlock(&patch_lock);
}

/* leaktrace_attach's result when the control socket cannot be made: this minus the errno
 * (attach/injector.py reads it). The others: 0 attached, -1 preloaded, -2 the settings file
 * unreadable, -3 no memory for the tables. */
enum { LT_ATTACH_NO_SOCKET = -1000 };

/* Called by `leaktrace attach` through an injected call, on one thread of the target. */
LT_EXPORT int leaktrace_attach(const char *config_path)
{
    if (!lt_attach_mode()) return -1;      /* preloaded: already tracing */
    if (atomic_load(&attached)) return 0;  /* a second attach: nothing to do */
    lt_set_busy(true);
    int result = -2;
    /* The thread of an earlier session may still be on its way out (it ends after answering
     * detach): the tables and the socket are made again only once it is gone. */
    lt_control_join_previous();
    if (lt_config_load_file(config_path)) {
        /* Without its socket the session could never be detached: nothing is patched. */
        int no_socket = lt_control_open_for_attach();
        if (no_socket) {
            lt_set_busy(false);
            return LT_ATTACH_NO_SOCKET - no_socket;
        }
        pthread_mutex_lock(&patch_lock);
        bool ready = lt_reset_for_attach();
        pthread_mutex_unlock(&patch_lock);
        if (!ready) {
            lt_set_busy(false);
            return -3; /* the tables could not be mapped again */
        }
        lt_go_detect(); /* before any scan: Go threads' stacks are read the Go way */
        lt_scan_learn_heap_marks(false);
        pthread_mutex_lock(&patch_lock);
        npatches = 0;
        patch_all();
        atomic_store(&attached, true);
        pthread_mutex_unlock(&patch_lock);
        lt_start_collecting();
        lt_control_start();
        lt_control_apply_config(); /* a later attach may bring another interval or directory */
        result = 0;
    }
    lt_set_busy(false);
    return result;
}

static bool holds_a_hook(uintptr_t value)
{
    for (const struct lt_hook *h = lt_hooks; h->name; h++)
        if (value == (uintptr_t)h->function) return true;
    for (const struct lt_hook *h = lt_allocator_hooks; h->name; h++)
        if (value == (uintptr_t)h->function) return true;
    for (const struct lt_hook *h = lt_annotation_hooks; h->name; h++)
        if (value == (uintptr_t)h->function) return true;
    return false;
}

/* Puts back the slots patched in this object, unless the program rewrote one since (then it
 * is its). Object by object, from inside dl_iterate_phdr: the loader's list lock is held, so
 * an object found in the list cannot be unloaded meanwhile (dlclose takes it off the list
 * before unmapping it), and the patches of an object already unloaded are never touched.
 * pre: patch_lock held. */
static int restore_object(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    (void)ctx;
    for (size_t i = 0; i < npatches; i++) {
        const struct patch *pt = &patches[i];
        if (pt->bias != info->dlpi_addr) continue;
        bool inside = false;
        for (int k = 0; k < info->dlpi_phnum && !inside; k++) {
            const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
            uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
            inside = ph->p_type == PT_LOAD && (uintptr_t)pt->slot >= lo &&
                     (uintptr_t)pt->slot + sizeof(uintptr_t) <= lo + ph->p_memsz;
        }
        /* Another object loaded at the same address since holds its own relocations. */
        if (inside && holds_a_hook(__atomic_load_n(pt->slot, __ATOMIC_ACQUIRE)))
            write_slot(pt->slot, pt->original, pt->in_relro);
    }
    return 0;
}

/* The same, the result also stored at *status: `leaktrace attach` calls it so that its
 * return goes through rt_sigreturn, which brings the thread back whether or not leaktrace is
 * still alive, and restores RAX on the way (attach/return_home.py). */
LT_EXPORT int leaktrace_attach_status(const char *config_path, int *status)
{
    int result = leaktrace_attach(config_path);
    if (status) *status = result;
    return result;
}

bool lt_detach(char *capture_path, size_t cap, bool scan)
{
    if (capture_path) capture_path[0] = 0;
    /* Held throughout, so that an attach cannot reset the tables while they are written. */
    pthread_mutex_lock(&patch_lock);
    if (!atomic_exchange(&attached, false)) {
        pthread_mutex_unlock(&patch_lock);
        return false;
    }
    /* The capture is written while the hooks still see frees, then the GOT is put back. */
    lt_set_collecting(false);
    if (capture_path) lt_write_detach_capture(capture_path, cap, scan);
    dl_iterate_phdr(restore_object, NULL);
    npatches = 0;
    lt_unmap(patches, MAX_PATCHES * sizeof *patches);
    patches = NULL;
    lt_stop_tracking();
    lt_scan_give_back_signal(); /* a scan ran: its handler goes, unless a signal is pending */
    pthread_mutex_unlock(&patch_lock);
    /* Nothing of the session stays in the process: its thread ends (at once, or after it has
     * answered when it is the caller) and the tables go back to the system once no hook is
     * inside them. Not under patch_lock: the thread may be waiting for it. The shim's own
     * mapping stays (it cannot be unloaded). */
    lt_control_request_exit();
    pthread_mutex_lock(&patch_lock);
    bool released = !atomic_load(&attached) && lt_release_tables();
    pthread_mutex_unlock(&patch_lock);
    return released;
}
