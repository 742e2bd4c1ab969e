/* The shim's own file descriptors (the control socket and its wake-up, the prepared capture
 * and notice files, /proc kept for a chroot), out of the program's count. A program that opens
 * until EMFILE must get as many descriptors as without the shim, and one that closes every
 * descriptor below its limit (a daemon's clean-up) must not close the shim's. So each is
 * numbered at the soft RLIMIT_NOFILE or above it: the kernel lets a process keep descriptors
 * above its soft limit and only hands out new ones below it. The soft limit rises for the
 * duplication, under the hard one, and is put back at once. */
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

/* Above this soft limit a descriptor numbered at the limit would make the kernel size the
 * process's descriptor table to it (8 bytes a slot, copied at every fork: 512 KiB here):
 * the old place, 1000, serves instead, where a program that asks for that number (a shell's
 * `exec 1000>file`) finds it taken. */
#define HIGHEST_LIMIT_TO_EXCEED 65536
#define USUAL_PLACE 1000

int lt_fd_out_of_the_way(int fd)
{
    if (fd < 0) return fd;
    struct rlimit rl;
    int high = -1;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur <= HIGHEST_LIMIT_TO_EXCEED) {
        if (rl.rlim_cur < rl.rlim_max) {
            /* Room for every descriptor the shim keeps at once, above the limit. */
            rlim_t room = rl.rlim_max - rl.rlim_cur < 16 ? rl.rlim_max - rl.rlim_cur : 16;
            struct rlimit raised = { rl.rlim_cur + room, rl.rlim_max };
            if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
                high = fcntl(fd, F_DUPFD_CLOEXEC, (int)rl.rlim_cur);
                setrlimit(RLIMIT_NOFILE, &rl);
            }
        }
        /* No room above the limit (soft == hard): high below it, where the lowest-number
         * rule of open() comes last. */
        if (high < 0 && (int)(rl.rlim_cur * 3 / 4) > fd)
            high = fcntl(fd, F_DUPFD_CLOEXEC, (int)(rl.rlim_cur * 3 / 4));
    } else if (fd < USUAL_PLACE) {
        high = fcntl(fd, F_DUPFD_CLOEXEC, USUAL_PLACE);
    }
    if (high < 0) return fd;
    close(fd);
    return high;
}

/* A descriptor numbered that high makes the kernel grow the process's descriptor table, and
 * growing a table that threads share waits for an RCU grace period (fs/file.c: 10-20 ms here).
 * The first such descriptor came with the control thread, started by the first recorded
 * allocation, which in sampling mode is often a worker thread's: the program stood still for
 * that long. Grown here instead, at start-up, while the process has one thread. */
void lt_fd_table_grow_early(void)
{
    int probe = eventfd(0, EFD_CLOEXEC);
    if (probe >= 0) close(lt_fd_out_of_the_way(probe));
}

/* Whether `fd` still names the file `id` was taken from (device and inode): a program that
 * closes every descriptor may have put a file of its own under the number, which is then not
 * the shim's to read, poll or close. */
bool lt_fd_still_names(int fd, const struct lt_fd_identity *id)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == id->dev && st.st_ino == id->ino;
}

bool lt_fd_identify(int fd, struct lt_fd_identity *id)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return false;
    *id = (struct lt_fd_identity){ st.st_dev, st.st_ino };
    return true;
}
