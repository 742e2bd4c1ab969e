/* Settings, read once from the environment the launcher prepared. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sampling.h"
#include "shim.h"

struct lt_config lt_cfg;

/* Where settings come from: the environment (preload mode), or the file `leaktrace attach`
 * wrote (attach mode: the target's environment is the program's, not ours to change).
 * Only switched during a load, which is single-threaded (start-up, or the injected call). */
static char **start_environment; /* start-up only (single-threaded): see below */

void lt_config_use_environment(char **env) { start_environment = env; }

static const char *env_setting(const char *name)
{
    if (!start_environment) return getenv(name);
    size_t len = strlen(name);
    for (char **e = start_environment; *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') return *e + len + 1;
    return NULL;
}

/* glibc fills new and freed blocks with a byte of the user's (MALLOC_PERTURB_=N, or the
 * tunable glibc.malloc.perturb=N; N & 0xff not 0): the process's own environment, whatever
 * way the shim's settings come. */
static bool glibc_perturbs(void)
{
    const char *env = env_setting("MALLOC_PERTURB_");
    if (env && (strtol(env, NULL, 0) & 0xff) != 0) return true;
    const char *tunables = env_setting("GLIBC_TUNABLES");
    const char *perturb = tunables ? strstr(tunables, "glibc.malloc.perturb=") : NULL;
    return perturb && (strtol(perturb + strlen("glibc.malloc.perturb="), NULL, 0) & 0xff) != 0;
}
static const char *(*setting)(const char *name) = env_setting;
static char *file_text;
static size_t file_size;

static const char *file_setting(const char *name)
{
    size_t len = strlen(name);
    for (char *line = file_text; line < file_text + file_size; line += strlen(line) + 1)
        if (strncmp(line, name, len) == 0 && line[len] == '=') return line + len + 1;
    return NULL;
}

static void copy_env(char *dst, const char *name)
{
    const char *v = setting(name);
    dst[0] = 0;
    if (v && strlen(v) < LT_PATH_MAX) strcpy(dst, v);
}

static bool flag_is(const char *value, const char *expected)
{
    return value && strcmp(value, expected) == 0;
}

/* "all" (the default, as in valgrind >= 3.11), "none", or names separated by commas. */
static unsigned parse_heuristics(const char *spec)
{
    static const char *const names[] = {
#define LT_X(num, name, text) [num] = text,
        LT_HEURISTICS(LT_X)
#undef LT_X
    };
    unsigned all = 0;
    for (unsigned i = 1; i < sizeof names / sizeof *names; i++) all |= 1u << i;
    if (!spec || !*spec || strcmp(spec, "all") == 0) return all;
    unsigned set = 0;
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        for (unsigned i = 1; i < sizeof names / sizeof *names; i++)
            if (strlen(names[i]) == len && strncmp(p, names[i], len) == 0) set |= 1u << i;
        p += len;
        if (*p == ',') p++;
    }
    return set;
}

/* Seconds with an optional fraction, to ms; 0 if absent or invalid (strtod may allocate). */
static uint32_t parse_interval_ms(const char *s)
{
    if (!s) return 0;
    uint64_t ms = 0, scale = 1000;
    for (; *s >= '0' && *s <= '9'; s++) ms = ms * 10 + (uint64_t)(*s - '0') * 1000;
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9' && scale > 1; s++) ms += (uint64_t)(*s - '0') * (scale /= 10);
    return ms >= 10 && ms < UINT32_MAX ? (uint32_t)ms : 0;
}

/* docs/control-protocol.md: LEAKTRACE_CONTROL_DIR, $XDG_RUNTIME_DIR/leaktrace, /tmp/leaktrace-UID. */
static void choose_control_dir(char *dst, size_t cap)
{
    const char *explicit_dir = setting("LEAKTRACE_CONTROL_DIR");
    const char *runtime = setting("XDG_RUNTIME_DIR");
    char *end = dst + cap - 1;
    char *p = dst;
    lt_cfg.control_dir_explicit = explicit_dir && *explicit_dir;
    lt_cfg.control_dir_uid = getuid();
    if (explicit_dir && *explicit_dir) {
        p = lt_put_str(p, end, explicit_dir);
    } else if (runtime && *runtime == '/') {
        p = lt_put_str(p, end, runtime);
        p = lt_put_str(p, end, "/leaktrace");
    } else {
        p = lt_put_str(p, end, "/tmp/leaktrace-");
        p = lt_put_uint(p, end, (uint64_t)getuid());
    }
    *p = 0;
}

