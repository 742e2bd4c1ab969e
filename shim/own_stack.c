/* The shim's heavy work at the end of a process (glibc's freeres, the reachability scan, the
 * capture) runs on a stack of its own, not on whatever the program's thread has left: a
 * thread made with a small stack (16-64 KiB) may call exit(), and a fatal signal may be
 * handled on a small alternate stack (Python's faulthandler gives its handler about 16 KiB
 * and, re-raising the signal, ours runs on what remains). That work needs tens of KiB; run in
 * place it overflowed and the program died of SIGSEGV instead of its own end.
 * A fresh mapping for each call (mmap is async-signal-safe, the calls are few); where none
 * can be mapped, the work runs where it is. x86_64 only, as the rest of the shim. */
#include "shim.h"

#define OWN_STACK_SIZE (512u << 10)
/* Left zeroed above the first frame: an unwinder that walks out of `fn` finds a null return
 * address there and stops, instead of reading past the mapping. */
#define TOP_GAP 64u

/* Calls fn(arg) with the stack pointer at `top` (16-byte aligned, so fn starts with the ABI's
 * alignment) and comes back. fn keeps rbx, which holds our stack pointer meanwhile; every
 * register it may change is an operand or a clobber. */
static __attribute__((noinline)) void call_on_stack(void (*fn)(void *), void *arg, void *top)
{
    __asm__ volatile("mov %%rsp, %%rbx\n\t"
                     "mov %[top], %%rsp\n\t"
                     "call *%[fn]\n\t"
                     "mov %%rbx, %%rsp"
                     : [fn] "+a"(fn), "+D"(arg), [top] "+S"(top)
                     :
                     : "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11", "memory", "cc",
                       "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                       "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
                       "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)");
}

void lt_on_own_stack(void (*fn)(void *), void *arg)
{
    char *stack = lt_map(OWN_STACK_SIZE);
    if (!stack) {
        fn(arg);
        return;
    }
    call_on_stack(fn, arg, stack + OWN_STACK_SIZE - TOP_GAP);
    lt_unmap(stack, OWN_STACK_SIZE);
}
