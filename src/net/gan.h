/* gan.h - the state of a GAN training run, shared by gan.c (the loop) and gan_files.c
 * (weights, checkpoint, resume, log, sample grid). */
#ifndef DS_GAN_H
#define DS_GAN_H

#include "net.h"

/* history columns per epoch */
enum { GAN_D_LOSS, GAN_G_LOSS, GAN_D_REAL, GAN_D_FAKE, GAN_SECONDS, GAN_HCOLS };

typedef struct {
    double d_loss, g_loss, d_real, d_fake;
    int64_t d_steps, g_steps;
} gan_sums;

typedef struct {
    ds_net *g, *d;
    const ds_gan_opts *o;
    const ds_tensor *x;
    ds_node *gin, *gout, *din, *dlogit;
    ds_optim *og, *od;
    int64_t N, B, K, per, latent;   /* samples, batch, D steps per G step, floats per sample */
    int epochs, start;
    int64_t d_steps_epoch, g_steps_epoch;
    int64_t *perm;
    float *seed;                    /* B floats: the gradient of a loss at D's logits */
    double *hist;                   /* GAN_HCOLS per epoch */
    char *settings;                 /* "name: value" lines a resume must match */
    char gpath[4096], dpath[4096], ckpt[4096], log[4096];
    ds_gan_result r;
} gan_run;

/* gan_files.c */
ds_status dsi_gan_files_setup(gan_run *r);        /* the paths and the settings */
ds_status dsi_gan_resume(gan_run *r);             /* loads the checkpoint: r->start */
ds_status dsi_gan_write(gan_run *r, int epochs);  /* the files after that many epochs */
ds_status dsi_gan_write_log(const gan_run *r, int epochs);

/* fit.c: the differences of two runs' settings into msg (their count), a tensor's hash */
int dsi_settings_diff(const char *then, const char *now, char *msg, size_t cap);
uint64_t dsi_tensor_hash(const ds_tensor *t);

#endif
