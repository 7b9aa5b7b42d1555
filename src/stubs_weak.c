/* stubs_weak.c - TEMPORARY: weak placeholders for public functions still being written,
 * so the tree links while op families are developed side by side. Removed at integration. */
#include "internal.h"

#pragma GCC diagnostic ignored "-Wunused-parameter"

__attribute__((weak)) ds_status ds_safetensors_save(const ds_tensor_set *s, const char *path) { return dsi_fail(DS_ERR_STATE, "%s is not implemented yet", __func__); }
__attribute__((weak)) ds_status ds_safetensors_load(const char *path, ds_tensor_set **out) { return dsi_fail(DS_ERR_STATE, "%s is not implemented yet", __func__); }
__attribute__((weak)) char * ds_graph_summary(const ds_graph *g) { return NULL; }
__attribute__((weak)) ds_node * ds_add(ds_graph *g, ds_node *a, ds_node *b) { return NULL; }
__attribute__((weak)) ds_node * ds_sub(ds_graph *g, ds_node *a, ds_node *b) { return NULL; }
__attribute__((weak)) ds_node * ds_mul(ds_graph *g, ds_node *a, ds_node *b) { return NULL; }
__attribute__((weak)) ds_node * ds_div(ds_graph *g, ds_node *a, ds_node *b) { return NULL; }
__attribute__((weak)) ds_node * ds_add_scalar(ds_graph *g, ds_node *x, float c) { return NULL; }
__attribute__((weak)) ds_node * ds_mul_scalar(ds_graph *g, ds_node *x, float c) { return NULL; }
__attribute__((weak)) ds_node * ds_pow_scalar(ds_graph *g, ds_node *x, float p) { return NULL; }
__attribute__((weak)) ds_node * ds_neg(ds_graph *g, ds_node *x) { return NULL; }
__attribute__((weak)) ds_node * ds_exp(ds_graph *g, ds_node *x) { return NULL; }
__attribute__((weak)) ds_node * ds_log(ds_graph *g, ds_node *x) { return NULL; }
__attribute__((weak)) ds_node * ds_sqrt(ds_graph *g, ds_node *x) { return NULL; }
__attribute__((weak)) ds_node * ds_square(ds_graph *g, ds_node *x) { return NULL; }
__attribute__((weak)) ds_node * ds_abs(ds_graph *g, ds_node *x) { return NULL; }
__attribute__((weak)) ds_node * ds_sigmoid(ds_graph *g, ds_node *x) { return NULL; }
__attribute__((weak)) ds_node * ds_tanh(ds_graph *g, ds_node *x) { return NULL; }
__attribute__((weak)) ds_node * ds_relu(ds_graph *g, ds_node *x) { return NULL; }
__attribute__((weak)) ds_node * ds_softplus(ds_graph *g, ds_node *x) { return NULL; }
__attribute__((weak)) ds_node * ds_leaky_relu(ds_graph *g, ds_node *x, float slope) { return NULL; }
__attribute__((weak)) ds_node * ds_elu(ds_graph *g, ds_node *x, float alpha) { return NULL; }
__attribute__((weak)) ds_node * ds_prelu(ds_graph *g, ds_node *x, const char *name, int shared) { return NULL; }
__attribute__((weak)) ds_node * ds_softmax(ds_graph *g, ds_node *x, int axis) { return NULL; }
__attribute__((weak)) ds_node * ds_log_softmax(ds_graph *g, ds_node *x, int axis) { return NULL; }
__attribute__((weak)) ds_node * ds_activate(ds_graph *g, ds_node *x, ds_activation act, const char *layer) { return NULL; }
__attribute__((weak)) const char * ds_activation_name(ds_activation a) { return NULL; }
__attribute__((weak)) ds_node * ds_sum(ds_graph *g, ds_node *x, int naxes, const int *axes, int keepdim) { return NULL; }
__attribute__((weak)) ds_node * ds_mean(ds_graph *g, ds_node *x, int naxes, const int *axes, int keepdim) { return NULL; }
__attribute__((weak)) ds_node * ds_concat(ds_graph *g, int n, ds_node *const *xs, int axis) { return NULL; }
__attribute__((weak)) ds_node * ds_reshape(ds_graph *g, ds_node *x, int ndim, const int64_t *shape) { return NULL; }
__attribute__((weak)) ds_node * ds_flatten(ds_graph *g, ds_node *x) { return NULL; }
__attribute__((weak)) ds_node * ds_slice(ds_graph *g, ds_node *x, int axis, int64_t start, int64_t end) { return NULL; }
__attribute__((weak)) ds_node * ds_conv(ds_graph *g, ds_node *x, int nd, const ds_conv_opts *o) { return NULL; }
__attribute__((weak)) ds_node * ds_conv_op(ds_graph *g, ds_node *x, ds_node *w, ds_node *b, int nd, const int *stride, const int *pad_lo, const int *pad_hi, const int *dilation) { return NULL; }
__attribute__((weak)) ds_node * ds_conv_transpose2d(ds_graph *g, ds_node *x, const ds_conv_opts *o) { return NULL; }
__attribute__((weak)) ds_node * ds_conv_transpose2d_op(ds_graph *g, ds_node *x, ds_node *w, ds_node *b, const int *stride, const int *pad, const int *output_padding, const int *dilation) { return NULL; }
__attribute__((weak)) ds_node * ds_upsample2d(ds_graph *g, ds_node *x, int scale, ds_upsample_mode mode) { return NULL; }
__attribute__((weak)) ds_node * ds_pool(ds_graph *g, ds_node *x, int nd, ds_pool_kind kind, const ds_pool_opts *o) { return NULL; }
__attribute__((weak)) ds_node * ds_global_pool(ds_graph *g, ds_node *x, ds_pool_kind kind) { return NULL; }
__attribute__((weak)) ds_node * ds_dropout(ds_graph *g, ds_node *x, float rate) { return NULL; }
__attribute__((weak)) ds_node * ds_batchnorm(ds_graph *g, ds_node *x, const ds_batchnorm_opts *o) { return NULL; }
__attribute__((weak)) ds_node * ds_loss_mse(ds_graph *g, ds_node *pred, ds_node *target, ds_reduction r) { return NULL; }
__attribute__((weak)) ds_node * ds_loss_mae(ds_graph *g, ds_node *pred, ds_node *target, ds_reduction r) { return NULL; }
__attribute__((weak)) ds_node * ds_loss_bce(ds_graph *g, ds_node *prob, ds_node *target, ds_reduction r) { return NULL; }
__attribute__((weak)) ds_node * ds_loss_bce_logits(ds_graph *g, ds_node *logits, ds_node *target, ds_reduction r) { return NULL; }
__attribute__((weak)) ds_node * ds_loss_cce_logits(ds_graph *g, ds_node *logits, ds_node *target, ds_reduction r) { return NULL; }
__attribute__((weak)) ds_node * ds_loss_cce_logits_int(ds_graph *g, ds_node *logits, ds_node *labels, ds_reduction r) { return NULL; }
__attribute__((weak)) ds_node * ds_loss_gaussian_nll(ds_graph *g, ds_node *mean, ds_node *logvar, ds_node *target, ds_reduction r) { return NULL; }
__attribute__((weak)) ds_node * ds_loss_kl_gaussian(ds_graph *g, ds_node *mu1, ds_node *logvar1, ds_node *mu2, ds_node *logvar2, ds_reduction r) { return NULL; }
__attribute__((weak)) ds_optim * ds_optim_create(ds_model *m, const ds_optim_opts *o) { return NULL; }
__attribute__((weak)) void ds_optim_free(ds_optim *o) {  }
__attribute__((weak)) ds_status ds_optim_step(ds_optim *o) { return dsi_fail(DS_ERR_STATE, "%s is not implemented yet", __func__); }
__attribute__((weak)) void ds_optim_epoch_end(ds_optim *o) {  }
__attribute__((weak)) float ds_optim_lr(const ds_optim *o) { return 0; }
__attribute__((weak)) int64_t ds_optim_steps(const ds_optim *o) { return 0; }
__attribute__((weak)) const char * ds_optim_name(ds_optim_kind k) { return NULL; }
__attribute__((weak)) ds_status ds_optim_state_save(const ds_optim *o, ds_tensor_set *s) { return dsi_fail(DS_ERR_STATE, "%s is not implemented yet", __func__); }
__attribute__((weak)) ds_status ds_optim_state_load(ds_optim *o, const ds_tensor_set *s) { return dsi_fail(DS_ERR_STATE, "%s is not implemented yet", __func__); }
__attribute__((weak)) ds_status ds_newton_step(ds_graph *g, ds_node *loss, double *lambda, double *loss_out) { return dsi_fail(DS_ERR_STATE, "%s is not implemented yet", __func__); }
