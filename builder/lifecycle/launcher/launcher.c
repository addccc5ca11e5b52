/*
 * The launcher: the entrypoint of app images pallet builds (Cloud Native Buildpacks semantics).
 *
 * Built static with musl (build.sh), so it runs in images with no shell and no libc.
 *
 *   /cnb/process/<type> -> /cnb/lifecycle/launcher      the process type is basename(argv[0])
 *   /cnb/lifecycle/launcher [ARGS...]                   $CNB_PROCESS_TYPE, else the default process
 *
 * It reads /layers/config/processes/<type> (the format is builder/lifecycle/launch.py's), then:
 *  1. sets up the environment from the launch layers, one buildpack at a time (a buildpack's
 *     layers are the consecutive layer directories with the same parent), as the CNB
 *     lifecycle does: first <layer>/bin is prepended to PATH and <layer>/lib to
 *     LD_LIBRARY_PATH for each of its layers that has them, then for each of its layers the
 *     files of <layer>/env/, <layer>/env.launch/ and <layer>/env.launch/<type>/ are applied
 *     in sorted order: NAME or NAME.override sets, NAME.default sets if unset or empty,
 *     NAME.append / NAME.prepend add to the value with the delimiter in NAME.delim (none if
 *     there is no such file); file contents are used verbatim;
 *  2. changes to the process's working directory (default /workspace);
 *  3. execs the command (a bare name is looked up on the PATH just computed) with the
 *     process's arguments, or with the launcher's own arguments when it was given any.
 * No shell is involved unless the command is one. Errors go to stderr with a non-zero exit:
 * 1 for a bad or missing process, 126 if the command cannot be executed, 127 if not found.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Must match builder/lifecycle/process.py and launch.py (a test checks). */
#define PROCESS_CONFIG_DIR "/layers/config/processes"
#define DEFAULT_WORKING_DIR "/workspace"
#define FORMAT_MAGIC "pallet-process-v1"
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MAX_FILE (16 * 1024 * 1024)

extern char **environ;

static const char *prog = "launcher";

static void die(int code, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die(1, "out of memory");
    return p;
}

