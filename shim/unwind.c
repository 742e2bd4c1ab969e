/* Backtraces for code built without frame pointers, at a hash lookup per frame.
 *
 * Every frame of an x86-64 backtrace is found with one of a few rules, all read from the
 * DWARF call-frame information (.eh_frame) of the code's module:
 *     CFA = RSP + k   or   CFA = RBP + k;  return address at CFA-8;  RBP saved at CFA-j or kept.
 * Interpreting the CFI is slow (find the FDE, run its program up to the address), so the
 * rule found for a return address is cached in a direct-mapped table keyed by that address:
 * the next time the same call site is on a stack, its frame costs one load and two reads.
 * FDEs are found with glibc's _dl_find_object (lock-free, async-signal-safe, glibc >= 2.35),
 * so no unwind takes the dynamic loader's lock. */
#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#include "shim.h"

/* ---- the rule cache ---------------------------------------------------------------------
 * One 64-bit word per entry, so readers and writers need no lock:
 *   bit 0 valid | bits 1-2 kind | bits 3-18 CFA offset | bits 19-32 RBP save offset | 33-63 tag
 * tag = pc >> CACHE_BITS (user addresses are below 2^47, so it fits in 31 bits). */
#define CACHE_BITS 16
#define CACHE_SIZE (1u << CACHE_BITS)
enum rule_kind { RULE_CFA_RSP = 0, RULE_CFA_RBP = 1, RULE_END = 2, RULE_SIGNAL = 3 };

/* Mapped once at start-up; entries are written and read with relaxed atomics (a torn read is
 * impossible: each entry is one word, and a stale entry is still a correct rule). */
static _Atomic uint64_t *rule_cache;
static _Atomic uint64_t rule_ready[CACHE_SIZE * sizeof(uint64_t) >> LT_READY_SHIFT >> 6]; /* lt_ready_page */
/* The shim's own code range, set once at start-up: leading frames inside it are skipped. */
static uintptr_t own_start, own_end, own_bias;

uintptr_t lt_own_load_bias(void) { return own_bias; }

static inline size_t cache_index(uintptr_t pc) { return (pc ^ (pc >> CACHE_BITS)) & (CACHE_SIZE - 1); }

static inline uint64_t pack_rule(uintptr_t pc, unsigned kind, uint32_t cfa_off, uint32_t rbp_off)
{
    return ((uint64_t)(pc >> CACHE_BITS) << 33) | ((uint64_t)rbp_off << 19) |
           ((uint64_t)cfa_off << 3) | ((uint64_t)kind << 1) | 1u;
}

/* Bumped by every flush: a thread's recorded backtrace (below) holds the rules of its frames,
 * valid only in the generation they were read in. */
static _Atomic unsigned rules_generation;

void lt_unwind_flush_cache(void)
{
    if (!rule_cache) return;
    atomic_fetch_add_explicit(&rules_generation, 1, memory_order_relaxed);
    for (size_t i = 0; i < CACHE_SIZE; i++) /* pages never read hold zeros: leave them untouched */
        if (lt_page_ready(rule_cache, rule_ready, &rule_cache[i]))
            atomic_store_explicit(&rule_cache[i], 0, memory_order_relaxed);
}

/* ---- reading .eh_frame ------------------------------------------------------------------ */
enum {
    DW_EH_PE_absptr = 0x00, DW_EH_PE_uleb128 = 0x01, DW_EH_PE_udata2 = 0x02, DW_EH_PE_udata4 = 0x03,
    DW_EH_PE_udata8 = 0x04, DW_EH_PE_sleb128 = 0x09, DW_EH_PE_sdata2 = 0x0a, DW_EH_PE_sdata4 = 0x0b,
    DW_EH_PE_sdata8 = 0x0c, DW_EH_PE_pcrel = 0x10, DW_EH_PE_datarel = 0x30, DW_EH_PE_indirect = 0x80,
    DW_EH_PE_omit = 0xff,
};
enum { DW_REG_RBP = 6, DW_REG_RSP = 7, DW_REG_RA = 16 };

static uint64_t read_uleb(const uint8_t **p)
{
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t b;
    do {
        b = *(*p)++;
        if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
    } while (b & 0x80);
    return v;
}

static int64_t read_sleb(const uint8_t **p)
{
    int64_t v = 0;
    unsigned shift = 0;
    uint8_t b;
    do {
        b = *(*p)++;
        if (shift < 64) v |= (int64_t)((uint64_t)(b & 0x7f) << shift);
        shift += 7;
    } while (b & 0x80);
    if (shift < 64 && (b & 0x40)) v |= -((int64_t)1 << shift);
    return v;
}

/* Reads a pointer in the given DW_EH_PE encoding. Returns false for encodings we do not use. */
static bool read_encoded(const uint8_t **p, uint8_t enc, uintptr_t data_base, uintptr_t *out)
{
    if (enc == DW_EH_PE_omit) return false;
    const uint8_t *field = *p;
    uintptr_t v;
    switch (enc & 0x0f) {
    case DW_EH_PE_absptr: memcpy(&v, *p, 8); *p += 8; break;
    case DW_EH_PE_uleb128: v = (uintptr_t)read_uleb(p); break;
    case DW_EH_PE_sleb128: v = (uintptr_t)read_sleb(p); break;
    case DW_EH_PE_udata2: { uint16_t x; memcpy(&x, *p, 2); *p += 2; v = x; break; }
    case DW_EH_PE_sdata2: { int16_t x; memcpy(&x, *p, 2); *p += 2; v = (uintptr_t)(intptr_t)x; break; }
    case DW_EH_PE_udata4: { uint32_t x; memcpy(&x, *p, 4); *p += 4; v = x; break; }
    case DW_EH_PE_sdata4: { int32_t x; memcpy(&x, *p, 4); *p += 4; v = (uintptr_t)(intptr_t)x; break; }
    case DW_EH_PE_udata8: case DW_EH_PE_sdata8: memcpy(&v, *p, 8); *p += 8; break;
    default: return false;
    }
    switch (enc & 0x70) {
    case 0: break;
    case DW_EH_PE_pcrel: v += (uintptr_t)field; break;
    case DW_EH_PE_datarel: v += data_base; break;
    default: return false;
    }
    if (enc & DW_EH_PE_indirect) memcpy(&v, (const void *)v, 8);
    *out = v;
    return true;
}

/* Where a register is found in the caller's frame. */
enum reg_how { REG_SAME = 0, REG_AT_CFA_OFFSET, REG_UNDEFINED, REG_UNSUPPORTED };
struct reg_rule { uint8_t how; int64_t offset; };
struct cfa_row {
    uint64_t cfa_reg;
    int64_t cfa_offset;
    bool cfa_is_expression;
    struct reg_rule rbp, ra;
};

struct cie_info {
    uint64_t code_align;
    int64_t data_align;
    uint64_t ra_reg;
    uint8_t fde_enc;
    bool has_z, signal_frame;
    const uint8_t *insns, *insns_end;
};

/* Reads a CIE or FDE length; returns the record's end, or NULL at the terminator. */
static const uint8_t *record_bounds(const uint8_t **p)
{
    uint32_t len32;
    memcpy(&len32, *p, 4);
    *p += 4;
    if (len32 == 0) return NULL;
    if (len32 == 0xffffffffu) {
        uint64_t len64;
        memcpy(&len64, *p, 8);
        *p += 8;
        return *p + len64;
    }
    return *p + len32;
}

