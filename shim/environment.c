/* The program sees the environment it would have had without leaktrace.
 *
 * `leaktrace run` hands the shim its settings in the environment (LD_PRELOAD, LEAKTRACE_*).
 * Programs copy their environment into their own data (bash's variable tables, perl's %ENV,
 * make's exports), so those strings would show up as the program's memory, and the program's
 * view of its environment would differ from a plain run. In the process leaktrace launched,
 * the shim points `environ` at a copy of the array without its entries (nothing is allocated
 * with malloc or freed) as it starts, and puts them back into the environment of an image
 * that process execs without forking (a wrapper script's `exec`), so that image is traced
 * too. With --follow-children they are hidden from each followed child as well, and every
 * exec, posix_spawn, system() and popen() of a traced process gets them back, also one whose
 * environment lost them (a program that clears it for its children: `env -i`, clearenv(),
 * Python's subprocess with env=), as valgrind's --trace-children=yes follows such children
 * too (its settings stay visible there). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hooked_functions.h"
#include "shim.h"

#define MAX_HIDDEN 32
#define MAX_EXEC_ARGS 4096

extern char **environ;

/* The LEAKTRACE_* entries taken out, as they were. Written once at start-up (single-threaded). */
static const char *hidden[MAX_HIDDEN];
static unsigned nhidden;
/* "LD_PRELOAD=" with the shim's own path alone (a copy: the visible entry is edited in place to
 * drop only the shim when the user preloads libraries of their own), which an exec puts in
 * front of whatever list the program's environment has then (it may have changed it: a
 * wrapper that preloads a library of its own, or unset it). Written once at start-up. */
static const char *shim_preload;
static const char *shim_alone(const char *entry);
static const char *shim_base; /* the shim's file name, as LD_PRELOAD's lists name it */

static bool is_setting(const char *entry) { return strncmp(entry, "LEAKTRACE_", 10) == 0; }

/* The array `environ` points at from now on, and main's `envp`. Not the one on the initial
 * stack, edited in place: runtimes that find the auxiliary vector by walking past envp's NULL
 * (Go's, cgo programs included) would find the leftover slots there instead. The copy is
 * followed by a copy of the auxiliary vector, for code that walks past main's `envp`. Not
 * one of the shim's tables: the program may store its own pointers in it, so a scan reads
 * it as the program's memory. */
#define AUXV_ROOM 4096
static size_t environment_bytes(size_t entries) { return (entries + 1) * sizeof(char *) + AUXV_ROOM; }

static char **environment_copy(size_t entries)
{
    void *p = (void *)syscall(SYS_mmap, NULL, environment_bytes(entries), PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* The auxiliary vector right after the copy's NULL at `end`: zeros, an empty vector, if it
 * cannot be read; the last pair stays AT_NULL. */
static void auxv_after(char **end)
{
    lt_read_file("/proc/self/auxv", (char *)(end + 1), AUXV_ROOM - 16);
}

/* Go's runtime reads its environment from the array on the initial stack, not `environ`,
 * and walks past its NULL to the auxiliary vector: that array keeps its length, and each
 * hidden entry's slot there (and the shim's LD_PRELOAD entry, when the shim was all it named)
 * points at an empty string instead, which Go's os.Environ() leaves out, as it leaves out any
 * entry without a name. Not under --follow-children: Go starts its children with raw system
 * calls, past the exec hooks, with the environment it read, which must hold the settings for
 * them to be followed. */
static char empty_entry[] = "";
/* The LD_PRELOAD entry that named the shim, and what stands for it: the list without the
 * shim, or empty_entry when the shim was all it named. Written once at start-up. */
static const char *preload_entry;
static char *preload_shown;

static void blank_initial_entries(char **initial)
{
    for (char **e = initial; *e; e++) {
        if (*e == preload_entry) *e = preload_shown;
        for (unsigned i = 0; i < nhidden; i++)
            if (*e == hidden[i]) *e = empty_entry;
    }
}

static const char *copy_of(const char *text, size_t len);

static bool following(void);

/* pre: start-up of a process `run` launched (the program, or a child it follows: its
 * settings kept first), single-threaded. */
void lt_env_hide_settings(const char *shim_file_name)
{
    if (!environ) return;
    size_t entries = 0;
    while (environ[entries]) entries++;
    char **visible = environment_copy(entries);
    if (!visible) return;
    char **out = visible;
    for (char **e = environ; *e; e++) {
        bool preload = strncmp(*e, "LD_PRELOAD=", 11) == 0 && strstr(*e, shim_file_name);
        if (preload && !shim_preload) {
            shim_base = shim_file_name;
            shim_preload = shim_alone(*e); /* what an exec puts back in front */
            char *edited = shim_preload ? (char *)copy_of(*e, strlen(*e)) : NULL;
            if (edited) {
                lt_preload_drop_shim(edited, shim_file_name);
                preload_entry = *e;
                preload_shown = edited[11] ? edited : empty_entry;
                if (edited[11]) *out++ = edited; /* other preloaded libraries stay */
                continue;
            }
        } else if (is_setting(*e) && nhidden < MAX_HIDDEN) {
            hidden[nhidden++] = *e;
            continue;
        }
        *out++ = *e;
    }
    *out = NULL;
    auxv_after(out);
    if (!(nhidden || shim_preload)) {
        syscall(SYS_munmap, visible, environment_bytes(entries));
        return;
    }
    if (!following()) blank_initial_entries(environ);
    environ = visible;
}

/* ---- --follow-children: the settings every image of every child needs ------------------ */
typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[], int);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);

