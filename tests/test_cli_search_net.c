/* test_cli_search_net.c - deepsky search and curve for a network: on a linear regression
 * trained by full-batch gradient descent for a fixed number of epochs (too small a learning
 * rate underfits, above 2 / the Hessian's largest eigenvalue it diverges), random search
 * finds the best rate of a fine grid (trained here through the library) within a factor 3,
 * successive halving a rate within 10% of it with under half the epochs; a killed search resumes to
 * the table of an uninterrupted one; the table is the same at 1 and 2 threads; bad
 * parameters and ranges are clear errors; --budget stops and a rerun goes on;
 * ds_net_text_set's rewriting; a learning curve. */
#include "test.h"
#include "spawn.h"

#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char dir[512];

static const char *toy_model = "# linear regression\n"
                               "input shape=3\n"
                               "dense units=1   # the fit\n"
                               "loss mse\n"
                               "optimizer sgd lr=0.01\n";

/* y = x w + 0.5 + noise 0.1, the features of standard deviations 1, 0.6 and 0.3: n rows. */
static void toy_data(int64_t n, uint64_t seed, ds_tensor **x, ds_tensor **y)
{
    int64_t sx[2] = {n, 3}, sy[2] = {n, 1};
    *x = ds_tensor_create(2, sx);
    *y = ds_tensor_create(2, sy);
    ds_rng r;
    ds_rng_seed(&r, seed);
    const double sd[3] = {1, 0.6, 0.3}, w[3] = {1, -2, 3};
    for (int64_t i = 0; *x && *y && i < n; i++) {
        double v = 0.5 + 0.1 * ds_rng_normal(&r);
        for (int j = 0; j < 3; j++) {
            double a = sd[j] * ds_rng_normal(&r);
            ds_tensor_data(*x)[i * 3 + j] = (float)a;
            v += w[j] * a;
        }
        ds_tensor_data(*y)[i] = (float)v;
    }
}

/* x, y (192 rows) and xv, yv (64) in d, and the model file m.model. */
static int write_toy(const char *d)
{
    ds_tensor *x, *y, *xv, *yv;
    toy_data(192, 1, &x, &y);
    toy_data(64, 2, &xv, &yv);
    int bad = !x || !y || !xv || !yv || ds_npy_save(x, test_at(d, "x.npy")) ||
              ds_npy_save(y, test_at(d, "y.npy")) || ds_npy_save(xv, test_at(d, "xv.npy")) ||
              ds_npy_save(yv, test_at(d, "yv.npy")) || test_write_in(d, "m.model", toy_model);
    ds_tensor_free(x), ds_tensor_free(y), ds_tensor_free(xv), ds_tensor_free(yv);
    return bad;
}

/* The best learning rate of a fine grid (41 rates from 0.01 to 3, log-spaced), trained
 * through the library as the search trains (32 epochs, full batches, seed 1): the lowest
 * best-epoch validation loss. */
static double grid_best_lr(void)
{
    ds_tensor *x, *y, *xv, *yv;
    toy_data(192, 1, &x, &y);
    toy_data(64, 2, &xv, &yv);
    double best = NAN, low = INFINITY;
    for (int i = 0; i <= 40; i++) {
        double lr = exp(log(0.01) + i / 40.0 * (log(3.0) - log(0.01)));
        char text[256];
        snprintf(text, sizeof text, "input shape=3\ndense units=1\nloss mse\noptimizer sgd "
                 "lr=%.6g\n", lr);
        ds_net_opts o = {.batch = 192, .seed = 1};
        ds_net *n = NULL;
        ds_fit_opts fo = {.epochs = 32, .batch_size = 192, .seed = 1};
        ds_fit_result r;
        if (!ds_net_parse(text, NULL, &o, &n) && !ds_net_fit(n, x, y, xv, yv, &fo, &r) &&
            r.best_val_loss < low) {
            low = r.best_val_loss;
            best = lr;
        }
        ds_net_free(n);
    }
    ds_tensor_free(x), ds_tensor_free(y), ds_tensor_free(xv), ds_tensor_free(yv);
    return best;
}

