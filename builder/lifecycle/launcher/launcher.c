/*
 * The launcher: the entrypoint of app images pallet builds (Cloud Native Buildpacks semantics).
 *
 * Built static and without any libc (build.sh), so it runs in images with no shell and no libc.
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
 *
 * It is in every image, so it is small: 9 kB, where it was 55 kB linked with musl (stdio and
 * malloc alone were 30 kB; musl's start-up, which sets up TLS for errno, 1.5 kB; its string
 * functions, tuned for speed, 1 kB). So it uses no libc: it makes its few system calls itself
 * (one block per architecture below, x86_64 and aarch64: the syscall instruction and _start),
 * writes messages with write(2), takes memory from a bump allocator that never frees (the
 * process ends in execve), keeps the command's environment in an array of its own (what getenv
 * and setenv(NAME, VALUE, 1) would do), reads directories with getdents64, sorting them by
 * insertion (they hold a few entries), and has musl's strerror texts, the ones its messages
 * always had. What it does is exactly what it did with musl (every message, byte for byte).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Must match builder/lifecycle/process.py and launch.py (a test checks). */
#define PROCESS_CONFIG_DIR "/layers/config/processes"
#define DEFAULT_WORKING_DIR "/workspace"
#define FORMAT_MAGIC "pallet-process-v1"
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MAX_FILE (16 * 1024 * 1024)

/* -- strings: plain loops ------------------------------------------------------------------ */

static size_t slen(const char *s) {
    const char *p = s;
    while (*p) p++;
    return (size_t)(p - s);
}

static int scmp(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return (unsigned char)*a - (unsigned char)*b;
}

/* the first n bytes of a and b are equal (neither string ends before) */
static int same_prefix(const char *a, const char *b, size_t n) {
    for (; n; n--, a++, b++)
        if (*a != *b || !*a) return 0;
    return 1;
}

/* the first c in s (c may be '\0'), or NULL */
static char *schr(const char *s, int c) {
    for (;; s++) {
        if (*s == (char)c) return (char *)s;
        if (!*s) return NULL;
    }
}

static char *srchr(const char *s, int c) {
    const char *last = NULL;
    for (; *s; s++)
        if (*s == (char)c) last = s;
    return (char *)last;
}

static char *mchr(const char *s, int c, size_t n) {
    for (; n; n--, s++)
        if (*s == (char)c) return (char *)s;
    return NULL;
}

static char *scpy(char *d, const char *s) {  /* stpcpy */
    while ((*d = *s++)) d++;
    return d;
}

static void *mcpy(void *d, const void *s, size_t n) {
    char *dp = d;
    const char *sp = s;
    while (n--) *dp++ = *sp++;
    return d;
}

/* -- the system: calls, errno, exit, strerror, the entry point (x86_64, aarch64) ---------- */

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "the launcher's system calls are written for x86_64 and aarch64 (add the arch's syscall and _start)"
#endif

static int err_no;  /* errno: set by a failed call, as the libc wrappers do */

/* A system call; -1 with err_no set on failure. */
#if defined(__x86_64__)
static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    if (ret < 0 && ret > -4096) { err_no = (int)-ret; return -1; }
    return ret;
}
#else /* aarch64: the number in x8, arguments and result in x0..x5, `svc 0` */
static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d, x4 __asm__("x4") = e, x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory", "cc");
    long ret = x0;
    if (ret < 0 && ret > -4096) { err_no = (int)-ret; return -1; }
    return ret;
}
#endif
#define sys(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)

/* access(2): aarch64 has only faccessat */
#if defined(__x86_64__)
#define access_path(path, mode) sys(SYS_access, path, mode, 0)
#else
#define access_path(path, mode) sys6(SYS_faccessat, AT_FDCWD, (long)(path), mode, 0, 0, 0)
#endif

static _Noreturn void exit_now(int code) {
    for (;;) sys(SYS_exit_group, code, 0, 0);
}

/* struct stat is the kernel's own layout on x86_64 and aarch64 (the generic one) */
static int stat_path(const char *path, struct stat *st) {
    return (int)sys6(SYS_newfstatat, AT_FDCWD, (long)path, (long)st, 0, 0, 0);
}

