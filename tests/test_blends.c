/* test_blends.c - blended pairs: masks against the noiseless components, the truth table
 * against the stamps and ds_sim_galaxies' draws, the same bits at 1 and 2 threads, one-hot
 * masks, bad options, and `deepsky sim blends`. */
#include "test.h"
#include "spawn.h"

#include <stdbool.h>
#include <unistd.h>

static ds_blend_opts blend_opts(void)
{
    ds_blend_opts o = {0};
    ds_sim_opts *s = &o.sim;
    s->count = 40, s->size = 32, s->seed = 5, s->n_min = 0.5, s->n_max = 6, s->hlr_min = 1.5;
    s->hlr_max = 5, s->e_max = 0.6, s->snr_min = 20, s->snr_max = 100, s->sky_sigma = 1;
    s->offset_max = 0.5, s->psf.kind = DS_PSF_GAUSSIAN, s->psf.fwhm = 2;
    return o;
}

typedef struct {
    ds_tensor *x, *lab, *tr, *comp;
} blends;

static void blends_free(blends *b)
{
    ds_tensor_free(b->x), ds_tensor_free(b->lab), ds_tensor_free(b->tr), ds_tensor_free(b->comp);
}

static int column(const char *name)
{
    const char *const *c = ds_blend_columns();
    for (int j = 0; c[j]; j++)
        if (!strcmp(c[j], name))
            return j;
    return -1;
}

static double tcol(const blends *b, int64_t i, const char *name)
{
    return ds_tensor_data(b->tr)[i * ds_blend_column_count() + column(name)];
}

TEST(blends_columns_are_named_and_counted)
{
    const char *const *c = ds_blend_columns();
    int n = 0;
    while (c[n])
        n++;
    CHECK(n == ds_blend_column_count());
    const char *want[] = {"a_e1", "a_flux", "b_dy", "psf_fwhm", "g2", "separation", "angle",
                          "flux_ratio", "snr", "a_pixels", "b_pixels", "overlap"};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
        if (column(want[k]) < 0)
            FAIL("no column '%s'", want[k]);
    return TEST_PASS;
}

/* Every pixel's label follows from the components and the threshold; each mask holds most
 * of its galaxy's flux; the stamp is the components plus noise of the sky's sigma. */
TEST(blends_masks_agree_with_the_noiseless_images)
{
    ds_blend_opts o = blend_opts();
    blends b = {0};
    CHECK(ds_sim_blends(&o, &b.x, &b.lab, &b.tr, &b.comp) == DS_OK);
    const int64_t n = o.sim.count, npix = 32 * 32;
    double noise2 = 0, worst = 1;
    int64_t bad = -1, counted = 0;
    for (int64_t i = 0; i < n && bad < 0; i++) {
        const float *ca = ds_tensor_data(b.comp) + 2 * i * npix, *cb = ca + npix;
        const float *lab = ds_tensor_data(b.lab) + i * npix, *x = ds_tensor_data(b.x) + i * npix;
        double in[2] = {0, 0}, tot[2] = {0, 0};
        int64_t pix[2] = {0, 0};
        for (int64_t j = 0; j < npix; j++) {
            int ia = ca[j] > 1, ib = cb[j] > 1;
            float want = ia && ib ? (ca[j] >= cb[j] ? 1 : 2) : ia ? 1 : ib ? 2 : 0;
            if (lab[j] != want)
                bad = i;
            tot[0] += ca[j], tot[1] += cb[j];
            in[0] += lab[j] == 1 ? ca[j] : 0, in[1] += lab[j] == 2 ? cb[j] : 0;
            pix[0] += lab[j] == 1, pix[1] += lab[j] == 2;
            noise2 += (double)(x[j] - ca[j] - cb[j]) * (x[j] - ca[j] - cb[j]);
        }
        CHECK(pix[0] == tcol(&b, i, "a_pixels") && pix[1] == tcol(&b, i, "b_pixels"));
        /* the galaxies' light within the stamp, and most of it inside the masks when the
         * masks are not cut by the other galaxy (the fainter one may lose its overlap) */
        CHECK(tot[0] <= 1.001 * tcol(&b, i, "a_flux") && tot[0] >= 0.6 * tcol(&b, i, "a_flux"));
        CHECK(tot[1] <= 1.001 * tcol(&b, i, "b_flux") && tot[1] >= 0.6 * tcol(&b, i, "b_flux"));
        /* "most": at 1 sky sigma a mask holds over half the light of a galaxy of SNR 20
         * (about 0.66 on average) and over 0.7 of one of SNR 50 */
        for (int k = 0; k < 2 && tcol(&b, i, "overlap") == 0; k++) {
            double snr = tcol(&b, i, k ? "b_snr" : "a_snr"), f = in[k] / tot[k];
            if (snr >= 20)
                worst = fmin(worst, f - (snr >= 50 ? 0.7 : 0.5)), counted++;
        }
    }
    double sd = sqrt(noise2 / (double)(n * npix));
    blends_free(&b);
    if (bad >= 0)
        FAIL("blend %lld: a label differs from the components' threshold rule", (long long)bad);
    CHECK(counted > 10);
    if (!(worst > 0))
        FAIL("a mask holds %.3f less of its galaxy's flux than it should", -worst);
    CHECK_NEAR(sd, 1.0, 0.03);
    return TEST_PASS;
}

