/* A daemon that takes every descriptor number: after its first allocations (the shim has
 * opened its control socket by then) it closes every descriptor above 2, opens a listening
 * socket of its own and dup2s it over every other number, then serves CLIENTS connections
 * and leaks one block. With "fork" it daemonizes first (the parent exits at once). It writes
 * "<pid>\n" to PATH.ready when it listens and the number it served to PATH.done, then waits
 * (up to 60 s) for PATH.quit to exist. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void *volatile sink;

static void write_file(const char *path, const char *suffix, long value)
{
    char name[200], text[32];
    snprintf(name, sizeof name, "%s%s", path, suffix);
    snprintf(text, sizeof text, "%ld\n", value);
    char tmp[220];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) < 0) exit(3);
    close(fd);
    rename(tmp, name);
}

__attribute__((noinline)) static void leak_once(void) { sink = malloc(40); sink = 0; } /* @leak:daemon */

int main(int argc, char **argv)
{
    if (argc < 4) return 2;
    const char *path = argv[1];
    int clients = atoi(argv[2]);
    sink = malloc(64); /* the shim starts its control thread and socket here */
    if (strcmp(argv[3], "fork") == 0) {
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid > 0) return 0;
        setsid();
        sink = malloc(32); /* the traced child's own control socket */
    }
    usleep(100 * 1000);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    int top = rl.rlim_cur > 4096 ? 4096 : (int)rl.rlim_cur;
    for (int fd = 3; fd < top; fd++) close(fd);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(s, 64) != 0) return 4;
    for (int fd = 3; fd < top; fd++)
        if (fd != s) dup2(s, fd);
    write_file(path, ".ready", (long)getpid());
    int served = 0;
    while (served < clients) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        char buf[64];
        if (read(c, buf, sizeof buf) > 0 && write(c, "served\n", 7) == 7) served++;
        close(c);
    }
    write_file(path, ".done", served);
    char quit[220];
    snprintf(quit, sizeof quit, "%s.quit", path);
    for (int i = 0; i < 600 && access(quit, F_OK) != 0; i++) usleep(100 * 1000);
    leak_once();
    return 0;
}
