/* test_weights_meta.c - weights that say what they are: the training metadata of every file
 * ds_net_fit and `deepsky train` write (last, best, checkpoint) read back with the epochs
 * and losses of the run, the line predict and eval print, files without metadata, damaged
 * values reported as unknown, a resumed run's best file, and the recorded command re-run. */
#include "test.h"
#include "spawn.h"

#include <stdbool.h>
#include <unistd.h>

/* A linear model trained with a learning rate past stability: every epoch's validation
 * loss is larger than the one before, so the best epoch (1) is not the last. */
static const char *const diverging =
    "input shape=4\n"
    "dense units=1\n"
    "loss mse\n"
    "optimizer sgd lr=4\n";

enum { N = 64, EPOCHS = 3 };

static void make_data(ds_tensor **x, ds_tensor **y, uint64_t seed)
{
    static const float w[4] = {1, -2, 0.5f, 1.5f};
    ds_rng r;
    ds_rng_seed(&r, seed);
    *x = ds_tensor_create(2, (int64_t[]){N, 4});
    *y = ds_tensor_create(2, (int64_t[]){N, 1});
    if (!*x || !*y)
        return;
    fill_uniform(ds_tensor_data(*x), 4 * N, -1, 1, &r);
    for (int i = 0; i < N; i++) {
        float v = 0;
        for (int k = 0; k < 4; k++)
            v += w[k] * ds_tensor_data(*x)[4 * i + k];
        ds_tensor_data(*y)[i] = v;
    }
}

/* The validation loss of each epoch, as the progress callback reports it. */
typedef struct {
    double val[EPOCHS + 1], loss[EPOCHS + 1];
} seen_losses;

static void record(void *ctx, const ds_progress *p)
{
    seen_losses *s = ctx;
    if (p->end_of_epoch && p->epoch <= EPOCHS) {
        s->val[p->epoch] = p->val_loss;
        s->loss[p->epoch] = p->loss;
    }
}

/* Whether a stored value ("%.9g") is v. */
static bool same_value(double stored, double v)
{
    return fabs(stored - v) <= 1e-8 * fabs(v);
}

static int check_info(const char *path, int epoch, int run, int best, const seen_losses *s,
                      const char *command, char *msg, size_t cap)
{
    ds_tensor_set *set = NULL;
    if (ds_safetensors_load(path, &set) != DS_OK) {
        snprintf(msg, cap, "%s", ds_last_error());
        return 1;
    }
    ds_weights_info w;
    ds_weights_info_get(set, &w);
    const char *d = w.date ? w.date : "";
    bool ok = w.trained && w.epoch == epoch && w.epochs_run == run && w.epochs == run &&
              w.best_epoch == best && same_value(w.val_loss, s->val[epoch]) &&
              same_value(w.loss, s->loss[epoch]) && isfinite(w.metric) &&
              isfinite(w.val_metric) && w.metric_name && !strcmp(w.metric_name, "rmse") &&
              w.version && !strcmp(w.version, DS_VERSION) && w.command &&
              !strcmp(w.command, command) && !w.damaged && strlen(d) == 20 && d[4] == '-' &&
              d[10] == 'T' && d[19] == 'Z' && strncmp(d, "2024", 4) >= 0;
    if (!ok)
        snprintf(msg, cap, "%s: epoch %d of %d (best %d), val_loss %.9g, loss %.9g, metric %s, "
                 "version %s, date %s, command %s, damaged %s; expected epoch %d of %d (best %d), "
                 "val_loss %.9g, loss %.9g", path, w.epoch, w.epochs_run, w.best_epoch,
                 w.val_loss, w.loss, w.metric_name ? w.metric_name : "-",
                 w.version ? w.version : "-", d, w.command ? w.command : "-",
                 w.damaged ? w.damaged : "-", epoch, run, best, s->val[epoch], s->loss[epoch]);
    ds_tensor_set_free(set);
    return !ok;
}

