/* Go programs (cgo ones: a Go program without cgo is static, and nothing is preloaded into
 * it) end with a raw exit_group system call in runtime.exit, past every exit handler and hook
 * of ours: no capture at exit. At start-up the shim therefore redirects runtime.exit to
 * go_exit_entry below, which writes the final capture as _exit's hook does and then makes
 * the same system call with the same status. Every way a Go program ends by itself goes
 * through runtime.exit: main returning, os.Exit, a panic or fatal error (status 2).
 *
 * runtime.exit is a few bytes of Go's assembly, the same in every release since Go 1.0:
 *     movl 8(%rsp), %edi; movl $231, %eax; syscall; ret          (12 bytes)
 * It is found by name in the executable's symbol table ("runtime.exit.abi0" from Go 1.17,
 * "runtime.exit" before) or, in a stripped executable, as the only copy of those bytes in its
 * .text. Only an executable with Go's build id note or build info section is searched, and
 * only those exact bytes are overwritten, with the same length of code:
 *     movabs $go_exit_entry, %rax; jmp *%rax                     (12 bytes)
 * %rax is free there (runtime.exit is about to load it), and the status stays at 8(%rsp).
 *
 * go_exit_entry may be reached on a goroutine's stack, which can have under a kilobyte left:
 * it first moves to a stack of its own (exit_stack), which one thread claims; a second
 * thread that exits meanwhile waits there for the first to end the process. x86-64 only. */
#include <elf.h>
#include <fcntl.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

#if defined(__x86_64__)

#define EXIT_STACK_SIZE (64u * 1024)

static const unsigned char runtime_exit_code[12] = {
    0x8b, 0x7c, 0x24, 0x08,       /* movl 8(%rsp), %edi */
    0xb8, 0xe7, 0x00, 0x00, 0x00, /* movl $231 (exit_group), %eax */
    0x0f, 0x05,                   /* syscall */
    0xc3,                         /* ret */
};

/* The top of go_exit_entry's stack (16-byte aligned), written once at start-up before the
 * patch that makes it reachable; exit_stack_claimed is the one claim on it. */
__attribute__((used, externally_visible)) uintptr_t lt_go_exit_stack_top;
__attribute__((used, externally_visible)) int lt_go_exit_stack_claimed;

/* Set once this is known to be a Go executable (runtime.exit leads here when preloaded; attach
 * only reads); Go's own code (0, 0: not known). Written at start-up before any other thread
 * exists, or by leaktrace_attach before its collection (and so any scan) starts. */
bool lt_go_program;
static uintptr_t go_text, go_etext;
/* runtime.allgs, the slice of every goroutine's g, and runtime.stackpool, Go's global pool of
 * free stacks, from the symbol table (0: stripped, or not Go). Written with lt_go_program. */
static uintptr_t go_allgs, go_stackpool;

/* Where the live part of a thread's own stack begins, for the scan: below it lie dead
 * frames, of cgo calls among others, whose stale words would keep leaked blocks alive.
 * Go's scheduler runs on each thread's own stack (its g0's) from g0.sched.sp down, and C calls
 * run there too: while the thread runs a goroutine (on a stack in Go's heap), or Go's own
 * code on g0 (the scheduler of an idle thread, the runtime's exit), nothing below g0.sched.sp
 * is a live C frame; while it runs C code on g0, its stack pointer is where the live part
 * begins. (A Go callback from C moves g0.sched.sp below the C frames first.) Go keeps the
 * running g in %r14 (since Go 1.17) and its layout is fixed (runtime2.go: g.stack.lo, .hi at
 * 0 and 8, g.m at 48, g.sched.sp at 56, g.sched.g at 72; m.g0 at 0). Read with
 * lt_copy_memory, which fails instead of faulting, and believed only if g0.sched.g is g0
 * itself and the pointers lie in its stack. `g`: the thread's %r14; sp, ip: its stack and
 * instruction pointers. 0: not known (not a Go thread, or not in a state read here). */
