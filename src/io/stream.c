/* stream.c - data sets larger than memory: shards named by globs, folders and lists, counted
 * and checked when the stream opens, then read by a prefetching thread through a seeded
 * shuffle buffer into batches. */
#include "stream.h"
#include "data.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_ITEMS (2 * DS_FEED_MAX)
#define BUFFER_BYTES ((size_t)64 << 20)   /* the default shuffle buffer */
#define WINDOW_BYTES ((size_t)1 << 20)    /* samples checked at a time */
#define DEFAULT_PREFETCH 4

typedef struct {
    char *path;
    int64_t count;                /* samples */
    int64_t bytes;                /* the file's size, for a checkpoint's description */
    /* the reader's: the file as it was when its values were checked in this run (a file
     * that has not changed since is not checked again) */
    bool checked;
    struct stat seen;
} shard_file;

/* One input's or one target's labels: its files and the shape of its samples. */
typedef struct {
    char name[DS_NAME_MAX];
    bool named, labels;
    char *spec;                   /* the files as given, for messages */
    ds_read_opts ro;              /* with its own copies of the strings; info NULL */
    char *columns, *exclude, *hdu_name;
    int ndim;                     /* a sample's shape as read */
    int64_t shape[DS_MAX_DIMS];
    int vndim;                    /* and as handed out (ds_stream_reshape) */
    int64_t vshape[DS_MAX_DIMS];
    int64_t per;                  /* floats per sample */
    shard_file *files;            /* one per shard */
} item;

/* A batch: the reader fills its rows, ds_stream_next hands it out. Each row is a cell of
 * the stream's pool (below), which the row and the shuffle buffer swap. */
typedef struct {
    int64_t *cell;                /* batch cells: row r's values are those of cell[r] */
    int64_t *ids;
    ds_stream_batch info;
} slot;

struct ds_stream {
    item it[MAX_ITEMS];
    int n_items, n_inputs, n_shards;
    int64_t N;
    int64_t *first;               /* per shard: the index of its first sample */
    int64_t opt_buffer;
    int prefetch;
    dsi_stream_hooks hooks;
    /* The run and its memory: a pool of cells, each holding one sample of every item, which
     * the shuffle buffer (K cells) and the batches' rows (batch cells each) hold. A sample
     * is copied once, from its file into a cell; after that, going out of the buffer into
     * a batch swaps the cell with the row's spare one (a cell the consumer is done with).
     * The trainer reads the rows where they lie. */
    ds_stream_run run;
    int64_t K;                    /* the buffer's capacity in samples; 0: no shuffling */
    float *pool[MAX_ITEMS];       /* n_cells x per floats each */
    int64_t n_cells;
    int64_t *buf_cell, *buf_ids;  /* K each: the buffer's cells and their samples' ids */
    slot *slots;
    int n_slots;
    int64_t slot_batch;           /* samples each slot holds */
    float *out[MAX_ITEMS];        /* the batch ds_stream_next hands out: slot_batch x per */
    ds_tensor t[MAX_ITEMS];       /* over out */
    /* the reader thread, and what it shares with the consumer under mu */
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t can_put;       /* the reader waits: half the ring free, or stop */
    pthread_cond_t can_take;      /* the consumer waits: a batch, or the reader's end */
    int64_t produced, consumed;   /* batches */
    bool reader_asleep;           /* on can_put */
    bool holding;                 /* the consumer holds slot consumed % n_slots */
    bool done;                    /* the reader ended: its last epoch, a failure or a stop */
    atomic_bool stop;
    ds_status err;
    char err_msg[640];
};

/* ---- finding the files ---- */
typedef struct {
    char **v;
    int n, cap;
} str_list;

static void list_free(str_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static ds_status list_add(str_list *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = cap < INT_MAX / 2 ? realloc(l->v, (size_t)cap * sizeof *v) : NULL;
        if (!v)
            return dsi_fail(DS_ERR_NOMEM, "out of memory for a list of files");
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = dsi_strdup(s)))
        return dsi_fail(DS_ERR_NOMEM, "out of memory for a list of files");
    l->n++;
    return DS_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool has_glob(const char *s) { return strpbrk(s, "*?[") != NULL; }

/* The files a glob matches, folders left out, in strcmp order. */
static ds_status add_glob(str_list *l, const char *pat)
{
    glob_t g;
    int rc = glob(pat, GLOB_NOSORT, NULL, &g);
    if (rc == GLOB_NOMATCH)
        return dsi_fail(DS_ERR_IO, "'%s' matches no file", pat);
    if (rc)
        return dsi_fail(rc == GLOB_NOSPACE ? DS_ERR_NOMEM : DS_ERR_IO,
                        "'%s': cannot list the files it matches", pat);
    qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, cmp_str);
    int before = l->n;
    ds_status st = DS_OK;
    for (size_t i = 0; i < g.gl_pathc && !st; i++)
        if (!is_dir(g.gl_pathv[i]))
            st = list_add(l, g.gl_pathv[i]);
    globfree(&g);
    if (!st && l->n == before)
        st = dsi_fail(DS_ERR_IO, "'%s' matches no file, only folders", pat);
    return st;
}

