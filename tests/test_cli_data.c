/* test_cli_data.c - the command line on data as it comes (issue 12): CSV without a header
 * (said or guessed, with a note), gzipped and TSV, column ranges and label columns taken
 * out of the features, FITS tables by EXTNAME and --hdu 0 refused, a single FITS image as
 * one sample, --nan for BLANK and NaN, FITS keywords that must be numbers, predict --classes
 * and FITS headers copied to predictions, model files with a byte-order mark, an input named
 * labels, and the README's walkthrough run command for command. The tool under test is the
 * sanitizer build; every error message is asserted. */
#include "test.h"
#include "spawn.h"

#include <dirent.h>
#include <fitsio.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char dir[64];


static int make_dir(void) { return test_tmpdir(dir, sizeof dir, "cli_data") ? 0 : 1; }
static void rm_dir(void) { test_rm_rf(dir); }
static const char *at(const char *name) { return test_at(dir, name); }
static int write_text(const char *name, const char *text) { return test_write_in(dir, name, text); }

static int write_gz(const char *name, const char *text)
{
    gzFile g = gzopen(at(name), "wb");
    if (!g)
        return 1;
    gzwrite(g, text, (unsigned)strlen(text));
    return gzclose(g) != Z_OK;
}

/* cli_out holds every NULL-terminated substring; the first missing one goes to msg. */
static int has(char *msg, size_t cap, ...)
{
    va_list ap;
    va_start(ap, cap);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(cli_out, s)) {
            va_end(ap);
            snprintf(msg, cap, "output lacks '%s':\n%.3000s", s, cli_out);
            return 1;
        }
    va_end(ap);
    return 0;
}

#define EXPECT(status, call)                                                              \
    do {                                                                                  \
        int st_ = (call);                                                                 \
        if (st_ != (status))                                                              \
            FAIL("%s:%d: exit status %d, expected %d:\n%.3000s", __FILE__, __LINE__, st_,  \
                 (status), cli_out);                                                       \
    } while (0)
#define HAS(...) CHECK_OK(has(msg_, cap_, __VA_ARGS__, NULL))
#define LACKS(s)                                                                          \
    do {                                                                                  \
        if (strstr(cli_out, s))                                                           \
            FAIL("%s:%d: output holds '%s':\n%.3000s", __FILE__, __LINE__, s, cli_out);   \
    } while (0)

/* 30 flowers-like rows: four features, then the class 0, 1 or 2 that the third and fourth
 * features separate; no header. */
static void table_text(char *buf, size_t cap)
{
    ds_rng r;
    ds_rng_seed(&r, 12);
    buf[0] = 0;
    for (int i = 0; i < 30; i++) {
        int k = i % 3;
        snprintf(buf + strlen(buf), cap - strlen(buf), "%.2f,%.2f,%.2f,%.2f,%d\n",
                 5 + ds_rng_normal(&r) * 0.4, 3 + ds_rng_normal(&r) * 0.3,
                 1.5 + 2.2 * k + ds_rng_normal(&r) * 0.3, 0.2 + 0.8 * k + ds_rng_normal(&r) * 0.1,
                 k);
    }
}

static const char *cls_model = "input shape=4\n"
                               "dense units=8 activation=relu\n"
                               "dense units=3 activation=softmax\n"
                               "loss categorical_crossentropy\n"
                               "optimizer adam lr=0.02\n";

#define TRAIN "train m.model --epochs 3 --batch-size 10 -q -o w.safetensors "