/* The learning rate in the output's "best: trial N, lr=V" line, or NAN. */
static double best_lr(const char *out, int *trial)
{
    const char *b = strstr(out, "best: trial ");
    double lr = NAN;
    if (!b || sscanf(b, "best: trial %d, lr=%lg", trial, &lr) != 2)
        return NAN;
    return lr;
}

static long epochs_trained(const char *out)
{
    const char *b = strstr(out, "epochs trained: ");
    return b ? strtol(b + 16, NULL, 10) : -1;
}

#define TOY_ARGS "%s/m.model --param lr=1e-3:3:log --data %s/x.npy --labels %s/y.npy " \
                 "--val %s/xv.npy --val-labels %s/yv.npy --epochs 32 --batch-size 192 "   \
                 "--trials 16 --seed 1"

TEST(cli_search_net_finds_the_best_learning_rate)
{
    const char *d = test_tmpdir(dir, sizeof dir, "snet");
    CHECK(d && !write_toy(d));
    double truth = grid_best_lr();
    CHECK(isfinite(truth));
    char plot[600] = "";   /* NO_PLOT: no figure */
    if (ds_has_feature("plot"))
        snprintf(plot, sizeof plot, "--plot %s/r.png", d);
    CHECK_RUN(0, "search " TOY_ARGS " -q -o %s/r.csv --best %s/best.model %s", d, d, d, d, d, d,
              d, plot);
    int tr = 0, th = 0;
    double lr = best_lr(cli_out, &tr);
    long er = epochs_trained(cli_out);
    if (!(lr > truth / 3 && lr < truth * 3))
        FAIL("random search's best lr %g, the grid's %g: not within a factor 3\n%s", lr, truth,
             cli_out);
    char *model = test_read_file(test_at(d, "best.model"), NULL);
    char want[64];
    snprintf(want, sizeof want, "optimizer sgd lr=%g\n", lr);
    bool ok = model && strstr(model, want) && strstr(model, "dense units=1   # the fit\n");
    free(model);
    CHECK(ok);
    CHECK(access(test_at(d, "best.safetensors"), R_OK) == 0);
    CHECK(!ds_has_feature("plot") || access(test_at(d, "r.png"), R_OK) == 0);
    /* halving on the same 16 draws: 2, 4, 8, 16, 32 epochs */
    CHECK_RUN(0, "search " TOY_ARGS " --strategy halving --eta 2 -q -o %s/h.csv", d, d, d, d, d,
              d);
    double lh = best_lr(cli_out, &th);
    long eh = epochs_trained(cli_out);
    /* the same best: the same rate within 10% (here the flat bottom's two neighbours) */
    if (!(lh > lr / 1.1 && lh < lr * 1.1) || eh < 1 || 2 * eh >= er)
        FAIL("halving: best trial %d (lr %g) after %ld epochs; random: trial %d (lr %g) after "
             "%ld\n%s", th, lh, eh, tr, lr, er, cli_out);
    snprintf(msg_, cap_, "best lr: grid %.3g, random %.3g (%ld epochs), halving %.3g (%ld "
             "epochs)", truth, lr, er, lh, eh);
    test_rm_rf(d);
    return TEST_PASS;
}

/* A search killed at random moments (checkpoints every epoch) and run again each time
 * ends with the table of an uninterrupted run, and the same best model. */
