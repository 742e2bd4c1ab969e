/* Overwrites argv[0] with a process title holding '/', as daemons do (nginx's "nginx: master
 * process /etc/nginx/nginx.conf", PostgreSQL's, sshd's), then leaks 100 bytes and ends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *volatile sink;

int main(int argc, char **argv)
{
    (void)argc;
    static const char title[] = "titled: master process /etc/titled/titled.conf";
    size_t room = strlen(argv[0]);
    memset(argv[0], 0, room);
    strncpy(argv[0], title, room);
    sink = malloc(100); /* @leak:titled */
    sink = NULL;
    puts("done");
    return 0;
}
