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
        _dl_find_object((void *)(uintptr_t)lt_libc_address(), &libc) != 0)
        return false;
    /* Preloaded objects are loaded before the program's dependencies, libc among them. */
    for (const struct link_map *m = _r_debug.r_map; m; m = m->l_next) {
        if (m == own.dlfo_link_map) return true;
        if (m == libc.dlfo_link_map) return false;
    }
    return false;
}

/* pre: start-up. The loader keeps the name for as long as the object stays loaded. */
const char *lt_shim_file_name(const char *fallback)
{
    struct dl_find_object own;
    if (_dl_find_object((void *)(uintptr_t)&lt_shim_file_name, &own) != 0 || !own.dlfo_link_map ||
        !own.dlfo_link_map->l_name || !own.dlfo_link_map->l_name[0])
        return fallback;
    const char *slash = strrchr(own.dlfo_link_map->l_name, '/');
    return slash ? slash + 1 : own.dlfo_link_map->l_name;
}

struct dynamic_symbols {
    uintptr_t base; /* the object's load bias */
    const ElfW(Sym) *symtab;
    const char *strtab;
    const uint32_t *gnu_hash, *sysv_hash;
    const ElfW(Half) *versym; /* NULL: the object has no symbol versions */
    size_t soname;            /* offset in strtab; 0: none */
};

static uintptr_t dyn_ptr(uintptr_t base, uintptr_t p)
{
    /* glibc relocates these entries of a writable .dynamic in place; the vDSO's are not. */
    return p < base ? p + base : p;
}

