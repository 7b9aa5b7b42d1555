/* rop.h - second-order rules of the ops (rop.c) used by damped Newton (newton.c). */
#ifndef DS_ROP_H
#define DS_ROP_H

#include "../internal.h"

/* Pearlmutter's R-operator, R{f} = d/dr f(theta + r v) at r = 0, in double precision.
 * Tables are indexed by node id. A NULL tangent R[id] means "identically zero" (an input
 * that does not depend on the parameters, or is not touched by v); a NULL adjoint dx[id]
 * means "not wanted". Forward values come from the graph's last forward (float). */

/* Whether the op has rules (input and param included). */
bool dsi_rop_supported(ds_op op);
/* Doubles of per-node data prepared once per call (derivatives, probabilities). */
int64_t dsi_rop_aux_size(const ds_node *y);
void dsi_rop_prepare(const ds_node *y, double *aux);
/* Forward tangent: R[y->id] += J R[in] (R[y->id] is zeroed by the caller). */
void dsi_rop_jvp(const ds_node *y, const double *aux, double *const *R);
/* Vector-Jacobian product: dx[in] += J^T dy for every input with dx[in] != NULL. */
void dsi_rop_vjp(const ds_node *y, const double *aux, const double *dy, double *const *dx);
/* Second-order term of the reverse tangent pass: Rdx[in] += (R{J})^T dy, the derivative of
 * J^T dy along the input tangents R[in] (dy fixed). Zero for ops linear in their inputs. */
void dsi_rop_hvp(const ds_node *y, const double *aux, const double *dy, double *const *R,
                 double *const *Rdx);

/* Gradient and exact Hessian of the scalar loss with respect to the trainable parameters
 * that reach it (model order, each parameter's values flattened). On success *n is their
 * count, *grad (n doubles) and *hess (n*n, row-major, symmetric) are malloc'd and owned by
 * the caller; params (optional) receives a malloc'd array of the n_params parameters.
 * asym (optional) receives max |H_ij - H_ji| / max |H| before symmetrization: the forward
 * and reverse tangent rules agree when it is at rounding level. Runs a forward pass first. */
ds_status dsi_newton_hessian(ds_graph *g, ds_node *loss, int64_t *n, double **grad,
                             double **hess, ds_param ***params, int *n_params, double *asym);

#endif