static char *join(const char *a, const char *b, const char *c) {
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = xmalloc(la + lb + lc + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

/* Read a whole file; NULL with errno set if it cannot be read. *len gets its size. */
static char *read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_FILE) { close(fd); free(buf); errno = EFBIG; return NULL; }
            cap *= 2;
            char *bigger = realloc(buf, cap + 1);
            if (!bigger) die(1, "out of memory");
            buf = bigger;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            int saved = errno;
            close(fd); free(buf); errno = saved;
            return NULL;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* -- the process file: NUL-terminated fields ----------------------------------------- */

struct process {
    const char *type;
    const char *working_dir;
    int is_default;
    char **layers; size_t n_layers;
    char **command; size_t n_command;
    char **args; size_t n_args;
};

struct cursor { char *p, *end; const char *path; };

static char *field(struct cursor *c) {
    if (c->p >= c->end) die(1, "%s: truncated process file", c->path);
    char *s = c->p;
    char *nul = memchr(s, '\0', (size_t)(c->end - s));
    if (!nul) die(1, "%s: malformed process file (unterminated field)", c->path);
    c->p = nul + 1;
    return s;
}

static char **list(struct cursor *c, size_t *n) {
    char *count = field(c), *endp;
    errno = 0;
    unsigned long v = strtoul(count, &endp, 10);
    if (errno || *count == '\0' || *endp != '\0' || v > 1000000)
        die(1, "%s: malformed process file (bad count %s)", c->path, count);
    char **items = xmalloc((v + 1) * sizeof(char *));
    for (size_t i = 0; i < v; i++) items[i] = field(c);
    items[v] = NULL;
    *n = v;
    return items;
}

static int load_process(const char *path, struct process *proc) {
    size_t len;
    char *data = read_file(path, &len);
    if (!data) return -1;
    struct cursor c = { data, data + len, path };
    if (strcmp(field(&c), FORMAT_MAGIC) != 0)
        die(1, "%s: not a process file of this launcher (expected %s)", path, FORMAT_MAGIC);
    proc->type = field(&c);
    proc->working_dir = field(&c);
    proc->is_default = strcmp(field(&c), "1") == 0;
    field(&c); /* buildpack id: for people, not for us */
    proc->layers = list(&c, &proc->n_layers);
    proc->command = list(&c, &proc->n_command);
    proc->args = list(&c, &proc->n_args);
    if (c.p != c.end) die(1, "%s: malformed process file (trailing data)", path);
    if (proc->n_command == 0) die(1, "%s: the process has no command", path);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The process types there are, sorted, for error messages and the default lookup. */
static char **process_types(size_t *n) {
    DIR *d = opendir(PROCESS_CONFIG_DIR);
    size_t cap = 16;
    char **names = xmalloc(cap * sizeof(char *));
    *n = 0;
    if (!d) return names;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (*n == cap) {
            cap *= 2;
            char **bigger = realloc(names, cap * sizeof(char *));
            if (!bigger) die(1, "out of memory");
            names = bigger;
        }
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, *n, sizeof(char *), cmp_str);
    return names;
}

static char *types_text(void) {
    size_t n;
    char **names = process_types(&n);
    if (n == 0) return "none; " PROCESS_CONFIG_DIR " is empty or missing";
    char *out = strdup("");
    for (size_t i = 0; i < n; i++) {
        char *next = join(out, i ? ", " : "", names[i]);
        free(out);
        out = next;
    }
    return out;
}

static void select_process(const char *type, struct process *proc) {
    if (type) {
        if (!*type || strchr(type, '/') || !strcmp(type, ".") || !strcmp(type, ".."))
            die(1, "invalid process type \"%s\" (this image has: %s)", type, types_text());
        char *path = join(PROCESS_CONFIG_DIR, "/", type);
        if (load_process(path, proc) != 0) {
            if (errno == ENOENT)
                die(1, "unknown process type \"%s\" (this image has: %s)", type, types_text());
            die(1, "cannot read %s: %s", path, strerror(errno));
        }
        return;
    }
    size_t n;
    char **names = process_types(&n);
    for (size_t i = 0; i < n; i++) {
        char *path = join(PROCESS_CONFIG_DIR, "/", names[i]);
        if (load_process(path, proc) != 0) die(1, "cannot read %s: %s", path, strerror(errno));
        if (proc->is_default) return;
    }
    die(1, "no default process type; choose one with CNB_PROCESS_TYPE or /cnb/process/<type> "
           "(this image has: %s)", types_text());
}

/* -- environment ---------------------------------------------------------------------- */

static const char *env_or_empty(const char *name) {
    const char *v = getenv(name);
    return v ? v : "";
}

static void set(const char *name, const char *value) {
    if (setenv(name, value, 1) != 0) die(1, "cannot set %s: %s", name, strerror(errno));
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* prepend <layer>/<sub> to NAME with ':' (as the lifecycle's AddRootDir) */
static void prepend_path(const char *name, const char *layer, const char *sub) {
    char *dir = join(layer, "/", sub);
    if (exists(dir)) {
        const char *cur = env_or_empty(name);
        char *v = *cur ? join(dir, ":", cur) : strdup(dir);
        set(name, v);
        free(v);
    }
    free(dir);
}

static int valid_name(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '=' || s[i] == '\0') return 0;
    return 1;
}

static void apply_env_dir(const char *dir) {
    struct dirent **entries;
    int n = scandir(dir, &entries, NULL, alphasort);
    if (n < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return;
        die(1, "cannot read %s: %s", dir, strerror(errno));
    }
    for (int i = 0; i < n; i++) {
        const char *file = entries[i]->d_name;
        char *path = join(dir, "/", file);
        if (!strcmp(file, ".") || !strcmp(file, "..") || is_dir(path)) { free(path); continue; }
        const char *dot = strchr(file, '.');
        size_t name_len = dot ? (size_t)(dot - file) : strlen(file);
        const char *action = dot ? dot + 1 : "override";
        if (!valid_name(file, name_len)) { free(path); continue; }
        char *name = strndup(file, name_len);
        size_t len;
        char *value = NULL;
        int known = !strcmp(action, "override") || !strcmp(action, "default") ||
                    !strcmp(action, "append") || !strcmp(action, "prepend");
        if (known) {
            value = read_file(path, &len);
            if (!value) die(1, "cannot read %s: %s", path, strerror(errno));
            if (memchr(value, '\0', len)) die(1, "%s: a value cannot contain a NUL byte", path);
        }
        if (!known) {
            /* .delim files are read with their variable; unknown suffixes are ignored */
        } else if (!strcmp(action, "override")) {
            set(name, value);
        } else if (!strcmp(action, "default")) {
            if (!*env_or_empty(name)) set(name, value);
        } else {
            char *delim_path = join(dir, "/", join(name, ".delim", ""));
            size_t dlen;
            char *delim = read_file(delim_path, &dlen);
            if (!delim) {
                if (errno != ENOENT) die(1, "cannot read %s: %s", delim_path, strerror(errno));
                delim = strdup("");
            }
            const char *cur = env_or_empty(name);
            char *v;
            if (!*cur) v = strdup(value);
            else if (!strcmp(action, "append")) v = join(cur, delim, value);
            else v = join(value, delim, cur);
            set(name, v);
            free(v); free(delim); free(delim_path);
        }
        free(value); free(name); free(path);
    }
    for (int i = 0; i < n; i++) free(entries[i]);
    free(entries);
}

static size_t parent_len(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? (size_t)(slash - path) : 0;
}

static int same_parent(const char *a, const char *b) {
    size_t la = parent_len(a), lb = parent_len(b);
    return la == lb && strncmp(a, b, la) == 0;
}

static void setup_env(const struct process *proc) {
    size_t i = 0;
    while (i < proc->n_layers) {
        size_t j = i;
        while (j < proc->n_layers && same_parent(proc->layers[i], proc->layers[j])) j++;
        for (size_t k = i; k < j; k++) {
            if (!is_dir(proc->layers[k])) continue;
            prepend_path("PATH", proc->layers[k], "bin");
            prepend_path("LD_LIBRARY_PATH", proc->layers[k], "lib");
        }
        for (size_t k = i; k < j; k++) {
            const char *layer = proc->layers[k];
            char *d1 = join(layer, "/env", ""), *d2 = join(layer, "/env.launch", "");
            char *d3 = join(layer, "/env.launch/", proc->type);
            apply_env_dir(d1);
            apply_env_dir(d2);
            apply_env_dir(d3);
            free(d1); free(d2); free(d3);
        }
        i = j;
    }
}

/* -- exec ------------------------------------------------------------------------------ */

static char *find_command(const char *cmd, int *err) {
    *err = ENOENT;
    if (strchr(cmd, '/')) {
        if (access(cmd, F_OK) != 0) return NULL;
        return strdup(cmd);
    }
    const char *path = getenv("PATH");
    if (!path) path = DEFAULT_PATH;
    char *copy = strdup(path), *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        char *candidate = join(*dir ? dir : ".", "/", cmd);
        struct stat st;
        if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(candidate, X_OK) == 0) { free(copy); return candidate; }
            *err = EACCES;
        }
        free(candidate);
    }
    free(copy);
    return NULL;
}