static bool parse_cie(const uint8_t *cie, struct cie_info *ci)
{
    const uint8_t *p = cie;
    const uint8_t *end = record_bounds(&p);
    if (!end) return false;
    bool is64 = (p - cie) == 12;
    p += is64 ? 8 : 4; /* CIE id */
    uint8_t version = *p++;
    const char *aug = (const char *)p;
    p += strlen(aug) + 1;
    if (aug[0] == 'e' && aug[1] == 'h') p += 8;
    ci->code_align = read_uleb(&p);
    ci->data_align = read_sleb(&p);
    ci->ra_reg = version == 1 ? *p++ : read_uleb(&p);
    ci->fde_enc = DW_EH_PE_absptr;
    ci->has_z = aug[0] == 'z';
    ci->signal_frame = false;
    if (ci->has_z) {
        uint64_t aug_len = read_uleb(&p);
        const uint8_t *aug_end = p + aug_len;
        for (const char *a = aug + 1; *a; a++) {
            if (*a == 'R') ci->fde_enc = *p++;
            else if (*a == 'L') p++;
            else if (*a == 'P') {
                uint8_t enc = *p++;
                uintptr_t ignored;
                if (!read_encoded(&p, enc & (uint8_t)~DW_EH_PE_indirect, 0, &ignored)) return false;
            } else if (*a == 'S') ci->signal_frame = true;
        }
        p = aug_end;
    }
    ci->insns = p;
    ci->insns_end = end;
    return true;
}

static void set_reg(struct cfa_row *row, uint64_t reg, uint8_t how, int64_t offset)
{
    struct reg_rule r = { how, offset };
    if (reg == DW_REG_RBP) row->rbp = r;
    else if (reg == DW_REG_RA) row->ra = r;
}

static void restore_reg(struct cfa_row *row, const struct cfa_row *initial, uint64_t reg)
{
    if (reg == DW_REG_RBP) row->rbp = initial->rbp;
    else if (reg == DW_REG_RA) row->ra = initial->ra;
}

/* Runs a CFA program, stopping before the row that starts after `target`.
 * Returns false on an instruction we cannot interpret. */
static bool run_cfa_program(const uint8_t *p, const uint8_t *end, const struct cie_info *ci,
                            uintptr_t loc, uintptr_t target, struct cfa_row *row,
                            const struct cfa_row *initial)
{
    enum { STATE_STACK = 8 };
    struct cfa_row saved[STATE_STACK];
    int nsaved = 0;
    while (p < end) {
        uint8_t op = *p++;
        uint64_t reg, delta;
        switch (op >> 6) {
        case 1:
            loc += (op & 0x3f) * ci->code_align;
            if (loc > target) return true;
            continue;
        case 2:
            set_reg(row, op & 0x3f, REG_AT_CFA_OFFSET, (int64_t)read_uleb(&p) * ci->data_align);
            continue;
        case 3:
            restore_reg(row, initial, op & 0x3f);
            continue;
        default: break;
        }
        switch (op) {
        case 0x00: break; /* nop */
        case 0x01: /* set_loc */
            if (!read_encoded(&p, ci->fde_enc, 0, &loc)) return false;
            if (loc > target) return true;
            break;
        case 0x02: delta = *p++; goto advance;
        case 0x03: { uint16_t d; memcpy(&d, p, 2); p += 2; delta = d; goto advance; }
        case 0x04: { uint32_t d; memcpy(&d, p, 4); p += 4; delta = d; goto advance; }
        advance:
            loc += delta * ci->code_align;
            if (loc > target) return true;
            break;
        case 0x05: reg = read_uleb(&p); set_reg(row, reg, REG_AT_CFA_OFFSET, (int64_t)read_uleb(&p) * ci->data_align); break;
        case 0x06: restore_reg(row, initial, read_uleb(&p)); break;
        case 0x07: set_reg(row, read_uleb(&p), REG_UNDEFINED, 0); break;
        case 0x08: set_reg(row, read_uleb(&p), REG_SAME, 0); break;
        case 0x09: reg = read_uleb(&p); (void)read_uleb(&p); set_reg(row, reg, REG_UNSUPPORTED, 0); break;
        case 0x0a:
            if (nsaved == STATE_STACK) return false;
            saved[nsaved++] = *row;
            break;
        case 0x0b:
            if (nsaved == 0) return false;
            *row = saved[--nsaved];
            break;
        case 0x0c: row->cfa_reg = read_uleb(&p); row->cfa_offset = (int64_t)read_uleb(&p); row->cfa_is_expression = false; break;
        case 0x0d: row->cfa_reg = read_uleb(&p); row->cfa_is_expression = false; break;
        case 0x0e: row->cfa_offset = (int64_t)read_uleb(&p); break;
        case 0x0f: delta = read_uleb(&p); p += delta; row->cfa_is_expression = true; break;
        case 0x10: case 0x16: /* expression, val_expression */
            reg = read_uleb(&p); delta = read_uleb(&p); p += delta;
            set_reg(row, reg, REG_UNSUPPORTED, 0);
            break;
        case 0x11: reg = read_uleb(&p); set_reg(row, reg, REG_AT_CFA_OFFSET, read_sleb(&p) * ci->data_align); break;
        case 0x12: row->cfa_reg = read_uleb(&p); row->cfa_offset = read_sleb(&p) * ci->data_align; row->cfa_is_expression = false; break;
        case 0x13: row->cfa_offset = read_sleb(&p) * ci->data_align; break;
        case 0x14: reg = read_uleb(&p); (void)read_uleb(&p); set_reg(row, reg, REG_UNSUPPORTED, 0); break;
        case 0x15: reg = read_uleb(&p); (void)read_sleb(&p); set_reg(row, reg, REG_UNSUPPORTED, 0); break;
        case 0x2e: (void)read_uleb(&p); break; /* GNU_args_size */
        case 0x2f: reg = read_uleb(&p); set_reg(row, reg, REG_AT_CFA_OFFSET, -(int64_t)read_uleb(&p) * ci->data_align); break;
        default: return false;
        }
    }
    return true;
}

/* Finds the FDE covering pc through the binary-search table of .eh_frame_hdr. */
static const uint8_t *find_fde(const uint8_t *hdr, uintptr_t pc)
{
    if (hdr[0] != 1) return NULL;
    uint8_t frame_ptr_enc = hdr[1], count_enc = hdr[2], table_enc = hdr[3];
    const uint8_t *p = hdr + 4;
    uintptr_t frame_ptr, count;
    if (!read_encoded(&p, frame_ptr_enc, (uintptr_t)hdr, &frame_ptr)) return NULL;
    if (!read_encoded(&p, count_enc, (uintptr_t)hdr, &count) || count == 0) return NULL;
    /* Every linker writes this table as pairs of 32-bit offsets from the header. */
    if (table_enc != (DW_EH_PE_datarel | DW_EH_PE_sdata4)) return NULL;
    const int32_t *table = (const int32_t *)(const void *)p;
    intptr_t rel = (intptr_t)(pc - (uintptr_t)hdr);
    size_t lo = 0, hi = count;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (table[2 * mid] <= rel) lo = mid;
        else hi = mid;
    }
    if (table[2 * lo] > rel) return NULL;
    return hdr + table[2 * lo + 1];
}

/* Is pc the kernel's way back from a signal handler, `mov $15, %rax; syscall` (rt_sigreturn),
 * the restorer the C library gives every handler? Its frame is the kernel's signal frame. */