uintptr_t lt_go_live_stack_from(uintptr_t g, uintptr_t sp, uintptr_t ip)
{
    if (!lt_go_program) return 0;
    uintptr_t m, g0, words[10];
    if (!g || !lt_copy_memory(&m, g + 48, sizeof m) || !m || !lt_copy_memory(&g0, m, sizeof g0) ||
        !g0 || !lt_copy_memory(words, g0, sizeof words))
        return 0;
    uintptr_t lo = words[0], hi = words[1], saved_sp = words[7], self = words[9];
    if (self != g0 || lo >= hi || saved_sp <= lo || saved_sp >= hi) return 0;
    bool on_g0 = sp > lo && sp < hi;
    bool in_go_code = go_etext ? ip >= go_text && ip < go_etext : !on_g0;
    if (on_g0 && (!in_go_code || saved_sp < sp)) return sp;
    return saved_sp;
}

/* The goroutines Go keeps, by runtime.allgs (a slice: pointer, length, capacity): 0 if not
 * known. Its length bounds lt_go_dead_stack_parts's. */
static size_t read_allgs(uintptr_t slice[3])
{
    if (!lt_go_program || !go_allgs || !lt_copy_memory(slice, go_allgs, 3 * sizeof *slice)) return 0;
    return slice[1] <= slice[2] && slice[1] <= (1u << 24) ? slice[1] : 0;
}

size_t lt_go_goroutines(void)
{
    uintptr_t slice[3];
    return read_allgs(slice);
}

/* Go's small stacks (2, 4, 8 and 16 KiB on Linux: 2 KiB << order) come from runtime.stackpool,
 * one entry per order, each an item padded to 64 bytes (a cache line): its mutex (one word,
 * 0 when free), then the list (first, last) of the 32 KiB spans (4 of Go's 8 KiB pages) that
 * have a free stack. In each span (mspan: next at 0, list at 16, pointing back to the pool's
 * list, startAddr at 24, npages at 32, manualFreeList at 40; the same from Go 1.12 on) the
 * free stacks are linked through their first word. A stack there is free memory: that of a
 * goroutine that ended, freed by a GC (runtime.markrootFreeGStacks: past 64 ended goroutines
 * on one P, Go moves 32 to its global list, whose stacks the next GC frees), or one left
 * behind when a stack was copied to a bigger one. It keeps the stale frames its goroutine
 * left, whose copies of block addresses are no roots: memcheck marks memory the stack
 * pointer leaves as not addressable (undefined once a stack pointer comes down over it
 * again), and its leak check reads only addressable, defined words. Not read: the free stacks
 * a P caches (mcache.stackcache, at an offset that changes with Go's versions) and the memory
 * of stack spans given back to Go's heap (a span with no stack in use). */
#define GO_STACK_ORDERS 4
#define GO_FIXED_STACK 2048u
#define GO_PAGE 8192u
#define GO_STACK_SPAN (32u * 1024)

/* Writes up to max free pooled stacks [start, end) to out (NULL: only counts them); returns
 * how many. An order whose lock is held (a thread stopped while it changed the list) is
 * skipped, and a walk stops at the first word that is not what Go writes there: the stacks
 * not listed stay roots. */
static size_t free_pooled_stacks(uintptr_t (*out)[2], size_t max)
{
    size_t found = 0;
    if (!go_stackpool) return 0;
    for (unsigned order = 0; order < GO_STACK_ORDERS; order++) {
        uintptr_t size = (uintptr_t)GO_FIXED_STACK << order, item[2];
        if (!lt_copy_memory(item, go_stackpool + 64u * order, sizeof item) || item[0]) continue;
        uintptr_t span = item[1], list = go_stackpool + 64u * order + sizeof(uintptr_t);
        for (size_t spans = 0; span && spans < (1u << 20) && found < max; spans++) {
            uintptr_t w[6]; /* next, prev, list (the pool's own), startAddr, npages, manualFreeList */
            if (!lt_copy_memory(w, span, sizeof w) || w[2] != list || w[4] != GO_STACK_SPAN / GO_PAGE ||
                w[3] > UINTPTR_MAX - GO_STACK_SPAN)
                break;
            uintptr_t start = w[3], x = w[5];
            for (unsigned k = 0; x && k < GO_STACK_SPAN / size && found < max; k++) {
                if (x < start || x - start >= GO_STACK_SPAN || (x - start) % size) break;
                if (out) {
                    out[found][0] = x;
                    out[found][1] = x + size;
                }
                found++;
                if (!lt_copy_memory(&x, x, sizeof x)) break;
            }
            span = w[0];
        }
    }
    return found;
}

