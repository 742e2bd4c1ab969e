/* Questions answered from the dynamic loader's list of loaded objects (the link map), read
 * directly, without dlsym or dladdr: how the shim was loaded, and whether an object that
 * comes before it in symbol lookup defines an allocation function itself (then the program's
 * calls to that function never reach the shim). */
#include <elf.h>
#include <link.h>
#include <string.h>

#include "shim.h"

/* Names of the interposed functions that an earlier object defines, for the capture's notes.
 * Written once at start-up (single-threaded), read by the capture writer. */
static char foreign_note[1024];

const char *lt_foreign_allocator_note(void) { return foreign_note[0] ? foreign_note : NULL; }

/* pre: the loader's list is stable (start-up, or inside the loader's own lock). */
bool lt_loaded_by_preload(void)
{
    struct dl_find_object own, libc;
    if (_dl_find_object((void *)(uintptr_t)&lt_loaded_by_preload, &own) != 0 ||
        _dl_find_object((void *)(uintptr_t)&__libc_malloc, &libc) != 0)
        return false;
    /* Preloaded objects are loaded before the program's dependencies, libc among them. */
    for (const struct link_map *m = _r_debug.r_map; m; m = m->l_next) {
        if (m == own.dlfo_link_map) return true;
        if (m == libc.dlfo_link_map) return false;
    }
    return false;
}

struct dynamic_symbols {
    const ElfW(Sym) *symtab;
    const char *strtab;
    const uint32_t *gnu_hash, *sysv_hash;
};

static uintptr_t dyn_ptr(const struct link_map *m, uintptr_t p)
{
    /* glibc relocates these entries of a writable .dynamic in place; the vDSO's are not. */
    return p < m->l_addr ? p + m->l_addr : p;
}

static bool read_dynamic(const struct link_map *m, struct dynamic_symbols *ds)
{
    memset(ds, 0, sizeof *ds);
    if (!m->l_ld) return false;
    for (const ElfW(Dyn) *d = m->l_ld; d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB: ds->symtab = (const ElfW(Sym) *)dyn_ptr(m, d->d_un.d_ptr); break;
        case DT_STRTAB: ds->strtab = (const char *)dyn_ptr(m, d->d_un.d_ptr); break;
        case DT_GNU_HASH: ds->gnu_hash = (const uint32_t *)dyn_ptr(m, d->d_un.d_ptr); break;
        case DT_HASH: ds->sysv_hash = (const uint32_t *)dyn_ptr(m, d->d_un.d_ptr); break;
        default: break;
        }
    }
    return ds->symtab && ds->strtab && (ds->gnu_hash || ds->sysv_hash);
}

static bool defines(const struct dynamic_symbols *ds, uint32_t index, const char *name)
{
    const ElfW(Sym) *s = &ds->symtab[index];
    unsigned type = ELF64_ST_TYPE(s->st_info);
    /* An undefined symbol with a value is a non-PIE program's PLT stub: calls through it still
     * go through its GOT, to whichever definition the loader bound. */
    return s->st_shndx != SHN_UNDEF && s->st_value != 0 && (type == STT_FUNC || type == STT_GNU_IFUNC) &&
           strcmp(ds->strtab + s->st_name, name) == 0;
}

static bool object_defines(const struct dynamic_symbols *ds, const char *name)
{
    if (ds->gnu_hash) {
        uint32_t h = 5381;
        for (const char *c = name; *c; c++) h = h * 33 + (uint8_t)*c;
        uint32_t nbuckets = ds->gnu_hash[0], symoffset = ds->gnu_hash[1], bloom_words = ds->gnu_hash[2];
        if (!nbuckets) return false;
        const uint32_t *buckets = ds->gnu_hash + 4 + 2 * (size_t)bloom_words; /* 64-bit bloom words */
        const uint32_t *chain = buckets + nbuckets;
        uint32_t i = buckets[h % nbuckets];
        if (i < symoffset) return false;
        for (;; i++) {
            uint32_t link = chain[i - symoffset];
            if ((link | 1) == (h | 1) && defines(ds, i, name)) return true;
            if (link & 1) return false;
        }
    }
    uint32_t h = 0;
    for (const char *c = name; *c; c++) {
        h = (h << 4) + (uint8_t)*c;
        uint32_t g = h & 0xf0000000u;
        if (g) h ^= g >> 24;
        h &= ~g;
    }
    uint32_t nbucket = ds->sysv_hash[0];
    if (!nbucket) return false;
    const uint32_t *bucket = ds->sysv_hash + 2, *chain = bucket + nbucket;
    for (uint32_t i = bucket[h % nbucket]; i != 0; i = chain[i])
        if (defines(ds, i, name)) return true;
    return false;
}

/* pre: start-up, preloaded. Objects searched before the shim are the program itself and the
 * libraries preloaded ahead of it. */
void lt_allocator_check(void)
{
    static const char *const allocation_functions[] = {
        "malloc", "free", "calloc", "realloc", "memalign", "posix_memalign", "aligned_alloc",
        "valloc", "pvalloc",
    };
    struct dl_find_object own;
    if (_dl_find_object((void *)(uintptr_t)&lt_allocator_check, &own) != 0) return;
    char *p = foreign_note, *end = foreign_note + sizeof foreign_note - 1;
    for (const struct link_map *m = _r_debug.r_map; m && m != own.dlfo_link_map; m = m->l_next) {
        struct dynamic_symbols ds;
        if (!read_dynamic(m, &ds)) continue;
        bool first = true;
        for (size_t i = 0; i < sizeof allocation_functions / sizeof *allocation_functions; i++) {
            if (!object_defines(&ds, allocation_functions[i])) continue;
            if (first) {
                if (p != foreign_note) p = lt_put_str(p, end, "; ");
                p = lt_put_str(p, end, m->l_name && m->l_name[0] ? m->l_name : "the program");
                p = lt_put_str(p, end, " defines its own ");
                first = false;
            } else {
                p = lt_put_str(p, end, ", ");
            }
            p = lt_put_str(p, end, allocation_functions[i]);
        }
    }
    *p = 0;
}