TEST(cli_search_net_resumes_after_kill)
{
    const char *d = test_tmpdir(dir, sizeof dir, "snetk");
    CHECK(d && !write_toy(d));
    char args[2048], sargs[1800];
    const char *common = "--param lr=0.01:1:log --epochs 8 --batch-size 8 --trials 6 "
                         "--checkpoint-every 0 --seed 3 -q";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_RUN(0, "search %s/m.model --data %s/x.npy --labels %s/y.npy --val-split 0.25 %s "
              "-o %s/full.csv", d, d, d, common, d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* kills at 5% to 30% of the uninterrupted run's time: the first three land before the
     * end, whatever the machine's speed */
    int ms = (int)((double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                   (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    snprintf(sargs, sizeof sargs, "search %s/m.model --data %s/x.npy --labels %s/y.npy "
             "--val-split 0.25 %s -o %s/part.csv", d, d, d, common, d);
    snprintf(args, sizeof args, "exec %s %s", cli_bin(), sargs);
    ds_rng r;
    ds_rng_seed(&r, 5);
    int killed = 0;
    for (int k = 0; k < 5; k++) {
        cli_proc p;
        CHECK(cli_start(&p, args, NULL) == 0);
        if (cli_poll(&p, ms / 20 + (int)ds_rng_below(&r, (uint64_t)ms / 4 + 1)) == CLI_ENDED) {
            if (cli_finish(&p, cli_out, sizeof cli_out) != 0)
                FAIL("run %d failed:\n%s", k + 1, cli_out);
        } else {
            killed += cli_kill(&p, cli_out, sizeof cli_out) == 128 + SIGKILL;
        }
    }
    CHECK_RUN(0, "%s", sargs);
    char *a = test_read_file(test_at(d, "full.csv"), NULL), *b = test_read_file(test_at(d,
                                                                                   "part.csv"),
                                                                           NULL);
    bool same = a && b && !strcmp(a, b);
    if (!same)
        FAIL("after %d kills the table differs:\n%s\n---\n%s", killed, a ? a : "(none)",
             b ? b : "(none)");
    free(a), free(b);
    CHECK(killed >= 2);
    /* another search into the same table is refused, naming what changed */
    CHECK_RUN(1, "search %s/m.model --data %s/x.npy --labels %s/y.npy --val-split 0.25 %s "
              "--param dense_1.units=1,2 -o %s/part.csv", d, d, d, common, d);
    CHECK_OUT("holds the trials of another search");
    snprintf(msg_, cap_, "%d of 5 runs killed, the resumed table identical", killed);
    test_rm_rf(d);
    return TEST_PASS;
}

TEST(cli_search_net_same_table_at_1_and_2_threads)
{
    const char *d = test_tmpdir(dir, sizeof dir, "snett");
    CHECK(d && !write_toy(d));
    CHECK(!test_write_in(d, "mlp.model", "input shape=3\ndense name=h units=16 activation=tanh\n"
                         "dropout rate=0.1\ndense units=1\nloss mse\noptimizer adam\n"));
    const char *args = "--param lr=1e-3:1e-1:log --param dropout=0,0.2 --param h.units=8,16 "
                       "--epochs 6 --batch-size 16 --trials 5 --val-split 0.2 --seed 2 -q";
    CHECK_RUN(0, "search %s/mlp.model --data %s/x.npy --labels %s/y.npy %s --threads 1 "
              "-o %s/t1.csv", d, d, d, args, d);
    CHECK_RUN(0, "search %s/mlp.model --data %s/x.npy --labels %s/y.npy %s --threads 2 "
              "-o %s/t2.csv", d, d, d, args, d);
    char *a = test_read_file(test_at(d, "t1.csv"), NULL), *b = test_read_file(test_at(d, "t2.csv"),
                                                                         NULL);
    bool same = a && b && !strcmp(a, b) && strstr(a, "trial,rung,epochs,val_loss,val_rmse,lr,"
                                                     "dropout,h.units\n");
    free(a), free(b);
    CHECK(same);
    test_rm_rf(d);
    return TEST_PASS;
}

TEST(cli_search_net_bad_parameters)
{
    const char *d = test_tmpdir(dir, sizeof dir, "snetb");
    CHECK(d && !write_toy(d));
    CHECK(!test_write_in(d, "two.model",
                         "input shape=3\ndense units=4\ndense units=1\nloss mse\n"));
    const char *base = "--data %s/x.npy --labels %s/y.npy --val-split 0.2 -o %s/r.csv";
    char fmt[512];
    const char *cases[][3] = {
        {"m.model", "conv9.filters=1,2", "no layer named 'conv9' (the layers: dense_1, loss_mse, optimizer)"},
        {"m.model", "dense_1.filters=1,2", "dense 'dense_1' has no option 'filters' (its "
                                           "options: units, activation"},
        {"m.model", "nope=1,2", "no line takes an option 'nope' (give LAYER.OPTION, LAYER one "
                                "of: dense_1, loss_mse, optimizer)"},
        {"two.model", "units=1,2", "'units' is an option of 2 lines: name one (dense_1.units, "
                                   "dense_2.units)"},
        {"two.model", "dense.units=1,2", "2 layers are dense lines (dense_1, dense_2)"},
        {"m.model", "lr=1:0.1", "parameter 'lr=1:0.1': a range is LO:HI or LO:HI:log with LO "
                                "< HI (and LO > 0 for log): LO 1 is not below HI 0.1"},
        {"m.model", "lr=0:1:log", "a log range needs LO > 0, not 0"},
        {"m.model", "dense_1.units=0,2", "parameter 'dense_1.units=0,2': "},
        {"two.model", "optimizer.nesterov=maybe", "nesterov"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(fmt, sizeof fmt, "search %%s/%s --param %s %s", cases[i][0], cases[i][1], base);
        int rc = cli_run(fmt, d, d, d, d);
        if (rc == 0 || rc == CLI_SANITIZER_EXIT || !strstr(cli_out, cases[i][2]))
            FAIL("--param %s: status %d, expected \"%s\":\n%s", cases[i][1], rc, cases[i][2],
                 cli_out);
    }
    CHECK(access(test_at(d, "r.csv"), F_OK) != 0);   /* nothing written */
    CHECK_RUN(2, "search %s/m.model --method knn --param lr=1,2 --data %s/x.npy -o %s/r.csv", d,
              d, d);
    CHECK_OUT("give either MODEL");
    CHECK_RUN(2, "search %s/m.model --param lr=1,2 --folds 3 --data %s/x.npy --labels %s/y.npy "
              "--val-split 0.2 -o %s/r.csv", d, d, d, d);
    CHECK_OUT("--folds applies to a classic method");
    CHECK_RUN(2, "search %s/m.model --param lr=1,2 --data %s/x.npy --labels %s/y.npy -o %s/r.csv",
              d, d, d, d);
    CHECK_OUT("give --val X2 --val-labels Y2, --val-split F");
    CHECK_RUN(2, "search --method knn --param k=1,2 --strategy halving --data %s/x.npy -o "
              "%s/r.csv", d, d);
    CHECK_OUT("halving trains networks");
    test_rm_rf(d);
    return TEST_PASS;
}

TEST(net_text_set_rewrites_options)
{
    const char *text = "input name=x shape=4\n# comment\nconv1d name=c filters=8 kernel=3  # a\n"
                       "flatten\ndropout rate=0.5\ndense units=2\nloss mse\n";
    const char *names[] = {"c.filters", "lr", "dropout", "c.stride"};
    const char *values[] = {"16", "0.03", "0.25", "2"};
    char *out = NULL;
    CHECK(ds_net_text_set("input shape=1x4\nconv1d name=c filters=8 kernel=3\nflatten\n"
                          "dense units=1\nloss mse\n", NULL, 1, names, values, &out) == DS_OK);
    CHECK(strstr(out, "conv1d name=c filters=16 kernel=3\n"));
    free(out);
    CHECK(ds_net_text_set(text, "t.model", 4, names, values, &out) != DS_OK && !out);
    CHECK(strstr(ds_last_error(), "t.model:3: conv1d"));   /* conv1d on [N, 4]: parse error */
    text = "input name=x shape=1x8\n# comment\nconv1d name=c filters=8 kernel=3  # a\n"
           "flatten\ndropout rate=0.5\ndense units=2\nloss mse\n";
    CHECK(ds_net_text_set(text, "t.model", 4, names, values, &out) == DS_OK);
    const char *want = "input name=x shape=1x8\n# comment\nconv1d name=c filters=16 kernel=3 "
                       "stride=2  # a\nflatten\ndropout rate=0.25\ndense units=2\nloss mse\n"
                       "optimizer adam lr=0.03\n";
    if (strcmp(out, want))
        FAIL("got:\n%s\nwanted:\n%s", out, want);
    ds_net *n = NULL;
    CHECK(ds_net_parse(out, NULL, NULL, &n) == DS_OK);
    CHECK_NEAR(ds_net_optim_opts(n)->lr, 0.03, 1e-7);
    ds_net_free(n);
    free(out);
    const char *bad[] = {"1 2"};
    CHECK(ds_net_text_set(text, NULL, 1, names, bad, &out) == DS_ERR_ARG && !out);
    CHECK(strstr(ds_last_error(), "is not one word"));
    /* a loss msb model (its groups do not fit the one row of the lines-only parse) */
    const char *gname[] = {"loss.group"}, *gval[] = {"8"};
    CHECK(ds_net_text_set("input shape=3\ndense units=2\nloss msb group=4 mse=0.1\n", NULL, 1,
                          gname, gval, &out) == DS_OK);
    CHECK(strstr(out, "loss msb group=8 mse=0.1\n"));
    CHECK(ds_net_parse(out, NULL, &(ds_net_opts){.batch = 16}, &n) == DS_OK);
    ds_net_free(n);
    free(out);
    gval[0] = "0";   /* still checked: group >= 1 */
    CHECK(ds_net_text_set("input shape=3\ndense units=2\nloss msb group=4\n", NULL, 1, gname,
                          gval, &out) == DS_OK);
    CHECK(ds_net_parse(out, NULL, &(ds_net_opts){.batch = 16}, &n) != DS_OK);
    free(out);
    return TEST_PASS;
}

TEST(cli_curve_net_rises_with_the_data)
{
    const char *d = test_tmpdir(dir, sizeof dir, "snetc");
    CHECK(d && !write_toy(d));
    char plot[600] = "";   /* NO_PLOT: no figure */
    if (ds_has_feature("plot"))
        snprintf(plot, sizeof plot, "--plot %s/c.png", d);
    CHECK_RUN(0, "curve %s/m.model --data %s/x.npy --labels %s/y.npy --val %s/xv.npy "
              "--val-labels %s/yv.npy --epochs 20 --batch-size 4 --seeds 2 --fractions 1/32..1 "
              "-o %s/c.csv %s -q", d, d, d, d, d, d, plot);
    char *t = test_read_file(test_at(d, "c.csv"), NULL);
    CHECK(t && !strncmp(t, "fraction,size,train,train_spread,val,val_spread\n", 48));
    double f, v[2] = {0};
    long long size, sizes[2] = {0};
    double tr, trs, vs;
    const char *p = strchr(t, '\n') + 1;
    int rows = 0;
    for (; *p; p = strchr(p, '\n') + 1, rows++)
        if (sscanf(p, "%lg,%lld,%lg,%lg,%lg,%lg", &f, &size, &tr, &trs, &v[rows ? 1 : 0], &vs) ==
            6)
            sizes[rows ? 1 : 0] = size;
    free(t);
    CHECK(rows == 6 && sizes[0] == 6 && sizes[1] == 192);
    if (!(v[1] > 0.95 && v[1] > v[0] + 0.05))
        FAIL("validation R^2 %.4f with 6 samples, %.4f with 192", v[0], v[1]);
    CHECK(!ds_has_feature("plot") || access(test_at(d, "c.png"), R_OK) == 0);
    snprintf(msg_, cap_, "validation R^2 %.3f with 6 samples, %.3f with 192", v[0], v[1]);
    test_rm_rf(d);
    return TEST_PASS;
}

/* --budget: a search out of time stops at the end of an epoch, saying so, and the same
 * command without it goes on to the table of an uninterrupted run. */
TEST(cli_search_net_budget_then_resume)
{
    const char *d = test_tmpdir(dir, sizeof dir, "snetq");
    CHECK(d && !write_toy(d));
    const char *args = "--param lr=0.01:1:log --epochs 5 --batch-size 16 --trials 3 --seed 4 "
                       "--val-split 0.25 -q";
    CHECK_RUN(0, "search %s/m.model --data %s/x.npy --labels %s/y.npy %s -o %s/full.csv", d, d,
              d, args, d);
    CHECK_RUN(0, "search %s/m.model --data %s/x.npy --labels %s/y.npy %s --budget 0.001 "
              "-o %s/part.csv", d, d, d, args, d);
    CHECK_OUT("budget of 0.001 s spent: ");   /* after the first trial, or in it */
    CHECK_OUT("the same command goes on");
    CHECK_RUN(0, "search %s/m.model --data %s/x.npy --labels %s/y.npy %s -o %s/part.csv", d, d,
              d, args, d);
    char *a = test_read_file(test_at(d, "full.csv"), NULL), *b = test_read_file(test_at(d,
                                                                                   "part.csv"),
                                                                           NULL);
    bool same = a && b && !strcmp(a, b);
    free(a), free(b);
    CHECK(same);
    test_rm_rf(d);
    return TEST_PASS;
}
