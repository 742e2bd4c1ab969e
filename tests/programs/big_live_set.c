/* A live set large enough that the shim's tables switch to placing blocks by span (blocks.c,
 * home_slot) as they grow, while threads allocate and free: three threads each make BLOCKS
 * blocks (the tables grow past the switch while they do), free every other one, and hand the rest to main, which frees half of those from
 * its own thread and then drops the array: BLOCKS / 4 blocks a thread are definitely lost.
 * Only write() is used: stdio would leave buffers of its own at exit. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define THREADS 3
#define BLOCKS 200000
#define SIZE 48

__attribute__((noinline)) static void *make_block(void)
{
    void *p = malloc(SIZE); /* @leak:block */
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

static void *work(void *unused)
{
    (void)unused;
    void **blocks = malloc(BLOCKS * sizeof *blocks);
    for (int i = 0; i < BLOCKS; i++) blocks[i] = make_block();
    for (int i = 1; i < BLOCKS; i += 2) free(blocks[i]);
    return blocks;
}

int main(void)
{
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, work, NULL);
    for (int t = 0; t < THREADS; t++) {
        void **blocks;
        pthread_join(threads[t], (void **)&blocks);
        for (int i = 0; i < BLOCKS; i += 4) free(blocks[i]); /* freed by another thread */
        free(blocks);
    }
    static const char done[] = "done\n";
    write(1, done, sizeof done - 1);
    return 0;
}
