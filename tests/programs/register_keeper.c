/* Keeps known values in ymm0-15 and r8, r9, r10, r12, r13, r14 across blocking system calls,
 * in a loop, and checks them after each call: a thread that an injection interrupted must
 * come back with every register as it was. argv[1]: "read" blocks in read() on a pipe that a
 * helper thread feeds every 2 ms (an interrupted read is restarted), "sleep" in nanosleep()
 * of 50 ms (resumed for the time left, or issued again).
 * Prints "ready" first, then after argv[2] rounds (default 2000) "rounds N ok" and exits 0;
 * on a difference prints what differed and exits 98. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct io {
    uint64_t in[64], out[64];   /* ymm0..15, 4 words each */
    uint64_t gin[6], gout[6];   /* r8, r9, r10, r12, r13, r14 */
    long nr, a0, a1, a2, ret;
};

static int feed[2];

static void *feeder(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec ms2 = { 0, 2000000 };
        nanosleep(&ms2, NULL);
        if (write(feed[1], "x", 1) != 1) return NULL;
    }
}

#define LOAD(n) "vmovdqu " #n "*32(%%rbx), %%ymm" #n "\n"
#define STORE(n) "vmovdqu %%ymm" #n ", 512+" #n "*32(%%rbx)\n"

static void round_trip(struct io *io)
{
    __asm__ volatile(
        LOAD(0) LOAD(1) LOAD(2) LOAD(3) LOAD(4) LOAD(5) LOAD(6) LOAD(7)
        LOAD(8) LOAD(9) LOAD(10) LOAD(11) LOAD(12) LOAD(13) LOAD(14) LOAD(15)
        "mov 1024(%%rbx), %%r8\n mov 1032(%%rbx), %%r9\n mov 1040(%%rbx), %%r10\n"
        "mov 1048(%%rbx), %%r12\n mov 1056(%%rbx), %%r13\n mov 1064(%%rbx), %%r14\n"
        "mov 1120(%%rbx), %%rax\n mov 1128(%%rbx), %%rdi\n mov 1136(%%rbx), %%rsi\n"
        "mov 1144(%%rbx), %%rdx\n syscall\n mov %%rax, 1152(%%rbx)\n"
        STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5) STORE(6) STORE(7)
        STORE(8) STORE(9) STORE(10) STORE(11) STORE(12) STORE(13) STORE(14) STORE(15)
        "mov %%r8, 1072(%%rbx)\n mov %%r9, 1080(%%rbx)\n mov %%r10, 1088(%%rbx)\n"
        "mov %%r12, 1096(%%rbx)\n mov %%r13, 1104(%%rbx)\n mov %%r14, 1112(%%rbx)\n"
        "vzeroupper\n"
        :
        : "b"(io)
        : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
          "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
          "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

int main(int argc, char **argv)
{
    _Static_assert(__builtin_offsetof(struct io, nr) == 1120, "layout used by the asm");
    int sleep_mode = argc > 1 && !strcmp(argv[1], "sleep");
    long rounds = argc > 2 ? atol(argv[2]) : 2000;
    if (pipe(feed) != 0) return 1;
    pthread_t t;
    if (!sleep_mode) pthread_create(&t, NULL, feeder, NULL);
    sigset_t before, after;
    sigemptyset(&before);
    sigemptyset(&after);
    pthread_sigmask(SIG_BLOCK, NULL, &before);
    static struct io io;
    char byte;
    struct timespec ms50 = { 0, 50000000 };
    printf("ready\n");
    fflush(stdout);
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < 64; i++) io.in[i] = 0x1111111111111111u * (uint64_t)(i % 15 + 1) + (uint64_t)r;
        for (int i = 0; i < 6; i++) io.gin[i] = 0xabcdef0000000000u + (uint64_t)i * 0x1000 + (uint64_t)r;
        io.nr = sleep_mode ? SYS_nanosleep : SYS_read;
        io.a0 = sleep_mode ? (long)&ms50 : feed[0];
        io.a1 = sleep_mode ? 0 : (long)&byte;
        io.a2 = 1;
        round_trip(&io);
        if (io.ret != (sleep_mode ? 0 : 1)) {
            printf("round %ld: the system call returned %ld\n", r, io.ret);
            return 98;
        }
        if (memcmp(io.in, io.out, sizeof io.in) || memcmp(io.gin, io.gout, sizeof io.gin)) {
            printf("round %ld: registers differ after the system call\n", r);
            return 98;
        }
    }
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    int changed = 0;
    for (int sig = 1; sig < 65; sig++) changed |= sigismember(&before, sig) != sigismember(&after, sig);
    if (changed) {
        printf("the signal mask changed\n");
        return 98;
    }
    printf("rounds %ld ok\n", rounds);
    return 0;
}
