/* gan.c - a GAN through the C API, as `deepsky train-gan` runs one: a generator and a
 * discriminator from model files, trained together on galaxy stamps; then the generated
 * stamps are compared with the real ones by the KS test on their flux, half-light radius
 * and ellipticity (adaptive moments).
 *
 *   build/examples/gan examples/dcgan_generator.model examples/dcgan_discriminator.model \
 *       stamps.fits out/gan [EPOCHS]
 *
 * with stamps.fits from `deepsky sim galaxies --count 2000 --size 32 -o stamps.fits ...`. */
#include <deepsky.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRY(x) do { if (!(x)) { fprintf(stderr, "error: %s\n", ds_last_error()); goto done; } } while (0)

static void show(void *ctx, const ds_gan_progress *p)
{
    (void)ctx;
    printf("epoch %d/%d: d_loss %.3f g_loss %.3f D(x) %.2f D(G(z)) %.2f (%.1f s)\n", p->epoch,
           p->epochs, p->d_loss, p->g_loss, p->d_real, p->d_fake, p->seconds);
}

/* KS statistic and p-value of one measured quantity (k: 0 flux, 1 hlr, 2 |e|) between the
 * stamps' measurements a (na) and b (nb), failed measurements left out. */
static void compare(const char *name, int k, const ds_stamp_stat *a, int64_t na,
                    const ds_stamp_stat *b, int64_t nb)
{
    double *va = malloc(sizeof *va * (size_t)na), *vb = malloc(sizeof *vb * (size_t)nb), d, p;
    int64_t ma = 0, mb = 0;
    for (int64_t i = 0; va && i < na; i++)
        if (!a[i].flag)
            va[ma++] = k == 0 ? a[i].flux : k == 1 ? a[i].hlr : a[i].e;
    for (int64_t i = 0; vb && i < nb; i++)
        if (!b[i].flag)
            vb[mb++] = k == 0 ? b[i].flux : k == 1 ? b[i].hlr : b[i].e;
    if (va && vb && ds_ks_2samp(va, ma, vb, mb, &d, &p) == DS_OK)
        printf("  %-4s KS D = %.3f (p = %.2g) over %lld real and %lld generated stamps\n", name,
               d, p, (long long)ma, (long long)mb);
    free(va);
    free(vb);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s G.model D.model STAMPS OUTDIR [EPOCHS]\n", argv[0]);
        return 2;
    }
    int rc = 1;
    ds_net *g = NULL, *d = NULL;
    ds_tensor *x = NULL, *fake = NULL;
    ds_stamp_stat *sr = NULL, *sf = NULL;
    /* Two nets, each with the optimizer line of its own file; different seeds for their
     * initial weights. */
    TRY(ds_net_load(argv[1], &(ds_net_opts){.batch = 64, .seed = 1}, &g) == DS_OK);
    TRY(ds_net_load(argv[2], &(ds_net_opts){.batch = 64, .seed = 2}, &d) == DS_OK);
    TRY(ds_array_load(argv[3], NULL, &x) == DS_OK);
    const int64_t *sh = ds_tensor_shape(x);
    int64_t n = sh[0], size = sh[ds_tensor_ndim(x) - 1];
    TRY(ds_tensor_reshape(x, 4, (int64_t[]){n, 1, size, size}) == DS_OK);   /* [N, 1, S, S] */
    /* The stamps keep their raw copy for the statistics; D learns them divided by their
     * largest pixel (stored with D's weights), and so does G. */
    float peak = 0;
    for (int64_t i = 0; i < ds_tensor_numel(x); i++)
        peak = fmaxf(peak, ds_tensor_data(x)[i]);
    ds_tensor *scaled = ds_tensor_create(4, (int64_t[]){n, 1, size, size});
    if (scaled)
        memcpy(ds_tensor_data(scaled), ds_tensor_data(x), sizeof(float) * (size_t)(n * size * size));
    TRY(scaled && ds_net_set_scaling(d, DS_SCALE_DIVIDE, peak, NULL) == DS_OK &&
        ds_net_preprocess(d, scaled) == DS_OK);
    /* Alternating updates, non-saturating loss; every epoch writes both weights files, the
     * checkpoint (resume with .resume = 1), the log and an 8x8 grid of samples. */
    ds_gan_opts o = {
        .epochs = argc > 5 ? atoi(argv[5]) : 20, .batch_size = 64, .d_steps = 1,
        .label_smoothing = 0.1, .seed = 7, .out_dir = argv[4],
        .grid_rows = ds_has_feature("plot") ? 8 : 0, .grid_cols = 8, .progress = show,
    };
    ds_gan_result r;
    ds_status st = ds_gan_fit(g, d, scaled, &o, &r);
    ds_tensor_free(scaled);
    TRY(st == DS_OK);
    /* Generated stamps back in the data's units, measured like the real ones. */
    int64_t m = n < 2000 ? n : 2000;
    TRY(ds_gan_sample(g, m, 99, &fake) == DS_OK);
    for (int64_t i = 0; i < ds_tensor_numel(fake); i++)
        ds_tensor_data(fake)[i] *= peak;
    sr = malloc(sizeof *sr * (size_t)n);
    sf = malloc(sizeof *sf * (size_t)m);
    TRY(sr && sf && ds_stamp_stats(ds_tensor_data(x), n, (int)size, sr) == DS_OK &&
        ds_stamp_stats(ds_tensor_data(fake), m, (int)size, sf) == DS_OK);
    printf("after %d epochs (%.1f s): generated against real stamps\n", r.epochs_run, r.seconds);
    compare("flux", 0, sr, n, sf, m);
    compare("hlr", 1, sr, n, sf, m);
    compare("|e|", 2, sr, n, sf, m);
    rc = 0;
done:
    free(sr);
    free(sf);
    ds_tensor_free(fake);
    ds_tensor_free(x);
    ds_net_free(g);
    ds_net_free(d);
    return rc;
}
