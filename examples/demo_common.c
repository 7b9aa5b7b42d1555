/* demo_common.c - helpers shared by the galaxy demos: flags, errors, weights files, CNN and
 * moments measurements of a set, and the fit of m and c (see demo_common.h). */
#include "demo_common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

const char *demo_name = "demo";
void (*demo_usage)(FILE *fp);

int demo_bad_flag(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: error: ", demo_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    if (demo_usage)
        demo_usage(stderr);
    return 2;
}

const char *demo_flag_value(int argc, char **argv, int *i, const char *const *with_value)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        if (demo_usage)
            demo_usage(stdout);
        exit(0);
    }
    bool known = false;
    for (size_t k = 0; with_value[k]; k++)
        known |= !strcmp(a, with_value[k]);
    if (!known) {
        demo_bad_flag("unknown option '%s'", a);
        return NULL;
    }
    if (*i + 1 >= argc) {
        demo_bad_flag("option '%s' needs a value", a);
        return NULL;
    }
    return argv[++*i];
}

bool demo_parse_int(const char *a, const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        demo_bad_flag("option '%s' needs a whole number in [%lld, %lld], got '%s'", a,
                      (long long)lo, (long long)hi, v);
        return false;
    }
    *out = x;
    return true;
}

bool demo_parse_double(const char *a, const char *v, double lo, double hi, const char *what,
                       double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        demo_bad_flag("option '%s' needs %s, got '%s'", a, what, v);
        return false;
    }
    *out = x;
    return true;
}

bool demo_parse_text(const char *a, const char *v, const char **out)
{
    if (!*v) {
        demo_bad_flag("option '%s' needs a non-empty value", a);
        return false;
    }
    *out = v;
    return true;
}

bool demo_parse_loss(const char *a, const char *v, bool *msb)
{
    if (strcmp(v, "msb") && strcmp(v, "mse")) {
        demo_bad_flag("option '%s' needs msb or mse, got '%s'", a, v);
        return false;
    }
    *msb = !strcmp(v, "msb");
    return true;
}

bool demo_parse_realizations(const char *a, const char *v, int *k)
{
    int64_t x;
    if (!demo_parse_int(a, v, 2, 64, &x))
        return false;
    if (64 % x) {
        demo_bad_flag("option '%s' needs a divisor of the batch of 64, got '%s'", a, v);
        return false;
    }
    *k = (int)x;
    return true;
}

int demo_check_realizations(int64_t n_val, int k)
{
    if (n_val % k == 0)
        return 0;
    return demo_bad_flag("--loss msb: the %lld validation galaxies are not a multiple of "
                         "--realizations %d", (long long)n_val, k);
}

_Noreturn void demo_fail(void)
{
    fprintf(stderr, "%s: error: %s\n", demo_name, ds_last_error());
    exit(1);
}

double demo_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void demo_path(const char *dir, const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* ---- weights files ---- */
static void remove_in(const char *dir, const char *stem, const char *suffix)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s%s", dir, stem, suffix);
    if (remove(p) != 0 && errno != ENOENT)
        fprintf(stderr, "%s: warning: cannot remove %s: %s\n", demo_name, p, strerror(errno));
}

void demo_remove_stale(const char *dir, const char *stem)
{
    static const char *const stale[] = {".best.safetensors", ".ckpt.safetensors",
                                        ".last.best.safetensors", ".last.ckpt.safetensors"};
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++)
        remove_in(dir, stem, stale[i]);
}

void demo_keep_best(const char *dir, const char *stem)
{
    char from[600], to[600];
    ds_tensor_set *s;
    snprintf(from, sizeof from, "%s/%s.last.best.safetensors", dir, stem);
    snprintf(to, sizeof to, "%s/%s.safetensors", dir, stem);
    DEMO_TRY(ds_safetensors_load(from, &s));
    DEMO_TRY(ds_safetensors_save(s, to));
    ds_tensor_set_free(s);
    remove_in(dir, stem, ".last.best.safetensors");
    remove_in(dir, stem, ".last.ckpt.safetensors");
}

