/* Blocks freed by another thread while their allocating thread keeps allocating: the shard a
 * thread owns (blocks.c, owned shards) is made shared by a second thread in the middle of
 * its owner's operations. THREADS threads each allocate ROUNDS batches of BATCH blocks and
 * put each in the next thread's mailbox, which that thread frees (a full mailbox: the batch
 * is freed at home); each thread also drops LEAKS blocks of its own. Exactly THREADS * LEAKS blocks of SIZE bytes are definitely lost.
 * Only write() is used: stdio would leave buffers of its own at exit. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define THREADS 4
#define ROUNDS 400
#define BATCH 64
#define LEAKS 25
#define SIZE 40

struct mailbox {
    pthread_mutex_t lock;
    void *blocks[BATCH];
    int full;
};

static struct mailbox boxes[THREADS];

__attribute__((noinline)) static void *make_block(size_t size)
{
    void *p = malloc(size); /* @leak:block */
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

__attribute__((noinline)) static void drop_block(void)
{
    char *p = make_block(SIZE);
    for (int i = 0; i < SIZE; i++) p[i] = 0; /* no stale words that point at another dropped one */
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* Hands the batch to the next thread if its mailbox is empty; frees it here if not. */
static void post(struct mailbox *box, void *const *blocks)
{
    pthread_mutex_lock(&box->lock);
    int posted = !box->full;
    if (posted) {
        for (int i = 0; i < BATCH; i++) box->blocks[i] = blocks[i];
        box->full = 1;
    }
    pthread_mutex_unlock(&box->lock);
    if (!posted)
        for (int i = 0; i < BATCH; i++) free(blocks[i]);
}

/* Frees what the previous thread posted, if anything; true if it did. */
static int drain(struct mailbox *box)
{
    void *got[BATCH];
    pthread_mutex_lock(&box->lock);
    int had = box->full;
    if (had) {
        for (int i = 0; i < BATCH; i++) {
            got[i] = box->blocks[i];
            box->blocks[i] = NULL; /* malloc may hand the address out again, to a dropped block */
        }
        box->full = 0;
    }
    pthread_mutex_unlock(&box->lock);
    if (had)
        for (int i = 0; i < BATCH; i++) free(got[i]);
    return had;
}

static void *work(void *arg)
{
    int me = (int)(long)arg;
    struct mailbox *mine = &boxes[me], *next = &boxes[(me + 1) % THREADS];
    void *batch[BATCH];
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < BATCH; i++) {
            batch[i] = make_block(SIZE + (size_t)(i % 8) * 16);
            void *temp = make_block(24); /* allocated and freed here, between the others */
            free(temp);
        }
        if (round % (ROUNDS / LEAKS) == 0) drop_block();
        drain(mine);
        post(next, batch);
    }
    return NULL;
}

int main(void)
{
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        pthread_mutex_init(&boxes[t].lock, NULL);
    }
    for (int t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, work, (void *)(long)t);
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    for (int t = 0; t < THREADS; t++) drain(&boxes[t]); /* the last batches, from main */
    static const char done[] = "done\n";
    (void)!write(1, done, sizeof done - 1);
    return 0;
}
