/* cmd_explain.c - deepsky explain MODEL --weights W --data X --method M -o OUT: attribution
 * maps, filters, feature maps and class visualizations (the ds_explain_* API), written as
 * .npy or FITS (keeping a FITS image input's header) with an optional PNG figure. */
#include "cli.h"
#include "explain_figures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum {
    M_FILTERS, M_FEATURES, M_OCCLUSION, M_SALIENCY, M_GXI, M_IG, M_SMOOTH, M_GRADCAM, M_CLASSVIZ,
    M_COUNT
} method;
static const char *const method_names[M_COUNT] = {
    "filters", "feature-maps", "occlusion", "saliency", "gradient-x-input",
    "integrated-gradients", "smoothgrad", "grad-cam", "class-visualization"};
static const char *const baseline_names[] = {"zero", "mean", "blur"};
static const char *const rule_names[] = {"midpoint", "piecewise", "trapezoid", "gauss-legendre",
                                         "left"};

/* Whether path ends with ext (any case). */
static bool ends_with(const char *path, const char *ext)
{
    size_t n = strlen(path), k = strlen(ext);
    return n > k && !strcasecmp(path + n - k, ext);
}

static bool is_fits(const char *p)
{
    return ends_with(p, ".fits") || ends_with(p, ".fit") || ends_with(p, ".fts");
}

/* A comma-separated list of non-negative integers (at most cap); -1 after a usage error. */
static int int_list(const cli_cmd *c, const char *opt, int64_t *out, int cap)
{
    const char *v = cli_get(c, opt), *p = v;
    int n = 0;
    while (p && *p) {
        char *end;
        long long k = strtoll(p, &end, 10);
        if (end == p || k < 0 || (*end && *end != ',') || n == cap) {
            cli_usage_error(c, "--%s %s: a comma-separated list of up to %d numbers >= 0 "
                            "expected", opt, v, cap);
            return -1;
        }
        out[n++] = k;
        p = *end ? end + 1 : end;
    }
    return n;
}

typedef struct {
    method m;
    ds_explain_opts o;
    int64_t index[256], target[256];
    int n_index, n_target;
    const char *out, *figure;
    ds_feed others;          /* every data input's selected rows (owned) */
    const cli_item *item;    /* the explained input's file */
} job;

/* The options into j; 0, or 2 after a usage error. */
static int read_options(const cli_cmd *c, job *j)
{
    const char *m = cli_get(c, "method");
    long v[8];
    double d[5];
    int k = 0;
    while (k < M_COUNT && strcmp(m, method_names[k]))
        k++;
    if (k == M_COUNT)
        return cli_usage_error(c, "--method %s: one of filters, feature-maps, occlusion, "
                               "saliency, gradient-x-input, integrated-gradients, smoothgrad, "
                               "grad-cam, class-visualization", m);
    j->m = (method)k;
    const char *b = cli_get(c, "baseline");
    int bl = 0;
    while (b && bl < 3 && strcmp(b, baseline_names[bl]))
        bl++;
    if (bl == 3)
        return cli_usage_error(c, "--baseline %s: zero, mean or blur", b);
    const char *ru = cli_get(c, "rule");
    int rl = 0;
    while (ru && rl < 5 && strcmp(ru, rule_names[rl]))
        rl++;
    if (rl == 5)
        return cli_usage_error(c, "--rule %s: midpoint, piecewise, trapezoid, gauss-legendre "
                               "or left", ru);
    if (!cli_long(c, "steps", 1, 100000, 0, &v[0]) || !cli_long(c, "samples", 1, 100000, 0, &v[1]) ||
        !cli_long(c, "patch", 1, 4096, 0, &v[2]) || !cli_long(c, "stride", 1, 4096, 0, &v[3]) ||
        !cli_long(c, "jitter", 0, 4096, 0, &v[4]) || !cli_long(c, "seed", 0, 0x7fffffffL, 0, &v[5]) ||
        !cli_long(c, "batch-size", 1, 1L << 20, 0, &v[6]) ||
        !cli_long(c, "output-index", 0, DS_FEED_MAX - 1, 0, &v[7]) ||
        !cli_double(c, "noise", 0, 10, 0, &d[0]) || !cli_double(c, "lr", 0, 1e6, 0, &d[1]) ||
        !cli_double(c, "l2", 0, 1e6, 0, &d[2]) || !cli_double(c, "tv", 0, 1e6, 0, &d[3]) ||
        !cli_double(c, "blur", 0, 1e4, 0, &d[4]))
        return 2;
    j->o = (ds_explain_opts){.output = (int)v[7], .target = DS_EXPLAIN_PREDICTED,
                             .batch = v[6], .layer = cli_get(c, "layer"),
                             .baseline = (ds_explain_baseline)bl, .blur = d[4],
                             .steps = (int)v[0], .samples = (int)v[1], .noise = d[0],
                             .seed = (uint64_t)v[5], .patch = (int)v[2], .stride = (int)v[3],
                             .lr = d[1], .l2 = d[2], .tv = d[3], .jitter = (int)v[4],
                             .ig_rule = (ds_explain_ig_rule)rl, .input = cli_get(c, "input")};
    if ((j->n_index = int_list(c, "index", j->index, 256)) < 0 ||
        (j->n_target = int_list(c, "target", j->target, 256)) < 0)
        return 2;
    if (j->n_target > 1 && j->m != M_CLASSVIZ)
        return cli_usage_error(c, "--target: one value (several only for class-visualization)");
    if (j->n_target == 1)
        j->o.target = j->target[0];
    if (j->m == M_FEATURES && !j->o.layer)
        return cli_usage_error(c, "--method feature-maps needs --layer NAME");
    if (j->m == M_CLASSVIZ && !j->n_target)
        return cli_usage_error(c, "--method class-visualization needs --target K[,K...] "
                               "(classes, or channels of --layer)");
    return 0;
}

