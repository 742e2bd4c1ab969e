/* Drives the shim's .eh_frame reader for tests/test_unwind_agreement.py. shim/unwind.c is
 * included whole, so its static rule computation is reachable; the shim functions it
 * calls are given here (mapping, noting an object, the next definition of a symbol). Usage: unwind_rules LIBRARY <
 * file-addresses; for each hex file address (an ELF virtual address of LIBRARY) prints one line:
 *     ADDRESS end | ADDRESS unsupported | ADDRESS rsp|rbp CFA_OFFSET RBP_OFFSET
 * the rule the shim would cache for that address as the innermost frame. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <sys/mman.h>

#include "unwind.c"

void *lt_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void lt_unmap(void *addr, size_t size)
{
    if (addr) munmap(addr, size);
}

void *lt_map_once(_Atomic(void *) *at, size_t size)
{
    if (!*at) *at = lt_map(size); /* one thread here */
    return *at;
}

void lt_ready_page_slow(const void *at, _Atomic uint64_t *ready, size_t bit)
{
    (void)at;
    atomic_fetch_or(&ready[bit / 64], 1ull << (bit % 64)); /* the zero page is fine here */
}

void lt_modules_note_object(uintptr_t map_start, uintptr_t map_end, uintptr_t bias,
                            const char *name)
{
    (void)map_start, (void)map_end, (void)bias, (void)name;
}

/* The stack table (stacks.c) is not linked: no backtrace here is cut at a depth limit. */
struct lt_stack *lt_stack_get(uint32_t id)
{
    (void)id;
    return NULL;
}

const uintptr_t *lt_stack_pcs(const struct lt_stack *s)
{
    (void)s;
    return NULL;
}

/* The next definitions of hooked functions (lookups.c): here, the C library's own. */
void *lt_next_symbol(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s LIBRARY < addresses\n", argv[0]);
        return 2;
    }
    void *handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    struct link_map *map = NULL;
    if (!handle || dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0) {
        fprintf(stderr, "%s: %s\n", argv[1], dlerror());
        return 2;
    }
    unsigned long long vaddr;
    while (scanf("%llx", &vaddr) == 1) {
        uintptr_t pc = map->l_addr + (uintptr_t)vaddr;
        uint64_t rule = compute_rule(pc, pc);
        unsigned kind = (unsigned)(rule >> 1) & 3;
        if (rule == 0) {
            printf("%llx unsupported\n", vaddr);
        } else if (kind == RULE_END || kind == RULE_SIGNAL) { /* attach's reader stops at both */
            printf("%llx end\n", vaddr);
        } else {
            printf("%llx %s %u %u\n", vaddr, kind == RULE_CFA_RBP ? "rbp" : "rsp",
                   (unsigned)(rule >> 3) & 0xffff, (unsigned)(rule >> 19) & 0x3fff);
        }
    }
    return 0;
}