TEST(weights_meta_fit_writes_what_each_file_holds)
{
    char dir[] = "/tmp/deepsky-wmeta-XXXXXX", p[3][128];
    CHECK(mkdtemp(dir));
    ds_tensor *x, *y, *xv, *yv;
    make_data(&x, &y, 1);
    make_data(&xv, &yv, 2);
    ds_net *n = NULL;
    CHECK(x && y && xv && yv);
    CHECK(ds_net_parse(diverging, "diverging.model", &(ds_net_opts){.batch = 16, .seed = 1},
                       &n) == DS_OK);
    snprintf(p[0], sizeof p[0], "%s/w.safetensors", dir);
    snprintf(p[1], sizeof p[1], "%s/w.best.safetensors", dir);
    snprintf(p[2], sizeof p[2], "%s/w.ckpt.safetensors", dir);
    seen_losses s = {0};
    const char *cmd = "demo --out 'a b' --it's";
    ds_fit_opts fo = {.epochs = EPOCHS, .batch_size = 16, .seed = 4, .out_path = p[0],
                      .progress = record, .ctx = &s, .command = cmd};
    ds_fit_result r;
    CHECK(ds_net_fit(n, x, y, xv, yv, &fo, &r) == DS_OK);
    /* the run this test needs: the best epoch is the first, not the last */
    CHECK(r.best_epoch == 1 && s.val[1] < s.val[2] && s.val[2] < s.val[3]);
    CHECK_OK(check_info(p[0], EPOCHS, EPOCHS, 1, &s, cmd, msg_, cap_));
    CHECK_OK(check_info(p[1], 1, EPOCHS, 1, &s, cmd, msg_, cap_));
    CHECK_OK(check_info(p[2], EPOCHS, EPOCHS, 1, &s, cmd, msg_, cap_));
    CHECK(same_value(s.val[1], r.best_val_loss));
    /* a net says what it loaded; before any load, nothing */
    ds_weights_info w;
    ds_net *m = NULL;
    CHECK(ds_net_parse(diverging, "diverging.model", NULL, &m) == DS_OK);
    ds_net_weights_info(m, &w);
    CHECK(!w.trained && w.epoch == 0 && isnan(w.val_loss) && !w.command);
    CHECK(ds_net_load_weights(m, p[1]) == DS_OK);
    ds_net_weights_info(m, &w);
    CHECK(w.trained && w.epoch == 1 && w.epochs_run == EPOCHS && !strcmp(w.command, cmd));
    /* a file written by ds_net_save_weights says nothing of training, and a failed load
     * leaves what the net held */
    CHECK(ds_net_save_weights(m, p[0]) == DS_OK);
    CHECK(ds_net_load_weights(n, "/nonexistent/w.safetensors") != DS_OK);
    CHECK(ds_net_load_weights(m, p[0]) == DS_OK);
    ds_net_weights_info(m, &w);
    CHECK(!w.trained && w.epoch == 0 && !w.date);
    ds_net_free(m);
    ds_net_free(n);
    ds_tensor *all[] = {x, y, xv, yv};
    for (int i = 0; i < 4; i++)
        ds_tensor_free(all[i]);
    test_rm_rf(dir);
    return TEST_PASS;
}