TEST(cli_data_headerless_csv_and_label_columns)
{
    CHECK(make_dir() == 0);
    char rows[4096], text[4200];
    table_text(rows, sizeof rows);
    write_text("m.model", cls_model);
    write_text("t.csv", rows);
    /* guessed, and said so; told: no note */
    EXPECT(0, cli_run_in(dir, TRAIN "--data t.csv --label-columns 5"));
    char first[64];
    snprintf(first, sizeof first, "%.*s", (int)strcspn(rows, "\n"), rows);
    char note[300];
    snprintf(note, sizeof note, "deepsky: note: t.csv:1: the first line ('%s') holds only "
             "numbers, so it is read as data, not as column names, and the columns are named 1 "
             "to 5 (--no-header says so; --header reads the line as column names)", first);
    HAS(note);
    EXPECT(0, cli_run_in(dir, TRAIN "--data t.csv --no-header --label-columns -1"));
    LACKS("note:");
    EXPECT(2, cli_run_in(dir, TRAIN "--data t.csv --no-header --header --label-columns -1"));
    HAS("deepsky train: give --header or --no-header, not both");
    EXPECT(0, cli_run_in(dir, TRAIN "--data t.csv --header --label-columns -1"
                              ));   /* 29 rows */ LACKS("note:");
    /* ranges, and the label column left out only when --columns does not name it */
    EXPECT(0, cli_run_in(dir, TRAIN "--data t.csv --no-header --columns 1-4 --label-columns 5"));
    EXPECT(1, cli_run_in(dir, TRAIN "--data t.csv --no-header --columns 1-5 --label-columns 5"));
    HAS("t.csv", "5");
    EXPECT(0, cli_run_in(dir, TRAIN "--data t.csv --labels t.csv --no-header --label-columns -1"));
    EXPECT(1, cli_run_in(dir, TRAIN "--data t.csv --no-header --columns 4-1 --label-columns 5"));
    HAS("deepsky: error: t.csv: column range '4-1' runs backwards (from column 4 to column 1)");
    /* scikit-learn's first line: skipped, with a note */
    snprintf(text, sizeof text, "30,4,setosa,versicolor,virginica\n%s", rows);
    write_text("sk.csv", text);
    EXPECT(0, cli_run_in(dir, TRAIN "--data sk.csv --label-columns -1"));
    HAS("deepsky: note: sk.csv:1: the first line ('30,4,setosa,versicolor,virginica') mixes "
        "numbers and text unlike the rows below, so it is skipped: it is neither column names "
        "nor data, and the columns are named 1 to 5 (--header reads it as column names; "
        "--no-header as data)");
    /* gzipped, TSV, and eval the same way */
    write_gz("t.csv.gz", rows);
    for (char *p = rows; *p; p++)
        *p = *p == ',' ? '\t' : *p;
    write_text("t.tsv", rows);
    EXPECT(0, cli_run_in(dir, TRAIN "--data t.csv.gz --no-header --label-columns -1"));
    EXPECT(0, cli_run_in(dir, TRAIN "--data t.tsv --no-header --label-columns -1"));
    EXPECT(0, cli_run_in(dir, "eval m.model --weights w.safetensors --data t.tsv --no-header "
                              "--label-columns -1"));
    HAS("samples: 30", "accuracy:");
    rm_dir();
    return TEST_PASS;
}

/* A FITS file of an empty primary HDU and binary tables TRAIN and TEST: x1..x4 (E), name
 * (8A) and class (I), rows as table_text's. */
static int write_fits_tables(const char *path)
{
    char rows[4096];
    table_text(rows, sizeof rows);
    fitsfile *f;
    int status = 0;
    char *ttype[] = {"x1", "x2", "x3", "x4", "name", "class"};
    char *tform[] = {"1E", "1E", "1E", "1E", "8A", "1I"};
    fits_create_file(&f, path, &status);
    fits_create_img(f, 8, 0, NULL, &status);
    for (int h = 0; h < 2; h++) {
        fits_create_tbl(f, BINARY_TBL, 30, 6, ttype, tform, NULL, h ? "TEST" : "TRAIN", &status);
        const char *p = rows;
        for (int i = 0; i < 30; i++) {
            float x[4];
            int k = 0;
            sscanf(p, "%f,%f,%f,%f,%d", &x[0], &x[1], &x[2], &x[3], &k);
            p = strchr(p, '\n') + 1;
            short c = (short)k;
            char *nm = k ? "other" : "first";
            for (int j = 0; j < 4; j++)
                fits_write_col(f, TFLOAT, j + 1, i + 1, 1, 1, &x[j], &status);
            fits_write_col(f, TSTRING, 5, i + 1, 1, 1, &nm, &status);
            fits_write_col(f, TSHORT, 6, i + 1, 1, 1, &c, &status);
        }
    }
    fits_close_file(f, &status);
    return status;
}