/* How many free stacks Go's pool holds now: lt_go_dead_stack_parts's max is sized by it. */
size_t lt_go_free_stacks(void)
{
    return lt_go_program ? free_pooled_stacks(NULL, SIZE_MAX) : 0;
}

/* The dead part of the stack of every goroutine that no thread runs: dead (exited, its g and
 * stack kept for reuse), waiting or runnable. Each such g has no m (g.m, at 48, is set while
 * a thread runs it, a system call or cgo call included), and its g.sched.sp (at 56, g.sched.g
 * at 72 being g itself) is exact: nothing below it in [g.stack.lo, g.stack.hi) is a live
 * frame, only the stale words of calls that returned, a cgo call's result among them, which
 * would keep C blocks the goroutine dropped reachable. A goroutine that exited left its whole
 * stack but the last frame there. Then the free stacks of Go's pool (free_pooled_stacks),
 * whole. Writes up to max ranges to out, in no order, and returns how many. With the world
 * stopped: the slice, the gs and the pool cannot change. */
size_t lt_go_dead_stack_parts(uintptr_t (*out)[2], size_t max)
{
    uintptr_t slice[3];
    size_t n = read_allgs(slice), found = 0;
    for (size_t i = 0; i < n && found < max; i++) {
        uintptr_t g, w[10];
        if (!lt_copy_memory(&g, slice[0] + i * sizeof g, sizeof g) || !g || !lt_copy_memory(w, g, sizeof w))
            continue;
        uintptr_t lo = w[0], hi = w[1], m = w[6], sp = w[7], self = w[9];
        if (m || self != g || lo >= hi || hi - lo > (1u << 30) || sp <= lo || sp > hi) continue;
        out[found][0] = lo;
        out[found][1] = sp;
        found++;
    }
    return found + free_pooled_stacks(out + found, max - found);
}

/* On exit_stack, never returns: the final capture, then the program's own ending. */
__attribute__((used, externally_visible, noreturn)) void lt_go_exit(int status, uintptr_t g, uintptr_t entry_sp,
                                                                   uintptr_t entry_ip)
{
    uintptr_t live_from = lt_go_live_stack_from(g, entry_sp, entry_ip);
    if (live_from) lt_final_at_exit_from(live_from);
    else lt_final_at_exit();
    for (;;) lt_raw_syscall(SYS_exit_group, status, 0, 0, 0, 0, 0);
}

__asm__(".text\n"
        ".globl lt_go_exit_entry\n"
        ".hidden lt_go_exit_entry\n"
        ".type lt_go_exit_entry, @function\n"
        "lt_go_exit_entry:\n"
        "    movl 8(%rsp), %edi\n"                  /* runtime.exit's status */
        "    movq %r14, %rsi\n"                     /* Go's g, checked before use */
        "    movq %rsp, %rdx\n"
        "    movq (%rsp), %rcx\n"                   /* the return address: Go's code */
        "    movl $1, %eax\n"
        "1:  xchgl %eax, lt_go_exit_stack_claimed(%rip)\n"
        "    testl %eax, %eax\n"
        "    jz 2f\n"
        "    pause\n"                               /* another thread is ending the process */
        "    movl $1, %eax\n"
        "    jmp 1b\n"
        "2:  movq lt_go_exit_stack_top(%rip), %rsp\n"
        "    call lt_go_exit\n"
        "    ud2\n"
        ".size lt_go_exit_entry, .-lt_go_exit_entry\n");
extern char lt_go_exit_entry[];