static bool is_sigreturn(uintptr_t pc)
{
    static const uint8_t rt_sigreturn[9] = { 0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05 };
    return memcmp((const void *)pc, rt_sigreturn, sizeof rt_sigreturn) == 0;
}

/* The FDE that find_fde picks for lookup_pc, read: its CIE, the range of code it covers
 * (has_range: both fields read) and its CFA instructions. False when there is none. */
struct fde_view {
    struct cie_info ci;
    bool has_range;
    uintptr_t pc_begin, pc_range;
    const uint8_t *insns, *end;
};

static bool read_fde(const uint8_t *eh_frame_hdr, uintptr_t lookup_pc, struct fde_view *v)
{
    const uint8_t *p = find_fde(eh_frame_hdr, lookup_pc);
    if (!p) return false;
    v->end = record_bounds(&p);
    if (!v->end) return false;
    const uint8_t *cie_ptr_field = p;
    uint32_t cie_off;
    memcpy(&cie_off, p, 4);
    p += 4;
    if (!parse_cie(cie_ptr_field - cie_off, &v->ci)) return false;
    v->has_range = read_encoded(&p, v->ci.fde_enc, 0, &v->pc_begin) &&
                   read_encoded(&p, v->ci.fde_enc & 0x0f, 0, &v->pc_range);
    if (v->has_range && v->ci.has_z) {
        uint64_t aug_len = read_uleb(&p);
        p += aug_len;
    }
    v->insns = p;
    return true;
}

/* The slow path: computes the packed rule for pc from the CFI. `lookup_pc` is pc for the
 * innermost frame and pc-1 for return addresses (a call may be a function's last insn). */
static uint64_t compute_rule(uintptr_t pc, uintptr_t lookup_pc)
{
    uint64_t end_rule = pack_rule(pc, RULE_END, 0, 0);
    struct dl_find_object dlfo;
    if (_dl_find_object((void *)lookup_pc, &dlfo) != 0) return end_rule;
    lt_modules_note_object((uintptr_t)dlfo.dlfo_map_start, (uintptr_t)dlfo.dlfo_map_end,
                           dlfo.dlfo_link_map ? dlfo.dlfo_link_map->l_addr : 0,
                           dlfo.dlfo_link_map ? dlfo.dlfo_link_map->l_name : NULL);
    struct fde_view fde;
    if (!dlfo.dlfo_eh_frame || !read_fde(dlfo.dlfo_eh_frame, lookup_pc, &fde)) return end_rule;
    struct cie_info ci = fde.ci;
    if (ci.signal_frame) return is_sigreturn(pc) ? pack_rule(pc, RULE_SIGNAL, 0, 0) : end_rule;
    if (ci.ra_reg != DW_REG_RA || !fde.has_range) return end_rule;
    uintptr_t pc_begin = fde.pc_begin;
    if (lookup_pc < pc_begin || lookup_pc >= pc_begin + fde.pc_range) return end_rule;
    const uint8_t *p = fde.insns, *fde_end = fde.end;
    struct cfa_row initial = { .cfa_reg = DW_REG_RSP, .cfa_offset = 8 };
    initial.rbp.how = REG_SAME;
    initial.ra.how = REG_UNDEFINED;
    if (!run_cfa_program(ci.insns, ci.insns_end, &ci, pc_begin, (uintptr_t)-1, &initial, &initial))
        return 0;
    struct cfa_row row = initial;
    if (!run_cfa_program(p, fde_end, &ci, pc_begin, lookup_pc, &row, &initial)) return 0;

    if (row.ra.how == REG_UNDEFINED) return end_rule; /* outermost frame: _start, clone */
    if (row.cfa_is_expression || row.ra.how != REG_AT_CFA_OFFSET || row.ra.offset != -8) return 0;
    if (row.cfa_reg != DW_REG_RSP && row.cfa_reg != DW_REG_RBP) return 0;
    if (row.cfa_offset < 0 || row.cfa_offset >= (1 << 16)) return 0;
    uint32_t rbp_off = 0;
    if (row.rbp.how == REG_AT_CFA_OFFSET) {
        if (row.rbp.offset >= 0 || -row.rbp.offset >= (1 << 14)) return 0;
        rbp_off = (uint32_t)-row.rbp.offset;
    } else if (row.rbp.how != REG_SAME) {
        return 0;
    }
    return pack_rule(pc, row.cfa_reg == DW_REG_RBP ? RULE_CFA_RBP : RULE_CFA_RSP,
                     (uint32_t)row.cfa_offset, rbp_off);
}

static void map_trails(void); /* the per-thread records of incremental backtraces (below) */

static inline uint64_t rule_for(uintptr_t pc, bool innermost)
{
    if (LT_UNLIKELY(pc >> 47)) return 0;
    _Atomic uint64_t *slot = &rule_cache[cache_index(pc)];
    lt_ready_page(rule_cache, rule_ready, slot);
    uint64_t rule = atomic_load_explicit(slot, memory_order_relaxed);
    if (LT_LIKELY((rule >> 33) == (pc >> CACHE_BITS) && (rule & 1))) return rule;
    rule = compute_rule(pc, innermost ? pc : pc - 1);
    /* A frame we cannot step over ends every backtrace through it: remember that too, so
     * it costs the slow path once, not on every allocation. */
    if (!rule) rule = pack_rule(pc, RULE_END, 0, 0);
    atomic_store_explicit(slot, rule, memory_order_relaxed);
    return rule;
}

void lt_unwind_init(void)
{
    rule_cache = lt_map(CACHE_SIZE * sizeof(uint64_t));
    map_trails();
    struct dl_find_object dlfo;
    if (_dl_find_object((void *)(uintptr_t)&lt_unwind_init, &dlfo) == 0) {
        own_start = (uintptr_t)dlfo.dlfo_map_start;
        own_end = (uintptr_t)dlfo.dlfo_map_end;
        own_bias = dlfo.dlfo_link_map ? dlfo.dlfo_link_map->l_addr : 0;
    }
}

/* The shim is built with frame pointers, so its own frames (this function, the hook and what
 * lies between) are stepped over along the rbp chain, without a rule lookup each. Sets the
 * first frame outside the shim: its return address, stack pointer and rbp. False when the
 * chain does not look like one (then the caller walks every frame by the rules). */
static bool skip_own_frames(uintptr_t bp, uintptr_t sp, uintptr_t *pc_out, uintptr_t *sp_out,
                            uintptr_t *bp_out)
{
    for (int step = 0; step < 16; step++) {
        if (bp < sp || bp - sp > ((uintptr_t)1 << 20) || (bp & 7)) return false;
        uintptr_t pc = *(const uintptr_t *)(bp + 8);
        sp = bp + 16;
        bp = *(const uintptr_t *)bp;
        if (pc < own_start || pc >= own_end) {
            *pc_out = pc;
            *sp_out = sp;
            *bp_out = bp;
            return true;
        }
    }
    return false;
}

/* One step to the caller's frame with a rule: STEP_OK, or why the backtrace ends there
 * (STEP_STOP: no rule, a frame we cannot step over, a broken frame; STEP_LOW_PC: the return
 * address read is not one, as at the bottom of some stacks). */
enum step_result { STEP_OK, STEP_STOP, STEP_LOW_PC };

static inline unsigned kind_of(uint64_t rule) { return (unsigned)(rule >> 1) & 3; }