/* How the real exec is called: by path (execve, execvpe: `file`), or by descriptor (execveat:
 * `dirfd`, `file` and `flags`; fexecve: `dirfd`). One of the three functions is set. */
struct exec_call {
    execve_fn by_path;
    execveat_fn at;
    fexecve_fn by_fd;
    int dirfd, flags;
    const char *file;
};

static bool by_descriptor(const struct exec_call *c) { return c->at || c->by_fd; }

static int call_exec(const struct exec_call *c, char *const argv[], char *const envp[])
{
    if (c->at) return c->at(c->dirfd, c->file, argv, envp, c->flags);
    if (c->by_fd) return c->by_fd(c->dirfd, argv, envp);
    if (c->by_path) return c->by_path(c->file, argv, envp);
    errno = ENOSYS; /* the C library has no such function */
    return -1;
}
/* Copies in the shim's memory, made once at start-up (single-threaded): the LEAKTRACE_*
 * entries, and "LD_PRELOAD=" with the shim's own path alone (not the user's libraries). */
static const char *followed[MAX_HIDDEN];
static unsigned nfollowed;
static const char *followed_preload;

static const char *copy_of(const char *text, size_t len)
{
    char *copy = lt_map(len + 1);
    if (copy) {
        memcpy(copy, text, len);
        copy[len] = 0;
    }
    return copy;
}

/* Where in an LD_PRELOAD value (after "LD_PRELOAD=") the shim is named, or NULL; *len its
 * length. */
static const char *shim_in_preload(const char *list, size_t *len)
{
    for (const char *tok = list; *tok;) {
        size_t n = strcspn(tok, ": ");
        if (lt_preload_entry_is(tok, n, shim_base)) {
            *len = n;
            return tok;
        }
        tok += n;
        while (*tok == ':' || *tok == ' ') tok++;
    }
    return NULL;
}

/* "LD_PRELOAD=" with the shim's path alone, copied from an "LD_PRELOAD=..." entry that names
 * it; NULL if it does not (or no memory). */
static const char *shim_alone(const char *entry)
{
    size_t len;
    const char *shim = shim_in_preload(entry + 11, &len);
    char alone[LT_PATH_MAX + 12];
    if (!shim || len >= LT_PATH_MAX) return NULL;
    memcpy(alone, "LD_PRELOAD=", 11);
    memcpy(alone + 11, shim, len);
    return copy_of(alone, 11 + len);
}