TEST(cli_data_fits_tables_and_hdu_names)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    CHECK(make_dir() == 0);
    write_text("m.model", cls_model);
    CHECK(write_fits_tables(at("t.fits")) == 0);
    EXPECT(0, cli_run_in(dir, TRAIN "--data t.fits --hdu train --label-columns class"));
    EXPECT(0, cli_run_in(dir, "eval m.model --weights w.safetensors --data t.fits --hdu TEST "
                              "--label-columns -1"));
    HAS("samples: 30");
    EXPECT(0, cli_run_in(dir, TRAIN "--data t.fits --hdu 2 --columns x1-x4 --label-columns class"));
    EXPECT(2, cli_run_in(dir, TRAIN "--data t.fits --hdu 0 --label-columns class"));
    HAS("deepsky train: option '--hdu': '0' is not an HDU: they are numbered from 1, the "
        "primary HDU, to 100000 (leave --hdu out to read the first HDU that holds data; or give "
        "an EXTNAME)");
    EXPECT(1, cli_run_in(dir, TRAIN "--data t.fits --hdu valid --label-columns class"));
    HAS("deepsky: error: t.fits: no HDU named 'valid' (EXTNAME or HDUNAME); its 3 HDUs: 1 "
        "(primary), 2 'TRAIN', 3 'TEST'");
    EXPECT(1, cli_run_in(dir, TRAIN "--data t.fits --columns x1,name --label-columns class"));
    HAS("deepsky: error: t.fits: HDU 2: column 'name' holds text (TFORM5 = '8A'), not numbers");
    rm_dir();
    return TEST_PASS;
}

/* A float image of the given axes (FITS order: NAXIS1 first) with a WCS. */
static int write_image(const char *path, int naxis, long *naxes, const float *pix)
{
    fitsfile *f;
    int status = 0;
    long n = 1;
    for (int i = 0; i < naxis; i++)
        n *= naxes[i];
    double crval = 150.1;
    fits_create_file(&f, path, &status);
    fits_create_img(f, FLOAT_IMG, naxis, naxes, &status);
    fits_write_key(f, TSTRING, "CTYPE1", "RA---TAN", NULL, &status);
    fits_write_key(f, TSTRING, "CTYPE2", "DEC--TAN", NULL, &status);
    fits_write_key(f, TDOUBLE, "CRVAL1", &crval, NULL, &status);
    fits_write_img(f, TFLOAT, 1, n, (float *)pix, &status);
    fits_close_file(f, &status);
    return status;
}

TEST(cli_data_fits_image_as_one_sample)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    CHECK(make_dir() == 0);
    float pix[3 * 4 * 6];
    for (int i = 0; i < 72; i++)
        pix[i] = (float)i / 8;
    CHECK(write_image(at("img.fits"), 2, (long[]){6, 4}, pix) == 0);
    CHECK(write_image(at("cube.fits"), 3, (long[]){6, 4, 3}, pix) == 0);
    /* a map of the image (1xHxW in, 1xHxW out): one sample, the header copied */
    write_text("map.model", "input shape=1x4x6\nconv2d filters=1 kernel=1\n");
    write_text("hw.model", "input shape=4x6\nflatten\ndense units=2\n");
    write_text("bad.model", "input shape=1x5x5\nflatten\ndense units=2\n");
    EXPECT(0, cli_run_in(dir, "init map.model -o map.safetensors"));
    EXPECT(0, cli_run_in(dir, "init hw.model -o hw.safetensors"));
    EXPECT(0, cli_run_in(dir, "init bad.model -o bad.safetensors"));
    EXPECT(0, cli_run_in(dir, "predict map.model --weights map.safetensors --data img.fits -o "
                              "p.fits"));
    HAS("wrote p.fits [4, 6] with the header of img.fits (WCS included)");
    ds_tensor *t = NULL;
    char *h = ds_fits_header(at("p.fits"), NULL);
    CHECK(h && strstr(h, "CTYPE1  = 'RA---TAN'") && strstr(h, "CRVAL1  ="));
    free(h);
    CHECK(ds_array_load(at("p.fits"), NULL, &t) == DS_OK && ds_tensor_ndim(t) == 2 &&
          ds_tensor_shape(t)[0] == 4 && ds_tensor_shape(t)[1] == 6);
    ds_tensor_free(t);
    EXPECT(0, cli_run_in(dir, "predict map.model --weights map.safetensors --data cube.fits -o "
                              "c.fits"));
    HAS("wrote c.fits [3, 4, 6] with the header of cube.fits");
    EXPECT(0, cli_run_in(dir, "predict map.model --weights map.safetensors --data img.fits -o "
                              "p.npy"));
    HAS("wrote p.npy [1, 1, 4, 6]");
    /* an HxW input takes the image as one sample too */
    EXPECT(0, cli_run_in(dir, "predict hw.model --weights hw.safetensors --data img.fits -o "
                              "q.npy"));
    HAS("wrote q.npy [1, 2]");
    EXPECT(1, cli_run_in(dir, "predict bad.model --weights bad.safetensors --data img.fits -o "
                              "q.npy"));
    HAS("deepsky: error: img.fits: data of shape [4, 6] does not fit the model's input "
        "'input_1', which takes samples of shape [1, 5, 5] (25 values): read as 4 samples of 6 "
        "values, or as one sample of shape [4, 6]");
    rm_dir();
    return TEST_PASS;
}