/* Past a signal frame the registers come from the interrupted code, which may have faulted on
 * a wild stack pointer or in a stack's guard page: a load through them could fault inside the
 * handler, where the fault would kill the process. So there every word is read with
 * process_vm_readv on the process itself, which fails instead (a system call a word: only
 * allocations made in signal handlers pay it). */
static bool read_word(uintptr_t addr, bool checked, uintptr_t *out)
{
    if (LT_LIKELY(!checked)) {
        *out = *(const uintptr_t *)addr;
        return true;
    }
    struct iovec local = { out, sizeof *out }, remote = { (void *)addr, sizeof *out };
    return syscall(SYS_process_vm_readv, (long)getpid(), &local, 1L, &remote, 1L, 0L) ==
           (long)sizeof *out;
}

/* Out of a signal handler, into the code the signal interrupted. The handler returned to the
 * restorer, so sp is where the kernel's signal frame had put the return address plus 8: the
 * ucontext, which holds the interrupted registers. (With sigaltstack the interrupted stack may
 * lie anywhere: no "callers are above" check here; the walk's step bound still holds.) The
 * interrupted pc is an instruction, not a return address: it is recorded as pc + 1, as if
 * returned to, so that its rule and its file:line (both looked up at an address - 1) are
 * those of that instruction. */
static enum step_result step_out_of_handler(uintptr_t *pc, uintptr_t *sp, uintptr_t *bp,
                                            bool checked)
{
    uintptr_t regs = *sp + offsetof(ucontext_t, uc_mcontext.gregs);
    uintptr_t interrupted, new_sp, new_bp;
    if (!read_word(regs + REG_RIP * sizeof(greg_t), checked, &interrupted) ||
        !read_word(regs + REG_RSP * sizeof(greg_t), checked, &new_sp) ||
        !read_word(regs + REG_RBP * sizeof(greg_t), checked, &new_bp))
        return STEP_STOP;
    if (interrupted < 4096 || interrupted >> 47) return STEP_STOP;
    *pc = interrupted + 1;
    *sp = new_sp;
    *bp = new_bp;
    return STEP_OK;
}

/* `checked`: past a signal frame (read_word). A signal frame ends the step here: only
 * lt_unwind goes on through one (step_out_of_handler). */
static inline enum step_result step_by(uint64_t rule, uintptr_t *pc, uintptr_t *sp, uintptr_t *bp,
                                       bool checked)
{
    unsigned kind = kind_of(rule);
    if (!rule || kind >= RULE_END) return STEP_STOP; /* RULE_END or RULE_SIGNAL */
    uintptr_t cfa_off = (uintptr_t)(rule >> 3) & 0xffff;
    uintptr_t rbp_off = (uintptr_t)(rule >> 19) & 0x3fff;
    uintptr_t cfa = (kind == RULE_CFA_RBP ? *bp : *sp) + cfa_off;
    /* A caller's frame lies above its callee's; anything else is a broken stack. */
    if (cfa <= *sp || cfa - *sp > ((uintptr_t)1 << 30) || (cfa & 7)) return STEP_STOP;
    if (!read_word(cfa - 8, checked, pc)) return STEP_STOP;
    if (rbp_off && !read_word(cfa - rbp_off, checked, bp)) return STEP_STOP;
    *sp = cfa;
    return *pc >= 4096 ? STEP_OK : STEP_LOW_PC;
}

/* From the frame at (pc, sp, bp) outwards, appending to pcs[n..max). `innermost`: pc is where
 * the code is, not a return address; `interrupted`: past a signal frame (read_word). */
static inline int walk(uintptr_t pc, uintptr_t sp, uintptr_t bp, bool innermost, bool interrupted,
                       uintptr_t *pcs, int n, int max, bool *truncated, uintptr_t *first_signal_frame)
{
    /* Bounded even if a corrupt stack made a loop of frames. */
    for (int step = 0; step < max + 32; step++) {
        uint64_t rule = rule_for(pc, innermost);
        bool signal_frame = kind_of(rule) == RULE_SIGNAL;
        if (signal_frame && first_signal_frame && !*first_signal_frame) *first_signal_frame = sp;
        enum step_result r = signal_frame ? step_out_of_handler(&pc, &sp, &bp, interrupted)
                                          : step_by(rule, &pc, &sp, &bp, interrupted);
        if (r != STEP_OK) break;
        interrupted |= signal_frame;
        innermost = false;
        /* The shim's own frames: those below the program's call of the hook, and, past a
         * signal frame, those of a hook the signal interrupted (the program called pause, or
         * malloc), whose internals would make one call site many backtraces. */
        if ((n == 0 || interrupted) && pc >= own_start && pc < own_end) continue;
        if (n == max) {
            *truncated = true;
            break;
        }
        pcs[n++] = pc;
    }
    return n;
}

__attribute__((noinline)) int lt_unwind(uintptr_t *pcs, int max, bool *truncated)
{
    uintptr_t pc, sp, bp;
    __asm__ volatile("leaq 0(%%rip), %0\n\tmovq %%rsp, %1\n\tmovq %%rbp, %2"
                     : "=r"(pc), "=r"(sp), "=r"(bp));
    *truncated = false;
    if (LT_UNLIKELY(!rule_cache)) return 0;
    int n = 0;
    bool innermost = true;
    if (LT_LIKELY(own_end && max > 0 && skip_own_frames(bp, sp, &pc, &sp, &bp))) {
        if (pc < 4096) return 0;
        pcs[n++] = pc; /* the program's call of the hook: the loop below adds its callers */
        innermost = false;
    }
    return walk(pc, sp, bp, innermost, false, pcs, n, max, truncated, NULL);
}

static bool in_a_module(uintptr_t pc)
{
    struct dl_find_object dlfo;
    return pc >= 4096 && !(pc >> 47) && _dl_find_object((void *)pc, &dlfo) == 0;
}

int lt_unwind_interrupted(const ucontext_t *uc, uintptr_t *pcs, int max, bool *truncated,
                          uintptr_t *handler_frame)
{
    *truncated = false;
    *handler_frame = 0;
    if (!rule_cache || max <= 0) return 0;
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t bp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
    int n = 0;
    /* Recorded as pc + 1, as if returned to (step_out_of_handler): readers look every
     * address up at address - 1. The shim's own frames are left out, as in every backtrace. */
    if (pc < own_start || pc >= own_end) pcs[n++] = pc + 1;
    if (!in_a_module(pc)) {
        /* No code of a module there: often a call through a bad function pointer (NULL)
         * jumped to it, and the call left its return address at the stack pointer. */
        uintptr_t ra;
        if (!read_word(sp, true, &ra) || !in_a_module(ra)) return n;
        if (n == max) {
            *truncated = true;
            return n;
        }
        if (ra < own_start || ra >= own_end) pcs[n++] = ra;
        return walk(ra, sp + 8, bp, false, true, pcs, n, max, truncated, handler_frame);
    }
    return walk(pc + 1, sp, bp, false, true, pcs, n, max, truncated, handler_frame);
}

