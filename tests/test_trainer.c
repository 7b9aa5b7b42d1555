/* test_trainer.c - the train step and its hook: K micro-batches of B give the weights of one
 * batch of K*B (trainer and ds_net_fit's accumulate, mean and sum losses, a last step of
 * unequal micro-batches); the gradient hook sees and may change every gradient before the
 * update; clipping by global norm acts on the accumulated gradient after the hook; mixed
 * reductions refuse accumulation; a NaN names the step. */
#include "test.h"

/* Convolution and dense layers, no dropout and no batch norm. */
static const char *const cnn =
    "input shape=1x8x8\n"
    "conv2d filters=4 kernel=3 padding=same activation=relu\n"
    "flatten\n"
    "dense units=8 activation=tanh\n"
    "dense units=2\n"
    "loss mse%s\n"
    "optimizer sgd momentum=0.9%s\n";

typedef struct {
    ds_tensor *x, *y;
    ds_feed f;
} dataset;

static int make_data(dataset *d, int64_t n)
{
    d->x = ds_tensor_create(4, (int64_t[]){n, 1, 8, 8});
    d->y = ds_tensor_create(2, (int64_t[]){n, 2});
    if (!d->x || !d->y)
        return 0;
    ds_rng r;
    ds_rng_seed(&r, 17);
    fill_uniform(ds_tensor_data(d->x), ds_tensor_numel(d->x), -1, 1, &r);
    fill_uniform(ds_tensor_data(d->y), ds_tensor_numel(d->y), -1, 1, &r);
    d->f = (ds_feed){.inputs = {{NULL, d->x}}, .labels = {{NULL, d->y}}};
    return 1;
}

static void free_data(dataset *d)
{
    ds_tensor_free(d->x);
    ds_tensor_free(d->y);
}

static ds_net *make_net(int64_t batch, const char *loss_opts, const char *optim_opts)
{
    char text[1024];
    snprintf(text, sizeof text, cnn, loss_opts, optim_opts);
    ds_net *n = NULL;
    ds_net_opts no = {.batch = batch, .seed = 9};
    return ds_net_parse(text, "cnn.model", &no, &n) == DS_OK ? n : NULL;
}

/* The largest |a - b| over the largest |a|, over every weight. */
static double rel_diff(ds_net *a, ds_net *b)
{
    const float *wa = ds_model_data(ds_net_model(a)), *wb = ds_model_data(ds_net_model(b));
    int64_t n = ds_model_numel(ds_net_model(a), 0);
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)wa[i] - wb[i]));
        m = fmax(m, fabs((double)wa[i]));
    }
    return d / m;
}

/* steps optimizer steps over the rows of a fixed order, each of `samples` samples, with
 * passes of micro samples (0: one pass). */
static ds_status run_steps(ds_net *n, const dataset *d, int steps, int64_t samples,
                           int64_t micro, ds_trainer_opts *to)
{
    ds_trainer_opts def = {0};
    to = to ? to : &def;
    to->micro_batch = micro;
    ds_trainer *t = NULL;
    ds_status st = ds_trainer_create(n, to, &t);
    static const int64_t order[] = {5, 17, 2, 30, 11, 0, 23, 8, 14, 29, 1, 20, 7, 26, 3, 12,
                                    19, 9, 31, 4, 16, 24, 10, 27, 6, 13, 21, 28, 15, 22, 18, 25};
    for (int s = 0; s < steps && !st; s++)
        st = ds_trainer_step(t, &d->f, order + (s * samples) % (33 - samples), samples, NULL);
    ds_trainer_free(t);
    return st;
}

TEST(trainer_micro_batches_equal_one_big_batch)
{
    dataset d;
    CHECK(make_data(&d, 32));
    /* a sum over 16 samples and 2 outputs: the mean's learning rate / 32 */
    const char *losses[] = {"", " reduction=sum"}, *lrs[] = {" lr=0.05", " lr=0.0015"};
    double worst = 0;
    for (int k = 0; k < 2; k++) {
        ds_net *big = make_net(16, losses[k], lrs[k]), *small = make_net(4, losses[k], lrs[k]);
        CHECK(big && small);
        CHECK(run_steps(big, &d, 4, 16, 0, NULL) == DS_OK);     /* one batch of 16 */
        CHECK(run_steps(small, &d, 4, 16, 4, NULL) == DS_OK);   /* 4 micro-batches of 4 */
        double r = rel_diff(big, small);
        /* a step of 14 samples: micro-batches 4, 4, 4, 2 */
        CHECK(run_steps(big, &d, 2, 14, 0, NULL) == DS_OK);
        CHECK(run_steps(small, &d, 2, 14, 4, NULL) == DS_OK);
        double r2 = rel_diff(big, small);
        ds_net_free(big);
        ds_net_free(small);
        if (!(r < 1e-5) || !(r2 < 1e-5))
            FAIL("%s: weights differ by %.3g (4 micro-batches of 4) and %.3g (4, 4, 4, 2) of the "
                 "largest", k ? "sum" : "mean", r, r2);
        worst = fmax(worst, fmax(r, r2));
    }
    free_data(&d);
    snprintf(msg_, cap_, "largest relative difference %.2g", worst);
    return TEST_PASS;
}

