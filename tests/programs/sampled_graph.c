/* For sampling mode's leak kinds: most blocks are small list nodes (rarely sampled), each
 * holding a 1000-byte payload (often sampled).
 * - ROUNDS nodes stay on a list a global holds: their payloads are still reachable, through
 *   nodes the sampler did not record;
 * - ROUNDS nodes go on a list whose head is then dropped: their payloads are indirectly lost;
 * - ROUNDS payloads are dropped at once: definitely lost;
 * - 5 payloads are held by nodes then freed (which glibc keeps in the thread's cache, where the
 *   stale pointer stays): definitely lost.
 * With "cap": also 2,000,000 small blocks kept on a list, and before main returns the address
 * space's soft limit is set 64 MiB above what the process uses (too little for the scan to
 * follow the blocks not sampled); with "hardcap" the hard limit too.
 * usage: sampled_graph ROUNDS [cap|hardcap] */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define PAYLOAD 1000

struct node {
    struct node *next;
    char *payload;
};

static struct node *kept;
static void *volatile sink;

__attribute__((noinline)) static char *payload(int fill)
{
    char *p = malloc(PAYLOAD); /* @leak:payload */
    memset(p, fill, PAYLOAD);
    return p;
}

__attribute__((noinline)) static struct node *push(struct node *list, char *held)
{
    struct node *n = malloc(sizeof *n);
    n->next = list;
    n->payload = held;
    return n;
}

__attribute__((noinline)) static char *kept_payload(void) { return payload(1); }
__attribute__((noinline)) static char *lost_list_payload(void) { return payload(2); }
__attribute__((noinline)) static char *dropped_payload(void) { return payload(3); }

__attribute__((noinline)) static char *freed_node_payload(void) { return payload(4); }

static void cap_address_space(bool hard)
{
    unsigned long pages = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (!statm || fscanf(statm, "%lu", &pages) != 1) exit(3);
    fclose(statm);
    struct rlimit limit;
    getrlimit(RLIMIT_AS, &limit);
    limit.rlim_cur = pages * 4096 + (64ul << 20);
    if (hard) limit.rlim_max = limit.rlim_cur;
    if (setrlimit(RLIMIT_AS, &limit) != 0) exit(4);
}

int main(int argc, char **argv)
{
    unsigned rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000;
    struct node *lost = NULL;
    for (unsigned i = 0; i < rounds; i++) {
        kept = push(kept, kept_payload());
        lost = push(lost, lost_list_payload());
        sink = dropped_payload();
    }
    struct node *freed[5];
    for (int i = 0; i < 5; i++) freed[i] = push(NULL, freed_node_payload());
    for (int i = 0; i < 5; i++) free(freed[i]);
    sink = lost;
    lost = NULL;
    sink = NULL;
    bool hard = argc > 2 && strcmp(argv[2], "hardcap") == 0;
    bool cap = hard || (argc > 2 && strcmp(argv[2], "cap") == 0);
    static struct node *small;
    for (unsigned i = 0; cap && i < 2000000; i++) small = push(small, NULL);
    printf("%u rounds\n", rounds);
    fflush(stdout);
    if (cap) cap_address_space(hard);
    return 0;
}