/* Rows index[] of x (all when n_index is 0) in a new tensor; NULL after printing. */
static ds_tensor *select_rows(const ds_tensor *x, const job *j, const char *src)
{
    int64_t N = ds_tensor_shape(x)[0], per = ds_tensor_numel(x) / (N ? N : 1);
    int64_t n = j->n_index ? j->n_index : N;
    for (int i = 0; i < j->n_index; i++)
        if (j->index[i] >= N) {
            fprintf(stderr, "deepsky: error: --index %lld: %s holds %lld %s (0..%lld)\n",
                    (long long)j->index[i], src, (long long)N, cli_plural(N, "sample", "samples"),
                    (long long)N - 1);
            return NULL;
        }
    int64_t shape[DS_MAX_DIMS];
    memcpy(shape, ds_tensor_shape(x), sizeof shape);
    shape[0] = n;
    ds_tensor *t = ds_tensor_create(ds_tensor_ndim(x), shape);
    for (int64_t i = 0; t && i < n; i++)
        memcpy(ds_tensor_data(t) + i * per,
               ds_tensor_data((ds_tensor *)x) + (j->n_index ? j->index[i] : i) * per,
               (size_t)per * sizeof(float));
    if (!t)
        fprintf(stderr, "deepsky: error: out of memory for %lld samples\n", (long long)n);
    return t;
}

/* The map to -o: FITS with the data's header when the data is a FITS image of the map's
 * shape (so it overlays the image), else .npy or plain FITS. 0 or 1 (printed). */
static int write_map(const cli_data *d, const cli_item *in, const ds_tensor *map,
                     const char *path)
{
    char shape[96];
    ds_shape_str(ds_tensor_ndim(map), ds_tensor_shape(map), shape, sizeof shape);
    in = d ? in : NULL;
    if (in && in->fits_image && is_fits(path) &&
        ds_tensor_numel(map) == ds_tensor_numel(in->t)) {
        ds_read_opts ro = {.hdu = d->ro.hdu, .hdu_name = d->ro.hdu_name};
        int64_t hw = in->shape0[in->ndim0 - 1] * (in->ndim0 > 1 ? in->shape0[in->ndim0 - 2] : 1);
        if (ds_tensor_numel(map) % hw == 0) {
            char *hdr = ds_fits_header(in->path, &ro);
            ds_tensor *t = hdr ? ds_tensor_from(in->ndim0, in->shape0,
                                                ds_tensor_data((ds_tensor *)map)) : NULL;
            int rc = !t || ds_fits_save_image(t, path, hdr) ? cli_fail() : 0;
            if (!rc)
                printf("wrote %s %s with the header of %s (WCS included)\n", path, shape,
                       in->path);
            ds_tensor_free(t);
            free(hdr);
            return rc;
        }
    }
    if (ds_array_save(map, path, NULL))
        return cli_fail();
    printf("wrote %s %s\n", path, shape);
    return 0;
}

