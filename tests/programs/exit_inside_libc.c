/* exit() called by the C library on the program's behalf, with the program's state still in
 * live frames of the library's: argp_parse handles --version and --help itself and calls
 * exit(0) from inside, while the parser's storage (one block) is held in argp_parse's own
 * frame. valgrind finds that block still reachable. Before, leaktrace left every libc frame
 * above the program's main out of the scan and called it definitely lost (getent --version,
 * gencat, GNU tar, elfutils' tools). The block leaked before argp_parse stays definitely
 * lost: its pointer was dropped. */
#include <argp.h>
#include <stdlib.h>
#include <string.h>

const char *argp_program_version = "exit_inside_libc 1.0";
static void *volatile sink;

static const struct argp_option options[] = {
    { "count", 'c', "N", 0, "how many", 0 },
    { 0 },
};

static error_t parse_option(int key, char *arg, struct argp_state *state)
{
    (void)state;
    if (key == 'c') sink = arg;
    return key == 'c' ? 0 : ARGP_ERR_UNKNOWN;
}

__attribute__((noinline)) static void leak_one(void)
{
    char *lost = malloc(222); /* @leak:dropped */
    memset(lost, 2, 222);
    sink = lost;
    sink = NULL;
}

int main(int argc, char **argv)
{
    leak_one();
    struct argp argp = { options, parse_option, NULL, "Exits from inside argp_parse.", NULL, NULL, NULL };
    argp_parse(&argp, argc, argv, 0, NULL, NULL); /* @leak:parser */
    return 0;
}
