/* atomic.c - writing a file through a temporary file that is renamed into place, so a
 * crash or a full disk never leaves a half-written file under the final name (a symbolic
 * link is followed and its target replaced; a device, FIFO or other special file is never
 * replaced); and reading whole files. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

/* Test-only hook (tests/test_cli.c, cli_kill_lands_inside_a_write): with the environment
 * variable DEEPSKY_TEST_ATOMIC set to exactly "stop-before-rename:<path>" or
 * "stop-after-rename:<path>", the writer of <path> (the path as given to dsi_wfile_open)
 * stops its own process with SIGSTOP once the temporary file is written, synced and closed
 * but not yet renamed, or just after the rename; a test then SIGKILLs it there, at a known
 * point of a write. The variable is read once, at the first commit; unset, or set to any
 * other value, it leaves the writer as it is. Not for users: a stopped process waits. */
enum { HOOK_OFF, HOOK_BEFORE, HOOK_AFTER };
static int hook_side;                  /* written once, under hook_once */
static char hook_path[4096];
static pthread_once_t hook_once = PTHREAD_ONCE_INIT;

static void hook_read(void)
{
    static const char *const prefix[] = {[HOOK_BEFORE] = "stop-before-rename:",
                                         [HOOK_AFTER] = "stop-after-rename:"};
    const char *v = getenv("DEEPSKY_TEST_ATOMIC");
    for (int s = HOOK_BEFORE; v && s <= HOOK_AFTER; s++) {
        size_t n = strlen(prefix[s]);
        if (!strncmp(v, prefix[s], n) && v[n] && strlen(v + n) < sizeof hook_path) {
            memcpy(hook_path, v + n, strlen(v + n) + 1);
            hook_side = s;
        }
    }
}

static void test_hook(const dsi_wfile *w, int side)
{
    pthread_once(&hook_once, hook_read);
    if (hook_side == side && !strcmp(w->path, hook_path))
        raise(SIGSTOP);
}

/* "a character device", ... for an existing file that is not a regular one, else NULL. */
static const char *special_kind(mode_t m)
{
    if (S_ISREG(m))
        return NULL;
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISFIFO(m))
        return "a FIFO (named pipe)";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISDIR(m))
        return "a directory";
    return "not a regular file";
}

/* The next name in a chain of symbolic links: link's text, relative to the link's folder. */
static ds_status follow(char *cur, size_t cap, const char *path)
{
    char text[4096];
    ssize_t n = readlink(cur, text, sizeof text - 1);
    if (n < 0)
        return dsi_fail(DS_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    text[n] = 0;
    const char *slash = strrchr(cur, '/');
    int dir = text[0] == '/' || !slash ? 0 : (int)(slash - cur + 1);
    char next[4096];
    if (snprintf(next, sizeof next, "%.*s%s", dir, cur, text) >= (int)sizeof next ||
        strlen(next) >= cap)
        return dsi_fail(DS_ERR_IO, "%s: path too long", path);
    memcpy(cur, next, strlen(next) + 1);
    return DS_OK;
}

ds_status dsi_wfile_target(const char *path, char *target, size_t cap, mode_t *mode)
{
    if (snprintf(target, cap, "%s", path) >= (int)cap)
        return dsi_fail(DS_ERR_IO, "%s: path too long", path);
    *mode = 0;
    for (int hops = 0;; hops++) {
        struct stat st;
        if (lstat(target, &st) != 0)
            return DS_OK;   /* a new file (fopen of the temporary file reports bad folders) */
        if (!S_ISLNK(st.st_mode)) {
            const char *kind = special_kind(st.st_mode);
            if (kind && strcmp(target, path))
                return dsi_fail(DS_ERR_IO, "cannot write '%s': it links to '%s', which is %s, "
                                "not a regular file; outputs are written to a new file renamed "
                                "into place, which would replace it: give a file name", path,
                                target, kind);
            if (kind)
                return dsi_fail(DS_ERR_IO, "cannot write '%s': it is %s, not a regular file; "
                                "outputs are written to a new file renamed into place, which "
                                "would replace it: give a file name", path, kind);
            *mode = st.st_mode & 07777;
            return DS_OK;
        }
        if (hops == 40)
            return dsi_fail(DS_ERR_IO, "cannot write '%s': %s", path, strerror(ELOOP));
        ds_status s = follow(target, cap, path);
        if (s)
            return s;
    }
}

ds_status dsi_wfile_open(dsi_wfile *w, const char *path)
{
    mode_t mode;
    w->path = path;
    w->fp = NULL;
    ds_status st = dsi_wfile_target(path, w->target, sizeof w->target, &mode);
    if (st)
        return st;
    if (snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", w->target, (long)getpid()) >=
        (int)sizeof w->tmp)
        return dsi_fail(DS_ERR_IO, "%s: path too long", path);
    w->fp = fopen(w->tmp, "wb");
    if (!w->fp && strcmp(path, w->target))
        return dsi_fail(DS_ERR_IO, "cannot write '%s' (a link to '%s'): %s", path, w->target,
                        strerror(errno));
    if (!w->fp)
        return dsi_fail(DS_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    if (mode)   /* the replaced file's permissions stay */
        fchmod(fileno(w->fp), mode);
    return DS_OK;
}

/* fsync of the directory holding path, so the rename itself is durable (best effort). */
static void sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

ds_status dsi_wfile_commit(dsi_wfile *w)
{
    int bad = ferror(w->fp);
    if (fflush(w->fp) != 0)
        bad = 1;
    if (!bad && fsync(fileno(w->fp)) != 0)
        bad = 1;
    int err = errno;
    if (fclose(w->fp) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    w->fp = NULL;
    if (bad) {
        remove(w->tmp);
        return dsi_fail(DS_ERR_IO, "cannot write '%s': %s", w->path, strerror(err));
    }
    test_hook(w, HOOK_BEFORE);
    if (rename(w->tmp, w->target) != 0) {
        err = errno;
        remove(w->tmp);
        return dsi_fail(DS_ERR_IO, "cannot rename into '%s': %s", w->path, strerror(err));
    }
    test_hook(w, HOOK_AFTER);
    sync_dir(w->target);
    return DS_OK;
}

void dsi_wfile_abort(dsi_wfile *w)
{
    if (w->fp) {
        fclose(w->fp);
        w->fp = NULL;
        remove(w->tmp);
    }
}

ds_status dsi_read_file(const char *path, unsigned char **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return dsi_fail(DS_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    if (fseek(fp, 0, SEEK_END) != 0) {
        fclose(fp);
        return dsi_fail(DS_ERR_IO, "cannot read '%s': not a regular file", path);
    }
    long n = ftell(fp);
    if (n < 0) {
        fclose(fp);
        return dsi_fail(DS_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    }
    rewind(fp);
    unsigned char *buf = (size_t)n < ds_get_memory_limit() ? malloc((size_t)n + 1) : NULL;
    if (!buf) {
        fclose(fp);
        return dsi_fail(DS_ERR_NOMEM, "out of memory reading '%s' (%ld bytes%s)", path, n,
                        dsi_mem_note((size_t)n + 1));
    }
    size_t got = fread(buf, 1, (size_t)n, fp);
    int err = ferror(fp) ? errno : 0;
    fclose(fp);
    if (got != (size_t)n) {
        free(buf);
        return dsi_fail(DS_ERR_IO, "cannot read '%s': %s", path, err ? strerror(err) : "short read");
    }
    buf[n] = 0;
    *data = buf;
    *size = (size_t)n;
    return DS_OK;
}