static int figure_done(const char *path, int st)
{
    if (st)
        return cli_fail();
    if (path)
        printf("wrote %s\n", path);
    return 0;
}

/* The attribution methods. */
static int attribute(ds_net *n, const cli_data *d, const ds_tensor *x, job *j)
{
    typedef ds_status (*fn)(ds_net *, const ds_tensor *, const ds_explain_opts *,
                            ds_explain_result *);
    static const fn fns[M_COUNT] = {
        [M_OCCLUSION] = ds_explain_occlusion, [M_SALIENCY] = ds_explain_saliency,
        [M_GXI] = ds_explain_gradient_x_input, [M_IG] = ds_explain_integrated_gradients,
        [M_SMOOTH] = ds_explain_smoothgrad, [M_GRADCAM] = ds_explain_grad_cam};
    ds_explain_result r;
    if (fns[j->m](n, x, &j->o, &r))
        return cli_fail();
    int64_t N = ds_tensor_shape(x)[0];
    for (int64_t i = 0; i < N && i < 16; i++)
        printf("sample %lld: value %lld explained, %.6g\n",
               (long long)(j->n_index ? j->index[i] : i), (long long)r.target[i],
               ds_tensor_data(r.score)[i]);
    if (r.delta) {
        double mean = 0, worst = 0;
        for (int64_t i = 0; i < N; i++) {
            double dl = ds_tensor_data(r.delta)[i], sum = 0;
            int64_t per = ds_tensor_numel(r.map) / N;
            for (int64_t q = 0; q < per; q++)
                sum += ds_tensor_data(r.map)[i * per + q];
            double rel = sum - dl != 0 ? fabs(dl) / fabs(sum - dl) : fabs(dl);
            mean += rel / (double)N;
            worst = rel > worst ? rel : worst;
        }
        printf("completeness: |sum(map) - (f(x) - f(baseline))| / |f(x) - f(baseline)|: mean "
               "%.3g, largest %.3g (%d steps)\n", mean, worst, j->o.steps ? j->o.steps : 64);
    }
    int rc = write_map(j->n_index ? NULL : d, j->item, r.map, j->out);
    if (!rc && j->figure) {
        bool sgn = j->m == M_GXI || j->m == M_IG || j->m == M_OCCLUSION;
        int64_t idx[10];
        for (int64_t i = 0; i < 10 && i < N; i++)
            idx[i] = j->n_index ? j->index[i] : i;
        rc = figure_done(j->figure, xfig_attribution(j->figure, method_names[j->m], x, r.map,
                                                     sgn, idx, r.target,
                                                     ds_tensor_data(r.score)));
    }
    ds_explain_result_free(&r);
    return rc;
}

static int filters(ds_net *n, job *j)
{
    ds_tensor *t;
    if (ds_explain_filters(n, j->o.layer, &t))
        return cli_fail();
    int rc = write_map(NULL, NULL, t, j->out);
    char title[128];
    snprintf(title, sizeof title, "filters of %s (one scale)", j->o.layer ? j->o.layer
                                                                          : "the first layer");
    if (!rc && j->figure)
        rc = figure_done(j->figure, xfig_mosaic(j->figure, title, t, true));
    ds_tensor_free(t);
    return rc;
}