/* The truth table against the components: fluxes, SNRs, ratio, separation and angle; and
 * galaxy a's shape is that of row i of ds_sim_galaxies with the same seed. */
TEST(blends_truth_matches_the_stamps)
{
    ds_blend_opts o = blend_opts();
    blends b = {0};
    ds_tensor *gx = NULL, *gt = NULL;
    CHECK(ds_sim_blends(&o, &b.x, &b.lab, &b.tr, &b.comp) == DS_OK);
    CHECK(ds_sim_galaxies(&o.sim, &gx, &gt) == DS_OK);
    const int64_t npix = 32 * 32, gc = ds_sim_column_count();
    int ok = 1;
    for (int64_t i = 0; i < o.sim.count && ok; i++) {
        const float *ca = ds_tensor_data(b.comp) + 2 * i * npix, *cb = ca + npix;
        float sum[1024];
        for (int64_t j = 0; j < npix; j++)
            sum[j] = ca[j] + cb[j];
        const float *g = ds_tensor_data(gt) + i * gc;
        double dx = tcol(&b, i, "b_dx") - tcol(&b, i, "a_dx");
        double dy = tcol(&b, i, "b_dy") - tcol(&b, i, "a_dy");
        double ang = atan2(dy, dx) * 180 / M_PI;
        ang += ang < 0 ? 360 : 0;
        ok = fabs(ds_image_snr(ca, npix, 1) / tcol(&b, i, "a_snr") - 1) < 1e-4 &&
             fabs(ds_image_snr(cb, npix, 1) / tcol(&b, i, "b_snr") - 1) < 1e-4 &&
             fabs(ds_image_snr(sum, npix, 1) / tcol(&b, i, "snr") - 1) < 1e-4 &&
             tcol(&b, i, "a_snr") >= 20 - 1e-3 && tcol(&b, i, "a_snr") <= 100 + 1e-3 &&
             fabs(tcol(&b, i, "b_flux") / tcol(&b, i, "a_flux") - tcol(&b, i, "flux_ratio")) < 1e-5 &&
             fabs(hypot(dx, dy) - tcol(&b, i, "separation")) < 1e-4 &&
             tcol(&b, i, "separation") >= 4 && tcol(&b, i, "separation") <= 10 &&
             fabs(fmod(ang - tcol(&b, i, "angle") + 540, 360) - 180) < 1e-2 &&
             tcol(&b, i, "a_n") == g[2] && tcol(&b, i, "a_hlr") == g[3] &&
             tcol(&b, i, "a_e1") == g[0] && tcol(&b, i, "a_e2") == g[1] &&
             tcol(&b, i, "psf_fwhm") == 2;
        if (!ok)
            snprintf(msg_, cap_, "blend %lld: a truth column disagrees with the stamps",
                     (long long)i);
    }
    blends_free(&b);
    ds_tensor_free(gx), ds_tensor_free(gt);
    return ok ? TEST_PASS : TEST_FAIL;
}

static bool same(const ds_tensor *a, const ds_tensor *b)
{
    return ds_tensor_numel(a) == ds_tensor_numel(b) &&
           !memcmp(ds_tensor_data((ds_tensor *)a), ds_tensor_data((ds_tensor *)b),
                   sizeof(float) * (size_t)ds_tensor_numel(a));
}

