/* op_list.h - every op, once: X(ENUM, name, attr) per op, in enum order. internal.h makes the
 * ds_op enum (DS_OP_<ENUM>) and the attribute sizes from it, ops_table.c the table of
 * definitions (dsi_op_<name>, defined in the op's file) and the names (dsi_op_names).
 * attr is the member of union dsi_attr (internal.h) that holds the op's attributes, or none.
 * Adding an op: one line here, and its file (shape rule, kernels, builder). */
#ifndef DS_OP_LIST_H
#define DS_OP_LIST_H

#define DSI_OP_LIST(X)                                                                  \
    /* source.c */                                                                      \
    X(INPUT, input, none)                                                               \
    X(PARAM, param, none)                                                               \
    /* elementwise.c */                                                                 \
    X(ADD, add, none)                                                                   \
    X(SUB, sub, none)                                                                   \
    X(MUL, mul, none)                                                                   \
    X(DIV, div, none)                                                                   \
    X(ADD_SCALAR, add_scalar, scalar)                                                   \
    X(MUL_SCALAR, mul_scalar, scalar)                                                   \
    X(POW_SCALAR, pow_scalar, scalar)                                                   \
    X(NEG, neg, none)                                                                   \
    X(EXP, exp, none)                                                                   \
    X(LOG, log, none)                                                                   \
    X(SQRT, sqrt, none)                                                                 \
    X(SQUARE, square, none)                                                             \
    X(ABS, abs, none)                                                                   \
    /* activation.c */                                                                  \
    X(SIGMOID, sigmoid, none)                                                           \
    X(TANH, tanh, none)                                                                 \
    X(RELU, relu, none)                                                                 \
    X(SOFTPLUS, softplus, none)                                                         \
    X(LEAKY_RELU, leaky_relu, leaky_relu)                                               \
    X(ELU, elu, elu)                                                                    \
    X(GELU, gelu, none)                                                                 \
    X(GELU_TANH, gelu_tanh, none)                                                       \
    X(SILU, silu, none)                                                                 \
    X(PRELU, prelu, none)                                                               \
    X(SOFTMAX, softmax, softmax)                                                        \
    X(LOG_SOFTMAX, log_softmax, softmax)                                                \
    /* reduce.c */                                                                      \
    X(SUM, sum, reduce)                                                                 \
    X(MEAN, mean, reduce)                                                               \
    /* matmul.c */                                                                      \
    X(MATMUL, matmul, none)                                                             \
    X(LINEAR, linear, linear)                                                           \
    /* shape.c */                                                                       \
    X(CONCAT, concat, concat)                                                           \
    X(RESHAPE, reshape, reshape)                                                        \
    X(SLICE, slice, slice)                                                              \
    /* conv.c, conv_transpose.c, upsample.c */                                          \
    X(CONV, conv, conv)                                                                 \
    X(CONV_TRANSPOSE2D, conv_transpose2d, conv_transpose)                               \
    X(UPSAMPLE2D, upsample2d, upsample)                                                 \
    /* pool.c */                                                                        \
    X(POOL, pool, pool)                                                                 \
    X(GLOBAL_POOL, global_pool, global_pool)                                            \
    /* dropout.c, batchnorm.c */                                                        \
    X(DROPOUT, dropout, dropout)                                                        \
    X(BATCHNORM, batchnorm, batchnorm)                                                  \
    /* loss.c */                                                                        \
    X(LOSS_MSE, loss_mse, loss)                                                         \
    X(LOSS_MAE, loss_mae, loss)                                                         \
    X(LOSS_BCE, loss_bce, loss)                                                         \
    X(LOSS_BCE_LOGITS, loss_bce_logits, loss)                                           \
    X(LOSS_CCE_LOGITS, loss_cce_logits, loss)                                           \
    X(LOSS_CCE_INT, loss_cce_int, loss)                                                 \
    X(LOSS_GAUSS_NLL, loss_gaussian_nll, loss)                                          \
    X(LOSS_KL_GAUSS, loss_kl_gaussian, loss)                                            \
    X(LOSS_MSB, loss_msb, loss)                                                         \
    /* bayes.c */                                                                       \
    X(BAYES_SAMPLE, bayes_sample, none)                                                 \
    X(BAYES_KL, bayes_kl, bayes_kl)                                                     \
    /* sample.c, loss_dice.c */                                                         \
    X(SAMPLE_GAUSSIAN, sample_gaussian, none)                                           \
    X(LOSS_DICE, loss_dice, loss)

#endif
