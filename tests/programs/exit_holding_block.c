/* A block whose only pointer is live in a callee-saved register of the function that ends the
 * process: end() is not known to return never, so `block` stays live across the call, and at
 * -O2 the compiler keeps it in a register that the C library's exit path then saves in its own
 * frames. It is still reachable (valgrind says so); argv[1] picks how the process ends:
 * exit, _exit, quick_exit, abort, kill (a system call: SIGTERM at its return). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Compares a number only: it saves no register, so the block's stays where work() had it. */
__attribute__((noinline)) void end(int how)
{
    if (how == 1) exit(3);
    if (how == 2) _exit(4);
    if (how == 3) quick_exit(5);
    if (how == 4) abort();
    if (how == 5) kill(getpid(), SIGTERM);
}

__attribute__((noinline)) void use(char *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

__attribute__((noinline)) int work(int how)
{
    char *block = malloc(333); /* @leak:held */
    memset(block, 1, 333);
    use(block);
    end(how);
    use(block); /* live across end() */
    free(block);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const names[] = { "exit", "_exit", "quick_exit", "abort", "kill" };
    for (int i = 0; i < 5; i++)
        if (argc > 1 && strcmp(argv[1], names[i]) == 0) return work(i + 1);
    return 2;
}
