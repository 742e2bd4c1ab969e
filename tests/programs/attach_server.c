/* A multi-threaded loopback TCP server for the attach tests. It prints "port N" on stdout,
 * then WORKERS threads each accept connections and answer one line per request line:
 *   leak      leaks 64 bytes (the leak to find) and answers "leaked <total so far>"
 *   work N    allocates and frees scratch buffers, answers "sum <N*(N+1)/2>"
 *   quit      answers "bye" and makes the process exit with status 7
 * The main thread waits for quit in read() on a pipe: if an attach broke the restart of an
 * interrupted system call, read() fails with EINTR and the server exits with status 99. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WORKERS 4

static int listen_fd;
static int quit_pipe[2];
static long leaked_total;
static pthread_mutex_t total_lock = PTHREAD_MUTEX_INITIALIZER;
void *volatile sink;

__attribute__((noinline)) static long handle_leak(void)
{
    char *block = malloc(64); /* @leak:request */
    memset(block, 'L', 64);
    sink = block;
    sink = NULL; /* nothing points to it any more: definitely lost */
    pthread_mutex_lock(&total_lock);
    long total = ++leaked_total;
    pthread_mutex_unlock(&total_lock);
    return total;
}

__attribute__((noinline)) static long handle_work(long n)
{
    long sum = 0;
    for (long i = 1; i <= n; i++) {
        long *scratch = malloc(sizeof *scratch * (size_t)(i % 7 + 1));
        scratch[0] = i;
        sum += scratch[0];
        free(scratch);
    }
    return sum;
}

static void answer(FILE *out, const char *line)
{
    if (strcmp(line, "leak") == 0) {
        fprintf(out, "leaked %ld\n", handle_leak());
    } else if (strncmp(line, "work ", 5) == 0) {
        fprintf(out, "sum %ld\n", handle_work(atol(line + 5)));
    } else if (strcmp(line, "quit") == 0) {
        fprintf(out, "bye\n");
        fflush(out);
        char byte = 'q';
        if (write(quit_pipe[1], &byte, 1) != 1) _exit(98);
    } else {
        fprintf(out, "what?\n");
    }
    fflush(out);
}

static void *worker(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) continue;
            return NULL;
        }
        FILE *in = fdopen(fd, "r");
        FILE *out = fdopen(dup(fd), "w");
        char line[128];
        while (fgets(line, sizeof line, in)) {
            line[strcspn(line, "\r\n")] = 0;
            answer(out, line);
        }
        fclose(in);
        fclose(out);
    }
}

int main(void)
{
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(listen_fd, 64) != 0 || getsockname(listen_fd, (struct sockaddr *)&addr, &len) != 0 ||
        pipe(quit_pipe) != 0) {
        perror("attach_server");
        return 1;
    }
    printf("port %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    pthread_t threads[WORKERS];
    for (int i = 0; i < WORKERS; i++) pthread_create(&threads[i], NULL, worker, NULL);
    char byte;
    ssize_t got = read(quit_pipe[0], &byte, 1);
    if (got != 1) {
        printf("main: read failed: %s\n", got < 0 ? strerror(errno) : "end of file");
        return 99;
    }
    printf("served %ld leaks\n", leaked_total);
    fflush(stdout);
    return 7;
}