/* ---- incremental backtraces ---------------------------------------------------------------
 * Most allocations of a thread share their outer frames with its previous one (the same
 * main loop, worker, request handler...). Each thread keeps its last backtrace: for every
 * frame the return address, the stack pointer and rbp the walk reached it with, and the rule
 * it stepped on with. A new walk goes outwards from the hook as usual, and at each frame looks
 * for the one of the previous backtrace with the same stack pointer: if that frame also has
 * the same return address (and rbp, when the frames outside it use rbp), the rest of the old
 * backtrace is *checked* instead of walked: for each outer frame, the stack slot the walk
 * would read its return address from (and its saved rbp from, where that matters) must still
 * hold the recorded value, and the reason the old walk ended must still hold.
 *
 * Why that is exact (not a heuristic like "same return address and CFA, so the same frame"):
 * a walk is a function of its state (pc, sp, rbp), the rules of the return addresses it meets
 * and the stack words it reads. From a frame whose state equals a recorded one, with the
 * recorded frames' rules (unchanged while the rule cache is not flushed: a flush starts a new
 * generation, which voids every record), every step computes the recorded CFA and reads the
 * recorded slot; where that slot still holds the recorded word, the step lands on the recorded
 * state. So the checked backtrace is exactly what a full walk would produce, whatever ran
 * in between: a frame that returned and was re-entered by a different caller at the same
 * depth (bytehound's shadow stack must patch return addresses to notice that; we never touch
 * the program's stack), longjmp, an exception unwinding C++ frames, a signal handler, the
 * same stack reused by a new thread. The check reads the slots a full walk reads, in the same
 * order, and stops at the first difference, so it reads no memory a full walk would not.
 * What it saves: the rule cache lookup and CFA arithmetic per outer frame (one load and a
 * compare instead), the return addresses' hashing (the stack table's hash is built outside
 * in, kept per frame), and, for the same backtrace twice in a row, the stack table lookup.
 *
 * Records live in memory the shim maps (never malloc), one mapping each, made when a thread
 * first needs it (a table of all TRAILS took 123 MiB of address space, which a program under
 * RLIMIT_AS needs for itself); TRAILS of them, claimed by a thread at its first backtrace
 * with a CAS of its thread pointer (%fs:0, unique among live threads);
 * a thread created on the thread control block of one that exited takes its record over. A
 * thread that finds none free walks every frame, as before. A signal handler that interrupts
 * its thread while it uses its record walks every frame too (`trail_busy`), and so does a
 * walk that meets a signal frame (its steps read the interrupted registers from the kernel's
 * signal frame, not the slots a record checks). */
#define TRAIL_CAP LT_MAX_DEPTH_LIMIT
#define TRAILS 1024u
#define TRAIL_PROBES 8u
#define CUT_IDS 2048u
/* Per recorded frame: how the walk stepped from it (its rule's rbp restore offset, and
 * whether the caller's CFA is computed from rbp), and whether the walk from it reads the
 * incoming rbp at all (a frame matches a new one only on the rbp values that matter). */
enum { INFO_RBP_OFF = 0x3fff, INFO_CFA_RBP = 1u << 14, INFO_NEEDS_BP = 1u << 15 };
enum trail_end { END_BY_RULE, END_BY_LOW_PC, END_CUT };

/* ---- recent backtraces ---------------------------------------------------------------------
 * The record above pays off when consecutive allocations share their outer frames. A program
 * that allocates from a few places in turn (a loop calling functions that allocate) changes
 * most frames at every allocation. So each thread also keeps its recent whole backtraces as
 * "paths": the state (pc, sp, rbp) of the innermost frame, and the stack slots a walk from it
 * reads, with the words it found there, in the order it read them. When a new backtrace starts
 * from one of those states and every slot still holds its word, a walk would find that
 * backtrace again (the argument above, applied from the innermost frame; the slots are the
 * ones first_changed reads, the end included), so its stack id is known without a walk or a
 * table lookup. The check stops at the first slot that differs, like first_changed. Paths
 * are sets of PATH_WAYS keyed by the innermost frame's pc and sp (C++ allocations all start
 * in operator new: the sp tells their call depths apart, the slots the rest). 16 sets of 8:
 * fewer ways missed 10% of the C++ workload's backtraces, more sets did not help. */
#define PATH_SET_BITS 4
#define PATH_SETS (1u << PATH_SET_BITS)
#define PATH_WAYS 8u      /* C++ allocations start in operator new: many share pc and sp */
#define PATH_CHECKS 48u   /* slots a path may check; a deeper backtrace is not kept */
struct path {
    uintptr_t pc, sp, bp;    /* the innermost frame's state; bp compared when needs_bp */
    uint32_t id;             /* its stack id; 0: an empty way */
    unsigned generation;     /* of the rules the walk stepped with */
    uint64_t hash;
    int depth, max;          /* the backtrace's depth, and the depth limit it was taken with */
    uint8_t needs_bp, end;   /* enum trail_end */
    uint16_t nchecks;
    uintptr_t end_slot;
    /* The slots to check, then a sentinel that never holds its word (its own address, and
     * that plus one), so the check loop needs no count. */
    struct path_check { uintptr_t addr, word; } check[PATH_CHECKS + 1];
};

#define TRAIL_MAX_BYTES (256u << 10) /* a record's size at most (asserted below) */

/* Only its thread touches a record, and not while a handler of that thread uses it
 * (trail_busy); `owner` is claimed with a CAS. */
struct trail {
    _Atomic uintptr_t owner;   /* thread pointer of the thread it belongs to; 0 = free */
    unsigned generation;       /* of the rules its frames were stepped with */
    int start;                 /* its frames are [start, TRAIL_CAP), innermost first */
    uint8_t end;               /* why the walk stopped after frame TRAIL_CAP-1 */
    uintptr_t end_slot;        /* END_BY_LOW_PC, END_CUT: the return address slot read last */
    uint32_t last_id;          /* stack id of [last_start, TRAIL_CAP), 0 = unknown */
    int last_start;
    int max;                   /* the depth limit of the backtrace in progress */
    /* lt_ready_page's bits for this record's pages (cut_ids). */
    _Atomic uint64_t ready[(TRAIL_MAX_BYTES >> LT_READY_SHIFT) / 64];
    /* A set's ways from this one on were never written: path_hit reads none of them (a read
     * of an untouched page maps the zero page, and remember_path's write there would then
     * cost a flush on every CPU: see lt_ready_page), and they are all empty. */
    uint8_t ways_used[PATH_SETS];
    /* Picks the way a new path replaces in a full set. Not in turn: when more paths than
     * ways are taken in turn (two busy states sharing a set; which do depends on the stack's
     * address, so it changed from run to run), replacing in turn evicted each just before
     * its next use: 5,120 or 10,143 walks instead of 36 in some runs of the C++ workload's
     * 80,000 iterations; at random, about half of that. */
    uint32_t evict_seed;
    /* Backtraces cut at the depth limit out of a longer record (a stack deeper than the
     * limit, met at another depth than last time, as a recursion's are): the stack id of the
     * cut frames, by cut_key_of them. Used when the stack's return addresses are the cut
     * frames; it spares the stack table's hash, whose steps each wait for the last (a bash
     * function recursing 60 levels: 27% of the samples). */
    struct cut_id { uint64_t key; uint32_t id; } cut_ids[CUT_IDS];
    /* Way-major: the first ways of all sets are contiguous and fill first, so a thread that
     * allocates from a few places touches a few pages of them, not one page per set. */
    struct path paths[PATH_WAYS][PATH_SETS];
    uintptr_t pc[TRAIL_CAP], bp[TRAIL_CAP];
    uintptr_t sp[TRAIL_CAP + 1];
    /* lt_stack_hash_step over [i, TRAIL_CAP), outside in. Past the outermost frame: the seed,
     * info 0 and sp UINTPTR_MAX, so it needs no special case. */
    uint64_t hash[TRAIL_CAP + 1];
    uint32_t info[TRAIL_CAP + 1];
    /* the walk in progress, innermost first, until it meets the record */
    struct { uintptr_t pc, sp, bp; uint32_t info; } fresh[TRAIL_CAP];
};

