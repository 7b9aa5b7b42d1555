/* test_cli_predict_shard.c - predict -o FOLDER/ without MPI: one output per input file of a
 * glob, each the bits of predicting that file alone; a file that cannot be read is listed
 * and the others go on (exit 1); a rerun skips the files with an output; outputs never go
 * to the device folder; two inputs of one name and the flags that write elsewhere are
 * refused; --merge gathers every file's outputs into one table, a row per sample, once none
 * is missing. (Under mpirun: tests/test_mpi.c.) */
#include "test.h"
#include "spawn.h"

#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static const char *mlp = "input name=x shape=6\n"
                         "dense units=8 activation=tanh\n"
                         "dense units=3\n"
                         "loss mse\n";

/* in/x_0.npy .. in/x_4.npy of 4 rows (x_2 not an array), m.model, w.safetensors. */
static int make_inputs(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/in", dir);
    if (mkdir(p, 0777))
        return 1;
    snprintf(p, sizeof p, "%s/m.model", dir);
    if (test_write_text(p, mlp))
        return 1;
    ds_tensor *t = ds_tensor_create(2, (int64_t[]){4, 6});
    ds_rng r;
    ds_rng_seed(&r, 9);
    int rc = !t;
    for (int i = 0; i < 5 && !rc; i++) {
        snprintf(p, sizeof p, "%s/in/x_%d.npy", dir, i);
        for (int k = 0; k < 24; k++)
            ds_tensor_data(t)[k] = (float)ds_rng_normal(&r);
        rc = i == 2 ? test_write_text(p, "not an array") : ds_npy_save(t, p) != DS_OK;
    }
    ds_tensor_free(t);
    return rc || cli_run_in(dir, "init m.model --seed 1 -o w.safetensors") != 0;
}

/* --merge: all.csv holds the 20 samples in file order, x_3's rows the bits of one.npy; a
 * FITS table has the same columns. */
static int check_merged(char *msg_, size_t cap_)
{
    const char *args = "predict m.model --weights w.safetensors --data 'in/*.npy' -o out/";
    CHECK_OK(cli_expect(cli_run_in(dir, "%s --merge all.csv", args), 0, "wrote all.csv: 20 "
                        "rows (file, hdu, row, 3 output values)", msg_, cap_));
    char p[512], *text = test_read_file(test_at(dir, "all.csv"), NULL);
    CHECK(text != NULL);
    char *line = strstr(text, "\nin/x_3.npy,0,0,");
    ds_tensor *one = NULL;
    snprintf(p, sizeof p, "%s/one.npy", dir);
    CHECK(ds_array_load(p, NULL, &one) == DS_OK);
    float v[3];
    int ok = line && !strncmp(text, "file,hdu,row,", 13) &&
             sscanf(line + 1, "%*[^,],%*g,%*g,%g,%g,%g", &v[0], &v[1], &v[2]) == 3 &&
             !memcmp(v, ds_tensor_data(one), sizeof v);
    ds_tensor_free(one);
    if (!ok)
        FAIL("all.csv is not the outputs in file order: %.300s", text);
    free(text);
    if (!ds_has_feature("fits"))
        return TEST_PASS;
    CHECK(cli_run_in(dir, "%s --merge all.fits", args) == 0);
    snprintf(p, sizeof p, "%s/all.fits", dir);
    char *cols = ds_table_columns(p, NULL);
    ok = cols && !strncmp(cols, "file,hdu,row,", 13) && strstr(cols, "_2");
    if (!ok)
        FAIL("all.fits has the columns %s", cols ? cols : ds_last_error());
    free(cols);
    return TEST_PASS;
}

