/* Keeps a million blocks live, so that the final capture takes a while, and says when it
 * returns from main: a SIGTERM sent then comes during the shim's final capture. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(void)
{
    enum { BLOCKS = 1000000 };
    void **keep = malloc(BLOCKS * sizeof *keep);
    for (int i = 0; i < BLOCKS; i++) keep[i] = malloc(16);
    printf("%d exiting\n", (int)getpid());
    fflush(stdout);
    return keep[0] == NULL;
}