TEST(blends_same_bits_at_1_and_2_threads)
{
    ds_blend_opts o = blend_opts();
    o.sim.count = 10, o.sim.gain = 2, o.sim.psf.kind = DS_PSF_MOFFAT, o.sim.psf.beta = 3;
    o.sim.psf_fwhm_min = 1.5, o.sim.psf_fwhm_max = 3, o.sim.psf_e_max = 0.1;
    blends a = {0}, b = {0};
    int threads = ds_get_num_threads();
    ds_set_num_threads(1);
    ds_status s1 = ds_sim_blends(&o, &a.x, &a.lab, &a.tr, &a.comp);
    ds_set_num_threads(2);
    ds_status s2 = ds_sim_blends(&o, &b.x, &b.lab, &b.tr, &b.comp);
    ds_set_num_threads(threads);
    bool eq = s1 == DS_OK && s2 == DS_OK && same(a.x, b.x) && same(a.lab, b.lab) &&
              same(a.tr, b.tr) && same(a.comp, b.comp);
    /* both galaxies of a blend share its PSF */
    bool psf = s1 == DS_OK;
    for (int64_t i = 0; psf && i < o.sim.count; i++)
        psf = tcol(&a, i, "psf_fwhm") >= 1.5 && tcol(&a, i, "psf_fwhm") <= 3 &&
              tcol(&a, i, "psf_beta") == 3;
    blends_free(&a);
    blends_free(&b);
    CHECK(s1 == DS_OK && s2 == DS_OK);
    CHECK(eq);
    CHECK(psf);
    return TEST_PASS;
}

TEST(blends_one_hot_masks)
{
    ds_blend_opts o = blend_opts();
    o.sim.count = 6;
    blends b = {0};
    ds_tensor *oh = NULL;
    CHECK(ds_sim_blends(&o, &b.x, &b.lab, &b.tr, NULL) == DS_OK);
    CHECK(ds_labels_one_hot(b.lab, 3, &oh) == DS_OK);
    const int64_t *sh = ds_tensor_shape(oh), npix = 32 * 32;
    CHECK(ds_tensor_ndim(oh) == 4 && sh[0] == 6 && sh[1] == 3 && sh[2] == 32 && sh[3] == 32);
    int ok = 1;
    for (int64_t i = 0; i < 6 && ok; i++)
        for (int64_t j = 0; j < npix && ok; j++) {
            const float *y = ds_tensor_data(oh) + i * 3 * npix + j;
            int l = (int)ds_tensor_data(b.lab)[i * npix + j];
            ok = y[0] + y[npix] + y[2 * npix] == 1 && y[l * npix] == 1;
        }
    ds_tensor_free(oh);
    /* a label outside [0, classes), and a shape that is not [N, 1, H, W] */
    ds_tensor_data(b.lab)[3 * npix + 17] = 3;
    ds_status st = ds_labels_one_hot(b.lab, 3, &oh);
    int bad = check_arg_error(st, "label 3 of sample 3, pixel 17 is not an integer in [0, 3)",
                              msg_, cap_);
    ds_status st2 = ds_labels_one_hot(b.x, 1, &oh);
    blends_free(&b);
    CHECK(ok);
    if (bad)
        return TEST_FAIL;
    CHECK(st2 == DS_ERR_ARG && oh == NULL);
    return TEST_PASS;
}

static int expect_arg(ds_blend_opts o, const char *word, char *msg_, size_t cap_)
{
    blends b = {0};
    ds_status st = ds_sim_blends(&o, &b.x, &b.lab, &b.tr, &b.comp);
    bool none = !b.x && !b.lab && !b.tr && !b.comp;
    blends_free(&b);
    if (!none)
        FAIL("outputs left after an error for '%s'", word);
    return check_arg_error(st, word, msg_, cap_);
}

TEST(blends_bad_options)
{
    ds_blend_opts o = blend_opts();
    o.ratio_min = 0.5, o.ratio_max = 2;
    CHECK_OK(expect_arg(o, "flux ratio range [0.5, 2] must be within (0, 1]", msg_, cap_));
    o = blend_opts();
    o.sep_min = 4, o.sep_max = 40;
    CHECK_OK(expect_arg(o, "separation range [4, 40] must be within [0, 32]", msg_, cap_));
    o = blend_opts();
    o.sep_min = 4, o.sep_max = 32;
    CHECK_OK(expect_arg(o, "puts a galaxy's centre outside the 32-pixel stamp", msg_, cap_));
    o = blend_opts();
    o.sim.snr_min = o.sim.snr_max = 0;
    CHECK_OK(expect_arg(o, "the SNR range [0, 0] must be positive", msg_, cap_));
    o = blend_opts();
    o.sim.nb_prob = 0.5;
    CHECK_OK(expect_arg(o, "neighbours", msg_, cap_));
    o = blend_opts();
    o.mask_threshold = -1;
    CHECK_OK(expect_arg(o, "mask threshold -1 must be > 0", msg_, cap_));
    o = blend_opts();
    o.sim.hlr_min = -1;
    CHECK_OK(expect_arg(o, "half-light radius range", msg_, cap_));   /* ds_sim_galaxies' */
    return TEST_PASS;
}