static int features(ds_net *n, const cli_data *d, const ds_tensor *x, job *j)
{
    ds_tensor *t;
    if (ds_explain_feature_maps(n, x, &j->o, &t))
        return cli_fail();
    (void)d;
    int rc = write_map(NULL, NULL, t, j->out);
    if (!rc && j->figure) {   /* the first sample's channels */
        const int64_t *s = ds_tensor_shape(t);
        int64_t one[DS_MAX_DIMS];
        memcpy(one, s, sizeof one);
        one[0] = 1;
        ds_tensor *f = ds_tensor_from(ds_tensor_ndim(t), one, ds_tensor_data(t));
        if (f && ds_tensor_ndim(f) >= 3) {   /* [1, C, ...] -> [C, 1, ...]: a tile per channel */
            int64_t sh[DS_MAX_DIMS];
            memcpy(sh, one, sizeof sh);
            sh[0] = one[1];
            sh[1] = 1;
            ds_tensor_reshape(f, ds_tensor_ndim(f), sh);
        }
        char title[128];
        snprintf(title, sizeof title, "feature maps of %s, sample %lld (one scale)", j->o.layer,
                 (long long)(j->n_index ? j->index[0] : 0));
        rc = f ? figure_done(j->figure, xfig_mosaic(j->figure, title, f, false)) : cli_fail();
        ds_tensor_free(f);
    }
    ds_tensor_free(t);
    return rc;
}

static int classviz(ds_net *n, const ds_tensor *x, job *j)
{
    ds_tensor *img, *sc;
    if (x && ds_tensor_shape(x)[0] != j->n_target) {
        fprintf(stderr, "deepsky: error: class-visualization: %lld start images (--data, "
                "--index) for %d targets: give one per target, or no --data to start from "
                "noise\n", (long long)ds_tensor_shape(x)[0], j->n_target);
        return 1;
    }
    if (ds_explain_class_visualization(n, j->n_target, j->target, x, &j->o, &img, &sc))
        return cli_fail();
    int64_t steps = ds_tensor_shape(sc)[1] - 1;
    ds_tensor *p = NULL;   /* a class's image as the net classifies it (one input, output 0) */
    if (!j->o.layer && j->o.output == 0 && ds_net_input_count(n) == 1 &&
        ds_net_predict(n, img, j->o.batch ? j->o.batch : 32, &p))
        p = NULL;
    int64_t K = p ? ds_tensor_numel(p) / j->n_target : 0;
    for (int i = 0; i < j->n_target; i++) {
        printf("target %lld: score %.6g -> %.6g after %lld steps", (long long)j->target[i],
               ds_tensor_data(sc)[i * (steps + 1)], ds_tensor_data(sc)[i * (steps + 1) + steps],
               (long long)steps);
        if (K > 1) {
            const float *v = ds_tensor_data(p) + i * K;
            int64_t best = 0;
            for (int64_t k = 1; k < K; k++)
                best = v[k] > v[best] ? k : best;
            printf("; the image is classified as %lld (output %.4g; target's %.4g)",
                   (long long)best, v[best], j->target[i] < K ? v[j->target[i]] : NAN);
        }
        printf("\n");
    }
    ds_tensor_free(p);
    int rc = write_map(NULL, NULL, img, j->out);
    if (!rc && j->figure)
        rc = figure_done(j->figure, xfig_images(j->figure, j->o.layer ? "channel visualization"
                                                : "class visualization", img, j->target,
                                                ds_tensor_data(sc), steps));
    ds_tensor_free(img);
    ds_tensor_free(sc);
    return rc;
}

/* Loads the data (when given), preprocessed, rows --index of every input: *x the explained
 * input's (--input, else the first), j->others all of them; 0, 1 or 2 (printed). */
