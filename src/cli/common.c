/* common.c - option parsing, errors, and model/data loading shared by the commands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool cli_check_only;

int cli_fail(void)
{
    fprintf(stderr, "deepsky: error: %s\n", ds_last_error());
    return 1;
}

int cli_usage_error(const cli_cmd *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "deepsky %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'deepsky %s --help')\n", c->name);
    return 2;
}

void cli_help(const cli_cmd *c, FILE *fp)
{
    fprintf(fp, "usage: deepsky %s %s\n\n%s\n\noptions:\n", c->name, c->usage, c->about);
    for (int i = 0; i < c->n_opts; i++) {
        const cli_opt *o = &c->opts[i];
        char left[64];
        if (o->short_name)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        else
            snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(fp, "  %-28s %s\n", left, o->help);
    }
    fprintf(fp, "  %-28s %s\n", "-h, --help", "show this help");
}

static cli_opt *find(cli_cmd *c, const char *name, char short_name)
{
    for (int i = 0; i < c->n_opts; i++)
        if ((name && !strcmp(c->opts[i].name, name)) || (short_name && c->opts[i].short_name == short_name))
            return &c->opts[i];
    return NULL;
}

/* "--name[=value]", or "-x" with x not a digit ("-3" is a value). */
static bool is_long_option(const char *a) { return a[0] == '-' && a[1] == '-' && a[2]; }
static bool is_short_option(const char *a)
{
    return a[0] == '-' && a[1] && !a[2] && !(a[1] >= '0' && a[1] <= '9');
}
static bool is_option(const char *a) { return is_long_option(a) || is_short_option(a); }

void (*cli_visitor)(const cli_cmd *c, void *ctx);
void *cli_visitor_ctx;

int cli_parse(cli_cmd *c, int argc, char **argv)
{
    c->n_positional = 0;
    if (cli_visitor) {   /* cli_each_command: hand over the table, run nothing */
        cli_visitor(c, cli_visitor_ctx);
        return -1;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli_help(c, stdout);
            return -1;
        }
        cli_opt *o = NULL;
        const char *val = NULL;
        if (is_long_option(a)) {
            char name[64];
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            snprintf(name, sizeof name, "%.*s", (int)len, a + 2);
            o = find(c, name, 0);
            if (!o)
                return cli_usage_error(c, "unknown option '--%s'", name);
            if (eq)
                val = eq + 1;
        } else if (is_short_option(a)) {
            o = find(c, NULL, a[1]);
            if (!o)
                return cli_usage_error(c, "unknown option '%s'", a);
        } else {
            if (c->n_positional == c->max_positional)
                return cli_usage_error(c, "unexpected argument '%s'", a);
            c->positional[c->n_positional++] = a;
            continue;
        }
        if (o->value && !o->repeat)
            return cli_usage_error(c, "option '--%s' given twice", o->name);
        if (o->n_values == DS_FEED_MAX)
            return cli_usage_error(c, "option '--%s' given more than %d times", o->name,
                                   DS_FEED_MAX);
        if (o->arg) {
            if (!val) {
                if (i + 1 >= argc)
                    return cli_usage_error(c, "option '--%s' needs a value (%s)", o->name, o->arg);
                if (is_option(argv[i + 1]))
                    return cli_usage_error(c, "option '--%s' needs a value (%s) but is followed "
                                           "by the option '%s' (a value that starts with '-': "
                                           "--%s=VALUE)", o->name, o->arg, argv[i + 1], o->name);
                val = argv[++i];
            }
            if (!o->value)
                o->value = val;
            o->values[o->n_values++] = val;
        } else {
            if (val)
                return cli_usage_error(c, "option '--%s' takes no value", o->name);
            o->value = "1";
        }
    }
    if (c->n_positional < c->min_positional)
        return cli_usage_error(c, "missing argument: usage: deepsky %s %s", c->name, c->usage);
    return 0;
}

const char *cli_get(const cli_cmd *c, const char *name)
{
    for (int i = 0; i < c->n_opts; i++)
        if (!strcmp(c->opts[i].name, name))
            return c->opts[i].value;
    return NULL;
}

bool cli_has(const cli_cmd *c, const char *name) { return cli_get(c, name) != NULL; }

int cli_values(const cli_cmd *c, const char *name, const char *const **out)
{
    for (int i = 0; i < c->n_opts; i++)
        if (!strcmp(c->opts[i].name, name)) {
            *out = c->opts[i].values;
            return c->opts[i].n_values;
        }
    *out = NULL;
    return 0;
}

bool cli_long(const cli_cmd *c, const char *name, long lo, long hi, long dflt, long *out)
{
    const char *v = cli_get(c, name);
    *out = dflt;
    if (!v)
        return true;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        cli_usage_error(c, "option '--%s': '%s' is not an integer in [%ld, %ld]", name, v, lo, hi);
        return false;
    }
    *out = x;
    return true;
}