void lt_env_keep_settings(const char *shim_file_name)
{
    shim_base = shim_file_name;
    for (char **e = environ; e && *e; e++) {
        if (is_setting(*e) && nfollowed < MAX_HIDDEN) {
            const char *copy = copy_of(*e, strlen(*e));
            if (copy) followed[nfollowed++] = copy;
        } else if (strncmp(*e, "LD_PRELOAD=", 11) == 0 && !followed_preload) {
            followed_preload = shim_alone(*e);
        }
    }
}

/* Whether envp has an entry for the variable `entry` ("NAME=value") names. */
static bool has_variable(char *const envp[], size_t n, const char *entry)
{
    size_t name_len = (size_t)(strchrnul(entry, '=') - entry) + 1;
    for (size_t i = 0; i < n; i++)
        if (strncmp(envp[i], entry, name_len) == 0) return true;
    return false;
}

/* --follow-children, its settings kept (lt_env_keep_settings, called first). */
static bool following(void) { return nfollowed || followed_preload; }

/* envp's n entries completed for the next image, into `full` (room for n + MAX_HIDDEN + 2) and
 * `preload`: `shim` ("LD_PRELOAD=<the shim>") in front of the program's LD_PRELOAD list as it
 * is now, unless the list names the shim (alone when it has none: the program unset it), and
 * the `settings` envp lacks. The callers keep both on the stack, not mapped: a vfork child
 * (Python's subprocess) shares its parent's memory, where a mapping would stay. */
#define MAX_FOLLOWED_ENV 4096
#define FOLLOWED_PRELOAD_BYTES 4096
static void completed_environment(char *const envp[], size_t n, const char *shim,
                                  const char *const settings[], unsigned nsettings, char **full,
                                  char *preload)
{
    size_t k = 0;
    bool preloaded = !shim;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        if (shim && strncmp(envp[i], "LD_PRELOAD=", 11) == 0) {
            preloaded = true;
            if (!shim_in_preload(envp[i] + 11, &len) &&
                strlen(shim) + strlen(envp[i]) - 11 + 2 <= FOLLOWED_PRELOAD_BYTES) {
                strcpy(preload, shim); /* the program's own list, after the shim */
                if (envp[i][11]) {
                    strcat(preload, ":");
                    strcat(preload, envp[i] + 11);
                }
                full[k++] = preload;
                continue;
            }
        }
        full[k++] = envp[i];
    }
    if (!preloaded) full[k++] = (char *)shim;
    for (unsigned f = 0; f < nsettings; f++)
        if (!has_variable(envp, n, settings[f])) full[k++] = (char *)settings[f];
    full[k] = NULL;
}

static size_t environment_size(char *const envp[])
{
    size_t n = 0;
    while (envp && envp[n]) n++; /* none after clearenv(): environ is NULL */
    return n;
}

/* Calls use(env, preload, ctx) with envp completed for the next image, built on the stack
 * (`preload`: the LD_PRELOAD entry made there, if one was); an environment too large for the
 * stack goes as it is. The one place the completed array is made: exec, posix_spawn, popen. */
typedef int (*environment_use)(char *const env[], const char *preload, void *ctx);

static int with_settings(char *const envp[], const char *shim, const char *const settings[],
                         unsigned nsettings, environment_use use, void *ctx)
{
    size_t n = environment_size(envp);
    if (n > MAX_FOLLOWED_ENV) return use(envp, NULL, ctx);
    char *full[n + MAX_HIDDEN + 2];
    char preload[FOLLOWED_PRELOAD_BYTES];
    completed_environment(envp, n, shim, settings, nsettings, full, preload);
    return use(full, preload, ctx);
}

struct exec_args {
    const struct exec_call *call;
    char *const *argv;
};

static int exec_with(char *const env[], const char *preload, void *ctx)
{
    (void)preload;
    const struct exec_args *a = ctx;
    return call_exec(a->call, a->argv, env);
}

static int exec_completed(const struct exec_call *c, char *const argv[], char *const envp[],
                          const char *shim, const char *const settings[], unsigned nsettings)
{
    struct exec_args a = { c, argv };
    return with_settings(envp, shim, settings, nsettings, exec_with, &a);
}