/* The executable's file, mapped read-only whole (unmapped by the caller). */
struct image {
    const unsigned char *bytes;
    size_t size;
};

static bool map_executable(struct image *im)
{
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    void *p = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(Elf64_Ehdr))
        p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return false;
    im->bytes = p;
    im->size = (size_t)st.st_size;
    return true;
}

static const Elf64_Shdr *section_headers(const struct image *im, const Elf64_Ehdr *eh)
{
    if (eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff >= im->size ||
        eh->e_shnum > (im->size - eh->e_shoff) / sizeof(Elf64_Shdr) || eh->e_shstrndx >= eh->e_shnum)
        return NULL;
    return (const Elf64_Shdr *)(im->bytes + eh->e_shoff);
}

static bool inside(const struct image *im, const Elf64_Shdr *s)
{
    return s->sh_type == SHT_NOBITS || (s->sh_offset <= im->size && s->sh_size <= im->size - s->sh_offset);
}

static const Elf64_Shdr *section_named(const struct image *im, const Elf64_Ehdr *eh, const char *name)
{
    const Elf64_Shdr *sh = section_headers(im, eh);
    if (!sh || !inside(im, &sh[eh->e_shstrndx])) return NULL;
    const char *names = (const char *)im->bytes + sh[eh->e_shstrndx].sh_offset;
    size_t names_size = sh[eh->e_shstrndx].sh_size, len = strlen(name);
    for (unsigned i = 0; i < eh->e_shnum; i++)
        if (sh[i].sh_name < names_size && names_size - sh[i].sh_name > len &&
            memcmp(names + sh[i].sh_name, name, len + 1) == 0 && inside(im, &sh[i]))
            return &sh[i];
    return NULL;
}

/* Link-time addresses from the symbol table (0: not there): runtime.exit, and the bounds of
 * Go's own code (runtime.text, runtime.etext; C code, cgo's included, lies outside them). */
struct go_symbols {
    uint64_t exit, text, etext, allgs, stackpool;
};

static void by_symbol(const struct image *im, const Elf64_Ehdr *eh, struct go_symbols *found)
{
    const Elf64_Shdr *sh = section_headers(im, eh), *symtab = section_named(im, eh, ".symtab");
    if (!symtab || symtab->sh_type != SHT_SYMTAB || symtab->sh_link >= eh->e_shnum) return;
    const Elf64_Shdr *strtab = &sh[symtab->sh_link];
    if (!inside(im, strtab) || strtab->sh_type != SHT_STRTAB || strtab->sh_size == 0) return;
    const Elf64_Sym *syms = (const Elf64_Sym *)(im->bytes + symtab->sh_offset);
    const char *strs = (const char *)im->bytes + strtab->sh_offset;
    if (strs[strtab->sh_size - 1] != 0) return; /* every name must end inside the table */
    for (size_t i = 0; i < symtab->sh_size / sizeof(Elf64_Sym); i++) {
        if (syms[i].st_name >= strtab->sh_size) continue;
        const char *name = strs + syms[i].st_name;
        if (strncmp(name, "runtime.", 8) != 0) continue;
        name += 8;
        if (ELF64_ST_TYPE(syms[i].st_info) == STT_FUNC && (strcmp(name, "exit.abi0") == 0 || strcmp(name, "exit") == 0))
            found->exit = syms[i].st_value;
        else if (strcmp(name, "text") == 0) found->text = syms[i].st_value;
        else if (strcmp(name, "etext") == 0) found->etext = syms[i].st_value;
        else if (ELF64_ST_TYPE(syms[i].st_info) == STT_OBJECT && strcmp(name, "allgs") == 0)
            found->allgs = syms[i].st_value;
        else if (ELF64_ST_TYPE(syms[i].st_info) == STT_OBJECT && strcmp(name, "stackpool") == 0)
            found->stackpool = syms[i].st_value;
    }
}