static int load_data(const cli_cmd *c, ds_net *n, cli_data *d, job *j, ds_tensor **x)
{
    ds_feed f;
    int rc;
    *x = NULL;
    if (!cli_has(c, "data"))
        return 0;
    if ((rc = cli_load_set(c, "data", NULL, d)) || (rc = cli_feed(n, d, &f)))
        return rc;
    if (ds_net_check_feed(n, &f) || ds_net_preprocess_feed(n, &f))
        return cli_fail();
    const char *want = j->o.input ? j->o.input : ds_net_input_name(n, 0);
    for (int i = 0; i < d->nx; i++) {
        ds_tensor *t = select_rows(f.inputs[i].data, j, d->x[i].path);
        if (!t)
            return 1;
        j->others.inputs[i] = (ds_feed_item){ds_net_input_name(n, 0), t, d->x[i].path};
        for (int k = 0; d->x[i].name[0] && k < ds_net_input_count(n); k++)
            if (!strcmp(d->x[i].name, ds_net_input_name(n, k)))
                j->others.inputs[i].name = ds_net_input_name(n, k);
        if (!strcmp(j->others.inputs[i].name, want)) {
            *x = t;
            j->item = &d->x[i];
        }
    }
    j->o.others = &j->others;
    char list[256] = "";
    bool known = false;
    for (int k = 0, len = 0; k < ds_net_input_count(n) && len < 200; k++) {
        len += snprintf(list + len, sizeof list - (size_t)len, "%s%s", k ? ", " : "",
                        ds_net_input_name(n, k));
        known |= !strcmp(want, ds_net_input_name(n, k));
    }
    if (!known) {
        fprintf(stderr, "deepsky: error: %s: --input %s: no such input (its inputs: %s)\n",
                c->positional[0], want, list);
        return 1;
    }
    if (!*x && j->m != M_CLASSVIZ) {
        fprintf(stderr, "deepsky: error: --input %s: no --data %s=FILE to explain (the model's "
                "inputs: %s)\n", want, want, list);
        return 1;
    }
    return 0;
}

