/* Signal handlers that allocate while the program is inside functions the shim hooks:
 *   "pause": SIGALRM during pause(): the handler's backtrace is the program's (no frame of
 *            the shim's pause hook after the signal frame);
 *   "mmap":  a SIGPROF timer firing on the way out of the mmap/munmap system calls the main
 *            thread loops on (the shim's mapping hooks hold its regions lock there): every
 *            one of the handler's 200 blocks is recorded;
 *   "wild":  a fault on a wild stack pointer, whose handler allocates and leaves with _exit:
 *            the backtrace through the signal frame must not read through that pointer. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

#define HANDLER_BLOCKS 200
static void *volatile kept[HANDLER_BLOCKS];
static volatile sig_atomic_t made;

static void on_alarm(int sig)
{
    (void)sig;
    kept[0] = malloc(48); /* @leak:pause_handler */
    made = 1;
}

static void on_prof(int sig)
{
    (void)sig;
    if (made < HANDLER_BLOCKS) {
        kept[made] = malloc(40); /* @leak:prof_handler */
        made = made + 1;
    }
}

static void on_segv(int sig)
{
    (void)sig;
    kept[0] = malloc(77); /* @leak:wild_handler */
    static const char msg[] = "handler ran\n";
    write(1, msg, sizeof msg - 1);
    _exit(3);
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    if (strcmp(argv[1], "pause") == 0) {
        sa.sa_handler = on_alarm;
        sigaction(SIGALRM, &sa, NULL);
        struct itimerval timer = { .it_value = { .tv_usec = 20000 } };
        setitimer(ITIMER_REAL, &timer, NULL);
        pause(); /* @call:main_pause */
    } else if (strcmp(argv[1], "mmap") == 0) {
        sa.sa_handler = on_prof;
        sa.sa_flags = SA_RESTART;
        sigaction(SIGPROF, &sa, NULL);
        struct itimerval timer = { .it_interval = { .tv_usec = 200 }, .it_value = { .tv_usec = 200 } };
        setitimer(ITIMER_PROF, &timer, NULL);
        while (made < HANDLER_BLOCKS) {
            void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            munmap(m, 4096);
        }
        struct itimerval off = { 0 };
        setitimer(ITIMER_PROF, &off, NULL);
    } else {
        static char alternate[1 << 16];
        stack_t ss = { .ss_sp = alternate, .ss_size = sizeof alternate };
        sigaltstack(&ss, NULL);
        sa.sa_handler = on_segv;
        sa.sa_flags = SA_ONSTACK;
        sigaction(SIGSEGV, &sa, NULL);
        __asm__ volatile("movq $0x7000, %rsp\n\tpushq $1\n");
    }
    printf("made %d\n", (int)made);
    return 0;
}