void demo_weights_words(const ds_net *n, char *buf, size_t cap)
{
    ds_weights_info w;
    ds_net_weights_info(n, &w);
    snprintf(buf, cap, "epoch %d of %d, %svalidation loss %.5g, %s", w.epoch, w.epochs_run,
             w.epoch == w.best_epoch ? "best " : "", w.val_loss, w.date ? w.date : "");
}

int demo_sim_column(const char *name)
{
    for (int j = 0; ds_sim_columns()[j]; j++)
        if (!strcmp(ds_sim_columns()[j], name))
            return j;
    DEMO_TRY(DS_ERR_ARG);
    return -1;
}

ds_tensor *demo_labels(const ds_tensor *truth)
{
    const int nc = ds_sim_column_count();
    int64_t n = ds_tensor_shape(truth)[0];
    ds_tensor *y = ds_tensor_create(2, (int64_t[]){n, 2});
    if (!y)
        DEMO_TRY(DS_ERR_NOMEM);
    const float *t = ds_tensor_data((ds_tensor *)truth);
    for (int64_t i = 0; i < n; i++) {
        ds_tensor_data(y)[2 * i] = t[nc * i];
        ds_tensor_data(y)[2 * i + 1] = t[nc * i + 1];
    }
    return y;
}

/* ---- training sets for the bias-targeting loss ---- */
void demo_scale_to_snr(ds_tensor *img, ds_tensor *truth, double lo, double hi, uint64_t seed)
{
    const int nc = ds_sim_column_count(), jf = demo_sim_column("flux");
    const int js = demo_sim_column("snr");   /* of the unit flux, then of the drawn one */
    int64_t n = ds_tensor_shape(img)[0], npix = ds_tensor_numel(img) / (n ? n : 1);
    ds_rng r;
    ds_rng_seed(&r, seed ^ 0x5e5eULL);
    float *x = ds_tensor_data(img), *t = ds_tensor_data(truth);
    for (int64_t i = 0; i < n; i++) {
        double snr = lo + (hi - lo) * ds_rng_uniform(&r), f = snr / t[nc * i + js];
        for (int64_t j = 0; j < npix; j++)
            x[i * npix + j] *= (float)f;
        t[nc * i + jf] = (float)f;
        t[nc * i + js] = (float)snr;
    }
}

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    long len = -1;
    if (fp && !fseek(fp, 0, SEEK_END) && (len = ftell(fp)) >= 0 && !fseek(fp, 0, SEEK_SET) &&
        (buf = malloc((size_t)len + 1)) && fread(buf, 1, (size_t)len, fp) == (size_t)len) {
        buf[len] = 0;
        fclose(fp);
        return buf;
    }
    fprintf(stderr, "%s: error: cannot read %s: %s\n", demo_name, path,
            errno ? strerror(errno) : "read error");
    exit(1);
}

ds_net *demo_load_model(const char *path, int group, uint64_t seed)
{
    ds_net_opts o = {.batch = 64, .seed = seed};
    ds_net *net;
    if (group <= 0) {
        DEMO_TRY(ds_net_load(path, &o, &net));
        return net;
    }
    char *text = read_text(path), *set, value[32];
    snprintf(value, sizeof value, "%d", group);
    DEMO_TRY(ds_net_text_set(text, path, 1, (const char *const[]){"loss.group"},
                             (const char *const[]){value}, &set));
    DEMO_TRY(ds_net_parse(set, path, &o, &net));
    free(set);
    free(text);
    return net;
}

