/* Reading the kernel's view of this process (/proc/self, and its memory by copy) with plain
 * system calls: no stdio, no opendir (both allocate), so it works inside hooks, at exit and
 * while threads are parked. */
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim.h"

size_t lt_read_file(const char *path, char *dst, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t len = 0;
    while (len < cap) {
        ssize_t n = read(fd, dst + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    return len;
}

bool lt_copy_memory(void *dst, uintptr_t src, size_t len)
{
    struct iovec local = { dst, len }, remote = { (void *)src, len };
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)len;
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

int lt_for_each_thread(void (*fn)(pid_t tid, void *ctx), void *ctx)
{
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[4096];
    int count = 0;
    long n;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
            const struct linux_dirent64 *d = (const struct linux_dirent64 *)(const void *)(buf + off);
            off += d->d_reclen;
            if (d->d_name[0] < '0' || d->d_name[0] > '9') continue;
            pid_t tid = 0;
            for (const char *c = d->d_name; *c; c++) tid = tid * 10 + (*c - '0');
            count++;
            if (fn) fn(tid, ctx);
        }
    }
    close(fd);
    return count;
}

bool lt_thread_has_left(pid_t tid)
{
    char path[64], statm[8];
    char *end = path + sizeof path - 1;
    char *at = lt_put_str(lt_put_uint(lt_put_str(path, end, "/proc/self/task/"), end, (uint64_t)tid),
                          end, "/statm");
    *at = '\0';
    return lt_read_file(path, statm, sizeof statm) == 0 || statm[0] == '0';
}