static int open_path(const char *path, int flags) {
    return (int)sys6(SYS_openat, AT_FDCWD, (long)path, flags | O_CLOEXEC, 0, 0, 0);
}

/* strerror as musl has it (x86_64 numbers; the texts the launcher's messages always had): each
 * entry is the errno as one (octal) byte, then the text; "No error information" for the rest. */
static const char errtexts[] =
    "\001Operation not permitted\0\002No such file or directory\0\003No such process\0"
    "\004Interrupted system call\0\005I/O error\0\006No such device or address\0"
    "\007Argument list too long\0\010Exec format error\0\011Bad file descriptor\0"
    "\012No child process\0\013Resource temporarily unavailable\0\014Out of memory\0"
    "\015Permission denied\0\016Bad address\0\017Block device required\0\020Resource busy\0"
    "\021File exists\0\022Cross-device link\0\023No such device\0\024Not a directory\0"
    "\025Is a directory\0\026Invalid argument\0\027Too many open files in system\0"
    "\030No file descriptors available\0\031Not a tty\0\032Text file busy\0\033File too large\0"
    "\034No space left on device\0\035Invalid seek\0\036Read-only file system\0\037Too many links\0"
    "\040Broken pipe\0\041Domain error\0\042Result not representable\0"
    "\043Resource deadlock would occur\0\044Filename too long\0\045No locks available\0"
    "\046Function not implemented\0\047Directory not empty\0\050Symbolic link loop\0"
    "\052No message of desired type\0\053Identifier removed\0\074Device not a stream\0"
    "\075No data available\0\076Device timeout\0\077Out of streams resources\0"
    "\103Link has been severed\0\107Protocol error\0\110Multihop attempted\0\112Bad message\0"
    "\113Value too large for data type\0\115File descriptor in bad state\0"
    "\124Illegal byte sequence\0\130Not a socket\0\131Destination address required\0"
    "\132Message too large\0\133Protocol wrong type for socket\0\134Protocol not available\0"
    "\135Protocol not supported\0\136Socket type not supported\0\137Not supported\0"
    "\140Protocol family not supported\0\141Address family not supported by protocol\0"
    "\142Address in use\0\143Address not available\0\144Network is down\0\145Network unreachable\0"
    "\146Connection reset by network\0\147Connection aborted\0\150Connection reset by peer\0"
    "\151No buffer space available\0\152Socket is connected\0\153Socket not connected\0"
    "\154Cannot send after socket shutdown\0\156Operation timed out\0\157Connection refused\0"
    "\160Host is down\0\161Host is unreachable\0\162Operation already in progress\0"
    "\163Operation in progress\0\164Stale file handle\0\171Remote I/O error\0\172Quota exceeded\0"
    "\173No medium found\0\174Wrong medium type\0\175Operation canceled\0"
    "\176Required key not available\0\177Key has expired\0\200Key has been revoked\0"
    "\201Key was rejected by service\0\202Previous owner died\0\203State not recoverable\0";

static const char *strerror_text(int e) {
    for (const char *p = errtexts; *p; p += slen(p) + 1)
        if ((unsigned char)*p == e) return p + 1;
    return "No error information";
}

/* The entry point: the kernel leaves argc, then argv and the environment (NULL-terminated) on
 * the stack; the ABI wants it 16-byte aligned at a call. */
int main(int argc, char **argv, char **envp);
__attribute__((used)) _Noreturn void launcher_start(long *sp);
_Noreturn void launcher_start(long *sp) {
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    exit_now(main(argc, argv, argv + argc + 1));
}
#if defined(__x86_64__)
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "\txor %ebp, %ebp\n"        /* the outermost frame */
        "\tmov %rsp, %rdi\n"        /* sp: launcher_start's argument */
        "\tand $-16, %rsp\n"
        "\tcall launcher_start\n"
        "\thlt\n");
#else
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "\tmov x29, #0\n"           /* the outermost frame */
        "\tmov x30, #0\n"
        "\tmov x0, sp\n"            /* sp: launcher_start's argument */
        "\tand sp, x0, #-16\n"
        "\tbl launcher_start\n"
        "\tbrk #0\n");