/* The data files of a folder (by their names' extensions; hidden ones aside), sorted. */
static ds_status add_folder(str_list *l, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return dsi_fail(DS_ERR_IO, "cannot open the folder '%s': %s", dir, strerror(errno));
    str_list found = {0};
    ds_status st = DS_OK;
    size_t dl = strlen(dir);
    for (struct dirent *e; !st && (e = readdir(d));) {
        if (e->d_name[0] == '.' || !dsi_is_data_file(e->d_name))
            continue;
        char *p = malloc(dl + strlen(e->d_name) + 2);
        if (!p) {
            st = dsi_fail(DS_ERR_NOMEM, "out of memory for a list of files");
            break;
        }
        sprintf(p, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", e->d_name);
        if (!is_dir(p))
            st = list_add(&found, p);
        free(p);
    }
    closedir(d);
    if (!st && !found.n)
        st = dsi_fail(DS_ERR_IO, "the folder '%s' holds no data file (.npy, .fits, .csv, "
                      ".tsv, IDX)", dir);
    if (!st)
        qsort(found.v, (size_t)found.n, sizeof *found.v, cmp_str);
    for (int i = 0; !st && i < found.n; i++)
        st = list_add(l, found.v[i]);
    list_free(&found);
    return st;
}

static ds_status add_one(str_list *l, const char *spec)
{
    if (has_glob(spec))
        return add_glob(l, spec);
    if (is_dir(spec))
        return add_folder(l, spec);
    return list_add(l, spec);   /* a file: opened (or reported missing) when probed */
}

/* "@LIST": one file or glob per line, relative to the list's folder. */
static ds_status add_list(str_list *l, const char *list)
{
    unsigned char *text;
    size_t len;
    ds_status st = dsi_read_file(list, &text, &len);
    if (st)
        return st;
    const char *slash = strrchr(list, '/');
    int dl = slash ? (int)(slash - list + 1) : 0;
    int before = l->n;
    for (char *line = (char *)text, *next; line && !st; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        char *end = line + strlen(line);
        while (*line == ' ' || *line == '\t')
            line++;
        while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
            *--end = 0;
        if (!*line || *line == '#')
            continue;
        char *p = malloc((size_t)dl + strlen(line) + 1);
        if (!p) {
            st = dsi_fail(DS_ERR_NOMEM, "out of memory for a list of files");
            break;
        }
        sprintf(p, "%.*s%s", *line == '/' ? 0 : dl, list, line);
        st = add_one(l, p);
        free(p);
    }
    free(text);
    if (!st && l->n == before)
        st = dsi_fail(DS_ERR_IO, "the list '%s' names no file", list);
    return st;
}

/* ---- opening: the files of each item, their shapes and counts ---- */
static bool is_npy(const char *path)
{
    size_t n = strlen(path);
    return n >= 4 && !strcasecmp(path + n - 4, ".npy");
}

/* The shape of file f of it: the .npy header, else the file read whole. info: filled for
 * the first file. */
static ds_status probe(const item *it, const char *path, ds_read_info *info, int *ndim,
                       int64_t *shape)
{
    ds_status st;
    if (is_npy(path)) {
        dsi_npy_info ni;
        if ((st = dsi_read_opts_check(path, &it->ro)) || (st = dsi_npy_probe(path, &ni)))
            return st;
        if (info)
            memset(info, 0, sizeof *info);
        *ndim = ni.ndim;
        memcpy(shape, ni.shape, sizeof ni.shape);
        return DS_OK;
    }
    ds_read_opts ro = it->ro;
    ds_tensor *t;
    ro.info = info;
    if ((st = ds_array_load(path, &ro, &t)))
        return st;
    *ndim = t->ndim;
    memcpy(shape, t->shape, sizeof t->shape);
    ds_tensor_free(t);
    return DS_OK;
}

static bool same_shape(int na, const int64_t *a, int nb, const int64_t *b)
{
    if (na != nb)
        return false;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* Shard k of it: its count, and a sample shape that must be that of the item's first. */
static ds_status probe_shard(item *it, int k, ds_read_info *info)
{
    shard_file *f = &it->files[k];
    int nd;
    int64_t shape[DS_MAX_DIMS];
    ds_status st = probe(it, f->path, k ? NULL : info, &nd, shape);
    if (st)
        return st;
    if (nd < 1)
        return dsi_fail(DS_ERR_SHAPE, "%s: a single value, not samples along a first axis",
                        f->path);
    struct stat sb;
    f->count = shape[0];
    f->bytes = stat(f->path, &sb) == 0 ? (int64_t)sb.st_size : -1;
    if (!k) {
        it->ndim = it->vndim = nd - 1;
        memcpy(it->shape, shape + 1, (size_t)(nd - 1) * sizeof *shape);
        memcpy(it->vshape, it->shape, sizeof it->shape);
        it->per = dsi_numel(nd - 1, shape + 1);
        return DS_OK;
    }
    if (!same_shape(nd - 1, shape + 1, it->ndim, it->shape))
        return dsi_fail(DS_ERR_SHAPE, "%s holds samples of shape %s, but %s holds samples of "
                        "shape %s: the files of a stream hold samples of one shape", f->path,
                        dsi_shape_str(nd - 1, shape + 1), it->files[0].path,
                        dsi_shape_str(it->ndim, it->shape));
    return DS_OK;
}

static char *dup_or_null(const char *s, bool *oom)
{
    char *d = s ? dsi_strdup(s) : NULL;
    *oom |= s && !d;
    return d;
}

/* Copies the options of one item and finds its files. */
static ds_status init_item(item *it, const ds_stream_item *src, bool labels)
{
    bool oom = false;
    it->labels = labels;
    it->named = src->name != NULL;
    if (src->name)
        snprintf(it->name, sizeof it->name, "%s", src->name);
    it->spec = dup_or_null(src->files, &oom);
    if (src->read) {
        it->ro = *src->read;
        it->columns = dup_or_null(src->read->columns, &oom);
        it->exclude = dup_or_null(src->read->exclude, &oom);
        it->hdu_name = dup_or_null(src->read->hdu_name, &oom);
        it->ro.columns = it->columns;
        it->ro.exclude = it->exclude;
        it->ro.hdu_name = it->hdu_name;
        it->ro.info = NULL;
    }
    return oom ? dsi_fail(DS_ERR_NOMEM, "out of memory for a stream") : DS_OK;
}

static ds_status find_files(const char *spec, str_list *files)
{
    if (!*spec)
        return dsi_fail(DS_ERR_ARG, "stream: an item's files are \"\"");
    return spec[0] == '@' ? add_list(files, spec + 1) : add_one(files, spec);
}

ds_status ds_stream_files(const char *files, char ***paths, int *count)
{
    if (!files || !paths || !count)
        return dsi_fail(DS_ERR_ARG, "ds_stream_files: %s is NULL", !files ? "files" :
                        !paths ? "paths" : "count");
    *paths = NULL;
    *count = 0;
    str_list l = {0};
    ds_status st = find_files(files, &l);
    if (st) {
        list_free(&l);
        return st;
    }
    *paths = l.v;
    *count = l.n;
    return DS_OK;
}

/* "data 'x_*.npy'" or "labels 'y.npy'" into buf, for messages. */
static const char *item_words(const item *it, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s '%s'", it->labels ? "labels" : "data", it->spec);
    return buf;
}

/* Every item's files: as many for each. */
static ds_status find_all(ds_stream *s)
{
    ds_status st = DS_OK;
    for (int k = 0; k < s->n_items && !st; k++) {
        item *it = &s->it[k];
        str_list files = {0};
        if (!(st = find_files(it->spec, &files)) && k && files.n != s->n_shards) {
            char a[300], b[300];
            st = dsi_fail(DS_ERR_ARG, "%s: %d %s, but %s: %d: the k-th files of each are a "
                          "shard, so their numbers must agree", item_words(it, a, sizeof a),
                          files.n, dsi_plural(files.n, "file", "files"),
                          item_words(&s->it[0], b, sizeof b), s->n_shards);
        }
        if (!st && !(it->files = calloc((size_t)files.n, sizeof *it->files)))
            st = dsi_fail(DS_ERR_NOMEM, "out of memory for a stream");
        for (int i = 0; !st && i < files.n; i++) {
            it->files[i].path = files.v[i];
            files.v[i] = NULL;
        }
        if (!st)
            s->n_shards = files.n;
        list_free(&files);
    }
    return st;
}

/* Shard by shard, every item's file: its shape, and as many samples in each. */
static ds_status probe_all(ds_stream *s, const ds_stream_opts *o)
{
    if (!(s->first = malloc(((size_t)s->n_shards + 1) * sizeof *s->first)))
        return dsi_fail(DS_ERR_NOMEM, "out of memory for a stream");
    s->N = 0;
    for (int k = 0; k < s->n_shards; k++) {
        for (int i = 0; i < s->n_items; i++) {
            const ds_stream_item *src = s->it[i].labels ? &o->labels[i - s->n_inputs]
                                                        : &o->inputs[i];
            ds_status st = probe_shard(&s->it[i], k, src->read ? src->read->info : NULL);
            if (st)
                return st;
            const shard_file *a = &s->it[0].files[k], *b = &s->it[i].files[k];
            if (b->count != a->count)
                return dsi_fail(DS_ERR_SHAPE, "shard %d of %d: %s has %lld %s but %s has %lld",
                                k + 1, s->n_shards, a->path, (long long)a->count,
                                dsi_plural(a->count, "sample", "samples"), b->path,
                                (long long)b->count);
        }
        s->first[k] = s->N;
        s->N += s->it[0].files[k].count;
    }
    s->first[s->n_shards] = s->N;
    if (!s->N)
        return dsi_fail(DS_ERR_SHAPE, "'%s': no samples in %d %s", s->it[0].spec, s->n_shards,
                        dsi_plural(s->n_shards, "file", "files"));
    return DS_OK;
}

static ds_status check_opts(const ds_stream_opts *o)
{
    if (!o)
        return dsi_fail(DS_ERR_ARG, "ds_stream_open: options are NULL");
    if (!o->inputs[0].files)
        return dsi_fail(DS_ERR_ARG, "ds_stream_open: no input's files");
    if (o->shuffle_buffer < 0 || o->prefetch < 0)
        return dsi_fail(DS_ERR_ARG, "ds_stream_open: shuffle_buffer %lld and prefetch %d "
                        "must not be negative", (long long)o->shuffle_buffer, o->prefetch);
    return DS_OK;
}

ds_status ds_stream_open(const ds_stream_opts *o, ds_stream **out)
{
    if (!out)
        return dsi_fail(DS_ERR_ARG, "ds_stream_open: out is NULL");
    *out = NULL;
    ds_status st = check_opts(o);
    if (st)
        return st;
    ds_stream *s = calloc(1, sizeof *s);
    if (!s)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for a stream");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->can_put, NULL);
    pthread_cond_init(&s->can_take, NULL);
    s->opt_buffer = o->shuffle_buffer;
    s->prefetch = o->prefetch ? o->prefetch : DEFAULT_PREFETCH;
    for (int k = 0; k < DS_FEED_MAX && o->inputs[k].files && !st; k++)
        st = init_item(&s->it[s->n_items++], &o->inputs[k], false);
    s->n_inputs = s->n_items;
    for (int k = 0; k < DS_FEED_MAX && o->labels[k].files && !st; k++)
        st = init_item(&s->it[s->n_items++], &o->labels[k], true);
    if (!st)
        st = find_all(s);
    if (!st)
        st = probe_all(s, o);
    if (st) {
        ds_stream_free(s);
        return st;
    }
    *out = s;
    return DS_OK;
}

static void free_run_memory(ds_stream *s)
{
    for (int i = 0; i < MAX_ITEMS; i++) {
        free(s->pool[i]);
        free(s->out[i]);
        s->pool[i] = s->out[i] = NULL;
    }
    free(s->buf_cell);
    free(s->buf_ids);
    s->buf_cell = s->buf_ids = NULL;
    s->n_cells = 0;
    for (int k = 0; k < s->n_slots; k++) {
        free(s->slots[k].cell);
        free(s->slots[k].ids);
    }
    free(s->slots);
    s->slots = NULL;
    s->n_slots = 0;
    s->slot_batch = 0;
}

void ds_stream_free(ds_stream *s)
{
    if (!s)
        return;
    ds_stream_stop(s);
    free_run_memory(s);
    for (int i = 0; i < s->n_items; i++) {
        item *it = &s->it[i];
        for (int k = 0; it->files && k < s->n_shards; k++)
            free(it->files[k].path);
        free(it->files);
        free(it->spec);
        free(it->columns);
        free(it->exclude);
        free(it->hdu_name);
    }
    free(s->first);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->can_put);
    pthread_cond_destroy(&s->can_take);
    free(s);
}

/* ---- accessors ---- */
int64_t ds_stream_samples(const ds_stream *s) { return s ? s->N : 0; }
int ds_stream_shard_count(const ds_stream *s) { return s ? s->n_shards : 0; }
int dsi_stream_items(const ds_stream *s) { return s->n_items; }

/* Item i of the inputs (labels: of the labels), or NULL. */
static const item *get_item(const ds_stream *s, int labels, int i)
{
    int lo = labels ? s->n_inputs : 0, n = labels ? s->n_items - s->n_inputs : s->n_inputs;
    return i >= 0 && i < n ? &s->it[lo + i] : NULL;
}

const char *ds_stream_shard_path(const ds_stream *s, int labels, int i, int k)
{
    const item *it = s ? get_item(s, labels, i) : NULL;
    return it && k >= 0 && k < s->n_shards ? it->files[k].path : NULL;
}

static ds_status no_item(const char *fn, int labels, int i)
{
    return dsi_fail(DS_ERR_ARG, "%s: the stream has no %s item %d", fn,
                    labels ? "labels" : "input", i);
}

ds_status ds_stream_sample_shape(const ds_stream *s, int labels, int i, int *ndim,
                                 int64_t *shape)
{
    const item *it = s ? get_item(s, labels, i) : NULL;
    if (!it)
        return no_item("ds_stream_sample_shape", labels, i);
    *ndim = it->vndim;
    memcpy(shape, it->vshape, (size_t)it->vndim * sizeof *shape);
    return DS_OK;
}

ds_status ds_stream_reshape(ds_stream *s, int labels, int i, int ndim, const int64_t *shape)
{
    item *it = s ? (item *)get_item(s, labels, i) : NULL;
    if (!it)
        return no_item("ds_stream_reshape", labels, i);
    if (s->running)
        return dsi_fail(DS_ERR_STATE, "ds_stream_reshape: the reader is running "
                        "(ds_stream_stop first)");
    if (ndim < 0 || ndim >= DS_MAX_DIMS || !shape ||
        dsi_numel_limited(ndim, shape, INT64_MAX) != it->per)
        return dsi_fail(DS_ERR_SHAPE, "'%s': samples of shape %s (%lld values) cannot be read "
                        "as shape %s", it->spec, dsi_shape_str(it->ndim, it->shape),
                        (long long)it->per, ndim >= 0 && ndim < DS_MAX_DIMS && shape ?
                        dsi_shape_str(ndim, shape) : "?");
    it->vndim = ndim;
    memcpy(it->vshape, shape, (size_t)ndim * sizeof *shape);
    return DS_OK;
}

void dsi_stream_set_hooks(ds_stream *s, const dsi_stream_hooks *h)
{
    memset(&s->hooks, 0, sizeof s->hooks);
    if (h)
        s->hooks = *h;
}

int dsi_stream_find_input(const ds_stream *s, const char *name)
{
    if (!name)
        return s->n_inputs == 1 ? 0 : -1;
    for (int i = 0; i < s->n_inputs; i++)
        if ((s->it[i].named && !strcmp(s->it[i].name, name)) ||
            (!s->it[i].named && s->n_inputs == 1))
            return i;
    return -1;
}

/* A tensor over rows of an item: [count, vshape], data as given. */
static void view(const item *it, ds_tensor *t, int64_t count, float *data)
{
    memset(t, 0, sizeof *t);
    t->ndim = 1 + it->vndim;
    t->shape[0] = count;
    memcpy(t->shape + 1, it->vshape, (size_t)it->vndim * sizeof *t->shape);
    t->numel = count * it->per;
    t->data = data;
}

/* The feed of the tensors t[0..n_items), named as the items; src: each item's source. */
static void make_feed(const ds_stream *s, ds_tensor *t, ds_feed *f, const char *const *src)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < s->n_items; i++) {
        const item *it = &s->it[i];
        ds_feed_item e = {it->named ? it->name : NULL, &t[i], src ? src[i] : it->spec};
        if (it->labels)
            f->labels[i - s->n_inputs] = e;
        else
            f->inputs[i] = e;
    }
}

