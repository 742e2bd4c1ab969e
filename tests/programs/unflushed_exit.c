/* Leaves buffered stdio output behind and ends without flushing it: _exit, _Exit and
 * quick_exit throw it away (a forked daemon's parent does so, or its child would print the
 * parent's lines twice); exit writes it. argv[1]: _exit, _Exit, quick_exit, exit; argv[2]: a
 * file to write through stdio. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    printf("buffered line\n"); /* stdout is a pipe here: fully buffered */
    FILE *f = fopen(argv[2], "w");
    if (!f) return 2;
    fputs("buffered file data", f);
    if (strcmp(argv[1], "_exit") == 0) _exit(3);
    if (strcmp(argv[1], "_Exit") == 0) _Exit(4);
    if (strcmp(argv[1], "quick_exit") == 0) quick_exit(5);
    exit(6);
}