TEST(weights_meta_damaged_values_are_unknown)
{
    const struct {
        const char *key, *value;
        int epoch;           /* read back */
        bool damaged;
    } cases[] = {
        {"train.epoch", "twelve", 0, true},
        {"train.epoch", "3x", 0, true},
        {"train.epoch", "-1", 0, true},
        {"train.epoch", "0", 0, true},
        {"train.epoch", "99999999999", 0, true},
        {"train.epoch", "9", 0, true},          /* beyond the 5 epochs run */
        {"train.epoch", "", 0, false},          /* empty: absent */
        {"train.val_loss", "nan", 2, true},
        {"train.val_loss", "1e999", 2, true},
        {"train.epochs_run", "five", 2, true},
        {"train.epoch", "2", 2, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ds_tensor_set *s = ds_tensor_set_create();
        CHECK(s);
        CHECK(ds_tensor_set_meta_set(s, "train.epoch", "2") == DS_OK);
        CHECK(ds_tensor_set_meta_set(s, "train.epochs_run", "5") == DS_OK);
        CHECK(ds_tensor_set_meta_set(s, "train.val_loss", "0.5") == DS_OK);
        CHECK(ds_tensor_set_meta_set(s, cases[i].key, cases[i].value) == DS_OK);
        ds_weights_info w;
        ds_weights_info_get(s, &w);
        bool val_bad = !strcmp(cases[i].key, "train.val_loss");
        bool ok = w.trained && w.epoch == cases[i].epoch && !!w.damaged == cases[i].damaged &&
                  (!w.damaged || (!strcmp(w.damaged, cases[i].key) &&
                                  !strcmp(w.damaged_value, cases[i].value))) &&
                  (val_bad ? isnan(w.val_loss) : w.val_loss == 0.5);
        ds_tensor_set_free(s);
        if (!ok)
            FAIL("%s = '%s': epoch %d, damaged %s = '%s', val_loss %g", cases[i].key,
                 cases[i].value, w.epoch, w.damaged ? w.damaged : "-",
                 w.damaged_value ? w.damaged_value : "-", w.val_loss);
    }
    /* metadata of other kinds only: no training metadata */
    ds_tensor_set *s = ds_tensor_set_create();
    CHECK(s && ds_tensor_set_meta_set(s, "deepsky.format", "weights 1") == DS_OK);
    ds_weights_info w;
    ds_weights_info_get(s, &w);
    ds_tensor_set_free(s);
    CHECK(!w.trained && !w.damaged);
    ds_weights_info_get(NULL, &w);
    CHECK(!w.trained && isnan(w.loss));
    return TEST_PASS;
}

TEST(weights_meta_command_line_reads_back_in_a_shell)
{
    const char *words[] = {"deepsky", "train", "a b.model", "--x=it's", "", "$HOME", "p*q",
                           "plain-1.5,x/y:z@w%"};
    char *line = ds_command_line(8, words);
    CHECK(line);
    CHECK(!strcmp(line, "deepsky train 'a b.model' '--x=it'\\''s' '' '$HOME' 'p*q' "
                        "plain-1.5,x/y:z@w%"));
    char cmd[512], out[256];
    snprintf(cmd, sizeof cmd, "printf '[%%s]' %s", line);
    free(line);
    CHECK(cli_run_sh(cmd, NULL, out, sizeof out) == 0);
    CHECK(!strcmp(out, "[deepsky][train][a b.model][--x=it's][][$HOME][p*q][plain-1.5,x/y:z@w%]"));
    line = ds_command_line(0, NULL);
    CHECK(line && !line[0]);
    free(line);
    return TEST_PASS;
}

/* ---- the command line ---- */
static int save_npy(const char *dir, const char *name, const ds_tensor *t)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return ds_npy_save(t, p) != DS_OK;
}

/* "(epoch E of R, [best ]validation loss V" with V as the file at path stores it. */
static void expected_line(const char *dir, const char *name, char *buf, size_t cap)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    ds_tensor_set *s = NULL;
    ds_weights_info w;
    ds_status st = ds_safetensors_load(p, &s);
    ds_weights_info_get(st ? NULL : s, &w);
    snprintf(buf, cap, "weights: %s (epoch %d of %d, %svalidation loss %.4g", name, w.epoch,
             w.epochs_run, w.epoch == w.best_epoch ? "best " : "", w.val_loss);
    ds_tensor_set_free(s);
}

static int write_text(const char *dir, const char *name, const char *text)
{
    return test_write_in(dir, name, text);
}

#define TRAIN "train m.model --data x.npy --labels y.npy --val-split 0.25 --batch-size 16 " \
              "--checkpoint-every 0 --seed 5 -q"