int main(int argc, char **argv) {
    const char *self = argc > 0 && argv[0] ? argv[0] : "launcher";
    const char *base = strrchr(self, '/') ? strrchr(self, '/') + 1 : self;
    const char *type = NULL;
    if (strcmp(base, "launcher") != 0) {
        type = base;
    } else {
        const char *env_type = getenv("CNB_PROCESS_TYPE");
        if (env_type && *env_type) type = env_type;
    }

    struct process proc;
    select_process(type, &proc);
    static char progbuf[256];
    snprintf(progbuf, sizeof progbuf, "launcher (%s)", proc.type);
    prog = progbuf;

    setup_env(&proc);

    const char *wd = *proc.working_dir ? proc.working_dir : DEFAULT_WORKING_DIR;
    if (chdir(wd) != 0) die(1, "cannot change to the working directory %s: %s", wd, strerror(errno));

    /* command elements, then the runtime arguments if any, else the process's own */
    size_t n_extra = argc > 1 ? (size_t)(argc - 1) : proc.n_args;
    char **extra = argc > 1 ? argv + 1 : proc.args;
    char **exec_argv = xmalloc((proc.n_command + n_extra + 1) * sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < proc.n_command; i++) exec_argv[k++] = proc.command[i];
    for (size_t i = 0; i < n_extra; i++) exec_argv[k++] = extra[i];
    exec_argv[k] = NULL;

    int err;
    char *path = find_command(proc.command[0], &err);
    if (!path) {
        if (err == EACCES) die(126, "command \"%s\" is not executable (PATH=%s)", proc.command[0], env_or_empty("PATH"));
        if (strchr(proc.command[0], '/')) die(127, "command \"%s\" not found", proc.command[0]);
        die(127, "command \"%s\" not found in PATH=%s", proc.command[0], env_or_empty("PATH"));
    }
    fflush(NULL);
    execve(path, exec_argv, environ);
    int e = errno;
    die(e == ENOENT ? 127 : 126, "cannot execute %s: %s", path, strerror(e));
    return 1;
}
