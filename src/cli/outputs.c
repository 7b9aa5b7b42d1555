/* outputs.c - the checks every command makes on the files it will write, before it reads
 * or computes anything: a format it can write, a regular file (or a new name) outside the
 * device folder, never one of its inputs, never the same file twice. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cli_files_input(cli_files *f, const char *what, const char *path)
{
    if (!path || f->n_in == CLI_FILES_MAX)
        return;
    cli_file *e = &f->in[f->n_in++];
    e->path = path;
    snprintf(e->what, sizeof e->what, "%s", what);
}

void cli_files_inputs(cli_files *f, const cli_cmd *c, const char *opt)
{
    const char *const *v;
    int n = cli_values(c, opt, &v);
    char what[CLI_NAME_MAX + 16];
    snprintf(what, sizeof what, "--%s", opt);
    for (int i = 0; i < n; i++) {
        char name[CLI_NAME_MAX];
        const char *path;
        cli_split_named(v[i], name, sizeof name, &path);
        cli_files_input(f, what, path);
    }
}

void cli_files_output(cli_files *f, const char *what, const char *path)
{
    if (!path || f->n_out == CLI_FILES_MAX)
        return;
    cli_file *e = &f->out[f->n_out++];
    e->path = path;
    snprintf(e->what, sizeof e->what, "%s", what);
}

int cli_output_ext(const cli_cmd *c, const char *what, const char *path, const char *ext,
                   const char *format)
{
    size_t n = strlen(path), e = strlen(ext);
    if (n > e && !strcmp(path + n - e, ext) && path[n - e - 1] != '/')
        return 0;
    return cli_usage_error(c, "%s %s: %s are written as %s: give a name ending in %s", what,
                           path, format, ext + 1, ext);
}

/* What the write of an output would touch: the file itself if it exists (stat follows
 * symbolic links, as the writer does), else the new name in its folder. */
typedef struct {
    bool exists;
    struct stat st;
    char dir[PATH_MAX];     /* the folder the file is (or will be) in, resolved */
    char base[PATH_MAX];    /* its name in that folder */
} out_place;

static int place_of(const cli_file *o, out_place *p)
{
    p->exists = stat(o->path, &p->st) == 0;
    char res[PATH_MAX];
    bool resolved = p->exists && realpath(o->path, res);
    const char *use = resolved ? res : o->path;   /* a symbolic link: its target's folder */
    const char *slash = strrchr(use, '/');
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", slash ? (slash == use ? 1 : (int)(slash - use)) : 1,
             slash ? use : ".");
    snprintf(p->base, sizeof p->base, "%s", slash ? slash + 1 : use);
    if (!realpath(dir, p->dir)) {
        fprintf(stderr, "deepsky: error: cannot write '%s' (%s): folder '%s': %s\n", o->path,
                o->what, dir, strerror(errno));
        return 1;
    }
    if (access(p->dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "deepsky: error: cannot write '%s' (%s): folder '%s': %s\n", o->path,
                o->what, p->dir, strerror(errno));
        return 1;
    }
    return 0;
}

static const char *kind_of(mode_t m)
{
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
    return S_ISREG(m) ? NULL : "not a regular file";
}

bool cli_in_device_folder(const char *dir, const char *devroot)
{
    char root[PATH_MAX];
    struct stat a, b;
    if (!realpath(devroot, root))
        return false;
    size_t n = strlen(root);
    bool under = !strncmp(dir, root, n) && (dir[n] == 0 || dir[n] == '/' || n == 1);
    /* a separate file system mounted below it (/dev/shm) is ordinary storage */
    return under && stat(dir, &a) == 0 && stat(root, &b) == 0 && a.st_dev == b.st_dev;
}

/* Whether two outputs are the same file: one inode, or one new name in one folder. */
static bool same_place(const out_place *a, const out_place *b)
{
    if (a->exists && b->exists)
        return a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino;
    return a->exists == b->exists && !strcmp(a->dir, b->dir) && !strcmp(a->base, b->base);
}