TEST(weights_meta_cli_train_predict_eval_name_the_epoch)
{
    char dir[] = "/tmp/deepsky-wmeta-cli-XXXXXX", want[256];
    CHECK(mkdtemp(dir));
    ds_tensor *x, *y;
    make_data(&x, &y, 3);
    CHECK(x && y && !save_npy(dir, "x.npy", x) && !save_npy(dir, "y.npy", y));
    ds_tensor_free(x);
    ds_tensor_free(y);
    CHECK(!write_text(dir, "m.model", diverging));
    CHECK(cli_run_in(dir, TRAIN " --epochs 3 -o 'w 1.safetensors'") == 0);
    /* the last epoch's file: not the best, which it names */
    CHECK(cli_run_in(dir, "predict m.model --weights 'w 1.safetensors' --data x.npy -o p.npy")
          == 0);
    CHECK_OUT("weights: w 1.safetensors (epoch 3 of 3, validation loss ");
    CHECK_OUT(" (best epoch 1), 20");
    CHECK_OUT(", deepsky " DS_VERSION ")\n");
    expected_line(dir, "w 1.safetensors", want, sizeof want);
    CHECK_OUT(want);
    /* the best file: the best epoch */
    CHECK(cli_run_in(dir, "predict m.model --weights 'w 1.best.safetensors' --data x.npy "
                          "-o p.npy") == 0);
    expected_line(dir, "w 1.best.safetensors", want, sizeof want);
    CHECK_OUT(want);
    CHECK_OUT("weights: w 1.best.safetensors (epoch 1 of 3, best validation loss ");
    /* eval prints the same line; the checkpoint holds the last epoch */
    CHECK(cli_run_in(dir, "eval m.model --weights 'w 1.ckpt.safetensors' --data x.npy "
                          "--labels y.npy") == 0);
    CHECK_OUT("weights: w 1.ckpt.safetensors (epoch 3 of 3, validation loss ");
    CHECK_OUT("loss:");
    /* resumed to 5 epochs: the best file, not rewritten from memory, counts them too */
    CHECK(cli_run_in(dir, TRAIN " --epochs 5 --resume -o 'w 1.safetensors'") == 0);
    CHECK(cli_run_in(dir, "predict m.model --weights 'w 1.best.safetensors' --data x.npy "
                          "-o p.npy") == 0);
    CHECK_OUT("weights: w 1.best.safetensors (epoch 1 of 5, best validation loss ");
    /* the command recorded is the one given, and runs again to the same weights */
    char p[256];
    snprintf(p, sizeof p, "%s/w 1.safetensors", dir);
    ds_tensor_set *a = NULL, *b = NULL;
    CHECK(ds_safetensors_load(p, &a) == DS_OK);
    const char *cmd = ds_tensor_set_meta_get(a, "train.command");
    CHECK(cmd && !strcmp(cmd, "deepsky " TRAIN " --epochs 5 --resume -o 'w 1.safetensors'"));
    CHECK(cli_run_in(dir, TRAIN " --epochs 5 -o w2.safetensors") == 0);
    snprintf(p, sizeof p, "%s/w2.safetensors", dir);
    CHECK(ds_safetensors_load(p, &b) == DS_OK);
    ds_tensor *ta = ds_tensor_set_get(a, "dense_1.weight"), *tb = ds_tensor_set_get(b,
                                                                                 "dense_1.weight");
    bool same = ta && tb && ds_tensor_numel(ta) == ds_tensor_numel(tb) &&
                !memcmp(ds_tensor_data(ta), ds_tensor_data(tb), 4 * (size_t)ds_tensor_numel(ta));
    ds_tensor_set_free(a);
    ds_tensor_set_free(b);
    CHECK(same);   /* a resumed run reaches the bits of an uninterrupted one */
    /* deepsky init: no training metadata, and it still loads */
    CHECK(cli_run_in(dir, "init m.model -o i.safetensors") == 0);
    CHECK(cli_run_in(dir, "predict m.model --weights i.safetensors --data x.npy -o p.npy") == 0);
    CHECK_OUT("weights: i.safetensors (no training metadata)\n");
    CHECK_OUT("wrote p.npy [64, 1]");
    test_rm_rf(dir);
    return TEST_PASS;
}

TEST(weights_meta_cli_damaged_epoch_is_reported_not_fatal)
{
    char dir[] = "/tmp/deepsky-wmeta-bad-XXXXXX", p[256];
    CHECK(mkdtemp(dir));
    ds_tensor *x, *y;
    make_data(&x, &y, 3);
    CHECK(x && y && !save_npy(dir, "x.npy", x) && !save_npy(dir, "y.npy", y));
    ds_tensor_free(x);
    ds_tensor_free(y);
    CHECK(!write_text(dir, "m.model", diverging));
    CHECK(cli_run_in(dir, TRAIN " --epochs 2 -o w.safetensors") == 0);
    snprintf(p, sizeof p, "%s/w.safetensors", dir);
    ds_tensor_set *s = NULL;
    CHECK(ds_safetensors_load(p, &s) == DS_OK);
    ds_status st = ds_tensor_set_meta_set(s, "train.epoch", "twelve");
    if (!st)
        st = ds_safetensors_save(s, p);
    ds_tensor_set_free(s);
    CHECK(st == DS_OK);
    CHECK(cli_run_in(dir, "predict m.model --weights w.safetensors --data x.npy -o p.npy") == 0);
    CHECK_OUT("weights: w.safetensors (epoch unknown, validation loss ");
    CHECK_OUT("; metadata train.epoch 'twelve' is not readable, taken as unknown\n");
    CHECK_OUT("wrote p.npy [64, 1]");
    test_rm_rf(dir);
    return TEST_PASS;
}