/* ---- run --skip-children: programs whose children-to-be are left out ------------------- */
/* Does `name` match the glob `pattern` (`*` any characters, `?` one) of length plen? */
static bool glob_match(const char *pattern, size_t plen, const char *name)
{
    const char *star = NULL, *resume = NULL;
    size_t p = 0;
    while (*name) {
        if (p < plen && (pattern[p] == '?' || pattern[p] == *name)) {
            p++;
            name++;
        } else if (p < plen && pattern[p] == '*') {
            star = pattern + p++;
            resume = name;
        } else if (star) {
            p = (size_t)(star - pattern) + 1;
            name = ++resume;
        } else {
            return false;
        }
    }
    while (p < plen && pattern[p] == '*') p++;
    return p == plen;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Whether one of the comma-separated patterns matches this program: the name it was run by
 * (argv[0]) or its executable's path, whole when the pattern has a slash, else their last
 * part (valgrind's --trace-children-skip). */
bool lt_env_child_skipped(const char *patterns)
{
    char argv0[LT_PATH_MAX] = "", exe[LT_PATH_MAX] = "";
    lt_read_file("/proc/self/cmdline", argv0, sizeof argv0 - 1); /* up to the first NUL */
    ssize_t n = lt_readlink_proc("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    for (const char *p = patterns; *p;) {
        size_t len = strcspn(p, ",");
        bool whole = memchr(p, '/', len) != NULL;
        const char *names[2] = { argv0, exe };
        for (int i = 0; i < 2; i++)
            if (names[i][0] && glob_match(p, len, whole ? names[i] : base_name(names[i]))) return true;
        p += len;
        while (*p == ',') p++;
    }
    return false;
}

/* ---- exec: the hidden entries go with the process into its next image ------------------- */
static _Atomic(execve_fn) next_execve, next_execvpe; /* the real ones, looked up at first use */

static int exec_with_hidden(const struct exec_call *c, char *const argv[], char *const envp[])
{
    /* Hidden entries go only with the traced process itself: a vfork child shares its memory
     * but is not it, and children are not traced unless followed (then nothing was hidden). */
    if (following()) /* vfork too */
        return exec_completed(c, argv, envp, followed_preload, followed, nfollowed);
    if (!envp || !(nhidden || shim_preload) || getpid() != atomic_load(&lt_owner_pid))
        return call_exec(c, argv, envp);
    return exec_completed(c, argv, envp, shim_preload, hidden, nhidden);
}

/* Where `dir` (a directory's descriptor, or AT_FDCWD) and `file` lead, as an absolute path in
 * `out`: for the launcher, which checks the file later from another directory. */
static void absolute_path(int dir, const char *file, char *out, size_t cap)
{
    char *end = out + cap - 1;
    char *p = out;
    if (!file || file[0] != '/') {
        if (dir == AT_FDCWD) {
            if (!getcwd(out, cap)) out[0] = 0;
        } else {
            char link[40];
            *lt_put_uint(lt_put_str(link, link + sizeof link - 1, "/proc/self/fd/"),
                         link + sizeof link - 1, (uint64_t)dir) = 0;
            ssize_t n = lt_readlink_proc(link, out, cap - 1);
            out[n > 0 ? n : 0] = 0;
        }
        if (!out[0]) return;
        p = out + strlen(out);
        if (file && file[0]) p = lt_put_str(p, end, "/");
    }
    *lt_put_str(p, end, file ? file : "") = 0;
}

/* Would an exec of `file` start a new image? Checked before writing the image's capture, so
 * the usual failures (execvp's callers trying names, a missing program) cost nothing. With
 * `search`, a name without a slash is looked for in $PATH as execvp does. The file found goes
 * in `image` (absolute). */
static bool executable(const char *file, bool search, char *image, size_t cap)
{
    if (!file || !*file) return false;
    if (!search || strchr(file, '/')) {
        absolute_path(AT_FDCWD, file, image, cap);
        return access(file, X_OK) == 0;
    }
    const char *dirs = getenv("PATH");
    if (!dirs) dirs = "/bin:/usr/bin";
    char candidate[LT_PATH_MAX];
    size_t flen = strlen(file);
    for (const char *d = dirs;; d++) {
        const char *end = strchrnul(d, ':');
        size_t dlen = (size_t)(end - d);
        if (dlen + flen + 2 <= sizeof candidate) {
            memcpy(candidate, d, dlen);
            size_t n = dlen;
            if (n) candidate[n++] = '/';
            memcpy(candidate + n, file, flen + 1);
            if (access(candidate, X_OK) == 0) {
                absolute_path(AT_FDCWD, candidate, image, cap);
                return true;
            }
        }
        if (!*end) return false;
        d = end;
    }
}

/* The file an exec by descriptor runs (execveat, fexecve). Not checked first: those seldom
 * fail, and the capture goes if one does. */
static void image_by_descriptor(const struct exec_call *c, char *image, size_t cap)
{
    bool whole_fd = c->by_fd || ((c->flags & AT_EMPTY_PATH) && (!c->file || !c->file[0]));
    absolute_path(c->dirfd, whole_fd ? NULL : c->file, image, cap);
}

/* The image about to be replaced writes its capture first, and tells the launcher which file
 * comes next (a setuid or static one cannot be entered: the launcher says so); if the exec
 * fails, the image lives on: its capture is removed and the launcher told. */
static int exec_with_settings(const struct exec_call *c, bool search, char *const argv[],
                              char *const envp[])
{
    char capture[LT_PATH_MAX], image[LT_PATH_MAX] = "";
    bool captured = false;
    if (lt_exec_capture_wanted()) {
        bool starts = true;
        if (by_descriptor(c)) image_by_descriptor(c, image, sizeof image);
        else starts = executable(c->file, search, image, sizeof image);
        captured = starts && lt_capture_before_exec(capture, sizeof capture);
    }
    if (captured) lt_capture_notify_exec(image, false);
    int r = exec_with_hidden(c, argv, envp);
    if (captured) {
        lt_discard_exec_capture(capture);
        lt_capture_notify_exec(image, true);
    }
    return r;
}

/* The next execve and execvpe, looked up at the first exec (racing lookups agree). */
static execve_fn next_exec(_Atomic(execve_fn) *slot, const char *name)
{
    execve_fn f = atomic_load(slot);
    if (!f) {
        f = (execve_fn)lt_next_symbol(name);
        atomic_store(slot, f);
    }
    return f;
}

static execve_fn real_execve(void) { return next_exec(&next_execve, "execve"); }
static execve_fn real_execvpe(void) { return next_exec(&next_execvpe, "execvpe"); }

static struct exec_call by_path(execve_fn real, const char *file)
{
    return (struct exec_call){ .by_path = real, .file = file };
}

int lt_hook_execve(const char *path, char *const argv[], char *const envp[])
{
    struct exec_call c = by_path(real_execve(), path);
    return exec_with_settings(&c, false, argv, envp);
}

int lt_hook_execv(const char *path, char *const argv[])
{
    struct exec_call c = by_path(real_execve(), path);
    return exec_with_settings(&c, false, argv, environ);
}

int lt_hook_execvpe(const char *file, char *const argv[], char *const envp[])
{
    struct exec_call c = by_path(real_execvpe(), file);
    return exec_with_settings(&c, true, argv, envp);
}

int lt_hook_execvp(const char *file, char *const argv[])
{
    struct exec_call c = by_path(real_execvpe(), file);
    return exec_with_settings(&c, true, argv, environ);
}

/* By descriptor: execveat (glibc 2.34 on) and fexecve (which glibc makes an execveat, or an
 * execve of its /proc/self/fd path on kernels without it, out of the hooks' reach). */
int lt_hook_execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
    LT_NEXT(execveat_fn, execveat);
    struct exec_call c = { .at = f, .dirfd = dirfd, .file = path, .flags = flags };
    return exec_with_settings(&c, false, argv, envp);
}

int lt_hook_fexecve(int fd, char *const argv[], char *const envp[])
{
    LT_NEXT(fexecve_fn, fexecve);
    struct exec_call c = { .by_fd = f, .dirfd = fd };
    return exec_with_settings(&c, false, argv, envp);
}

/* execl, execlp, execle: the arguments into an array of our own, then as above. */
static int exec_list(execve_fn real, bool search, const char *file, const char *arg, va_list ap,
                     bool with_env)
{
    size_t bytes = MAX_EXEC_ARGS * sizeof(char *);
    char **argv = lt_map(bytes);
    if (!argv) return -1;
    size_t n = 0;
    argv[n++] = (char *)arg;
    while (arg && n < MAX_EXEC_ARGS) {
        arg = va_arg(ap, const char *);
        argv[n++] = (char *)arg;
    }
    if (arg) { /* more arguments than we can hold */
        lt_unmap(argv, bytes);
        errno = E2BIG;
        return -1;
    }
    char *const *envp = with_env ? va_arg(ap, char *const *) : environ;
    struct exec_call c = by_path(real, file);
    int r = exec_with_settings(&c, search, argv, envp);
    lt_unmap(argv, bytes);
    return r;
}

int lt_hook_execl(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    int r = exec_list(real_execve(), false, path, arg, ap, false);
    va_end(ap);
    return r;
}

int lt_hook_execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    int r = exec_list(real_execvpe(), true, file, arg, ap, false);
    va_end(ap);
    return r;
}

