/* Records whose list link is their last member, as PostgreSQL's RegisteredBgWorker (584 bytes,
 * its slist_node at the end): the only pointer to each record points at that link, in its last
 * 8 bytes, which is also where glibc puts the header of the chunk after it (a block of 8 mod 16
 * bytes uses the next chunk's first word). The pointer is the program's, an interior pointer:
 * valgrind calls each record possibly lost. One pointer is in a global, one in a reachable heap
 * block, one in main's frame (live at exit: main calls exit()). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scrub_stack.h"

struct link { struct link *next; };

struct worker { char name[576]; struct link node; };  /* 584 bytes */
struct entry { char data[192]; struct link node; };    /* 200 bytes */
struct small { char data[32]; struct link node; };     /* 40 bytes */

struct link worker_list;                  /* the head of a list of workers' links */
struct registry { struct link *entries; char rest[56]; };
struct registry *volatile registry;       /* reachable; it holds an entry's link */

__attribute__((noinline)) static void register_worker(void)
{
    struct worker *w = malloc(sizeof *w); /* @leak:worker */
    strcpy(w->name, "logical replication launcher");
    w->node.next = worker_list.next;
    worker_list.next = &w->node;
}

__attribute__((noinline)) static void add_entry(void)
{
    struct entry *e = malloc(sizeof *e); /* @leak:entry */
    memset(e->data, 1, sizeof e->data);
    e->node.next = NULL;
    registry->entries = &e->node;
}

__attribute__((noinline)) static struct link *make_small(void)
{
    struct small *s = malloc(sizeof *s); /* @leak:small */
    memset(s, 0, sizeof *s);
    return &s->node;
}

static void build(void)
{
    registry = calloc(1, sizeof *registry); /* @leak:registry */
    register_worker();
    add_entry();
}

int main(void)
{
    below(build);
    struct link *volatile held = make_small(); /* live in main's frame until exit */
    scrub_stack();
    puts(held && registry ? "built" : "none");
    exit(0);
}