/* An int16 cube of 5 images 2x2 with BLANK = -99 at pixel 1 of image 1. */
static int write_blank_cube(const char *path)
{
    fitsfile *f;
    int status = 0;
    long naxes[3] = {2, 2, 5}, blank = -99;
    short pix[20];
    for (int i = 0; i < 20; i++)
        pix[i] = (short)(i + 1);
    pix[5] = -99;
    fits_create_file(&f, path, &status);
    fits_create_img(f, SHORT_IMG, 3, naxes, &status);
    fits_write_key(f, TLONG, "BLANK", &blank, NULL, &status);
    fits_write_img(f, TSHORT, 1, 20, pix, &status);
    fits_close_file(f, &status);
    return status;
}

static float value_at(const char *name, int64_t i, int64_t *n)
{
    ds_tensor *t = NULL;
    float v = NAN;
    if (ds_array_load(at(name), NULL, &t) == DS_OK && i < ds_tensor_numel(t))
        v = ds_tensor_data(t)[i];
    *n = t ? ds_tensor_numel(t) : -1;
    ds_tensor_free(t);
    return v;
}

TEST(cli_data_missing_values)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    CHECK(make_dir() == 0);
    CHECK(write_blank_cube(at("b.fits")) == 0);
    write_text("id.model", "input shape=1x2x2\n");   /* predicts its input */
    EXPECT(0, cli_run_in(dir, "init id.model -o id.safetensors"));
    EXPECT(1, cli_run_in(dir, "predict id.model --weights id.safetensors --data b.fits -o o.npy"));
    HAS("deepsky: error: b.fits: element 5 (sample 1) is NaN; --nan fill:VALUE, --nan mean or "
        "--nan drop-samples handles missing values");
    int64_t n;
    EXPECT(0, cli_run_in(dir, "predict id.model --weights id.safetensors --data b.fits --nan "
                              "fill:-1 -o o.npy"));
    CHECK(value_at("o.npy", 5, &n) == -1 && n == 20 && value_at("o.npy", 4, &n) == 5);
    EXPECT(0, cli_run_in(dir, "predict id.model --weights id.safetensors --data b.fits --nan mean "
                              "-o o.npy"));
    CHECK_NEAR(value_at("o.npy", 5, &n), (5.0 + 7 + 8) / 3, 1e-6);   /* its image's mean */
    EXPECT(0, cli_run_in(dir, "predict id.model --weights id.safetensors --data b.fits --nan "
                              "drop-samples -o o.npy"));
    HAS("deepsky: note: --nan drop-samples: left out 1 of 5 samples that hold NaN (samples 1, "
        "counted from 0)");
    CHECK(value_at("o.npy", 4, &n) == 9 && n == 16);
    /* tables: a feature's mean; missing labels are only dropped */
    write_text("f.model", "input shape=2\n");
    write_text("c.model", "input shape=2\ndense units=2 activation=softmax\n"
                          "loss categorical_crossentropy\n");
    write_text("t.csv", "a,b,y\n1,,0\n3,4,1\n5,8,\n");
    EXPECT(0, cli_run_in(dir, "init f.model -o f.safetensors"));
    EXPECT(0, cli_run_in(dir, "predict f.model --weights f.safetensors --data t.csv "
                              "--label-columns y --nan mean -o o.csv"));
    CHECK(value_at("o.csv", 1, &n) == 6 && n == 6);
    EXPECT(1, cli_run_in(dir, "train c.model --data t.csv --label-columns y --nan mean --epochs 1 "
                              "-q -o w.safetensors"));
    HAS("deepsky: error: t.csv: element 2 (sample 2) is NaN; missing labels are not filled: "
        "--nan drop-samples leaves out their samples");
    EXPECT(0, cli_run_in(dir, "train c.model --data t.csv --label-columns y --nan drop-samples "
                              "--epochs 1 -q -o w.safetensors"));
    HAS("left out 2 of 3 samples that hold NaN (samples 0, 2, counted from 0)");
    EXPECT(2, cli_run_in(dir, "train c.model --data t.csv --label-columns y --nan fill:abc -o "
                              "w.safetensors"));
    HAS("deepsky train: option '--nan': 'abc' is not a finite number");
    EXPECT(2, cli_run_in(dir, "predict f.model --weights f.safetensors --data t.csv --nan zero -o "
                              "o.csv"));
    HAS("deepsky predict: option '--nan': 'zero' is not fill:VALUE, mean or drop-samples");
    rm_dir();
    return TEST_PASS;
}