/* In a stripped executable, the bounds of Go's code from its pclntab header (Go 1.18 on),
 * read in memory, where the loader has relocated it: magic, 0, 0, minLC 1, pointer size 8,
 * nfunc, nfiles, textStart, then offsets, the last (at 64) that of the function table, whose
 * nfunc + 1 entries of (entry offset, func offset) end with the end of the code. The header
 * is its own section (.gopclntab), or in a position-independent executable somewhere in
 * .data.rel.ro; believed only if all of it is consistent with .text. */
static bool pclntab_at(const unsigned char *h, size_t room, uintptr_t text_lo, uintptr_t text_hi,
                       uintptr_t *lo, uintptr_t *hi)
{
    uint32_t magic;
    uint64_t nfunc, text_start, pcln;
    if (room < 72) return false;
    memcpy(&magic, h, 4);
    if ((magic != 0xfffffff0u && magic != 0xfffffff1u) || h[4] || h[5] || h[6] != 1 || h[7] != 8)
        return false;
    memcpy(&nfunc, h + 8, 8);
    memcpy(&text_start, h + 24, 8);
    memcpy(&pcln, h + 64, 8);
    if (nfunc == 0 || nfunc > (1u << 24) || pcln >= room || (nfunc + 1) * 8 > room - pcln ||
        text_start < text_lo || text_start >= text_hi)
        return false;
    uint32_t end;
    memcpy(&end, h + pcln + nfunc * 8, 4);
    if (end == 0 || text_start + end > text_hi) return false;
    *lo = (uintptr_t)text_start;
    *hi = (uintptr_t)text_start + end;
    return true;
}

static void go_code_from_pclntab(const struct image *im, const Elf64_Ehdr *eh, uintptr_t bias)
{
    const Elf64_Shdr *text = section_named(im, eh, ".text");
    if (!text) return;
    uintptr_t text_lo = (uintptr_t)text->sh_addr + bias, text_hi = text_lo + text->sh_size;
    const Elf64_Shdr *own = section_named(im, eh, ".gopclntab");
    const Elf64_Shdr *in = own ? own : section_named(im, eh, ".data.rel.ro");
    if (!in || !(in->sh_flags & SHF_ALLOC)) return;
    const unsigned char *at = (const unsigned char *)(uintptr_t)(in->sh_addr + bias);
    for (size_t off = 0; off + 72 <= in->sh_size; off += own ? in->sh_size : 8)
        if (pclntab_at(at + off, in->sh_size - off, text_lo, text_hi, &go_text, &go_etext)) return;
}

/* In a stripped executable: the one copy of runtime.exit's bytes in .text, at a function's
 * alignment (Go aligns functions on 32 bytes); 0 if none or more than one. */
static uint64_t by_code(const struct image *im, const Elf64_Ehdr *eh)
{
    const Elf64_Shdr *text = section_named(im, eh, ".text");
    if (!text || text->sh_type != SHT_PROGBITS || text->sh_size < sizeof runtime_exit_code) return 0;
    uint64_t found = 0;
    const unsigned char *code = im->bytes + text->sh_offset;
    for (uint64_t off = (32 - text->sh_addr % 32) % 32; off + sizeof runtime_exit_code <= text->sh_size; off += 32) {
        if (memcmp(code + off, runtime_exit_code, sizeof runtime_exit_code) != 0) continue;
        if (found) return 0;
        found = text->sh_addr + off;
    }
    return found;
}

/* The executable's load bias: where its first byte of file offset e_phoff (its program
 * headers, which the kernel tells us the address of) was linked, against where it is. */
static bool load_bias(const struct image *im, const Elf64_Ehdr *eh, uintptr_t *bias)
{
    const Elf64_Phdr *ph = (const Elf64_Phdr *)getauxval(AT_PHDR);
    size_t n = getauxval(AT_PHNUM);
    if (!ph || eh->e_phoff >= im->size) return false;
    for (size_t i = 0; i < n; i++)
        if (ph[i].p_type == PT_LOAD && ph[i].p_offset <= eh->e_phoff && eh->e_phoff - ph[i].p_offset < ph[i].p_filesz) {
            *bias = (uintptr_t)ph - (uintptr_t)(ph[i].p_vaddr + (eh->e_phoff - ph[i].p_offset));
            return true;
        }
    return false;
}

