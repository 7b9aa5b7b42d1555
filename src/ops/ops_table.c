/* ops_table.c - each op's definition, indexed by its enum. */
#include "../internal.h"

extern const ds_op_def dsi_op_input;
extern const ds_op_def dsi_op_param;
extern const ds_op_def dsi_op_add;
extern const ds_op_def dsi_op_sub;
extern const ds_op_def dsi_op_mul;
extern const ds_op_def dsi_op_div;
extern const ds_op_def dsi_op_add_scalar;
extern const ds_op_def dsi_op_mul_scalar;
extern const ds_op_def dsi_op_pow_scalar;
extern const ds_op_def dsi_op_neg;
extern const ds_op_def dsi_op_exp;
extern const ds_op_def dsi_op_log;
extern const ds_op_def dsi_op_sqrt;
extern const ds_op_def dsi_op_square;
extern const ds_op_def dsi_op_abs;
extern const ds_op_def dsi_op_sigmoid;
extern const ds_op_def dsi_op_tanh;
extern const ds_op_def dsi_op_relu;
extern const ds_op_def dsi_op_softplus;
extern const ds_op_def dsi_op_leaky_relu;
extern const ds_op_def dsi_op_elu;
extern const ds_op_def dsi_op_prelu;
extern const ds_op_def dsi_op_softmax;
extern const ds_op_def dsi_op_log_softmax;
extern const ds_op_def dsi_op_sum;
extern const ds_op_def dsi_op_mean;
extern const ds_op_def dsi_op_matmul;
extern const ds_op_def dsi_op_linear;
extern const ds_op_def dsi_op_concat;
extern const ds_op_def dsi_op_reshape;
extern const ds_op_def dsi_op_slice;
extern const ds_op_def dsi_op_conv;
extern const ds_op_def dsi_op_conv_transpose2d;
extern const ds_op_def dsi_op_upsample2d;
extern const ds_op_def dsi_op_pool;
extern const ds_op_def dsi_op_global_pool;
extern const ds_op_def dsi_op_dropout;
extern const ds_op_def dsi_op_batchnorm;
extern const ds_op_def dsi_op_loss_mse;
extern const ds_op_def dsi_op_loss_mae;
extern const ds_op_def dsi_op_loss_bce;
extern const ds_op_def dsi_op_loss_bce_logits;
extern const ds_op_def dsi_op_loss_cce_logits;
extern const ds_op_def dsi_op_loss_cce_int;
extern const ds_op_def dsi_op_loss_gaussian_nll;
extern const ds_op_def dsi_op_loss_kl_gaussian;

const ds_op_def *const dsi_ops[DS_OP_COUNT] = {
    [DS_OP_INPUT] = &dsi_op_input,
    [DS_OP_PARAM] = &dsi_op_param,
    [DS_OP_ADD] = &dsi_op_add,
    [DS_OP_SUB] = &dsi_op_sub,
    [DS_OP_MUL] = &dsi_op_mul,
    [DS_OP_DIV] = &dsi_op_div,
    [DS_OP_ADD_SCALAR] = &dsi_op_add_scalar,
    [DS_OP_MUL_SCALAR] = &dsi_op_mul_scalar,
    [DS_OP_POW_SCALAR] = &dsi_op_pow_scalar,
    [DS_OP_NEG] = &dsi_op_neg,
    [DS_OP_EXP] = &dsi_op_exp,
    [DS_OP_LOG] = &dsi_op_log,
    [DS_OP_SQRT] = &dsi_op_sqrt,
    [DS_OP_SQUARE] = &dsi_op_square,
    [DS_OP_ABS] = &dsi_op_abs,
    [DS_OP_SIGMOID] = &dsi_op_sigmoid,
    [DS_OP_TANH] = &dsi_op_tanh,
    [DS_OP_RELU] = &dsi_op_relu,
    [DS_OP_SOFTPLUS] = &dsi_op_softplus,
    [DS_OP_LEAKY_RELU] = &dsi_op_leaky_relu,
    [DS_OP_ELU] = &dsi_op_elu,
    [DS_OP_PRELU] = &dsi_op_prelu,
    [DS_OP_SOFTMAX] = &dsi_op_softmax,
    [DS_OP_LOG_SOFTMAX] = &dsi_op_log_softmax,
    [DS_OP_SUM] = &dsi_op_sum,
    [DS_OP_MEAN] = &dsi_op_mean,
    [DS_OP_MATMUL] = &dsi_op_matmul,
    [DS_OP_LINEAR] = &dsi_op_linear,
    [DS_OP_CONCAT] = &dsi_op_concat,
    [DS_OP_RESHAPE] = &dsi_op_reshape,
    [DS_OP_SLICE] = &dsi_op_slice,
    [DS_OP_CONV] = &dsi_op_conv,
    [DS_OP_CONV_TRANSPOSE2D] = &dsi_op_conv_transpose2d,
    [DS_OP_UPSAMPLE2D] = &dsi_op_upsample2d,
    [DS_OP_POOL] = &dsi_op_pool,
    [DS_OP_GLOBAL_POOL] = &dsi_op_global_pool,
    [DS_OP_DROPOUT] = &dsi_op_dropout,
    [DS_OP_BATCHNORM] = &dsi_op_batchnorm,
    [DS_OP_LOSS_MSE] = &dsi_op_loss_mse,
    [DS_OP_LOSS_MAE] = &dsi_op_loss_mae,
    [DS_OP_LOSS_BCE] = &dsi_op_loss_bce,
    [DS_OP_LOSS_BCE_LOGITS] = &dsi_op_loss_bce_logits,
    [DS_OP_LOSS_CCE_LOGITS] = &dsi_op_loss_cce_logits,
    [DS_OP_LOSS_CCE_INT] = &dsi_op_loss_cce_int,
    [DS_OP_LOSS_GAUSS_NLL] = &dsi_op_loss_gaussian_nll,
    [DS_OP_LOSS_KL_GAUSS] = &dsi_op_loss_kl_gaussian,
};