static ds_status count_calls(void *ctx, const ds_step_info *s)
{
    int *calls = ctx;
    *calls += s->micro_batches;
    return DS_OK;
}

/* ds_net_fit with accumulate K and batch B against batch K*B: the same shuffled order (it
 * depends on the seed and the epoch only), the same weights. 60 samples: the last step of
 * each epoch has micro-batches 8, 8, 8, 4. */
TEST(fit_accumulate_equals_the_larger_batch)
{
    dataset d;
    CHECK(make_data(&d, 60));
    ds_net *big = make_net(32, "", " lr=0.05"), *small = make_net(8, "", " lr=0.05");
    CHECK(big && small);
    ds_fit_opts fo = {.epochs = 3, .batch_size = 32, .seed = 4};
    ds_fit_result ra, rb;
    CHECK(ds_net_fit(big, d.x, d.y, NULL, NULL, &fo, &ra) == DS_OK);
    int passes = 0;
    fo.batch_size = 8;
    fo.accumulate = 4;
    fo.grad_hook = count_calls;
    fo.grad_ctx = &passes;
    CHECK(ds_net_fit(small, d.x, d.y, NULL, NULL, &fo, &rb) == DS_OK);
    CHECK(passes == 3 * 8);   /* per epoch: steps of 4 and 4 passes (8, 8, 8, 4) */
    double r = rel_diff(big, small);
    ds_net_free(big);
    ds_net_free(small);
    free_data(&d);
    if (!(r < 1e-5) || !(fabs(ra.final_loss - rb.final_loss) <= 1e-5 * fabs(ra.final_loss)))
        FAIL("weights differ by %.3g of the largest; final losses %.9g and %.9g", r,
             ra.final_loss, rb.final_loss);
    snprintf(msg_, cap_, "relative difference %.2g after 3 epochs", r);
    return TEST_PASS;
}

typedef struct {
    int calls;
    int64_t steps[8], samples[8];
    int micro[8];
    double norm;        /* the gradient norm the hook saw last */
    int zero;           /* zero every gradient */
    ds_status fail;     /* returned by the hook */
} hook_log;

static ds_status hook(void *ctx, const ds_step_info *s)
{
    hook_log *h = ctx;
    if (h->calls < 8) {
        h->steps[h->calls] = s->step;
        h->samples[h->calls] = s->samples;
        h->micro[h->calls] = s->micro_batches;
    }
    h->calls++;
    h->norm = ds_model_grad_norm(s->model);
    if (h->zero) {
        ds_model *m = s->model;
        for (int i = 0; i < ds_model_param_count(m); i++) {
            ds_param *p = ds_model_param(m, i);
            float *g = ds_param_grad(p);
            for (int64_t k = 0; g && k < ds_param_numel(p); k++)
                g[k] = 0;
        }
    }
    return h->fail;
}

TEST(trainer_gradient_hook_sees_and_changes_every_gradient)
{
    dataset d;
    CHECK(make_data(&d, 32));
    ds_net *n = make_net(4, "", " lr=0.05");
    CHECK(n);
    int64_t count = ds_model_numel(ds_net_model(n), 0);
    float *w0 = malloc((size_t)count * sizeof *w0);
    CHECK(w0);
    memcpy(w0, ds_model_data(ds_net_model(n)), (size_t)count * sizeof *w0);
    hook_log h = {.zero = 1};
    ds_trainer_opts to = {.grad_hook = hook, .grad_ctx = &h};
    CHECK(run_steps(n, &d, 3, 12, 4, &to) == DS_OK);
    int same = !memcmp(w0, ds_model_data(ds_net_model(n)), (size_t)count * sizeof *w0);
    CHECK(h.calls == 3 && h.steps[0] == 0 && h.steps[2] == 2);
    CHECK(h.micro[1] == 3 && h.samples[1] == 12);
    CHECK(h.norm > 0);
    CHECK(same);   /* zeroed gradients: SGD moves nothing */
    /* a hook that fails stops the step before the update, and says so */
    h = (hook_log){.fail = DS_ERR_IO};
    CHECK(run_steps(n, &d, 2, 8, 0, &to) == DS_ERR_IO);
    CHECK(strstr(ds_last_error(), "step 1: the gradient hook returned"));   /* a new trainer */
    CHECK(!memcmp(w0, ds_model_data(ds_net_model(n)), (size_t)count * sizeof *w0));
    free(w0);
    ds_net_free(n);
    free_data(&d);
    return TEST_PASS;
}

/* Clipping acts on the whole step's gradient, after the hook: the hook sees it unclipped,
 * and micro-batches clip as one batch does. */