/* The records' addresses, mapped at start-up; each record mapped by the first thread that
 * claims it and installed with a CAS (NORESERVE: its untouched pages cost nothing). */
_Static_assert(sizeof(struct trail) <= TRAIL_MAX_BYTES, "a trail's ready bits cover it");
static _Atomic(struct trail *) *trails;
#define NO_TRAIL ((struct trail *)1)

static void map_trails(void) { trails = lt_map(TRAILS * sizeof *trails); }
static __thread struct trail *my_trail __attribute__((tls_model("initial-exec")));
/* Attach mode gives the records back at detach (155 KiB each: 106 KiB the paths, 32 KiB the cut ids) and maps new ones at the
 * next attach: a thread's my_trail is its own only while its epoch is the current one.
 * trails_epoch is written by lifecycle.c's release and re-attach (attach.c's patch_lock),
 * with no thread inside the tables (inflight.c). */
static _Atomic unsigned trails_epoch;
static __thread unsigned my_trail_epoch __attribute__((tls_model("initial-exec")));

void lt_unwind_release(void)
{
    if (trails)
        for (unsigned i = 0; i < TRAILS; i++) lt_unmap(atomic_load(&trails[i]), sizeof(struct trail));
    lt_unmap((void *)trails, TRAILS * sizeof *trails);
    trails = NULL;
    atomic_fetch_add(&trails_epoch, 1);
}

void lt_unwind_reacquire(void)
{
    if (!trails) map_trails();
}
static __thread volatile int trail_busy __attribute__((tls_model("initial-exec")));

static struct trail *claim_trail(void)
{
    if (!trails) return NO_TRAIL;
    uintptr_t tp = lt_thread_pointer();
    size_t home = lt_thread_home(tp, TRAILS);
    for (unsigned i = 0; i < TRAIL_PROBES; i++) {
        struct trail *t = lt_map_once((_Atomic(void *) *)&trails[(home + i) % TRAILS], sizeof *t);
        if (!t) return NO_TRAIL;
        uintptr_t owner = atomic_load_explicit(&t->owner, memory_order_relaxed);
        if (owner == tp || (owner == 0 && atomic_compare_exchange_strong(&t->owner, &owner, tp))) {
            t->start = TRAIL_CAP;
            t->last_id = 0;
            t->hash[TRAIL_CAP] = LT_STACK_HASH_SEED;
            t->info[TRAIL_CAP] = 0;
            t->sp[TRAIL_CAP] = UINTPTR_MAX;
            /* The paths stay: those of the record's previous owner (an exited thread whose
             * control block this one reuses) are checked against this thread's stack like any
             * other, and their ids stay valid until the tables are given back, which unmaps
             * the records too. (Clearing them touched every page of them for every thread.) */
            return t;
        }
    }
    return NO_TRAIL;
}

/* A key of n return addresses hashed in four independent lanes (a hint for cut_ids, checked
 * against the frames before use, so it need not be the stack table's hash); never 0. */
static uint64_t cut_key_of(const uintptr_t *pcs, int n)
{
    const uint64_t k = 0x9e3779b97f4a7c15ull;
    uint64_t a = 1, b = 2, c = 3, d = 4;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        a = (a ^ pcs[i]) * k;
        b = (b ^ pcs[i + 1]) * k;
        c = (c ^ pcs[i + 2]) * k;
        d = (d ^ pcs[i + 3]) * k;
    }
    for (; i < n; i++) a = (a ^ pcs[i]) * k;
    uint64_t key = ((a ^ b >> 17) * 0xff51afd7ed558ccdull) ^ ((c ^ d >> 17) * 0xc4ceb9fe1a85ec53ull);
    return (key ^ key >> 31) | 1;
}

/* (An end rule has no offsets: 0.) */
static inline uint32_t info_of(uint64_t rule)
{
    return ((uint32_t)(rule >> 19) & INFO_RBP_OFF) | ((kind_of(rule) == RULE_CFA_RBP) ? INFO_CFA_RBP : 0);
}

/* Would a walk still end where the recorded one did? (By a rule: the same rules, nothing to
 * read. By a return address below 4096, or cut at the depth limit: the last slot read still
 * says so.) */
static inline bool end_holds(uint8_t end, uintptr_t end_slot)
{
    if (end == END_BY_LOW_PC) return *(const uintptr_t *)end_slot < 4096;
    if (end == END_CUT) return *(const uintptr_t *)end_slot >= 4096;
    return true;
}

/* Are the frames of the record outside frame j still those a walk from j would find?
 * Returns TRAIL_CAP when they are, else the first frame whose slot changed (no frame inside
 * it can match either: the same slot decides), or TRAIL_CAP + 1 when the end changed. */
static int first_changed(const struct trail *t, int j)
{
    for (int m = j + 1; m < TRAIL_CAP; m++) {
        if (*(const uintptr_t *)(t->sp[m] - 8) != t->pc[m]) return m;
        uint32_t off = t->info[m - 1] & INFO_RBP_OFF;
        if (off && (t->info[m] & INFO_NEEDS_BP) && *(const uintptr_t *)(t->sp[m] - off) != t->bp[m])
            return m;
    }
    return end_holds(t->end, t->end_slot) ? TRAIL_CAP : TRAIL_CAP + 1;
}

/* Puts the n new frames in front of slot `at`, and completes their per-frame data from the
 * outside in. Returns whether their return addresses are those the slots held already. */
static bool place_new_frames(struct trail *t, int n, int at)
{
    bool same = true;
    int first = at - n;
    uint64_t hash = t->hash[at];
    uint32_t outer_needs = t->info[at] & INFO_NEEDS_BP;
    for (int x = n - 1; x >= 0; x--) {
        int i = first + x;
        uintptr_t pc = t->fresh[x].pc;
        same &= t->pc[i] == pc;
        t->pc[i] = pc;
        t->sp[i] = t->fresh[x].sp;
        t->bp[i] = t->fresh[x].bp;
        uint32_t info = t->fresh[x].info;
        if (!(info & INFO_RBP_OFF)) info |= outer_needs; /* rbp passes through unchanged */
        if (info & INFO_CFA_RBP) info |= INFO_NEEDS_BP;
        outer_needs = info & INFO_NEEDS_BP;
        t->info[i] = info;
        t->hash[i] = hash = lt_stack_hash_step(hash, pc);
    }
    return same;
}

static inline unsigned path_set(uintptr_t pc, uintptr_t sp)
{
    return (unsigned)(((pc ^ (sp << 13)) * 0x9e3779b97f4a7c15ull) >> (64 - PATH_SET_BITS));
}

/* Does every slot of the path still hold its word (and the end still hold)? */
static inline bool path_holds(const struct path *p)
{
    const struct path_check *c = p->check;
    while (*(const uintptr_t *)c->addr == c->word) c++;
    return c == &p->check[p->nchecks] && end_holds(p->end, p->end_slot);
}

/* A path of the thread that a walk from (pc, sp, bp) would follow again, or NULL. */
static inline const struct path *path_hit(struct trail *t, uintptr_t pc, uintptr_t sp, uintptr_t bp,
                                          unsigned generation, int max)
{
    unsigned set = path_set(pc, sp);
    for (unsigned w = 0; w < t->ways_used[set]; w++) {
        const struct path *p = &t->paths[w][set];
        if (p->id && p->pc == pc && p->sp == sp && (!p->needs_bp || p->bp == bp) &&
            p->generation == generation && p->max == max && path_holds(p))
            return p;
    }
    return NULL;
}