static bool is_file(const char *path, const struct stat *want)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_dev == want->st_dev && st.st_ino == want->st_ino;
}

/* Whether the file want is the input path or, for a glob, folder or @LIST, one of the files
 * it names (those are read when the data load, which reports a pattern that names none):
 * hit gets path, or that file's name. */
static bool input_hit(const char *path, const struct stat *want, char *hit, size_t cap)
{
    snprintf(hit, cap, "%s", path);
    if (!cli_is_pattern(path))
        return is_file(path, want);
    char **v;
    int n;
    bool found = false;
    if (ds_stream_files(path, &v, &n) != DS_OK)
        return false;
    for (int i = 0; i < n; i++) {
        if (!found && is_file(v[i], want)) {
            snprintf(hit, cap, "%s", v[i]);
            found = true;
        }
        free(v[i]);
    }
    free(v);
    return found;
}

/* One output against the file-type and device-folder rules and the inputs. */
static int check_one(const cli_cmd *c, const cli_files *f, const cli_file *o, const out_place *p,
                     const char *devroot)
{
    const char *kind = p->exists ? kind_of(p->st.st_mode) : NULL;
    if (kind)
        return cli_usage_error(c, "%s %s is %s, not a regular file: outputs are written to a new "
                               "file renamed into place, which would replace it; give a file name",
                               o->what, o->path, kind);
    if (cli_in_device_folder(p->dir, devroot))
        return cli_usage_error(c, "%s %s is in the device folder %s: outputs never go there; "
                               "give a file name elsewhere", o->what, o->path, p->dir);
    for (int i = 0; p->exists && i < f->n_in; i++) {
        const cli_file *in = &f->in[i];
        char hit[PATH_MAX];
        if (!input_hit(in->path, &p->st, hit, sizeof hit))
            continue;
        if (strcmp(hit, in->path) && !strcmp(hit, o->path))
            return cli_usage_error(c, "%s %s is one of the files of %s '%s': writing it would "
                                   "destroy an input; give another name", o->what, o->path,
                                   in->what, in->path);
        if (strcmp(hit, in->path))
            return cli_usage_error(c, "%s %s is %s, one of the files of %s '%s': writing it "
                                   "would destroy an input; give another name", o->what,
                                   o->path, hit, in->what, in->path);
        if (!strcmp(in->path, o->path))
            return cli_usage_error(c, "%s %s is also %s: writing it would destroy an input; "
                                   "give another name", o->what, o->path, in->what);
        return cli_usage_error(c, "%s %s is the same file as %s %s: writing it would destroy an "
                               "input; give another name", o->what, o->path, in->what, in->path);
    }
    return 0;
}

int cli_files_check_in(const cli_cmd *c, const cli_files *f, const char *devroot)
{
    out_place *p = malloc((size_t)(f->n_out ? f->n_out : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "deepsky: error: out of memory\n");
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < f->n_out && !rc; i++) {
        const cli_file *o = &f->out[i];
        if ((rc = place_of(o, &p[i])) || (rc = check_one(c, f, o, &p[i], devroot)))
            break;
        for (int k = 0; k < i && !rc; k++)
            if (same_place(&p[k], &p[i]))
                rc = cli_usage_error(c, "%s %s and %s %s are the same file: give each output its "
                                     "own name", f->out[k].what, f->out[k].path, o->what,
                                     o->path);
    }
    free(p);
    return rc;
}

int cli_files_check(const cli_cmd *c, const cli_files *f)
{
    return cli_files_check_in(c, f, "/dev");
}

void cli_ignore_file_size_limit(void)
{
    /* with SIGXFSZ ignored, a write past `ulimit -f` fails with EFBIG like a full disk: the
     * writer removes its temporary file and the command exits with a message */
    signal(SIGXFSZ, SIG_IGN);
}