#endif

/* -- memory: a bump allocator on mmap'd chunks; nothing is freed (the process ends in execve) */

#define CHUNK (64 * 1024)
static char *heap, *heap_end;

/* n bytes, 16-byte aligned; NULL (err_no ENOMEM) when there is no memory left */
static void *alloc(size_t n) {
    if (n > SIZE_MAX / 4) { err_no = ENOMEM; return NULL; }
    n = (n + 15) & ~(size_t)15;
    if ((size_t)(heap_end - heap) < n) {
        size_t size = n > CHUNK ? (n + 4095) & ~(size_t)4095 : CHUNK;
        long p = sys6(SYS_mmap, 0, (long)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == -1) { err_no = ENOMEM; return NULL; }
        heap = (char *)p;
        heap_end = heap + size;
    }
    heap += n;
    return heap - n;
}

/* -- messages ------------------------------------------------------------------------------ */

static const char *prog = "launcher";

static void write_all(const char *s, size_t n) {
    while (n) {
        long w = sys(SYS_write, 2, s, n);
        if (w < 0 && err_no == EINTR) continue;
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* "<prog>: " + the strings (up to a NULL) + "\n" on stderr in one write, then exit(code). */
static _Noreturn void die_(int code, ...) {
    va_list ap;
    size_t len = slen(prog) + 3;
    const char *s;
    va_start(ap, code);
    while ((s = va_arg(ap, const char *))) len += slen(s);
    va_end(ap);
    char *msg = alloc(len), *p = msg;
    va_start(ap, code);
    if (!msg) {  /* out of memory: the same text, piece by piece */
        write_all(prog, slen(prog));
        write_all(": ", 2);
        while ((s = va_arg(ap, const char *))) write_all(s, slen(s));
        write_all("\n", 1);
    } else {
        p = scpy(scpy(p, prog), ": ");
        while ((s = va_arg(ap, const char *))) p = scpy(p, s);
        *p++ = '\n';
        write_all(msg, (size_t)(p - msg));
    }
    va_end(ap);
    exit_now(code);
}
#define die(code, ...) die_(code, __VA_ARGS__, (const char *)NULL)

static void *xalloc(size_t n) {
    void *p = alloc(n);
    if (!p) die(1, "out of memory");
    return p;
}

/* a copy of n bytes of s, NUL-terminated */
static char *copy(const char *s, size_t n) {
    char *p = xalloc(n + 1);
    mcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *join(const char *a, const char *b, const char *c) {
    char *s = xalloc(slen(a) + slen(b) + slen(c) + 1);
    scpy(scpy(scpy(s, a), b), c);
    return s;
}

/* Read a whole file; NULL with err_no set if it cannot be read. *len gets its size. */
static char *read_file(const char *path, size_t *len) {
    int fd = open_path(path, O_RDONLY);
    if (fd < 0) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = xalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_FILE) { sys(SYS_close, fd, 0, 0); err_no = EFBIG; return NULL; }
            cap *= 2;
            char *bigger = xalloc(cap + 1);
            buf = mcpy(bigger, buf, n);
        }
        long r = sys(SYS_read, fd, buf + n, cap - n);
        if (r < 0) {
            if (err_no == EINTR) continue;
            int saved = err_no;
            sys(SYS_close, fd, 0, 0); err_no = saved;
            return NULL;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    sys(SYS_close, fd, 0, 0);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The names in a directory but those starting with '.', sorted by strcmp (the order scandir
 * with alphasort gave under musl, whose strcoll is strcmp). NULL with err_no set if the directory
 * cannot be opened; if reading it fails midway, *err gets the errno (ENOENT, a directory removed
 * meanwhile, ends it quietly, as musl's readdir does) and the names read so far are returned. */
static char **list_dir(const char *dir, size_t *n, int *err) {
    int fd = open_path(dir, O_RDONLY | O_DIRECTORY);
    *n = 0;
    *err = 0;
    if (fd < 0) return NULL;
    size_t cap = 16;
    char **names = xalloc(cap * sizeof(char *));
    long buf[2048 / sizeof(long)];
    long r;
    while ((r = sys(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < r;) {
            struct dirent *e = (struct dirent *)((char *)buf + off);  /* the kernel's linux_dirent64 */
            off += e->d_reclen;
            if (e->d_name[0] == '.') continue;
            if (*n == cap) {
                cap *= 2;
                names = mcpy(xalloc(cap * sizeof(char *)), names, *n * sizeof(char *));
            }
            char *name = copy(e->d_name, slen(e->d_name));
            size_t i = (*n)++;
            for (; i > 0 && scmp(names[i - 1], name) > 0; i--) names[i] = names[i - 1];
            names[i] = name;
        }
    }
    if (r < 0 && err_no != ENOENT) *err = err_no;
    sys(SYS_close, fd, 0, 0);
    return names;
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
    if (c->p >= c->end) die(1, c->path, ": truncated process file");
    char *s = c->p;
    char *nul = mchr(s, '\0', (size_t)(c->end - s));
    if (!nul) die(1, c->path, ": malformed process file (unterminated field)");
    c->p = nul + 1;
    return s;
}

/* A count as strtoul(s, &end, 10) reads it with *end == '\0' (leading white space and a sign
 * allowed), at most 1000000; -1 if it is not one. */
static long count_of(const char *s) {
    while (*s == ' ' || (*s >= '\t' && *s <= '\r')) s++;
    int neg = *s == '-';
    if (*s == '+' || *s == '-') s++;
    if (!*s) return -1;
    long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        v = v * 10 + (*s - '0');
        if (v > 1000000) return -1;
    }
    return neg && v ? -1 : v;
}

static char **list(struct cursor *c, size_t *n) {
    char *count = field(c);
    long v = count_of(count);
    if (v < 0) die(1, c->path, ": malformed process file (bad count ", count, ")");
    char **items = xalloc(((size_t)v + 1) * sizeof(char *));
    for (long i = 0; i < v; i++) items[i] = field(c);
    items[v] = NULL;
    *n = (size_t)v;
    return items;
}

static int load_process(const char *path, struct process *proc) {
    size_t len;
    char *data = read_file(path, &len);
    if (!data) return -1;
    struct cursor c = { data, data + len, path };
    if (scmp(field(&c), FORMAT_MAGIC) != 0)
        die(1, path, ": not a process file of this launcher (expected " FORMAT_MAGIC ")");
    proc->type = field(&c);
    proc->working_dir = field(&c);
    proc->is_default = scmp(field(&c), "1") == 0;
    field(&c); /* buildpack id: for people, not for us */
    proc->layers = list(&c, &proc->n_layers);
    proc->command = list(&c, &proc->n_command);
    proc->args = list(&c, &proc->n_args);
    if (c.p != c.end) die(1, path, ": malformed process file (trailing data)");
    if (proc->n_command == 0) die(1, path, ": the process has no command");
    return 0;
}

/* The process types there are, sorted, for error messages and the default lookup. */
static char **process_types(size_t *n) {
    int err;
    char **names = list_dir(PROCESS_CONFIG_DIR, n, &err);
    return names ? names : xalloc(sizeof(char *));
}

static char *types_text(void) {
    size_t n;
    char **names = process_types(&n);
    if (n == 0) return "none; " PROCESS_CONFIG_DIR " is empty or missing";
    char *out = "";
    for (size_t i = 0; i < n; i++) out = join(out, i ? ", " : "", names[i]);
    return out;
}

static void select_process(const char *type, struct process *proc) {
    if (type) {
        if (!*type || schr(type, '/') || !scmp(type, ".") || !scmp(type, ".."))
            die(1, "invalid process type \"", type, "\" (this image has: ", types_text(), ")");
        char *path = join(PROCESS_CONFIG_DIR, "/", type);
        if (load_process(path, proc) != 0) {
            if (err_no == ENOENT)
                die(1, "unknown process type \"", type, "\" (this image has: ", types_text(), ")");
            die(1, "cannot read ", path, ": ", strerror_text(err_no));
        }
        return;
    }
    size_t n;
    char **names = process_types(&n);
    for (size_t i = 0; i < n; i++) {
        char *path = join(PROCESS_CONFIG_DIR, "/", names[i]);
        if (load_process(path, proc) != 0) die(1, "cannot read ", path, ": ", strerror_text(err_no));
        if (proc->is_default) return;
    }
    die(1, "no default process type; choose one with CNB_PROCESS_TYPE or /cnb/process/<type> "
           "(this image has: ", types_text(), ")");
}

/* -- environment: the command's, kept as getenv and setenv(NAME, VALUE, 1) would ------------ */

static char **env;  /* NAME=value strings, NULL-terminated */
static size_t n_env, cap_env;

static void env_init(char **environ) {
    while (environ[n_env]) n_env++;
    cap_env = n_env + 16;
    env = mcpy(xalloc(cap_env * sizeof(char *)), environ, (n_env + 1) * sizeof(char *));
}

/* the entry of NAME (the first, as getenv finds it), or the end of the array */
static size_t env_find(const char *name) {
    size_t len = slen(name), i = 0;
    for (; i < n_env; i++)
        if (same_prefix(env[i], name, len) && env[i][len] == '=') break;
    return i;
}

static const char *env_get(const char *name) {
    size_t i = env_find(name);
    return i < n_env ? env[i] + slen(name) + 1 : NULL;
}

static const char *env_or_empty(const char *name) {
    const char *v = env_get(name);
    return v ? v : "";
}

/* setenv(name, value, 1): the first entry of NAME is replaced, or one is added */
static void set(const char *name, const char *value) {
    char *entry = alloc(slen(name) + slen(value) + 2);
    if (!entry) die(1, "cannot set ", name, ": ", strerror_text(ENOMEM));
    scpy(scpy(scpy(entry, name), "="), value);
    size_t i = env_find(name);
    if (i == n_env) {
        if (n_env + 1 == cap_env) {
            cap_env *= 2;
            char **bigger = alloc(cap_env * sizeof(char *));
            if (!bigger) die(1, "cannot set ", name, ": ", strerror_text(ENOMEM));
            env = mcpy(bigger, env, n_env * sizeof(char *));
        }
        env[++n_env] = NULL;
    }
    env[i] = entry;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat_path(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* prepend <layer>/<sub> to NAME with ':' (as the lifecycle's AddRootDir) */
static void prepend_path(const char *name, const char *layer, const char *sub) {
    char *dir = join(layer, "/", sub);
    struct stat st;
    if (stat_path(dir, &st) == 0) {
        const char *cur = env_or_empty(name);
        set(name, *cur ? join(dir, ":", cur) : dir);
    }
}

static void apply_env_dir(const char *dir) {
    size_t n;
    int err;
    char **files = list_dir(dir, &n, &err);
    if (!files) err = err_no;
    if (err) {
        if (err == ENOENT || err == ENOTDIR) return;
        die(1, "cannot read ", dir, ": ", strerror_text(err));
    }
    /* names starting with '.' (no variable name) are not listed: nothing to skip for them */
    for (size_t i = 0; i < n; i++) {
        const char *file = files[i];
        char *path = join(dir, "/", file);
        if (is_dir(path)) continue;
        const char *dot = schr(file, '.');
        size_t name_len = dot ? (size_t)(dot - file) : slen(file);
        const char *action = dot ? dot + 1 : "override";
        if (mchr(file, '=', name_len)) continue; /* not a variable name */
        int override = !scmp(action, "override"), dflt = !scmp(action, "default");
        int append = !scmp(action, "append"), prepend = !scmp(action, "prepend");
        if (!(override || dflt || append || prepend))
            continue; /* .delim files are read with their variable; unknown suffixes are ignored */
        char *name = copy(file, name_len);
        size_t len;
        char *value = read_file(path, &len);
        if (!value) die(1, "cannot read ", path, ": ", strerror_text(err_no));
        if (mchr(value, '\0', len)) die(1, path, ": a value cannot contain a NUL byte");
        if (override) {
            set(name, value);
        } else if (dflt) {
            if (!*env_or_empty(name)) set(name, value);
        } else {
            char *delim_path = join(dir, "/", join(name, ".delim", ""));
            size_t dlen;
            char *delim = read_file(delim_path, &dlen);
            if (!delim) {
                if (err_no != ENOENT) die(1, "cannot read ", delim_path, ": ", strerror_text(err_no));
                delim = "";
            }
            const char *cur = env_or_empty(name);
            set(name, !*cur ? value : append ? join(cur, delim, value) : join(value, delim, cur));
        }
    }
}

static size_t parent_len(const char *path) {
    const char *slash = srchr(path, '/');
    return slash ? (size_t)(slash - path) : 0;
}

static int same_parent(const char *a, const char *b) {
    size_t la = parent_len(a), lb = parent_len(b);
    return la == lb && same_prefix(a, b, la);
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
            apply_env_dir(join(layer, "/env", ""));
            apply_env_dir(join(layer, "/env.launch", ""));
            apply_env_dir(join(layer, "/env.launch/", proc->type));
        }
        i = j;
    }
}

/* -- exec ------------------------------------------------------------------------------ */

static char *find_command(const char *cmd, int *err) {
    *err = ENOENT;
    if (schr(cmd, '/')) return access_path(cmd, F_OK) == 0 ? (char *)cmd : NULL;
    const char *path = env_get("PATH");
    if (!path) path = DEFAULT_PATH;
    /* each non-empty PATH element in turn (as strtok_r(path, ":") gives them: no empty ones) */
    for (const char *p = path; *p;) {
        const char *colon = schr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : slen(p);
        if (len) {
            char *candidate = join(copy(p, len), "/", cmd);
            struct stat st;
            if (stat_path(candidate, &st) == 0 && S_ISREG(st.st_mode)) {
                if (access_path(candidate, X_OK) == 0) return candidate;
                *err = EACCES;
            }
        }
        p += len;
        if (*p) p++;
    }
    return NULL;
}

int main(int argc, char **argv, char **envp) {
    env_init(envp);
    const char *self = argc > 0 && argv[0] ? argv[0] : "launcher";
    const char *base = srchr(self, '/') ? srchr(self, '/') + 1 : self;
    const char *type = NULL;
    if (scmp(base, "launcher") != 0) {
        type = base;
    } else {
        const char *env_type = env_get("CNB_PROCESS_TYPE");
        if (env_type && *env_type) type = env_type;
    }

    struct process proc;
    select_process(type, &proc);
    char *name = join("launcher (", proc.type, ")");
    if (slen(name) > 255) name[255] = '\0'; /* as it always was: at most 255 bytes */
    prog = name;

    setup_env(&proc);

    const char *wd = *proc.working_dir ? proc.working_dir : DEFAULT_WORKING_DIR;
    if (sys(SYS_chdir, wd, 0, 0) != 0)
        die(1, "cannot change to the working directory ", wd, ": ", strerror_text(err_no));

    /* command elements, then the runtime arguments if any, else the process's own */
    size_t n_extra = argc > 1 ? (size_t)(argc - 1) : proc.n_args;
    char **extra = argc > 1 ? argv + 1 : proc.args;
    char **exec_argv = xalloc((proc.n_command + n_extra + 1) * sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < proc.n_command; i++) exec_argv[k++] = proc.command[i];
    for (size_t i = 0; i < n_extra; i++) exec_argv[k++] = extra[i];
    exec_argv[k] = NULL;

    int err;
    const char *cmd = proc.command[0];
    char *path = find_command(cmd, &err);
    if (!path) {
        if (err == EACCES) die(126, "command \"", cmd, "\" is not executable (PATH=", env_or_empty("PATH"), ")");
        if (schr(cmd, '/')) die(127, "command \"", cmd, "\" not found");
        die(127, "command \"", cmd, "\" not found in PATH=", env_or_empty("PATH"));
    }
    sys(SYS_execve, path, exec_argv, env);
    int e = err_no;
    die(e == ENOENT ? 127 : 126, "cannot execute ", path, ": ", strerror_text(e));
    return 1;
}