ds_tensor *demo_repeat_rows(const ds_tensor *t, int k)
{
    int nd = ds_tensor_ndim(t);
    int64_t sh[8];
    memcpy(sh, ds_tensor_shape(t), (size_t)nd * sizeof *sh);
    int64_t n = sh[0], row = ds_tensor_numel(t) / (n ? n : 1);
    sh[0] = n * k;
    ds_tensor *out = ds_tensor_create(nd, sh);
    if (!out)
        DEMO_TRY(DS_ERR_NOMEM);
    const float *src = ds_tensor_data((ds_tensor *)t);
    for (int64_t i = 0; i < n * k; i++)
        memcpy(ds_tensor_data(out) + i * row, src + i / k * row, (size_t)row * sizeof(float));
    return out;
}

void demo_add_sky_noise(ds_tensor *img, uint64_t seed)
{
    int64_t n = ds_tensor_shape(img)[0], npix = ds_tensor_numel(img) / (n ? n : 1);
    for (int64_t i = 0; i < n; i++) {
        ds_rng r;
        ds_rng_seed(&r, seed * 1000003ULL + (uint64_t)i);
        ds_add_noise(ds_tensor_data(img) + i * npix, npix, 1.0, 0, &r);
    }
}

/* ---- measurements ---- */
void demo_measured_free(demo_measured *m)
{
    free(m->e);
    free(m->fail);
    m->e = NULL;
    m->fail = NULL;
}

/* A copy of the feed whose 4-D inputs are fresh tensors transformed by tr. */
static void transformed_feed(const ds_feed *f, ds_feed *g, int tr, float *tmp)
{
    *g = *f;
    for (int k = 0; k < DS_FEED_MAX && f->inputs[k].data; k++) {
        ds_tensor *x = f->inputs[k].data;
        if (ds_tensor_ndim(x) != 4)
            continue;
        const int64_t *sh = ds_tensor_shape(x);
        ds_tensor *t = ds_tensor_from(4, sh, ds_tensor_data(x));
        if (!t)
            DEMO_TRY(DS_ERR_NOMEM);
        for (int64_t i = 0; i < sh[0]; i++)
            ds_image_transform(ds_tensor_data(t) + i * sh[1] * sh[2] * sh[3], sh[1], sh[2],
                               sh[3], tr, tmp);
        g->inputs[k].data = t;
    }
}

demo_measured demo_measure_cnn(ds_net *net, const ds_feed *f)
{
    const int64_t *sh0 = ds_tensor_shape(f->inputs[0].data);
    demo_measured m = {.n = sh0[0]};
    m.e = calloc((size_t)m.n * 2, sizeof *m.e);
    m.fail = calloc((size_t)m.n, sizeof *m.fail);
    int64_t plane = 0;
    for (int k = 0; k < DS_FEED_MAX && f->inputs[k].data; k++)
        if (ds_tensor_ndim(f->inputs[k].data) == 4) {
            const int64_t *sh = ds_tensor_shape(f->inputs[k].data);
            plane = sh[2] * sh[3] > plane ? sh[2] * sh[3] : plane;
        }
    float *tmp = malloc((size_t)(plane > 0 ? plane : 1) * sizeof *tmp);
    if (!m.e || !m.fail || !tmp)
        DEMO_TRY(DS_ERR_NOMEM);
    for (int s = 0; s < 8; s++) {
        int tr = (s & 1) | (s >> 1) << 2;
        ds_feed g;
        transformed_feed(f, &g, tr, tmp);
        ds_tensor *out[DS_FEED_MAX] = {0};
        ds_status st = ds_net_predict_feed(net, &g, 256, out);
        for (int k = 0; k < DS_FEED_MAX && f->inputs[k].data; k++)
            if (g.inputs[k].data != f->inputs[k].data)
                ds_tensor_free(g.inputs[k].data);
        DEMO_TRY(st);
        float *pd = ds_tensor_data(out[0]);
        for (int64_t i = 0; i < m.n; i++) {
            ds_ellipticity_transform(NULL, tr, pd + 2 * i, 2);
            m.e[2 * i] += pd[2 * i] / 8;
            m.e[2 * i + 1] += pd[2 * i + 1] / 8;
        }
        for (int k = 0; k < ds_net_output_count(net); k++)
            ds_tensor_free(out[k]);
    }
    free(tmp);
    return m;
}

