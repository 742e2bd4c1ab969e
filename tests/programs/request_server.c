/* A tiny server for the live-control tests. It reads one request per line on stdin, hands it
 * to one of two worker threads, and answers one line on stdout when the request is done, so
 * a test knows exactly what was allocated when. Requests:
 *   leak       leaks 48 bytes (a little on every request: the leak to find)
 *   cache KEY  stores 256 bytes in a 32-slot cache; a full slot is freed and replaced, so
 *              the cache grows while it fills and then stays the same size
 *   work       allocates and frees a scratch buffer (never live between requests)
 *   once       leaks 77 bytes from a path of its own
 *   quit       prints a summary and exits with status 3 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_SLOTS 32

struct request {
    char line[64];
    int pending;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static struct request current;
static int stopping;
static void *cache[CACHE_SLOTS];
static long cache_keys[CACHE_SLOTS];
void *volatile sink;

__attribute__((noinline)) static void handle_leak(void)
{
    char *p = malloc(48); /* @leak:request */
    memset(p, 'l', 48);
    sink = p;
}

__attribute__((noinline)) static void *new_entry(long key)
{
    char *p = malloc(256); /* @leak:cache */
    snprintf(p, 256, "entry %ld", key);
    return p;
}

__attribute__((noinline)) static void cache_put(long key)
{
    int slot = (int)(key % CACHE_SLOTS);
    if (cache[slot] && cache_keys[slot] == key) return;
    free(cache[slot]);
    cache[slot] = new_entry(key);
    cache_keys[slot] = key;
}

__attribute__((noinline)) static void handle_work(void)
{
    char *scratch = malloc(1000);
    memset(scratch, 'w', 1000);
    sink = scratch;
    free(scratch);
}

__attribute__((noinline)) static void handle_once(void)
{
    sink = malloc(77); /* @leak:once */
}

static void serve(const char *line)
{
    if (strcmp(line, "leak") == 0) handle_leak();
    else if (strncmp(line, "cache ", 6) == 0) cache_put(atol(line + 6));
    else if (strcmp(line, "work") == 0) handle_work();
    else if (strcmp(line, "once") == 0) handle_once();
    printf("ok %s\n", line);
    fflush(stdout);
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!current.pending && !stopping) pthread_cond_wait(&changed, &lock);
        if (stopping) break;
        serve(current.line);
        current.pending = 0;
        pthread_cond_broadcast(&changed);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(void)
{
    pthread_t workers[2];
    for (int i = 0; i < 2; i++) pthread_create(&workers[i], NULL, worker, NULL);
    char line[64];
    long served = 0;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (strcmp(line, "quit") == 0) break;
        pthread_mutex_lock(&lock);
        strcpy(current.line, line);
        current.pending = 1;
        pthread_cond_broadcast(&changed);
        while (current.pending) pthread_cond_wait(&changed, &lock);
        pthread_mutex_unlock(&lock);
        served++;
    }
    pthread_mutex_lock(&lock);
    stopping = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < 2; i++) pthread_join(workers[i], NULL);
    printf("bye after %ld requests\n", served);
    return 3;
}