TEST(cli_data_fits_keyword_not_a_number)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    CHECK(make_dir() == 0);
    float pix[4] = {1, 2, 3, 4};
    CHECK(write_image(at("s.fits"), 2, (long[]){2, 2}, pix) == 0);
    /* BSCALE = 'abc' (cfitsio would ignore it; astropy refuses the file) */
    FILE *fp = fopen(at("s.fits"), "r+b");
    CHECK(fp != NULL);
    char card[81];
    snprintf(card, sizeof card, "%-80s", "BSCALE  = 'abc'");
    fseek(fp, 80 * 8, SEEK_SET);   /* after SIMPLE .. EXTEND, the comments, CTYPE1, CTYPE2 */
    fwrite(card, 1, 80, fp);
    fclose(fp);
    write_text("id.model", "input shape=1x2x2\n");
    EXPECT(0, cli_run_in(dir, "init id.model -o id.safetensors"));
    EXPECT(1, cli_run_in(dir, "predict id.model --weights id.safetensors --data s.fits -o o.npy"));
    HAS("deepsky: error: s.fits: HDU 1, header card 9 ('BSCALE'): the value 'abc' is not a "
        "number, which BSCALE must be");
    rm_dir();
    return TEST_PASS;
}

TEST(cli_data_predict_classes)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    CHECK(make_dir() == 0);
    char rows[4096];
    table_text(rows, sizeof rows);
    write_text("m.model", cls_model);
    write_text("t.csv", rows);
    write_text("r.model", "input shape=4\ndense units=1\nloss mse\n");
    EXPECT(0, cli_run_in(dir, TRAIN "--data t.csv --no-header --label-columns -1"));
    /* the label column is left out of the features, as in eval */
    EXPECT(1, cli_run_in(dir, "predict m.model --weights w.safetensors --data t.csv --no-header -o "
                              "p.csv"));
    EXPECT(0, cli_run_in(dir, "predict m.model --weights w.safetensors --data t.csv --no-header "
                              "--label-columns -1 --classes -o p.csv"));
    HAS("wrote p.csv [30, 4]: 3 probabilities and 1 class column");
    ds_tensor *t = NULL;
    char *cols = ds_table_columns(at("p.csv"), NULL);
    CHECK(cols && !strcmp(cols, "prob_0,prob_1,prob_2,class"));
    free(cols);
    CHECK(ds_array_load(at("p.csv"), NULL, &t) == DS_OK && ds_tensor_shape(t)[0] == 30);
    for (int i = 0; i < 30; i++) {   /* the class is the most probable one */
        const float *r = ds_tensor_data(t) + 4 * i;
        int best = r[1] > r[0] ? (r[2] > r[1] ? 2 : 1) : (r[2] > r[0] ? 2 : 0);
        CHECK(r[3] == (float)best);
    }
    ds_tensor_free(t);
    EXPECT(0, cli_run_in(dir, "predict m.model --weights w.safetensors --data t.csv --no-header "
                              "--label-columns -1 --classes -o p.npy"));
    HAS("wrote p.npy [30, 4]");
    EXPECT(0, cli_run_in(dir, "predict m.model --weights w.safetensors --data t.csv --no-header "
                              "--label-columns -1 --classes -o p.fits"));
    cols = ds_table_columns(at("p.fits"), NULL);
    CHECK(cols && !strcmp(cols, "prob_0,prob_1,prob_2,class"));
    free(cols);
    EXPECT(0, cli_run_in(dir, "init r.model -o r.safetensors"));
    EXPECT(1, cli_run_in(dir, "predict r.model --weights r.safetensors --data t.csv --no-header "
                              "--columns 1-4 --classes -o p.csv"));
    HAS("deepsky: error: --classes: output 'dense_1' is not a classifier's prediction: no "
        "categorical or binary cross-entropy loss reads it");
    /* a model with a regression head and a classifier: the classes for the classifier only */
    write_text("h.model", "input name=x shape=4\ndense name=h units=8 activation=tanh\n"
                          "dense name=reg units=1 inputs=h\n"
                          "dense name=cls units=3 inputs=h activation=softmax\n"
                          "loss mse output=reg\nloss categorical_crossentropy output=cls\n");
    EXPECT(0, cli_run_in(dir, "init h.model -o h.safetensors"));
    EXPECT(0, cli_run_in(dir, "predict h.model --weights h.safetensors --data t.csv --no-header "
                              "--columns 1-4 --classes -o reg=r.npy -o cls=c.csv"));
    HAS("wrote r.npy [30, 1]", "wrote c.csv [30, 4]: 3 probabilities and 1 class column");
    rm_dir();
    return TEST_PASS;
}