int lt_hook_execle(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    int r = exec_list(real_execve(), false, path, arg, ap, true);
    va_end(ap);
    return r;
}

/* ---- posix_spawn: glibc's execs inside, out of the hooks' reach, so the environment is
 * completed here (--follow-children; otherwise as it is). */
typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                        const posix_spawnattr_t *, char *const[], char *const[]);

struct spawn_args {
    spawn_fn real;
    pid_t *pid;
    const char *file;
    const posix_spawn_file_actions_t *actions;
    const posix_spawnattr_t *attr;
    char *const *argv;
};

static int spawn_with(char *const env[], const char *preload, void *ctx)
{
    (void)preload;
    const struct spawn_args *a = ctx;
    return a->real(a->pid, a->file, a->actions, a->attr, a->argv, env);
}

static int spawn_followed(spawn_fn real, pid_t *pid, const char *file,
                          const posix_spawn_file_actions_t *actions, const posix_spawnattr_t *attr,
                          char *const argv[], char *const envp[])
{
    if (!real) return ENOSYS;
    struct spawn_args a = { real, pid, file, actions, attr, argv };
    if (!following()) return spawn_with(envp, NULL, &a);
    return with_settings(envp, followed_preload, followed, nfollowed, spawn_with, &a);
}

int lt_hook_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    LT_NEXT(spawn_fn, posix_spawn);
    return spawn_followed(f, pid, path, actions, attr, argv, envp);
}