void dsi_stream_shape_feed(const ds_stream *s, ds_tensor *t, ds_feed *f)
{
    for (int i = 0; i < s->n_items; i++)
        view(&s->it[i], &t[i], s->N, NULL);
    make_feed(s, t, f, NULL);
}

/* ---- reading one shard ---- */
/* The file of shard k of it, read (a .npy mapped), as the stream found it when it opened. */
static ds_status load_shard(const item *it, int k, ds_tensor **out)
{
    const shard_file *f = &it->files[k];
    ds_status st = ds_array_load(f->path, &it->ro, out);
    if (st)
        return st;
    const ds_tensor *t = *out;
    if (t->ndim < 1 || t->shape[0] != f->count ||
        !same_shape(t->ndim - 1, t->shape + 1, it->ndim, it->shape)) {
        int64_t then[DS_MAX_DIMS];
        then[0] = f->count;
        memcpy(then + 1, it->shape, (size_t)it->ndim * sizeof *then);
        st = dsi_fail(DS_ERR_FORMAT, "%s: the file changed since the stream opened: shape %s "
                      "then, %s now", f->path, dsi_shape_str(it->ndim + 1, then),
                      dsi_shape_str(t->ndim, t->shape));
        ds_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

/* NaN and infinities in rows [r0, r0 + w) of t (of per values each), named as a whole
 * file's element and sample. */
static ds_status check_finite(const ds_tensor *t, const char *path, int64_t r0, int64_t w,
                              int64_t per)
{
    const float *x = t->data + r0 * per;
    int64_t n = w * per;
    int bad = 0;
    if (dsi_tensor_known_finite(t))
        return DS_OK;   /* integers as loaded */
#pragma omp simd reduction(| : bad)
    for (int64_t i = 0; i < n; i++)
        bad |= !(x[i] - x[i] == 0.0f);   /* false for NaN and +-Inf */
    if (!bad)
        return DS_OK;
    for (int64_t i = 0; i < n; i++) {
        if (x[i] - x[i] == 0.0f)
            continue;
        const char *v = x[i] != x[i] ? "NaN" : x[i] > 0 ? "+Inf" : "-Inf";
        return dsi_fail(DS_ERR_VALUE, "%s: element %lld (sample %lld) is %s", path,
                        (long long)(r0 * per + i), (long long)(r0 + i / per), v);
    }
    return DS_OK;
}

/* ---- the reader thread ---- */
/* One epoch as the reader goes through it. */
typedef struct {
    ds_stream *s;
    int epoch;
    ds_rng rng;                   /* the buffer's draws */
    int64_t fill;                 /* samples in the buffer */
    int64_t emitted;              /* samples gone out this epoch */
    int64_t index;                /* batches handed over this epoch */
    slot *cur;                    /* the batch being filled, or NULL */
    int64_t pos;                  /* samples in it */
} epoch_state;

static bool stopped(ds_stream *s) { return atomic_load_explicit(&s->stop, memory_order_relaxed); }

/* Batches the ring must have free before a reader that found it full goes on: half of it.
 * Waking for every batch the trainer takes would preempt one of the trainer's threads each
 * time (and stall the others at their next barrier); the reader prepares many at once. */
static int64_t refill(const ds_stream *s) { return s->n_slots > 1 ? s->n_slots / 2 : 1; }

/* The next free slot, waiting for the consumer; NULL when stopped. */
static slot *acquire(ds_stream *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->produced - s->consumed >= s->n_slots) {
        s->reader_asleep = true;
        while (s->produced - s->consumed > s->n_slots - refill(s) && !stopped(s))
            pthread_cond_wait(&s->can_put, &s->mu);
        s->reader_asleep = false;
    }
    slot *sl = stopped(s) ? NULL : &s->slots[s->produced % s->n_slots];
    pthread_mutex_unlock(&s->mu);
    return sl;
}

static ds_status publish(epoch_state *es)
{
    ds_stream *s = es->s;
    slot *sl = es->cur;
    sl->info = (ds_stream_batch){.epoch = es->epoch, .index = es->index, .count = es->pos,
                                 .ids = sl->ids, .last = es->emitted == s->N};
    pthread_mutex_lock(&s->mu);
    s->produced++;
    pthread_cond_signal(&s->can_take);
    pthread_mutex_unlock(&s->mu);
    es->cur = NULL;
    es->pos = 0;
    es->index++;
    return DS_OK;
}

static float *cell_of(const ds_stream *s, int i, int64_t c)
{
    return s->pool[i] + c * s->it[i].per;
}

/* A sample read into cell c (src[i]: item i's values), then the prepare hook on it. */
static ds_status fill_cell(ds_stream *s, int64_t c, const float *const *src)
{
    ds_tensor one[MAX_ITEMS];
    for (int i = 0; i < s->n_items; i++) {
        float *dst = cell_of(s, i, c);
        memcpy(dst, src[i], (size_t)s->it[i].per * sizeof(float));
        view(&s->it[i], &one[i], 1, dst);
    }
    if (!s->hooks.prepare)
        return DS_OK;
    ds_feed f;
    make_feed(s, one, &f, NULL);
    return s->hooks.prepare(s->hooks.ctx, &f);
}

/* The current batch's next row, in es->pos; DS_ERR_STATE when stopped. */
static ds_status next_row(epoch_state *es)
{
    if (!es->cur && !(es->cur = acquire(es->s)))
        return DS_ERR_STATE;
    return DS_OK;
}

/* The current row now holds sample id: the batch goes out when full or the epoch's last. */
static ds_status row_done(epoch_state *es, int64_t id)
{
    ds_stream *s = es->s;
    es->cur->ids[es->pos++] = id;
    es->emitted++;
    if (es->pos == s->run.batch || es->emitted == s->N)
        return publish(es);
    return DS_OK;
}

/* Buffer entry j goes out: its cell becomes the row's, the row's spare cell the entry's. */
static ds_status emit_buffered(epoch_state *es, int64_t j)
{
    ds_stream *s = es->s;
    ds_status st = next_row(es);
    if (st)
        return st;
    int64_t spare = es->cur->cell[es->pos];
    es->cur->cell[es->pos] = s->buf_cell[j];
    s->buf_cell[j] = spare;
    return row_done(es, s->buf_ids[j]);
}

/* A sample read goes straight out (no shuffling), into the row's cell. */
static ds_status emit_read(epoch_state *es, const float *const *src, int64_t id)
{
    ds_status st = next_row(es);
    if (!st)
        st = fill_cell(es->s, es->cur->cell[es->pos], src);
    return st ? st : row_done(es, id);
}

static ds_status put_in_buffer(ds_stream *s, int64_t j, const float *const *src, int64_t id)
{
    s->buf_ids[j] = id;
    return fill_cell(s, s->buf_cell[j], src);
}

/* A sample read: into the buffer while it fills, else in place of one drawn at random,
 * which goes out (without shuffling: straight out). */
static ds_status take(epoch_state *es, const float *const *src, int64_t id)
{
    ds_stream *s = es->s;
    if (!s->K)
        return emit_read(es, src, id);
    if (es->fill < s->K)
        return put_in_buffer(s, es->fill++, src, id);
    int64_t j = (int64_t)ds_rng_below(&es->rng, (uint64_t)s->K);
    ds_status st = emit_buffered(es, j);
    return st ? st : put_in_buffer(s, j, src, id);
}

/* The end of the epoch: the buffer goes out in random order (moving cells, not values). */
static ds_status drain(epoch_state *es)
{
    ds_stream *s = es->s;
    ds_status st = DS_OK;
    while (es->fill > 0 && !st) {
        int64_t j = (int64_t)ds_rng_below(&es->rng, (uint64_t)es->fill);
        if ((st = emit_buffered(es, j)))
            break;
        int64_t last = --es->fill, c = s->buf_cell[j];
        s->buf_cell[j] = s->buf_cell[last];
        s->buf_cell[last] = c;
        s->buf_ids[j] = s->buf_ids[last];
    }
    return st;
}

/* Rows [r0, r0 + w) of shard k, whose files are t: checked (if check), then taken one by
 * one. */
static ds_status take_window(epoch_state *es, int k, ds_tensor *const *t, int64_t r0, int64_t w,
                             bool check)
{
    ds_stream *s = es->s;
    ds_status st = DS_OK;
    const char *src_names[MAX_ITEMS];
    ds_tensor win[MAX_ITEMS];
    for (int i = 0; i < s->n_items && !st; i++) {
        const item *it = &s->it[i];
        src_names[i] = it->files[k].path;
        if (check)
            st = check_finite(t[i], it->files[k].path, r0, w, it->per);
        view(it, &win[i], w, t[i]->data + r0 * it->per);
    }
    if (!st && check && s->hooks.check) {
        ds_feed f;
        make_feed(s, win, &f, src_names);
        st = s->hooks.check(s->hooks.ctx, &f, r0);
    }
    for (int64_t r = 0; r < w && !st; r++) {
        const float *src[MAX_ITEMS];
        for (int i = 0; i < s->n_items; i++)
            src[i] = win[i].data + r * s->it[i].per;
        st = take(es, src, s->first[k] + r0 + r);
    }
    return st;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Whether the values of shard k need checking: a file not checked in this run, or changed
 * since (its identity, size or time of change); now[i] gets each file's. */
static bool needs_check(const ds_stream *s, int k, struct stat *now)
{
    bool check = false;
    for (int i = 0; i < s->n_items; i++) {
        const shard_file *f = &s->it[i].files[k];
        if (stat(f->path, &now[i]) != 0 || !f->checked || !same_file(&f->seen, &now[i]))
            check = true;
    }
    return check;
}

/* Every sample of shard k. */
static ds_status take_shard(epoch_state *es, int k)
{
    ds_stream *s = es->s;
    ds_tensor *t[MAX_ITEMS] = {0};
    struct stat now[MAX_ITEMS];
    bool check = needs_check(s, k, now);
    ds_status st = DS_OK;
    int64_t bytes = 0;
    for (int i = 0; i < s->n_items && !st; i++) {
        st = load_shard(&s->it[i], k, &t[i]);
        bytes += s->it[i].per * (int64_t)sizeof(float);
    }
    int64_t count = s->it[0].files[k].count, w = count;
    if (bytes)
        w = (int64_t)WINDOW_BYTES / bytes > 1 ? (int64_t)WINDOW_BYTES / bytes : 1;
    for (int64_t r0 = 0; r0 < count && !st && !stopped(s); r0 += w)
        st = take_window(es, k, t, r0, count - r0 < w ? count - r0 : w, check);
    for (int i = 0; i < s->n_items; i++) {
        ds_tensor_free(t[i]);
        shard_file *f = &s->it[i].files[k];
        if (check && !st && !stopped(s)) {
            f->checked = true;
            f->seen = now[i];
        }
    }
    return st;
}

/* The shards in the order of the epoch: shuffled by the seed and the epoch unless
 * no_shuffle. */
static void shard_order(const ds_stream *s, int epoch, int *order)
{
    for (int k = 0; k < s->n_shards; k++)
        order[k] = k;
    if (s->run.no_shuffle)
        return;
    ds_rng r;
    ds_rng_seed(&r, dsi_mix64(s->run.seed ^ 0x73686172647300ULL) ^ dsi_mix64((uint64_t)epoch + 1));
    for (int k = s->n_shards - 1; k > 0; k--) {
        int j = (int)ds_rng_below(&r, (uint64_t)k + 1), x = order[k];
        order[k] = order[j];
        order[j] = x;
    }
}

static ds_status read_epoch(ds_stream *s, int epoch)
{
    epoch_state es = {.s = s, .epoch = epoch};
    ds_rng_seed(&es.rng, s->run.seed ^ dsi_mix64((uint64_t)epoch + 1));
    int *order = malloc((size_t)s->n_shards * sizeof *order);
    if (!order)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for the order of %d shards", s->n_shards);
    shard_order(s, epoch, order);
    ds_status st = DS_OK;
    for (int k = 0; k < s->n_shards && !st && !stopped(s); k++)
        st = take_shard(&es, order[k]);
    free(order);
    return st || stopped(s) ? st : drain(&es);
}

static void *reader_main(void *arg)
{
    ds_stream *s = arg;
#ifdef _OPENMP
    /* the kernels' threads are the trainer's: the reader's own loops (preprocessing) run on
     * the reader alone */
    omp_set_num_threads(1);
#endif
    ds_status st = DS_OK;
    int64_t end = s->run.epochs ? (int64_t)s->run.first_epoch + s->run.epochs : INT64_MAX;
    for (int64_t e = s->run.first_epoch; e < end && e <= INT_MAX && !st && !stopped(s); e++)
        st = read_epoch(s, (int)e);
    pthread_mutex_lock(&s->mu);
    if (st && !stopped(s)) {
        s->err = st;
        snprintf(s->err_msg, sizeof s->err_msg, "%s", ds_last_error());
    }
    s->done = true;
    pthread_cond_signal(&s->can_take);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- running ---- */
/* count floats, or NULL with the memory limit's message. */
static float *alloc_floats(int64_t count, const char *what)
{
    size_t bytes = (size_t)count * sizeof(float);
    float *p = dsi_aligned_alloc_raw(bytes);
    if (!p)
        dsi_fail(DS_ERR_NOMEM, "out of memory for the stream's %s (%zu bytes%s)", what, bytes,
                 dsi_mem_note(bytes));
    return p;
}

/* The buffer's capacity for a run. */
static int64_t buffer_samples(const ds_stream *s, bool no_shuffle)
{
    if (no_shuffle)
        return 0;
    int64_t k = s->opt_buffer;
    if (!k) {
        size_t bytes = BUFFER_BYTES, quarter = ds_get_memory_limit() / 4, per = 0;
        for (int i = 0; i < s->n_items; i++)
            per += (size_t)s->it[i].per * sizeof(float);
        if (quarter < bytes)
            bytes = quarter;
        k = per ? (int64_t)(bytes / per) : s->N;
        k = k > 1 ? k : 1;
    }
    return k < s->N ? k : s->N;
}

/* The pool, the buffer and the batches of this run (kept from the last run when they fit),
 * every cell given to the buffer or to a batch's row. */
static ds_status run_memory(ds_stream *s)
{
    int64_t B = s->run.batch;
    int n_slots = (int)((s->K + B - 1) / B) + s->prefetch + 1;
    int64_t cells = s->K + (int64_t)n_slots * B;
    if (s->n_cells != cells || s->slot_batch != B || s->n_slots != n_slots)
        free_run_memory(s);
    if (!s->slots) {
        for (int i = 0; i < s->n_items; i++)
            if (!(s->pool[i] = alloc_floats(cells * s->it[i].per, "samples")) ||
                !(s->out[i] = alloc_floats(B * s->it[i].per, "batch")))
                return DS_ERR_NOMEM;
        s->buf_cell = malloc(((size_t)s->K + 1) * sizeof *s->buf_cell);
        s->buf_ids = malloc(((size_t)s->K + 1) * sizeof *s->buf_ids);
        s->slots = calloc((size_t)n_slots, sizeof *s->slots);
        if (!s->buf_cell || !s->buf_ids || !s->slots)
            return dsi_fail(DS_ERR_NOMEM, "out of memory for the stream's batches");
        s->n_slots = n_slots;
        s->n_cells = cells;
        s->slot_batch = B;
        for (int k = 0; k < n_slots; k++)
            if (!(s->slots[k].cell = malloc((size_t)B * sizeof *s->slots[k].cell)) ||
                !(s->slots[k].ids = malloc((size_t)B * sizeof *s->slots[k].ids)))
                return dsi_fail(DS_ERR_NOMEM, "out of memory for the stream's batches");
    }
    for (int64_t j = 0; j < s->K; j++)
        s->buf_cell[j] = j;
    for (int k = 0; k < n_slots; k++)
        for (int64_t r = 0; r < B; r++)
            s->slots[k].cell[r] = s->K + k * B + r;
    return DS_OK;
}

ds_status ds_stream_start(ds_stream *s, const ds_stream_run *r)
{
    if (!s || !r)
        return dsi_fail(DS_ERR_ARG, "ds_stream_start: %s is NULL", s ? "run" : "stream");
    if (r->batch < 1 || r->first_epoch < 0 || r->epochs < 0)
        return dsi_fail(DS_ERR_ARG, "ds_stream_start: batch %lld (at least 1), first epoch %d "
                        "and epochs %d (not negative)", (long long)r->batch, r->first_epoch,
                        r->epochs);
    ds_stream_stop(s);
    for (int i = 0; i < s->n_items; i++)   /* checked again, with this run's hooks */
        for (int k = 0; k < s->n_shards; k++)
            s->it[i].files[k].checked = false;
    s->run = *r;
    s->run.batch = r->batch < s->N ? r->batch : s->N;
    s->K = buffer_samples(s, r->no_shuffle);
    ds_status st = run_memory(s);
    if (st) {
        free_run_memory(s);
        return st;
    }
    s->produced = s->consumed = 0;
    s->holding = s->done = s->reader_asleep = false;
    s->err = DS_OK;
    atomic_store(&s->stop, false);
    int rc = pthread_create(&s->thread, NULL, reader_main, s);
    if (rc)
        return dsi_fail(DS_ERR_STATE, "cannot start the stream's reader thread: %s",
                        strerror(rc));
    s->running = true;
    return DS_OK;
}

void ds_stream_stop(ds_stream *s)
{
    if (!s || !s->running)
        return;
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->stop, true);
    pthread_cond_signal(&s->can_put);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->running = false;
    s->holding = false;
}

/* The next batch into *out (NULL after the last), held until the next call. */
static ds_status take_batch(ds_stream *s, slot **out)
{
    *out = NULL;
    if (!s->running)
        return dsi_fail(DS_ERR_STATE, "ds_stream_next: the reader is not running "
                        "(ds_stream_start)");
    pthread_mutex_lock(&s->mu);
    if (s->holding) {
        s->consumed++;
        s->holding = false;
        if (s->reader_asleep && s->produced - s->consumed <= s->n_slots - refill(s))
            pthread_cond_signal(&s->can_put);
    }
    while (s->produced == s->consumed && !s->done)
        pthread_cond_wait(&s->can_take, &s->mu);
    if (s->produced > s->consumed) {
        *out = &s->slots[s->consumed % s->n_slots];
        s->holding = true;
    }
    ds_status st = s->err;
    pthread_mutex_unlock(&s->mu);
    return !*out && st ? dsi_fail(st, "%s", s->err_msg) : DS_OK;
}

ds_status dsi_stream_next_rows(ds_stream *s, ds_stream_batch *info)
{
    slot *sl;
    memset(info, 0, sizeof *info);
    ds_status st = take_batch(s, &sl);
    if (sl)
        *info = sl->info;
    return st;
}

const float *dsi_stream_row(const ds_stream *s, int i, int64_t r)
{
    return cell_of(s, i, s->slots[s->consumed % s->n_slots].cell[r]);
}

ds_status ds_stream_next(ds_stream *s, ds_feed *batch, ds_stream_batch *info)
{
    if (!s || !batch || !info)
        return dsi_fail(DS_ERR_ARG, "ds_stream_next: %s is NULL", !s ? "the stream" :
                        !batch ? "batch" : "info");
    memset(batch, 0, sizeof *batch);
    ds_status st = dsi_stream_next_rows(s, info);
    if (st || !info->count)
        return st;
    const slot *sl = &s->slots[s->consumed % s->n_slots];
    for (int i = 0; i < s->n_items; i++) {   /* the rows one after the other */
        int64_t per = s->it[i].per;
        for (int64_t r = 0; r < info->count; r++)
            memcpy(s->out[i] + r * per, cell_of(s, i, sl->cell[r]), (size_t)per * sizeof(float));
        view(&s->it[i], &s->t[i], info->count, s->out[i]);
    }
    make_feed(s, s->t, batch, NULL);
    return DS_OK;
}

/* ---- reading on the calling thread ---- */
ds_status dsi_stream_scan(ds_stream *s, int labels, int i, dsi_stream_fn fn, void *ctx)
{
    const item *it = get_item(s, labels, i);
    if (!it)
        return no_item("stream scan", labels, i);
    ds_status st = DS_OK;
    for (int k = 0; k < s->n_shards && !st; k++) {
        ds_tensor *t;
        if ((st = load_shard(it, k, &t)))
            break;
        st = fn(ctx, t->data, it->files[k].count, it->per);
        ds_tensor_free(t);
    }
    return st;
}

typedef struct {
    float *dst;
} load_ctx;

static ds_status copy_shard(void *ctx, const float *x, int64_t count, int64_t per)
{
    load_ctx *c = ctx;
    memcpy(c->dst, x, (size_t)(count * per) * sizeof(float));
    c->dst += count * per;
    return DS_OK;
}

ds_status ds_stream_load(ds_stream *s, int labels, int i, ds_tensor **out)
{
    const item *it = s && out ? get_item(s, labels, i) : NULL;
    if (out)
        *out = NULL;
    if (!it)
        return out ? no_item("ds_stream_load", labels, i)
                   : dsi_fail(DS_ERR_ARG, "ds_stream_load: out is NULL");
    int64_t shape[DS_MAX_DIMS];
    shape[0] = s->N;
    memcpy(shape + 1, it->vshape, (size_t)it->vndim * sizeof *shape);
    ds_tensor *t = ds_tensor_create(it->vndim + 1, shape);
    if (!t)
        return dsi_last_status();
    load_ctx c = {t->data};
    ds_status st = dsi_stream_scan(s, labels, i, copy_shard, &c);
    if (st) {
        ds_tensor_free(t);
        return st;
    }
    *out = t;
    return DS_OK;
}

void dsi_stream_describe(const ds_stream *s, dsi_buf *b, const char *what, int no_shuffle)
{
    dsi_buf_printf(b, "%s stream shuffle buffer: %lld\n", what,
                   (long long)buffer_samples(s, no_shuffle));
    for (int i = 0; i < s->n_items; i++) {
        const item *it = &s->it[i];
        dsi_buf_printf(b, "%s stream %s '%s': %lld samples of %s in %d %s:", what,
                       it->labels ? "labels" : "data", it->named ? it->name : "",
                       (long long)s->N, dsi_shape_str(it->vndim, it->vshape), s->n_shards,
                       dsi_plural(s->n_shards, "file", "files"));
        for (int k = 0; k < s->n_shards; k++) {
            const char *p = it->files[k].path, *base = strrchr(p, '/');
            dsi_buf_printf(b, " %s %lld/%lld", base ? base + 1 : p,
                           (long long)it->files[k].count, (long long)it->files[k].bytes);
        }
        dsi_buf_puts(b, "\n");
    }
}