TEST(cli_data_model_bom_and_an_input_named_labels)
{
    CHECK(make_dir() == 0);
    char rows[4096], bom[300];
    table_text(rows, sizeof rows);
    write_text("t.csv", rows);
    snprintf(bom, sizeof bom, "\xEF\xBB\xBF%s", cls_model);
    write_text("bom.model", bom);
    EXPECT(0, cli_run_in(dir, "summary bom.model"));
    HAS("dense_2");
    write_text("l.model", "input name=labels shape=4\ndense units=3 activation=softmax\n"
                          "loss categorical_crossentropy\n");
    EXPECT(0, cli_run_in(dir, "train l.model --data labels=t.csv --no-header --label-columns -1 "
                              "--epochs 1 -q -o w.safetensors"));
    EXPECT(0, cli_run_in(dir, "eval l.model --weights w.safetensors --data labels=t.csv "
                              "--no-header --label-columns 5"));
    HAS("samples: 30");
    rm_dir();
    return TEST_PASS;
}

/* The commands between README.md's WALKTHROUGH markers, lines joined at '\', each starting
 * "build/deepsky ", into cmds (count returned, -1 if the markers are missing). */
static int walkthrough(char cmds[][1024], int max)
{
    size_t n = 0;
    FILE *fp = fopen("README.md", "r");
    char line[1024];
    bool in = false;
    int k = 0;
    if (!fp)
        return -1;
    while (fgets(line, sizeof line, fp) && k < max) {
        if (strstr(line, "<!-- WALKTHROUGH:BEGIN -->"))
            in = true;
        else if (strstr(line, "<!-- WALKTHROUGH:END -->"))
            break;
        else if (in) {
            char *s = line + strspn(line, " ");
            s[strcspn(s, "\n")] = 0;
            if (!*s)
                continue;
            bool more = s[strlen(s) - 1] == '\\';
            if (more)
                s[strlen(s) - 1] = 0;
            if (!n && strncmp(s, "build/deepsky ", 14))
                continue;
            n += (size_t)snprintf(cmds[k] + n, 1024 - n, "%s%s", n ? " " : "", s);
            if (!more)
                k++, n = 0;
        }
    }
    fclose(fp);
    return in ? k : -1;
}

TEST(cli_data_readme_walkthrough)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    static char cmds[8][1024];
    int n = walkthrough(cmds, 8);
    if (n != 6)
        FAIL("README.md's walkthrough: %d commands, expected 6 (three each for CSV and FITS)", n);
    CHECK(make_dir() == 0);
    char cwd[512], link[700];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(link, sizeof link, "%s/examples", cwd);
    CHECK(symlink(link, at("examples")) == 0);   /* outputs stay in dir: -o names no folder */
    const char *expect[6] = {"done: 30 epochs", "accuracy: 0.9", "wrote iris_pred.csv [30, 4]",
                             "done: 30 epochs", "accuracy: 0.9", "wrote iris_pred.fits [30, 4]"};
    for (int i = 0; i < n; i++) {
        const char *o = strstr(cmds[i], " -o ");
        if (o && strchr(o + 4, '/'))
            FAIL("walkthrough command %d writes into a folder: %s", i + 1, cmds[i]);
        EXPECT(0, cli_run_in(dir, "%s", cmds[i] + strlen("build/deepsky ")));
        if (!strstr(cli_out, expect[i]))
            FAIL("walkthrough command %d (%s): output lacks '%s':\n%s", i + 1, cmds[i],
                 expect[i], cli_out);
        LACKS("note:");
    }
    char *cols = ds_table_columns(at("iris_pred.fits"), NULL);
    CHECK(cols && !strcmp(cols, "prob_0,prob_1,prob_2,class"));
    free(cols);
    rm_dir();
    return TEST_PASS;
}