/* Keeps the record's whole backtrace [s, TRAIL_CAP), just interned as id, as a path: the
 * slots first_changed(t, s) would read, in its order. */
static void remember_path(struct trail *t, int s, uint32_t id, uint64_t hash)
{
    unsigned set = path_set(t->pc[s], t->sp[s]);
    unsigned way = 0;
    while (way < t->ways_used[set] && t->paths[way][set].id) way++;
    if (way == t->ways_used[set] && way < PATH_WAYS) t->ways_used[set]++;
    if (way == PATH_WAYS) { /* a way at random: see evict_seed */
        t->evict_seed = t->evict_seed * 1664525u + 1013904223u; /* an LCG: its high bits */
        way = (t->evict_seed >> 24) % PATH_WAYS;
    }
    struct path *p = &t->paths[way][set];
    p->id = 0;
    unsigned n = 0;
    for (int m = s + 1; m < TRAIL_CAP; m++) {
        if (n + 2 > PATH_CHECKS) return; /* too deep to keep: the way stays empty */
        p->check[n].addr = t->sp[m] - 8;
        p->check[n++].word = t->pc[m];
        uint32_t off = t->info[m - 1] & INFO_RBP_OFF;
        if (off && (t->info[m] & INFO_NEEDS_BP)) {
            p->check[n].addr = t->sp[m] - off;
            p->check[n++].word = t->bp[m];
        }
    }
    p->check[n].addr = (uintptr_t)&p->check[n].addr;
    p->check[n].word = p->check[n].addr + 1;
    p->nchecks = (uint16_t)n;
    p->pc = t->pc[s];
    p->sp = t->sp[s];
    p->bp = t->bp[s];
    p->needs_bp = (t->info[s] & INFO_NEEDS_BP) != 0;
    p->end = t->end;
    p->end_slot = t->end_slot;
    p->generation = t->generation;
    p->max = t->max;
    p->hash = hash;
    p->depth = TRAIL_CAP - s;
    p->id = id;
}

__attribute__((noinline)) void lt_backtrace_take(struct lt_backtrace *bt, uintptr_t *buf, int max,
                                                const void *frame)
{
    uintptr_t pc, sp, bp;
    __asm__ volatile("leaq 0(%%rip), %0\n\tmovq %%rsp, %1\n\tmovq %%rbp, %2"
                     : "=r"(pc), "=r"(sp), "=r"(bp));
    /* The hook's frame lies further up this thread's rbp chain: the frames in between are the
     * shim's own, so skipping starts there (skip_own_frames checks it is a frame of the chain's
     * shape, and goes on if its return address is still the shim's). */
    if (frame) bp = (uintptr_t)frame;
    bt->pcs = buf;
    bt->hash = 0;
    bt->id = 0;
    bt->trail = NULL;
    bt->cut_key = 0;
    struct trail *t = NULL;
    if (LT_LIKELY(!trail_busy && rule_cache && own_end && max > 0)) {
        t = my_trail;
        unsigned epoch = atomic_load_explicit(&trails_epoch, memory_order_relaxed);
        if (LT_UNLIKELY(!t || my_trail_epoch != epoch)) {
            t = my_trail = claim_trail();
            my_trail_epoch = epoch;
        }
    }
    if (LT_UNLIKELY(!t || t == NO_TRAIL || !skip_own_frames(bp, sp, &pc, &sp, &bp) || pc < 4096)) {
        bt->depth = lt_unwind(buf, max, &bt->truncated);
        return;
    }
    trail_busy = 1;
    atomic_signal_fence(memory_order_seq_cst);
    unsigned generation = atomic_load_explicit(&rules_generation, memory_order_relaxed);
    if (LT_UNLIKELY(t->generation != generation)) {
        t->generation = generation;
        t->start = TRAIL_CAP;
        t->last_id = 0;
    }
    t->max = max;
    const struct path *hit = path_hit(t, pc, sp, bp, generation, max);
    if (hit) {
        bt->id = hit->id;
        bt->hash = hit->hash;
        bt->depth = hit->depth;
        bt->truncated = hit->end == END_CUT;
        bt->pcs = NULL; /* the stack table holds them */
        atomic_signal_fence(memory_order_seq_cst);
        trail_busy = 0;
        return;
    }

    /* Walk until a frame of the record, whose outer frames are still on the stack. */
    int j = t->start, n = 0, match = -1, changed_at = 0;
    enum trail_end end = END_BY_RULE;
    uintptr_t end_slot = 0;
    for (;;) {
        while (t->sp[j] < sp) j++; /* stops at TRAIL_CAP at the latest */
        if (t->sp[j] == sp && j >= changed_at && t->pc[j] == pc &&
            (!(t->info[j] & INFO_NEEDS_BP) || t->bp[j] == bp)) {
            changed_at = first_changed(t, j);
            if (changed_at == TRAIL_CAP) {
                match = j;
                break;
            }
        }
        uint64_t rule = rule_for(pc, false);
        if (LT_UNLIKELY(kind_of(rule) == RULE_SIGNAL)) {
            /* Out of a signal handler: the record keeps one stack's frames, so this walk is
             * done whole (the record is left as it was). */
            atomic_signal_fence(memory_order_seq_cst);
            trail_busy = 0;
            bt->depth = lt_unwind(buf, max, &bt->truncated);
            return;
        }
        t->fresh[n].pc = pc;
        t->fresh[n].sp = sp;
        t->fresh[n].bp = bp;
        t->fresh[n].info = info_of(rule);
        n++;
        enum step_result r = step_by(rule, &pc, &sp, &bp, false);
        if (r != STEP_OK) {
            end = r == STEP_LOW_PC ? END_BY_LOW_PC : END_BY_RULE;
            end_slot = sp - 8; /* sp is the CFA the return address was read below */
            break;
        }
        if (n == max) { /* another frame exists: the backtrace is cut here */
            end = END_CUT;
            end_slot = sp - 8;
            break;
        }
    }

    bool same = false;
    int total;
    if (match < 0) {
        t->end = (uint8_t)end;
        t->end_slot = end_slot;
        t->start = TRAIL_CAP - n;
        place_new_frames(t, n, TRAIL_CAP);
        total = n;
    } else {
        total = n + (TRAIL_CAP - match);
        if (LT_UNLIKELY(match < n || (t->end == END_CUT && total < max))) {
            /* Deeper than a record holds, or the old walk was cut short of what this one
             * needs: walk it all, and start the record again next time. */
            t->start = TRAIL_CAP;
            t->last_id = 0;
            atomic_signal_fence(memory_order_seq_cst);
            trail_busy = 0;
            bt->depth = lt_unwind(buf, max, &bt->truncated);
            return;
        }
        same = place_new_frames(t, n, match);
        t->start = match - n;
    }
    bt->trail = t;
    bt->trail_start = t->start;
    bt->pcs = &t->pc[t->start];
    bt->truncated = total > max || t->end == END_CUT;
    bt->depth = total > max ? max : total;
    if (total <= max) {
        bt->hash = t->hash[t->start] | 1;
        if (same && t->last_start == t->start) bt->id = t->last_id;
    } else {
        uint64_t key = cut_key_of(&t->pc[t->start], max);
        const struct cut_id *c = &t->cut_ids[key % CUT_IDS];
        lt_ready_page(t, t->ready, c);
        lt_ready_page(t, t->ready, (const char *)(c + 1) - 1);
        const struct lt_stack *known = c->key == key ? lt_stack_get(c->id) : NULL;
        if (known && known->depth == (uint32_t)max &&
            memcmp(lt_stack_pcs(known), bt->pcs, sizeof(uintptr_t) * (size_t)max) == 0)
            bt->id = c->id;
        else
            bt->cut_key = key;
    }
}