demo_measured demo_measure_moments(const ds_tensor *img, const float *psf, int64_t psf_stride,
                                   ds_shear_method how)
{
    const int64_t *sh = ds_tensor_shape(img);
    const int size = (int)sh[3];
    demo_measured m = {.n = sh[0]};
    m.e = malloc((size_t)m.n * 2 * sizeof *m.e);
    m.fail = calloc((size_t)m.n, sizeof *m.fail);
    if (!m.e || !m.fail)
        DEMO_TRY(DS_ERR_NOMEM);
    const float *d = ds_tensor_data((ds_tensor *)img);
    int64_t per = (int64_t)size * size;
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 0; i < m.n; i++) {
        ds_shear s;
        ds_status st = ds_shear_estimate(d + i * per, psf + i * psf_stride, size, 1.0, how, &s);
        m.fail[i] = st != DS_OK || s.flag != 0 || !isfinite(s.e1) || !isfinite(s.e2);
        m.e[2 * i] = m.fail[i] ? NAN : (float)s.e1;
        m.e[2 * i + 1] = m.fail[i] ? NAN : (float)s.e2;
    }
    return m;
}

/* ---- the fit of m and c ---- */
static double corrected(const demo_measured *me, int64_t i, int k, int64_t per_bin,
                        const demo_calib *cal)
{
    double y = me->e[2 * i + k];
    if (cal) {
        const double *mc = cal[i / per_bin][k];
        y = (y - mc[1]) / (1 + mc[0]);
    }
    return y;
}

demo_stats demo_fit_bias(const demo_measured *me, const ds_tensor *truth, int bin,
                         int64_t per_bin, const demo_calib *cal)
{
    const int nc = ds_sim_column_count();
    demo_stats s = {0};
    const float *t = ds_tensor_data((ds_tensor *)truth);
    int64_t lo = bin < 0 ? 0 : (int64_t)bin * per_bin, hi = bin < 0 ? me->n : lo + per_bin;
    for (int k = 0; k < 2; k++) {
        double sx = 0, sy = 0, sxx = 0, sxy = 0, se = 0;
        int64_t n = 0;
        for (int64_t i = lo; i < hi; i++) {
            if (me->fail[i])
                continue;
            double x = t[nc * i + k], y = corrected(me, i, k, per_bin, cal);
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
            se += (y - x) * (y - x);
            n++;
        }
        s.n = n;
        s.failed = (hi - lo) - n;
        if (n < 3)
            continue;
        double mx = sx / n, my = sy / n, vxx = sxx / n - mx * mx, vxy = sxy / n - mx * my;
        double slope = vxy / vxx, icpt = my - slope * mx;
        double res = 0;
        for (int64_t i = lo; i < hi; i++) {
            if (me->fail[i])
                continue;
            double x = t[nc * i + k], y = corrected(me, i, k, per_bin, cal);
            double r = y - (slope * x + icpt);
            res += r * r;
        }
        double s2 = res / (double)(n - 2);
        s.rmse[k] = sqrt(se / n);
        s.m[k] = slope - 1;
        s.c[k] = icpt;
        s.dm[k] = sqrt(s2 / (vxx * n));
        s.dc[k] = sqrt(s2 * (1.0 / n + mx * mx / (vxx * n)));
    }
    return s;
}

double demo_pooled_rmse(const demo_stats *s)
{
    return sqrt(0.5 * (s->rmse[0] * s->rmse[0] + s->rmse[1] * s->rmse[1]));
}

bool demo_beats(const demo_stats *a, const demo_stats *b)
{
    return a->rmse[0] < b->rmse[0] && a->rmse[1] < b->rmse[1];
}

void demo_make_dirs(const char *path)
{
    char p[600];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0777);
            *s = '/';
        }
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: error: cannot create %s: %s\n", demo_name, p, strerror(errno));
        exit(1);
    }
}