/* Everything but the root-process logic: shared by preload and attach mode. */
static void load_common(void)
{
    const char *depth = setting("LEAKTRACE_MAX_DEPTH");
    lt_cfg.max_depth = 64;
    if (depth && *depth) {
        long d = strtol(depth, NULL, 10);
        if (d >= 1) lt_cfg.max_depth = d > LT_MAX_DEPTH_LIMIT ? LT_MAX_DEPTH_LIMIT : (int)d;
    }
    lt_cfg.follow_children = flag_is(setting("LEAKTRACE_FOLLOW_CHILDREN"), "1");
    copy_env(lt_cfg.skip_children, "LEAKTRACE_SKIP_CHILDREN");
    lt_cfg.write_on_signal = !flag_is(setting("LEAKTRACE_SIGNALS"), "0");
    copy_env(lt_cfg.output, "LEAKTRACE_OUTPUT");
    copy_env(lt_cfg.notify, "LEAKTRACE_NOTIFY");
    copy_env(lt_cfg.mtrace_log, "LEAKTRACE_MTRACE_LOG");
    const char *session = setting("LEAKTRACE_SESSION");
    lt_cfg.session[0] = 0;
    if (session && strlen(session) < sizeof lt_cfg.session) strcpy(lt_cfg.session, session);
    lt_cfg.scan_at_exit = !flag_is(setting("LEAKTRACE_SCAN"), "0");
    lt_cfg.freeres_at_exit = !flag_is(setting("LEAKTRACE_FREERES"), "0");
    lt_cfg.heuristics = parse_heuristics(setting("LEAKTRACE_HEURISTICS"));
    /* LEAKTRACE_START=on-mtrace waits for the program's first mtrace(). libmemleak's
     * MEMLEAK_CONFIG=mtraceinit means "collect from the start", leaktrace's default, and
     * wins only when LEAKTRACE_START is not set. */
    const char *start = setting("LEAKTRACE_START");
    if (!start && flag_is(setting("MEMLEAK_CONFIG"), "mtraceinit")) start = "at-load";
    lt_cfg.collect_at_start = !flag_is(start, "on-mtrace");
    lt_cfg.control_enabled = !flag_is(setting("LEAKTRACE_CONTROL"), "0");
    lt_cfg.clear_limit = glibc_perturbs() ? 0 : LT_CLEAR_LIMIT;
    lt_cfg.interval_ms = parse_interval_ms(setting("LEAKTRACE_INTERVAL"));
    const char *sample = setting("LEAKTRACE_SAMPLE");
    lt_cfg.sample_bytes = sample ? strtoull(sample, NULL, 10) : 0;
    lt_sampling_configure(lt_cfg.sample_bytes);
    choose_control_dir(lt_cfg.control_dir, sizeof lt_cfg.control_dir);
    copy_env(lt_cfg.dir, "LEAKTRACE_DIR");
    if (!lt_cfg.dir[0] && !getcwd(lt_cfg.dir, sizeof lt_cfg.dir)) strcpy(lt_cfg.dir, ".");
}

void lt_config_load(void)
{
    load_common();
    /* The process `leaktrace run` started is the root of the traced tree: its parent is the
     * launcher (an image it execs without forking keeps both pid and parent). Its children
     * are not, unless followed. Nothing is written into the program's environment: a program
     * with a setenv of its own (bash) would record our variable as its data. Preloaded by
     * hand, without the launcher, every process that loads the shim is a root. */
    const char *launcher = setting("LEAKTRACE_LAUNCHER_PID");
    lt_cfg.launched = launcher && *launcher;
    lt_cfg.is_root = !lt_cfg.launched || strtol(launcher, NULL, 10) == (long)getppid();
    lt_cfg.launcher_pid = lt_cfg.launched && lt_cfg.is_root ? getppid() : 0;
    /* The exact output path belongs to the root process only. */
    if (!lt_cfg.is_root) lt_cfg.output[0] = 0;
}

bool lt_config_load_file(const char *path)
{
    enum { MAX_FILE = 64 << 10 };
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    file_text = lt_map(MAX_FILE);
    ssize_t n = file_text ? read(fd, file_text, MAX_FILE - 1) : -1;
    close(fd);
    if (n < 0) {
        lt_unmap(file_text, MAX_FILE);
        return false;
    }
    file_size = (size_t)n;
    for (size_t i = 0; i < file_size; i++)
        if (file_text[i] == '\n') file_text[i] = 0;
    setting = file_setting;
    load_common();
    lt_cfg.is_root = true;
    setting = env_setting;
    lt_unmap(file_text, MAX_FILE);
    file_text = NULL;
    return true;
}

bool lt_preload_entry_is(const char *entry, size_t len, const char *shim_path)
{
    const char *base = strrchr(shim_path, '/');
    base = base ? base + 1 : shim_path;
    const char *slash = memrchr(entry, '/', len);
    const char *name = slash ? slash + 1 : entry;
    size_t name_len = len - (size_t)(name - entry);
    return name_len == strlen(base) && strncmp(name, base, name_len) == 0;
}

/* Removes the shim from LD_PRELOAD in this process's environment, in place (no allocation),
 * so programs this one executes are not traced unless --follow-children asked for it. */
void lt_preload_drop_shim(char *entry, const char *shim_path)
{
    char *list = entry + 11, *out = list, *tok = list;
    while (*tok) {
        size_t len = strcspn(tok, ": ");
        if (!lt_preload_entry_is(tok, len, shim_path)) {
            if (out != list) *out++ = ':';
            memmove(out, tok, len);
            out += len;
        }
        tok += len;
        while (*tok == ':' || *tok == ' ') tok++;
    }
    *out = 0;
}

void lt_env_remove_preload(const char *shim_path)
{
    extern char **environ;
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) == 0) lt_preload_drop_shim(*e, shim_path);
}
