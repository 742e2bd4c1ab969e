/* The one list of functions the shim interposes. From it come the exported symbols (preload
 * mode: the dynamic linker binds the program to them), the GOT patcher's table (attach mode:
 * the shim rewrites each loaded object's GOT entries for these names), and nothing else needs
 * to know the list. Each name N has its implementation as lt_hook_N: the allocation API in
 * hooks.c, the signal functions (which hide the shim's fatal-signal handlers) in signals.c,
 * the exec functions in environment.c, setuid & co in privileges.c, the sleeps in sleeps.c,
 * prctl and syscall in sandbox.c, dlsym in lookups.c, exit & co in exits.c, open and fopen
 * in own_proc.c. An exported alias must sit in the file that defines
 * its target, hence one list per file. */
#ifndef LEAKTRACE_HOOKED_FUNCTIONS_H
#define LEAKTRACE_HOOKED_FUNCTIONS_H

#define LT_HOOKED_ALLOCATION_FUNCTIONS(X) \
    X(malloc)                  \
    X(free)                    \
    X(free_sized)              \
    X(free_aligned_sized)      \
    X(calloc)                  \
    X(realloc)                 \
    X(reallocarray)            \
    X(memalign)                \
    X(posix_memalign)          \
    X(aligned_alloc)           \
    X(valloc)                  \
    X(pvalloc)                 \
    X(mallopt)                 \
    X(mmap)                    \
    X(mmap64)                  \
    X(munmap)                  \
    X(mremap)                  \
    X(sbrk)                    \
    X(brk)                     \
    X(dlclose)                 \
    X(mtrace)                  \
    X(muntrace)

#define LT_HOOKED_SIGNAL_FUNCTIONS(X) \
    X(sigaction)                      \
    X(signal)                         \
    X(bsd_signal)                     \
    X(sysv_signal)                    \
    X(sigset)                         \
    X(sigaltstack)

/* environment.c: the settings hidden from the program go with it into an image it execs. */
#define LT_HOOKED_EXEC_FUNCTIONS(X) \
    X(execve)                       \
    X(execv)                        \
    X(execvp)                       \
    X(execvpe)                      \
    X(execl)                        \
    X(execlp)                       \
    X(execle)                       \
    X(execveat)                     \
    X(fexecve)                      \
    X(posix_spawn)                  \
    X(posix_spawnp)                 \
    X(system)                       \
    X(popen)

/* privileges.c: the final capture's files are opened before the process changes user or root
 * (or lowers its descriptor limit); its capture is written before a file size limit of 0. */
#define LT_HOOKED_PRIVILEGE_FUNCTIONS(X) \
    X(setuid)                            \
    X(setgid)                            \
    X(seteuid)                           \
    X(setegid)                           \
    X(setreuid)                          \
    X(setregid)                          \
    X(setresuid)                         \
    X(setresgid)                         \
    X(setgroups)                         \
    X(chroot)                            \
    X(unshare)                           \
    X(setns)                             \
    X(setrlimit)                         \
    X(setrlimit64)                       \
    X(prlimit)                           \
    X(prlimit64)

/* sleeps.c: a sleep a scan's signal interrupted goes on for what is left. */
#define LT_HOOKED_SLEEP_FUNCTIONS(X) \
    X(sleep)                         \
    X(usleep)                        \
    X(nanosleep)                     \
    X(clock_nanosleep)               \
    X(pause)                         \
    X(sigsuspend)                    \
    X(poll)                          \
    X(select)                        \
    X(epoll_wait)

/* sandbox.c: the capture is written, and the shim stops, before a seccomp filter goes in. */
#define LT_HOOKED_SANDBOX_FUNCTIONS(X) \
    X(prctl)                           \
    X(syscall)

/* own_proc.c: the program's reads of its own thread count leave out the shim's thread. */
#define LT_HOOKED_OWN_PROC_FUNCTIONS(X) \
    X(open)                             \
    X(open64)                           \
    X(openat)                           \
    X(openat64)                         \
    X(__open_2)                         \
    X(__open64_2)                       \
    X(__openat_2)                       \
    X(__openat64_2)                     \
    X(fopen)                            \
    X(fopen64)

/* exits.c: the functions that end the process (exported by its assembly, which keeps the
 * program's callee-saved registers for the final scan); daemon() ends its parent. */
#define LT_HOOKED_EXIT_FUNCTIONS(X) \
    X(exit)                         \
    X(_exit)                        \
    X(_Exit)                        \
    X(quick_exit)                   \
    X(abort)                        \
    X(daemon)

/* lookups.c: dlsym hands out the hooks for libc's allocation functions (exported by its
 * assembly, not by an alias). Not in any list: dlopen (deepbind.c), exported for preload mode
 * only, which points a deep-bound library's GOT at the hooks (attach mode patches every
 * object already). */
#define LT_HOOKED_LOOKUP_FUNCTIONS(X) \
    X(dlsym)

#define LT_HOOKED_FUNCTIONS(X)                                                                 \
    LT_HOOKED_ALLOCATION_FUNCTIONS(X) LT_HOOKED_SIGNAL_FUNCTIONS(X) LT_HOOKED_EXEC_FUNCTIONS(X) \
    LT_HOOKED_PRIVILEGE_FUNCTIONS(X) LT_HOOKED_SLEEP_FUNCTIONS(X) LT_HOOKED_SANDBOX_FUNCTIONS(X) \
    LT_HOOKED_LOOKUP_FUNCTIONS(X) LT_HOOKED_EXIT_FUNCTIONS(X) LT_HOOKED_OWN_PROC_FUNCTIONS(X)

/* Implemented in allocator.c (lt_hook_N there too): the provider's own malloc_usable_size,
 * and C++'s operator new and delete, forwarded to the C++ runtime's own definitions so that
 * an allocator library's replacements (tcmalloc, jemalloc) never see the hooks' blocks. */
#define LT_HOOKED_ALLOCATOR_FUNCTIONS(X) \
    X(malloc_usable_size)

#define LT_HOOKED_CXX_FUNCTIONS(X)                 \
    X(_Znwm)                                       \
    X(_Znam)                                       \
    X(_ZnwmRKSt9nothrow_t)                         \
    X(_ZnamRKSt9nothrow_t)                         \
    X(_ZnwmSt11align_val_t)                        \
    X(_ZnamSt11align_val_t)                        \
    X(_ZnwmSt11align_val_tRKSt9nothrow_t)          \
    X(_ZnamSt11align_val_tRKSt9nothrow_t)          \
    X(_ZdlPv)                                      \
    X(_ZdaPv)                                      \
    X(_ZdlPvm)                                     \
    X(_ZdaPvm)                                     \
    X(_ZdlPvRKSt9nothrow_t)                        \
    X(_ZdaPvRKSt9nothrow_t)                        \
    X(_ZdlPvSt11align_val_t)                       \
    X(_ZdaPvSt11align_val_t)                       \
    X(_ZdlPvmSt11align_val_t)                      \
    X(_ZdaPvmSt11align_val_t)                      \
    X(_ZdlPvSt11align_val_tRKSt9nothrow_t)         \
    X(_ZdaPvSt11align_val_tRKSt9nothrow_t)

#endif