int lt_hook_posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                         const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    LT_NEXT(spawn_fn, posix_spawnp);
    return spawn_followed(f, pid, file, actions, attr, argv, envp);
}

/* ---- system() and popen(): glibc spawns their shell inside the C library, past the hooks
 * above, with `environ` as it is, which lacks the settings the program does not see. Under
 * --follow-children they are added for that spawn. */
typedef int (*system_fn)(const char *);
typedef FILE *(*popen_fn)(const char *, const char *);
typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

/* system() as glibc's: SIGINT and SIGQUIT ignored while any call runs (the first call saves
 * their dispositions, the last puts them back: both guarded by system_lock), SIGCHLD blocked;
 * the shell gets the caller's mask and the default action for those two unless ignored;
 * status 127 when it cannot start. The real sigaction, as glibc's own call is: a handler the
 * shim put where the program left SIG_DFL (signals.c) comes back as it was. */
static pthread_mutex_t system_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned system_calls;
static struct sigaction saved_int, saved_quit;

static sigaction_fn next_sigaction(void)
{
    LT_NEXT(sigaction_fn, sigaction);
    return f;
}

static spawn_fn next_posix_spawn(void)
{
    LT_NEXT(spawn_fn, posix_spawn);
    return f;
}

static int system_followed(const char *command)
{
    sigaction_fn real_sigaction = next_sigaction();
    struct sigaction ignore = { .sa_handler = SIG_IGN };
    sigemptyset(&ignore.sa_mask);
    pthread_mutex_lock(&system_lock);
    if (system_calls++ == 0) {
        real_sigaction(SIGINT, &ignore, &saved_int);
        real_sigaction(SIGQUIT, &ignore, &saved_quit);
    }
    sigset_t defaults;
    sigemptyset(&defaults);
    if (saved_int.sa_handler != SIG_IGN) sigaddset(&defaults, SIGINT);
    if (saved_quit.sa_handler != SIG_IGN) sigaddset(&defaults, SIGQUIT);
    pthread_mutex_unlock(&system_lock);
    sigset_t child, mask;
    sigemptyset(&child);
    sigaddset(&child, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &child, &mask);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &mask);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    char *argv[] = { "sh", "-c", (char *)command, NULL };
    pid_t pid;
    int failed = spawn_followed(next_posix_spawn(), &pid, "/bin/sh", NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    int status = 127 << 8; /* as if the shell had exited with 127 */
    if (!failed) {
        pid_t waited;
        do waited = waitpid(pid, &status, 0);
        while (waited < 0 && errno == EINTR);
        if (waited != pid) status = -1;
    }
    pthread_mutex_lock(&system_lock);
    if (--system_calls == 0) {
        real_sigaction(SIGINT, &saved_int, NULL);
        real_sigaction(SIGQUIT, &saved_quit, NULL);
    }
    pthread_mutex_unlock(&system_lock);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
    if (failed) errno = failed;
    return status;
}