void lt_backtrace_done(const struct lt_backtrace *bt, uint32_t id)
{
    struct trail *t = bt->trail;
    if (!t) return;
    bool whole = bt->depth == TRAIL_CAP - bt->trail_start;
    t->last_id = whole ? id : 0;
    t->last_start = bt->trail_start;
    /* A backtrace met again as the previous one is kept already (or was evicted: then the
     * record serves it). One cut at the depth limit is kept too: its end (END_CUT) is checked
     * like any other, and a program deeper than the limit otherwise walked and hashed every
     * frame of every allocation (C++ workload cut at 8 frames: 3.0x native CPU, 2.4x with). */
    if (whole && id && !bt->id) remember_path(t, bt->trail_start, id, bt->hash);
    if (bt->cut_key && id) t->cut_ids[bt->cut_key % CUT_IDS] = (struct cut_id){ bt->cut_key, id };
    atomic_signal_fence(memory_order_seq_cst);
    trail_busy = 0;
}

/* ---- where the program's own stack begins -------------------------------------------------
 * At exit the frames below the program's last frame are exit(), its handlers, the loader's
 * _dl_fini and the shim: their slots hold dead values of the program's (a leaked pointer in a
 * frame that has returned) which must not keep blocks alive, as LeakSanitizer and valgrind
 * agree. The runtime is libc, the loader and the shim, found once by address.
 *
 * The callers of exit() are live, though, also those in libc: argp_parse calls it for
 * --version and --help with the program's parser state in its own frame (getent, gencat,
 * GNU tar, elfutils' tools), where valgrind finds that state still reachable. So the live
 * stack begins where exit() was called, but when main returned into libc's start code (the
 * first frame of the program is then the entry point's), whose frames hold nothing since.
 *
 * Written by find_runtime before it sets runtime_known (two threads that race write the same
 * values), read-only after: */
static uintptr_t runtime_start[3], runtime_end[3]; /* libc, the loader, the shim */
static uintptr_t exit_start, exit_size;            /* libc's exit(), from its FDE */
static uintptr_t entry_point;                      /* AT_ENTRY: the executable's _start */
static _Atomic bool runtime_known;

extern void *__tls_get_addr(void *); /* defined by the loader, ld-linux */

/* The code libc's exit() spans (0 bytes when its FDE cannot be read). */
static void find_exit_function(void)
{
    uintptr_t exit_fn = (uintptr_t)lt_next_symbol("exit");
    struct dl_find_object dlfo;
    struct fde_view fde;
    if (exit_fn && _dl_find_object((void *)exit_fn, &dlfo) == 0 && dlfo.dlfo_eh_frame &&
        read_fde(dlfo.dlfo_eh_frame, exit_fn, &fde) && fde.has_range && fde.pc_begin == exit_fn) {
        exit_start = fde.pc_begin;
        exit_size = fde.pc_range;
    }
}

static void find_runtime(void)
{
    void *members[3] = { (void *)(uintptr_t)lt_libc_address(), (void *)(uintptr_t)&__tls_get_addr,
                         (void *)(uintptr_t)&lt_unwind_program_sp };
    for (int i = 0; i < 3; i++) {
        struct dl_find_object dlfo;
        if (_dl_find_object(members[i], &dlfo) == 0) {
            runtime_start[i] = (uintptr_t)dlfo.dlfo_map_start;
            runtime_end[i] = (uintptr_t)dlfo.dlfo_map_end;
        }
    }
    find_exit_function();
    entry_point = getauxval(AT_ENTRY);
    atomic_store(&runtime_known, true);
}

static bool in_runtime(uintptr_t pc)
{
    for (int i = 0; i < 3; i++)
        if (pc >= runtime_start[i] && pc < runtime_end[i]) return true;
    return false;
}

static bool in_shim(uintptr_t pc) { return pc >= runtime_start[2] && pc < runtime_end[2]; }

/* A return address in the entry point's code (_start: some 40 bytes before its call of
 * __libc_start_main returns). */
static bool in_entry_point(uintptr_t pc) { return entry_point && pc - entry_point < 64; }

/* Walks up from the frame at (pc, sp, bp) over the runtime's frames; `fallback` when a frame
 * cannot be stepped over: the innermost place known to be safe (more roots, so leaks may
 * hide, never invented). `shim_live`: the shim's frames count as the program's (a signal
 * interrupted a hook, whose frame may hold the only copy of the block it just recorded). */
static uintptr_t program_sp_from(uintptr_t pc, uintptr_t sp, uintptr_t bp, uintptr_t fallback, bool shim_live)
{
    if (!rule_cache) return fallback;
    if (!atomic_load(&runtime_known)) find_runtime();
    if (!in_runtime(pc) || (shim_live && in_shim(pc))) return fallback; /* the program's own code */
    bool innermost = true, leaving_exit = false;
    uintptr_t exit_caller_sp = 0; /* where the frame of exit()'s caller begins, once met */
    for (int step = 0; step < 512; step++) {
        if ((innermost ? pc : pc - 1) - exit_start < exit_size) leaving_exit = true;
        /* step_by ends at a signal frame: it holds the interrupted registers, roots the scan
         * must keep. */
        if (step_by(rule_for(pc, innermost), &pc, &sp, &bp, false) != STEP_OK) return fallback;
        innermost = false;
        if (shim_live && in_shim(pc)) return sp;
        if (leaving_exit && !exit_caller_sp && !in_shim(pc)) exit_caller_sp = sp; /* past our hook */
        /* The caller's frame starts at this CFA: the first frame that is the program's. */
        if (!in_runtime(pc)) return exit_caller_sp && !in_entry_point(pc) ? exit_caller_sp : sp;
    }
    return fallback;
}

/* At the innermost frame of the program's or the shim's: an abort() or a fault inside libc
 * leaves libc's frames below it, whose slots may hold dead values of the program's; in the
 * program's own code or the shim's, at the interrupted stack pointer, less the 128-byte red
 * zone the interrupted function may use. The shim's frames are a hook's, live: a hook that has
 * left the tables (a signal is not put off then) may be the only holder of the block it just
 * recorded, in a slot of its frame. When the roots began at the program's frame, a SIGTERM to
 * a program in a malloc loop found that block definitely lost a few times in a hundred, most
 * often as a signal put off came back (our timer's copy, while the hook asked libc's getpid
 * whether to send it itself). */
uintptr_t lt_unwind_roots_start(uintptr_t pc, uintptr_t sp, uintptr_t bp)
{
    return program_sp_from(pc, sp, bp, sp > 128 ? sp - 128 : sp, true);
}

__attribute__((noinline)) uintptr_t lt_unwind_program_sp(void)
{
    uintptr_t pc, sp, bp;
    __asm__ volatile("leaq 0(%%rip), %0\n\tmovq %%rsp, %1\n\tmovq %%rbp, %2"
                     : "=r"(pc), "=r"(sp), "=r"(bp));
    return program_sp_from(pc, sp, bp, sp, false);
}