/* "a:b" or "a" (then b = a); each in [lo, hi] and a <= b. Prints a usage error on failure. */
bool cli_range(const cli_cmd *c, const char *name, double lo, double hi, double *a, double *b)
{
    const char *v = cli_get(c, name);
    if (!v)
        return true;
    char *end;
    errno = 0;
    *a = strtod(v, &end);
    if (end != v && *end == ':') {
        const char *s = end + 1;
        *b = strtod(s, &end);
        if (end == s)
            end = (char *)s - 1;   /* make the check below fail */
    } else {
        *b = *a;
    }
    if (errno || end == v || *end || !(*a >= lo && *b <= hi && *a <= *b)) {
        cli_usage_error(c, "option '--%s': '%s' is not a number or range MIN:MAX within "
                        "[%g, %g]", name, v, lo, hi);
        return false;
    }
    return true;
}

bool cli_double(const cli_cmd *c, const char *name, double lo, double hi, double dflt, double *out)
{
    const char *v = cli_get(c, name);
    *out = dflt;
    if (!v)
        return true;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        cli_usage_error(c, "option '--%s': '%s' is not a number in [%g, %g]", name, v, lo, hi);
        return false;
    }
    *out = x;
    return true;
}

bool cli_stop_here(const cli_cmd *c)
{
    if (!cli_check_only)
        return false;
    cli_read_opts ro;
    cli_read_options(c, &ro);
    return true;
}

bool cli_threads(const cli_cmd *c)
{
    long n;
    if (!cli_long(c, "threads", 0, 1024, 0, &n))
        return false;
    if (n > 0)
        ds_set_num_threads((int)n);
    return true;
}

int cli_load_net(const char *model, const char *weights, int64_t batch, uint64_t seed,
                 const cli_data *labels, ds_net **out)
{
    ds_net_opts o = {.batch = batch, .seed = seed};
    cli_label_choices(labels, &o);
    if (ds_net_load(model, &o, out) != DS_OK)
        return cli_fail();
    if (weights && ds_net_load_weights(*out, weights) != DS_OK) {
        ds_net_free(*out);
        *out = NULL;
        return cli_fail();
    }
    return 0;
}

/* "best validation loss 0.01234" or "training loss 0.3 (best epoch 4)": the loss the run
 * chose its best epoch by. */
static void loss_words(const ds_weights_info *w, char *buf, size_t cap)
{
    bool val = isfinite(w->val_loss), best = w->epoch && w->epoch == w->best_epoch;
    double v = val ? w->val_loss : w->loss;
    buf[0] = 0;
    if (!isfinite(v))
        return;
    int k = snprintf(buf, cap, ", %s%s loss %.4g", best ? "best " : "",
                     val ? "validation" : "training", v);
    if (!best && w->best_epoch && k > 0 && (size_t)k < cap)
        snprintf(buf + k, cap - (size_t)k, " (best epoch %d)", w->best_epoch);
}

void cli_weights_note(const char *path, const ds_net *n)
{
    ds_weights_info w;
    ds_net_weights_info(n, &w);
    if (!w.trained) {
        fprintf(stderr, "weights: %s (no training metadata)\n", path);
        return;
    }
    char epoch[64] = "epoch unknown", loss[96];
    if (w.epoch && w.epochs_run)
        snprintf(epoch, sizeof epoch, "epoch %d of %d", w.epoch, w.epochs_run);
    else if (w.epoch)
        snprintf(epoch, sizeof epoch, "epoch %d", w.epoch);
    loss_words(&w, loss, sizeof loss);
    fprintf(stderr, "weights: %s (%s%s, %s, deepsky %s)", path, epoch, loss,
            w.date ? w.date : "date unknown", w.version ? w.version : "version unknown");
    if (w.damaged)
        fprintf(stderr, "; metadata %s '%s' is not readable, taken as unknown", w.damaged,
                w.damaged_value);
    fputc('\n', stderr);
}

ds_label_mode cli_label_mode(const ds_tensor *y)
{
    return y ? cli_label_mode_shape(ds_tensor_ndim(y), ds_tensor_shape(y)) : DS_LABELS_AUTO;
}

ds_label_mode cli_label_mode_shape(int nd, const int64_t *s)
{
    if (nd < 1)
        return DS_LABELS_AUTO;
    if (nd == 1 || (nd == 2 && s[1] == 1))
        return DS_LABELS_INDEX;
    return DS_LABELS_DENSE;
}

/* Writes text to path through a temporary file renamed into place. 0 or 1 (printed). */
int cli_write_text(const char *path, const char *text)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "w");
    bool ok = fp && fputs(text, fp) >= 0;
    if (fp && fclose(fp) != 0)
        ok = false;
    if (ok && rename(tmp, path) == 0)
        return 0;
    fprintf(stderr, "deepsky: error: cannot write '%s': %s\n", path, strerror(errno ? errno : EIO));
    if (fp)
        remove(tmp);
    return 1;
}
