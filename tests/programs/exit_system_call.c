/* The program ends by the exit system calls themselves, past glibc's exit and pthread_exit:
 * argv[1] "exit-group" (syscall(SYS_exit_group, 3)), "exit" (syscall(SYS_exit, 4) from the
 * only thread), "raw" (the exit system call inlined, 5, from the only thread), "raw-threads"
 * (main makes it inline with 6 while a worker goes on, which leaks and returns: glibc, which
 * still counts main, ends that thread alone, with status 0), "exit-threads" (main calls
 * syscall(SYS_exit, 6), the worker then syscall(SYS_exit, 7)). The process ends with its last
 * thread, and that thread's status. Leaks 100 bytes in main and 123 in the worker, keeps 55
 * bytes in a global. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

void *volatile sink;
void *kept;

static __attribute__((noreturn)) void inline_exit(int status)
{
    __asm__ volatile("syscall" ::"a"(SYS_exit), "D"(status) : "rcx", "r11", "memory");
    __builtin_unreachable();
}

static void *worker(void *how)
{
    usleep(300000); /* main has ended by now */
    sink = malloc(123); /* @leak:worker */
    sink = NULL;
    puts("worker done");
    fflush(stdout);
    if (how) syscall(SYS_exit, 7);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "";
    sink = malloc(100); /* @leak:main */
    sink = NULL;
    kept = malloc(55); /* @leak:kept */
    puts("main ends");
    fflush(stdout);
    pthread_t thread;
    if (!strcmp(how, "exit-group")) syscall(SYS_exit_group, 3);
    if (!strcmp(how, "exit")) syscall(SYS_exit, 4);
    if (!strcmp(how, "raw")) inline_exit(5);
    if (!strcmp(how, "raw-threads")) {
        pthread_create(&thread, NULL, worker, NULL);
        inline_exit(6);
    }
    if (!strcmp(how, "exit-threads")) {
        pthread_create(&thread, NULL, worker, (void *)1);
        syscall(SYS_exit, 6);
    }
    return 1;
}
