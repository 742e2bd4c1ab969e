/* mtrace()/muntrace() as checkpoints (libmemleak style): each call after the first writes a
 * capture of what was allocated since the previous call and is still live.
 *   before the first mtrace(): 5 x 10 bytes (not recorded with --start=on-mtrace)
 *   phase a: 3 x 100 bytes kept (2 more allocated and freed)   -> capture at mtrace() #2
 *   phase b: 2 x 200 bytes kept                                 -> capture at mtrace() #3
 *   phase c: 1 x 1000 bytes kept, one phase-a block freed       -> capture at muntrace()
 *   after muntrace(): 4 x 50 bytes (not recorded)
 * Exits with status 5. */
#include <mcheck.h>
#include <stdio.h>
#include <stdlib.h>

static void *kept[16];
static int nkept;
void *volatile sink;

__attribute__((noinline)) static void before_start(void)
{
    for (int i = 0; i < 5; i++) sink = malloc(10); /* @leak:before */
}

__attribute__((noinline)) static void phase_a(void)
{
    for (int i = 0; i < 3; i++) kept[nkept++] = malloc(100); /* @leak:phase_a */
    for (int i = 0; i < 2; i++) {
        void *t = malloc(100);
        sink = t;
        free(t);
    }
}

__attribute__((noinline)) static void phase_b(void)
{
    for (int i = 0; i < 2; i++) kept[nkept++] = malloc(200); /* @leak:phase_b */
}

__attribute__((noinline)) static void phase_c(void)
{
    kept[nkept++] = malloc(1000); /* @leak:phase_c */
    free(kept[0]);
    kept[0] = NULL;
}

__attribute__((noinline)) static void after_stop(void)
{
    for (int i = 0; i < 4; i++) sink = malloc(50); /* @leak:after */
}

int main(void)
{
    before_start();
    mtrace(); /* @call:mtrace1 */
    phase_a();
    mtrace(); /* @call:mtrace2 */
    phase_b();
    mtrace(); /* @call:mtrace3 */
    phase_c();
    muntrace(); /* @call:muntrace */
    after_stop();
    printf("checkpoints done\n");
    return 5;
}