static bool read_dynamic(uintptr_t base, const ElfW(Dyn) *dynamic, struct dynamic_symbols *ds)
{
    memset(ds, 0, sizeof *ds);
    ds->base = base;
    if (!dynamic) return false;
    for (const ElfW(Dyn) *d = dynamic; d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB: ds->symtab = (const ElfW(Sym) *)dyn_ptr(base, d->d_un.d_ptr); break;
        case DT_STRTAB: ds->strtab = (const char *)dyn_ptr(base, d->d_un.d_ptr); break;
        case DT_GNU_HASH: ds->gnu_hash = (const uint32_t *)dyn_ptr(base, d->d_un.d_ptr); break;
        case DT_HASH: ds->sysv_hash = (const uint32_t *)dyn_ptr(base, d->d_un.d_ptr); break;
        case DT_VERSYM: ds->versym = (const ElfW(Half) *)dyn_ptr(base, d->d_un.d_ptr); break;
        case DT_SONAME: ds->soname = d->d_un.d_val; break;
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
    return s->st_shndx != SHN_UNDEF && s->st_value != 0 &&
           (type == STT_FUNC || type == STT_GNU_IFUNC || type == STT_OBJECT) &&
           strcmp(ds->strtab + s->st_name, name) == 0;
}

/* The index of the object's definition of `name` (its default version, where it has several),
 * or 0. */
static uint32_t find_definition(const struct dynamic_symbols *ds, const char *name)
{
    uint32_t found = 0;
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
            if ((link | 1) == (h | 1) && defines(ds, i, name)) {
                found = i;
                if (!ds->versym || !(ds->versym[i] & 0x8000)) return i; /* bit 15: hidden */
            }
            if (link & 1) return found;
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
    if (!nbucket) return 0;
    const uint32_t *bucket = ds->sysv_hash + 2, *chain = bucket + nbucket;
    for (uint32_t i = bucket[h % nbucket]; i != 0; i = chain[i])
        if (defines(ds, i, name)) {
            found = i;
            if (!ds->versym || !(ds->versym[i] & 0x8000)) return i;
        }
    return found;
}

static bool object_defines(const struct dynamic_symbols *ds, const char *name)
{
    return find_definition(ds, name) != 0;
}

/* The address of the object's own `name` (a function or a variable), as dlsym on a handle of
 * the object gives it; NULL if it has none, or only an ifunc (whose resolver only the loader
 * should call). */
static void *definition_address(const struct dynamic_symbols *ds, const char *name)
{
    uint32_t i = find_definition(ds, name);
    if (!i || ELF64_ST_TYPE(ds->symtab[i].st_info) == STT_GNU_IFUNC) return NULL;
    return (void *)(ds->base + ds->symtab[i].st_value);
}

bool lt_object_symbols(const void *inside, const char *const *names, void **addresses, int count)
{
    struct dl_find_object object;
    struct dynamic_symbols ds;
    if (_dl_find_object((void *)(uintptr_t)inside, &object) != 0 || !object.dlfo_link_map ||
        !read_dynamic(object.dlfo_link_map->l_addr, object.dlfo_link_map->l_ld, &ds))
        return false;
    for (int i = 0; i < count; i++) addresses[i] = definition_address(&ds, names[i]);
    return true;
}

struct soname_search {
    const char *soname;
    const char *const *names;
    void **addresses;
    int count;
    bool found;
};

static bool read_object_dynamic(const struct dl_phdr_info *info, struct dynamic_symbols *ds)
{
    const ElfW(Dyn) *dynamic = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            dynamic = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    return read_dynamic(info->dlpi_addr, dynamic, ds);
}

static int search_soname(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct soname_search *search = data;
    struct dynamic_symbols ds;
    if (!read_object_dynamic(info, &ds) || !ds.soname ||
        strcmp(ds.strtab + ds.soname, search->soname) != 0)
        return 0;
    for (int i = 0; i < search->count; i++) search->addresses[i] = definition_address(&ds, search->names[i]);
    search->found = true;
    return 1;
}

bool lt_soname_symbols(const char *soname, const char *const *names, void **addresses, int count)
{
    struct soname_search search = { soname, names, addresses, count, false };
    dl_iterate_phdr(search_soname, &search); /* takes the loader's lock; allocates nothing */
    return search.found;
}

struct definition_search {
    const char *name;
    void **addresses; /* distinct definitions, in load order */
    int max, found;
};

static int collect_definition(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct definition_search *search = data;
    struct dynamic_symbols ds;
    if (!read_object_dynamic(info, &ds)) return 0;
    void *address = definition_address(&ds, search->name);
    if (!address) return 0;
    for (int i = 0; i < search->found; i++)
        if (search->addresses[i] == address) return 0;
    search->addresses[search->found++] = address;
    return search->found == search->max;
}

int lt_exported_definitions(const char *name, void **addresses, int max)
{
    struct definition_search search = { name, addresses, max, 0 };
    if (max > 0) dl_iterate_phdr(collect_definition, &search); /* allocates nothing */
    return search.found;
}

/* glibc's own names of its allocator, which a program may call to pass by an interposed
 * malloc: blocks made so never reach the hooks, and their frees look invalid to the shim. */
static const char *const libc_allocation_functions[] = {
    "__libc_malloc", "__libc_calloc", "__libc_realloc", "__libc_memalign", "__libc_valloc",
    "__libc_pvalloc",
};
static _Atomic bool libc_allocations_imported; /* set for good by lt_note_allocator_imports */

bool lt_libc_allocations_imported(void)
{
    return atomic_load_explicit(&libc_allocations_imported, memory_order_relaxed);
}

/* Reads only the object's own tables, by copy (fails instead of faulting), with no lock and no
 * allocation. */
void lt_note_allocator_imports(uintptr_t base, const void *dynamic)
{
    extern ElfW(Dyn) _DYNAMIC[]; /* the shim's own, which calls them as the real allocator */
    if (lt_libc_allocations_imported() || !dynamic || dynamic == _DYNAMIC) return;
    ElfW(Dyn) entries[96];
    size_t n = 0;
    for (; n < sizeof entries / sizeof *entries - 1; n++) {
        if (!lt_copy_memory(&entries[n], (uintptr_t)dynamic + n * sizeof *entries, sizeof *entries))
            return;
        if (entries[n].d_tag == DT_NULL) break;
    }
    entries[n].d_tag = DT_NULL;
    struct dynamic_symbols ds;
    if (!read_dynamic(base, entries, &ds)) return;
    uint32_t header[2];
    if (!lt_copy_memory(header, (uintptr_t)(ds.gnu_hash ? ds.gnu_hash : ds.sysv_hash), sizeof header))
        return;
    /* Undefined symbols: with a GNU hash table, the ones before its first hashed symbol. */
    uint32_t count = header[1];
    for (uint32_t i = 1; i < count && i < (1u << 20); i++) {
        ElfW(Sym) sym;
        char name[16]; /* a name compared, at most: "__libc_memalign" */
        if (!lt_copy_memory(&sym, (uintptr_t)&ds.symtab[i], sizeof sym)) return;
        if (sym.st_shndx != SHN_UNDEF || !sym.st_name) continue;
        if (!lt_copy_memory(name, (uintptr_t)ds.strtab + sym.st_name, sizeof name)) continue; /* near the end */
        if (strncmp(name, "__libc_", 7) != 0) continue;
        for (size_t k = 0; k < sizeof libc_allocation_functions / sizeof *libc_allocation_functions; k++)
            if (strncmp(name, libc_allocation_functions[k], sizeof name) == 0) {
                atomic_store(&libc_allocations_imported, true);
                return;
            }
    }
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
        if (!read_dynamic(m->l_addr, m->l_ld, &ds)) continue;
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