int lt_hook_system(const char *command)
{
    LT_NEXT(system_fn, system);
    if (!command || !following()) return f(command); /* system(NULL): is there a shell */
    return system_followed(command);
}

/* popen() keeps the streams it opened for pclose, and closes them in each new child, so it
 * stays glibc's: `environ` holds the settings for the call (short: popen returns once the
 * shell has started). Calls are one at a time (environ_lock), as another popen would take
 * this one's array for the program's. */
static pthread_mutex_t environ_lock = PTHREAD_MUTEX_INITIALIZER;

struct popen_args {
    popen_fn real;
    const char *command, *mode;
    char **visible; /* the program's array */
    FILE *stream;
};

/* After the call, the program's array back; or, where another thread's setenv replaced the
 * array meanwhile (glibc's copy of ours, with its change), the entries added here taken out
 * of that copy, known by their addresses (the settings' copies, the LD_PRELOAD entry made on
 * the stack). An unsetenv meanwhile edits ours in place, and is lost. */
static int popen_with(char *const env[], const char *preload, void *ctx)
{
    struct popen_args *a = ctx;
    char **full = (char **)env;
    environ = full;
    a->stream = a->real(a->command, a->mode);
    if (environ == full) {
        environ = a->visible;
        return 0;
    }
    char **out = environ;
    for (char **e = environ; e && *e; e++) {
        bool added = *e == preload || *e == followed_preload;
        for (unsigned i = 0; i < nfollowed && !added; i++) added = *e == followed[i];
        if (!added) *out++ = *e;
    }
    if (out) *out = NULL;
    return 0;
}

FILE *lt_hook_popen(const char *command, const char *mode)
{
    LT_NEXT(popen_fn, popen);
    if (!following()) return f(command, mode);
    pthread_mutex_lock(&environ_lock);
    struct popen_args a = { f, command, mode, environ, NULL };
    with_settings(a.visible, followed_preload, followed, nfollowed, popen_with, &a);
    int saved_errno = errno;
    pthread_mutex_unlock(&environ_lock);
    errno = saved_errno;
    return a.stream;
}

/* The exported names (see hooked_functions.h). */
#define LT_X(name) extern __typeof__(lt_hook_##name) name __attribute__((alias("lt_hook_" #name), visibility("default")));
LT_HOOKED_EXEC_FUNCTIONS(LT_X)
#undef LT_X