/* Where runtime.exit is in memory, if this is a Go executable whose runtime.exit is as above. */
static unsigned char *find_runtime_exit(void)
{
    struct image im;
    if (!map_executable(&im)) return NULL;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)im.bytes;
    struct go_symbols symbols = { 0, 0, 0, 0, 0 };
    uintptr_t bias = 0;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
        eh->e_machine == EM_X86_64 &&
        (section_named(&im, eh, ".note.go.buildid") || section_named(&im, eh, ".go.buildinfo")) &&
        load_bias(&im, eh, &bias)) {
        by_symbol(&im, eh, &symbols);
        if (!symbols.exit) symbols.exit = by_code(&im, eh);
    }
    if (symbols.exit && symbols.text && symbols.etext > symbols.text) {
        go_text = (uintptr_t)symbols.text + bias;
        go_etext = (uintptr_t)symbols.etext + bias;
    } else if (symbols.exit) {
        go_code_from_pclntab(&im, eh, bias);
    }
    if (symbols.exit && symbols.allgs) go_allgs = (uintptr_t)symbols.allgs + bias;
    if (symbols.exit && symbols.stackpool) go_stackpool = (uintptr_t)symbols.stackpool + bias;
    munmap((void *)im.bytes, im.size);
    if (!symbols.exit) return NULL;
    unsigned char *at = (unsigned char *)(uintptr_t)(symbols.exit + bias);
    return memcmp(at, runtime_exit_code, sizeof runtime_exit_code) == 0 ? at : NULL;
}

/* At start-up (single-threaded: no Go code has run yet). Returns whether runtime.exit now
 * leads to go_exit_entry; a program that is not Go, or whose text may not be written (a
 * security module's policy), is left as it is. */
bool lt_go_exit_redirect(void)
{
    unsigned char *at = find_runtime_exit();
    if (!at) return false;
    void *stack = lt_map(EXIT_STACK_SIZE);
    if (!stack) return false;
    lt_go_exit_stack_top = (uintptr_t)stack + EXIT_STACK_SIZE;
    unsigned char patch[sizeof runtime_exit_code] = { 0x48, 0xb8 }; /* movabs $imm64, %rax */
    uintptr_t entry = (uintptr_t)lt_go_exit_entry;
    memcpy(patch + 2, &entry, sizeof entry);
    patch[10] = 0xff, patch[11] = 0xe0;                             /* jmp *%rax */
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t first = (uintptr_t)at & ~(uintptr_t)(page - 1);
    size_t span = (uintptr_t)at + sizeof patch - first;
    /* Writable without being executable meanwhile (W^X policies): no code runs there yet. */
    if (mprotect((void *)first, span, PROT_READ | PROT_WRITE) != 0) {
        lt_unmap(stack, EXIT_STACK_SIZE);
        return false;
    }
    memcpy(at, patch, sizeof patch);
    mprotect((void *)first, span, PROT_READ | PROT_EXEC);
    lt_go_program = true;
    return true;
}

/* At attach: whether this is a Go executable, for the scan (Go threads' own stacks, above);
 * runtime.exit stays as it is, since Go code already runs and the page holding it may be in
 * use by another thread while it would be writable. So an attached Go program that ends by
 * itself leaves no capture of its end (`leaktrace attach` says so). */
bool lt_go_detect(void)
{
    if (!lt_go_program && find_runtime_exit()) lt_go_program = true;
    return lt_go_program;
}

#else
bool lt_go_program;
bool lt_go_exit_redirect(void) { return false; }
bool lt_go_detect(void) { return false; }
uintptr_t lt_go_live_stack_from(uintptr_t g, uintptr_t sp, uintptr_t ip) { (void)g, (void)sp, (void)ip; return 0; }
size_t lt_go_goroutines(void) { return 0; }
size_t lt_go_free_stacks(void) { return 0; }
size_t lt_go_dead_stack_parts(uintptr_t (*out)[2], size_t max) { (void)out, (void)max; return 0; }
#endif