int cmd_explain(int argc, char **argv)
{
    cli_opt opts[] = {
        CLI_OPT("weights", 0, "W", "trained weights (required)"),
        CLI_OPTS("data", 0, "X", "data (.npy, .fits, .csv or IDX): required but for filters; "
                 "class-visualization: start images (default: noise); NAME=X for each input "
                 "of a model with several (repeat the option)"),
        CLI_OPT("input", 0, "NAME", "the input explained, of a model with several (default: "
                "the first); the others are fed from their --data NAME=X"),
        CLI_OPTS("columns", 0, "COLS", "table data: feature columns"),
        CLI_OPT("hdu", 0, "N", "FITS: HDU number, 1 = primary, or EXTNAME (default: first with "
                "data)"),
        CLI_READ_OPTS,
        CLI_OPT("method", 'm', "M", "filters, feature-maps, occlusion, saliency, "
                "gradient-x-input, integrated-gradients, smoothgrad, grad-cam or "
                "class-visualization (required)"),
        CLI_OPT("index", 0, "I,J,...", "the samples of X explained (0-based; default: all)"),
        CLI_OPT("output-index", 0, "K", "the model's output explained (default 0: the first)"),
        CLI_OPT("target", 0, "K", "the output's value (class) explained (default: the "
                "predicted class, or the only value); class-visualization: K,K,... classes, or "
                "channels of --layer"),
        CLI_OPT("layer", 0, "NAME", "grad-cam (default: the last convolution), feature-maps "
                "(required), filters (default: the first convolution), class-visualization "
                "(maximize a channel's mean)"),
        CLI_OPT("steps", 0, "S", "integrated-gradients steps (default 64); class-visualization "
                "ascent steps (default 100)"),
        CLI_OPT("baseline", 0, "B", "integrated-gradients and occlusion: zero (default), mean "
                "(each channel's) or blur"),
        CLI_OPT("rule", 0, "R", "integrated-gradients quadrature: midpoint (default), "
                "piecewise (node weights ending at the kinks of f along the path), trapezoid, "
                "gauss-legendre or left"),
        CLI_OPT("blur", 0, "SIGMA", "--baseline blur: Gaussian sigma in pixels (default: the "
                "larger side / 8)"),
        CLI_OPT("samples", 0, "S", "smoothgrad: noisy copies (default 25)"),
        CLI_OPT("noise", 0, "F", "smoothgrad: noise sigma / (max - min) of the sample (default "
                "0.15)"),
        CLI_OPT("patch", 0, "P", "occlusion: patch side in pixels (default: side / 4, at most 8)"),
        CLI_OPT("stride", 0, "S", "occlusion: stride in pixels (default: patch / 2)"),
        CLI_OPT("lr", 0, "F", "class-visualization: step per pixel, input units (default 0.05)"),
        CLI_OPT("l2", 0, "F", "class-visualization: L2 penalty (default 0)"),
        CLI_OPT("tv", 0, "F", "class-visualization: total-variation penalty (default 0)"),
        CLI_OPT("jitter", 0, "J", "class-visualization: random shift of up to J pixels per step "
                "(default 0)"),
        CLI_OPT("seed", 0, "S", "smoothgrad noise, class-visualization start and jitter "
                "(default 0)"),
        CLI_OPT("batch-size", 0, "B", "rows per pass: samples, steps, noisy copies or patches "
                "(default: the model's batch size)"),
        CLI_OPT("threads", 0, "N", "threads (default: all cores)"),
        CLI_OPT("figure", 0, "F.png", "also a PNG figure: input, map and overlay with colour "
                "bars (first 10 samples); filters and feature maps as a mosaic on one scale"),
        CLI_OPT("output", 'o', "OUT", "the map: .npy or .fits (a FITS image input's header, WCS "
                "included, is kept when the map has its shape) (required)"),
    };
    cli_cmd c = {"explain", "MODEL --weights W --data X --method M [--index I,J] -o OUT.npy",
                 "Looks inside a trained network: attribution maps of samples of X (saliency, "
                 "gradient-x-input, integrated-gradients, smoothgrad, occlusion, grad-cam), "
                 "the filters, a layer's feature maps, or a class visualization. Data is "
                 "preprocessed as stored with the weights; maps are of the preprocessed input.",
                 opts, (int)(sizeof opts / sizeof opts[0]), {0}, 0, 1, 1};
    int rc = cli_parse(&c, argc, argv);
    if (rc)
        return rc;
    if (!cli_threads(&c))
        return 2;
    if (!cli_has(&c, "weights") || !cli_has(&c, "method") || !cli_has(&c, "output"))
        return cli_usage_error(&c, "--weights W, --method M and -o OUT are required");
    job j = {.out = cli_get(&c, "output"), .figure = cli_get(&c, "figure")};
    if ((rc = read_options(&c, &j)))
        return rc;
    if (!cli_has(&c, "data") && j.m != M_FILTERS && j.m != M_CLASSVIZ)
        return cli_usage_error(&c, "--method %s needs --data X", method_names[j.m]);
    if (!ends_with(j.out, ".npy") && !is_fits(j.out))
        return cli_usage_error(&c, "-o %s: the map is written as .npy or .fits", j.out);
    if (j.figure && (rc = cli_output_ext(&c, "--figure", j.figure, ".png", "figures")))
        return rc;
    if (cli_stop_here(&c))
        return 0;
    cli_files files = {0};
    cli_files_input(&files, "the model file", c.positional[0]);
    cli_files_input(&files, "--weights", cli_get(&c, "weights"));
    cli_files_inputs(&files, &c, "data");
    cli_files_output(&files, "-o", j.out);
    cli_files_output(&files, "--figure", j.figure);
    if ((rc = cli_files_check(&c, &files)))
        return rc;
    cli_data d = {0};
    ds_net *n = NULL;
    ds_tensor *x = NULL;
    long batch;
    if (!cli_long(&c, "batch-size", 1, 1L << 20, 32, &batch))
        return 2;
    if ((rc = cli_load_net(c.positional[0], cli_get(&c, "weights"), batch, 0, NULL, &n)) ||
        (rc = load_data(&c, n, &d, &j, &x)))
        goto done;
    cli_weights_note(cli_get(&c, "weights"), n);
    if (j.m == M_FILTERS)
        rc = filters(n, &j);
    else if (j.m == M_FEATURES)
        rc = features(n, &d, x, &j);
    else if (j.m == M_CLASSVIZ)
        rc = classviz(n, x, &j);
    else
        rc = attribute(n, &d, x, &j);
done:
    for (int i = 0; i < DS_FEED_MAX && j.others.inputs[i].data; i++)
        ds_tensor_free(j.others.inputs[i].data);
    cli_data_free(&d);
    ds_net_free(n);
    return rc;
}