/* ---- the command line ---- */

TEST(blends_cli_writes_images_masks_and_truth)
{
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    char dir[256], p[512];
    CHECK(test_tmpdir(dir, sizeof dir, "blends"));
    int rc = cli_run("sim blends --count 8 --size 24 --seed 3 --threads 1 --separation 3:7 "
                     "--flux-ratio 0.5:1 --snr 30:60 -o %s/b.npy --masks %s/m.npy --truth "
                     "%s/t.csv --components %s/c.npy", dir, dir, dir, dir);
    ds_tensor *x = NULL, *m = NULL, *c = NULL, *oh = NULL, *sep = NULL;
    ds_read_opts ro = {.columns = "separation"};
    int ok = rc == 0;
    if (ok) {
        snprintf(p, sizeof p, "%s/b.npy", dir);
        ok = ds_array_load(p, NULL, &x) == DS_OK;
        snprintf(p, sizeof p, "%s/m.npy", dir);
        ok = ok && ds_array_load(p, NULL, &m) == DS_OK;
        snprintf(p, sizeof p, "%s/c.npy", dir);
        ok = ok && ds_array_load(p, NULL, &c) == DS_OK;
        snprintf(p, sizeof p, "%s/t.csv", dir);
        ok = ok && ds_array_load(p, &ro, &sep) == DS_OK;
    }
    if (ok)
        rc = cli_run("sim blends --count 8 --size 24 --seed 3 --threads 1 --separation 3:7 "
                     "--flux-ratio 0.5:1 --snr 30:60 -o %s/b2.npy --masks %s/oh.npy --one-hot "
                     "--truth %s/t2.csv", dir, dir, dir);
    if (ok && rc == 0) {
        snprintf(p, sizeof p, "%s/oh.npy", dir);
        ok = ds_array_load(p, NULL, &oh) == DS_OK;
    }
    test_rm_rf(dir);
    bool shapes = ok && rc == 0 && ds_tensor_ndim(x) == 3 && ds_tensor_shape(x)[0] == 8 &&
                  ds_tensor_shape(x)[2] == 24 && ds_tensor_ndim(m) == 3 &&
                  ds_tensor_ndim(c) == 4 && ds_tensor_shape(c)[1] == 2 &&
                  ds_tensor_numel(sep) == 8 && ds_tensor_ndim(oh) == 4 &&
                  ds_tensor_shape(oh)[1] == 3;
    bool range = shapes;
    for (int i = 0; range && i < 8; i++)
        range = ds_tensor_data(sep)[i] >= 3 && ds_tensor_data(sep)[i] <= 7;
    ds_tensor_free(x), ds_tensor_free(m), ds_tensor_free(c), ds_tensor_free(oh);
    ds_tensor_free(sep);
    if (!ok || rc)
        FAIL("exit %d: %s", rc, cli_out);
    CHECK(shapes);
    CHECK(range);
    return TEST_PASS;
}

TEST(blends_cli_bad_input)
{
    if (access(cli_bin(), X_OK))
        SKIP("no tool to run (set DEEPSKY)");
    char dir[256];
    CHECK(test_tmpdir(dir, sizeof dir, "blends_bad"));
    static const struct {
        const char *args, *text;
    } cases[] = {
        {"--count 4 -o %s/b.npy --truth %s/t.csv",
         "-o IMAGES, --masks MASKS and --truth TABLE are required"},
        {"--count 4 -o %s/b.npy --masks %s/m.npy --truth %s/t.csv --flux-ratio 0.5:2",
         "option '--flux-ratio'"},
        {"--count 4 -o %s/b.npy --masks %s/m.npy --truth %s/t.csv --snr 0",
         "blends need an SNR range > 0"},
        {"--count 4 -o %s/b.npy --masks %s/m.npy --truth %s/t.csv --separation 4:32",
         "put a galaxy's centre outside the 32-pixel stamp"},
        {"--count 4 -o %s/b.npy --masks %s/m.npy --truth %s/t.csv --neighbour 1",
         "unknown option '--neighbour'"},
        {"-o %s/b.npy --masks %s/m.npy --truth %s/t.csv", "--count N is required"},
    };
    int bad = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0] && !bad; k++) {
        char args[1024];
        snprintf(args, sizeof args, cases[k].args, dir, dir, dir);
        bad = cli_expect(cli_run("sim blends %s", args), 2, cases[k].text, msg_, cap_);
    }
    test_rm_rf(dir);
    return bad ? TEST_FAIL : TEST_PASS;
}
