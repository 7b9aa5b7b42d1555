/* atomic.c - writing a file through a temporary file that is renamed into place, so a
 * crash or a full disk never leaves a half-written file under the final name; and reading
 * or probing whole files. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

ds_status dsi_wfile_open(dsi_wfile *w, const char *path)
{
    w->path = path;
    if (snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof w->tmp)
        return dsi_fail(DS_ERR_IO, "%s: path too long", path);
    w->fp = fopen(w->tmp, "wb");
    if (!w->fp)
        return dsi_fail(DS_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
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
    if (rename(w->tmp, w->path) != 0) {
        err = errno;
        remove(w->tmp);
        return dsi_fail(DS_ERR_IO, "cannot rename into '%s': %s", w->path, strerror(err));
    }
    sync_dir(w->path);
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
    unsigned char *buf = (size_t)n < ds_memory_limit() ? malloc((size_t)n + 1) : NULL;
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

ds_status dsi_probe_file(const char *path, int64_t *size, bool *gzipped)
{
    struct stat sb;
    unsigned char m[2] = {0, 0};
    FILE *fp = fopen(path, "rb");
    if (!fp || fstat(fileno(fp), &sb) != 0) {
        ds_status st = dsi_fail(DS_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
        if (fp)
            fclose(fp);
        return st;
    }
    *gzipped = fread(m, 1, 2, fp) == 2 && m[0] == 0x1f && m[1] == 0x8b;
    *size = (int64_t)sb.st_size;
    fclose(fp);
    return DS_OK;
}