TEST(trainer_clips_the_accumulated_gradient_after_the_hook)
{
    dataset d;
    CHECK(make_data(&d, 32));
    ds_net *big = make_net(16, "", " lr=0.05 clipnorm=0.01");
    ds_net *small = make_net(4, "", " lr=0.05 clipnorm=0.01");
    CHECK(big && small);
    hook_log h = {0};
    ds_trainer_opts to = {.grad_hook = hook, .grad_ctx = &h};
    CHECK(run_steps(big, &d, 3, 16, 0, &to) == DS_OK);
    double seen = h.norm;
    CHECK(run_steps(small, &d, 3, 16, 4, NULL) == DS_OK);
    double r = rel_diff(big, small);
    ds_net_free(big);
    ds_net_free(small);
    free_data(&d);
    if (!(seen > 0.1) || !(r < 1e-5))
        FAIL("the hook saw a gradient norm of %.3g (clip 0.01); weights differ by %.3g", seen, r);
    snprintf(msg_, cap_, "hook saw norm %.3g; relative difference %.2g", seen, r);
    return TEST_PASS;
}

TEST(trainer_refuses_accumulation_over_mixed_reductions)
{
    ds_net *n = NULL;
    CHECK(ds_net_parse("input shape=2\ndense name=a units=1\ndense name=b units=1 inputs=a\n"
                       "loss mse output=a\nloss mae output=b reduction=sum\n", "mix.model", NULL,
                       &n) == DS_OK);
    ds_trainer *t = NULL;
    CHECK(ds_trainer_create(n, &(ds_trainer_opts){.micro_batch = 4}, &t) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "same reduction"));
    CHECK(ds_trainer_create(n, NULL, &t) == DS_OK);   /* one pass per step is fine */
    ds_trainer_free(t);
    ds_net_free(n);
    return TEST_PASS;
}

TEST(trainer_names_the_step_of_a_nonfinite_loss)
{
    dataset d;
    CHECK(make_data(&d, 32));
    ds_tensor_data(d.y)[2 * 30] = INFINITY;   /* the labels of sample 30 */
    ds_net *n = make_net(4, "", " lr=0.05");
    CHECK(n);
    ds_trainer *t = NULL;
    CHECK(ds_trainer_create(n, NULL, &t) == DS_OK);
    ds_step_result r;
    static const int64_t rows[] = {0, 1, 2, 3, 28, 29, 30, 31};
    CHECK(ds_trainer_step(t, &d.f, rows, 4, &r) == DS_OK && !r.nonfinite);
    CHECK(ds_trainer_step(t, &d.f, rows + 4, 4, &r) == DS_ERR_VALUE);
    CHECK(r.nonfinite == 1 && strstr(ds_last_error(), "at step 2"));
    CHECK(ds_trainer_steps(t) == 1);
    CHECK(ds_trainer_step(t, &d.f, NULL, 40, &r) == DS_ERR_ARG);   /* more rows than data */
    CHECK(strstr(ds_last_error(), "40 samples of 32"));
    ds_trainer_free(t);
    ds_net_free(n);
    free_data(&d);
    return TEST_PASS;
}

/* A step runs in training mode and gives the graph its mode back: a predict after it has
 * dropout off, as before the step, and gives the same outputs twice. */
TEST(trainer_step_restores_the_graph_mode)
{
    dataset d;
    CHECK(make_data(&d, 8));
    ds_net *n = NULL;
    CHECK(ds_net_parse("input shape=1x8x8\nflatten\ndense units=16 activation=relu\n"
                       "dropout rate=0.5\ndense units=2\nloss mse\noptimizer sgd lr=0.01\n",
                       "drop.model", &(ds_net_opts){.batch = 4, .seed = 3}, &n) == DS_OK);
    ds_graph *g = ds_net_graph(n);
    CHECK(ds_graph_mode(g) == DS_MODE_EVAL);
    ds_trainer *t = NULL;
    CHECK(ds_trainer_create(n, NULL, &t) == DS_OK);
    CHECK(ds_trainer_step(t, &d.f, NULL, 4, NULL) == DS_OK);
    CHECK(ds_graph_mode(g) == DS_MODE_EVAL);
    ds_tensor *a = NULL, *b = NULL;
    CHECK(ds_net_predict(n, d.x, 4, &a) == DS_OK && ds_net_predict(n, d.x, 4, &b) == DS_OK);
    CHECK(memcmp(ds_tensor_data(a), ds_tensor_data(b), sizeof(float) * 16) == 0);
    ds_tensor_free(a);
    ds_tensor_free(b);
    ds_graph_set_mode(g, DS_MODE_MC_DROPOUT);   /* a mode the user chose is kept too */
    CHECK(ds_trainer_step(t, &d.f, NULL, 4, NULL) == DS_OK);
    CHECK(ds_graph_mode(g) == DS_MODE_MC_DROPOUT);
    ds_trainer_free(t);
    ds_net_free(n);
    free_data(&d);
    return TEST_PASS;
}