TEST(cli_predict_folder)
{
    if (!test_tmpdir(dir, sizeof dir, "pshard"))
        FAIL("cannot make a temporary folder");
    CHECK(make_inputs() == 0);
    const char *args = "predict m.model --weights w.safetensors --data 'in/*.npy'";
    int rc = cli_run_in(dir, "%s -o out/", args);
    CHECK_OK(cli_expect(rc, 1, "predict: 5 files in ", msg_, cap_));
    CHECK_OK(cli_expect(rc, 1, "on 1 rank: 4 written, 0 skipped (output already there), 1 "
                        "failed\nfailed: in/x_2.npy\n", msg_, cap_));
    CHECK_OK(cli_expect(rc, 1, "deepsky: in/x_2.npy failed: no out/x_2.npy written; going on "
                        "with the other files", msg_, cap_));
    char p[512];
    snprintf(p, sizeof p, "%s/out", dir);
    const char *want[] = {"x_0.npy", "x_1.npy", "x_3.npy", "x_4.npy"}, *name;
    int h = test_folder_holds(p, want, 4, &name);
    if (h)
        FAIL("out/ does not hold the 4 outputs: %s %s", h == 1 ? "missing" : "unexpected",
             h < 3 ? name : "(unreadable)");
    /* each output is the bits of predicting its file alone */
    CHECK(cli_run_in(dir, "predict m.model --weights w.safetensors --data in/x_3.npy -o "
                     "one.npy") == 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cmp %s/out/x_3.npy %s/one.npy", dir, dir);
    char o[512];
    if (cli_run_sh(cmd, NULL, o, sizeof o) != 0)
        FAIL("out/x_3.npy differs from predicting in/x_3.npy alone: %s", o);
    /* again: the 4 are skipped, the failed one is tried and fails again; no merged table */
    rc = cli_run_in(dir, "%s -o out --merge all.csv", args);
    CHECK_OK(cli_expect(rc, 1, "0 written, 4 skipped (output already there), 1 failed", msg_,
                        cap_));
    CHECK_OK(cli_expect(rc, 1, "no merged table all.csv: it waits for the failed files", msg_,
                        cap_));
    CHECK(access(test_at(dir, "all.csv"), F_OK) != 0);
    if (strstr(cli_out, "wrote "))
        FAIL("the rerun wrote again: %s", cli_out);
    /* mended: the rerun writes it alone and succeeds */
    snprintf(cmd, sizeof cmd, "cp %s/in/x_1.npy %s/in/x_2.npy", dir, dir);
    CHECK(cli_run_sh(cmd, NULL, o, sizeof o) == 0);
    rc = cli_run_in(dir, "%s -o out/", args);
    CHECK_OK(cli_expect(rc, 0, "1 written, 4 skipped (output already there), 0 failed", msg_,
                        cap_));
    rc = check_merged(msg_, cap_);
    test_rm_rf(dir);
    return rc;
}

TEST(cli_predict_folder_refusals)
{
    if (!test_tmpdir(dir, sizeof dir, "pshard_bad"))
        FAIL("cannot make a temporary folder");
    CHECK(make_inputs() == 0);
    const char *args = "predict m.model --weights w.safetensors --data 'in/*.npy'";
    CHECK_OK(cli_expect(cli_run_in(dir, "%s -o /dev/", args), 2, "-o /dev/ is in the device "
                        "folder /dev: outputs never go there", msg_, cap_));
    CHECK_OK(cli_expect(cli_run_in(dir, "%s -o /dev/deepsky_new/", args), 2, "is in the "
                        "device folder /dev", msg_, cap_));
    CHECK(access("/dev/deepsky_new", F_OK) != 0);
    CHECK_OK(cli_expect(cli_run_in(dir, "%s --mc 4 -o out/", args), 2, "-o out/ (a folder) "
                        "writes each file's outputs as they are", msg_, cap_));
    CHECK_OK(cli_expect(cli_run_in(dir, "%s -o p.npy --merge t.csv", args), 2, "--merge t.csv "
                        "gathers the outputs of -o FOLDER/", msg_, cap_));
    char p[512];
    snprintf(p, sizeof p, "%s/list.txt", dir);
    CHECK(test_write_text(p, "in/x_0.npy\nin/../in/x_0.npy\n") == 0);
    CHECK_OK(cli_expect(cli_run_in(dir, "predict m.model --weights w.safetensors --data "
                                   "@list.txt -o out/"), 2, "would both write out/x_0.npy",
                        msg_, cap_));
    CHECK_OK(cli_expect(cli_run_in(dir, "predict m.model --weights w.safetensors --data "
                                   "x=in/x_0.npy -o out/"), 2, "for a model with one input "
                        "(--data FILES, not NAME=FILES)", msg_, cap_));
    test_rm_rf(dir);
    return TEST_PASS;
}
