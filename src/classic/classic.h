/* classic.h - the classic methods' model structure and method table: each method (linear.c,
 * knn.c, kmeans.c, pca.c, ...) is one dsi_classic_method; classic.c does the rest (the
 * input's preparation, labels, saving and loading, evaluation). */
#ifndef DS_CLASSIC_H
#define DS_CLASSIC_H

#include "../internal.h"

#define DSI_CLASSIC_PARAMS 12     /* hyperparameters of one method, at most */
#define DSI_CLASSIC_TEXT 64       /* the text of one hyperparameter */
#define DSI_CLASSIC_FORMAT 1      /* the model file's format version */

/* One hyperparameter: a number in [lo, hi] (integer or not), or one of the words of
 * `words` ("lbfgs|newton"). */
typedef struct {
    const char *name, *dflt, *words;
    double lo, hi;
    bool integer;
    const char *help;
} dsi_classic_param;

/* The data a method fits: x [n, f] (prepared: features, scaling, transform), row-major;
 * labels: classes cls[n] in [0, K) (classify), or values y [n, t] (regress), or none. */
typedef struct {
    const float *x;
    int64_t n, f;
    const int64_t *cls;
    const float *y;
    int64_t t;
} dsi_classic_data;

/* A task bit per ds_classic_task. */
#define DSI_TASK(t) (1u << (t))

typedef struct dsi_classic_method {
    const char *name, *about;
    unsigned tasks;                 /* DSI_TASK bits the method can do */
    const dsi_classic_param *params;
    int n_params;
    /* Fits m->arrays (names the method's own), m->stats, from d; m->task, m->classes (K),
     * m->outputs (T) and m->features_in (d->f) are set. */
    ds_status (*fit)(ds_classic *m, const dsi_classic_data *d, uint64_t seed);
    /* Width of the prediction of one sample, of a fitted or loaded model. */
    int64_t (*width)(const ds_classic *m);
    /* out[n, width] for x[n, m->features_in]. Cannot fail: checked at fit and load. */
    void (*predict)(const ds_classic *m, const float *x, int64_t n, float *out);
    /* After loading: the arrays hold what predict reads (names and shapes against
     * features_in, classes, outputs); may build caches (m->aux). DS_ERR_FORMAT naming what. */
    ds_status (*check)(ds_classic *m, const char *file);
    /* Releases m->aux (NULL when the method keeps none). */
    void (*free_aux)(void *aux);
} dsi_classic_method;

struct ds_classic {
    const dsi_classic_method *method;
    char values[DSI_CLASSIC_PARAMS][DSI_CLASSIC_TEXT];   /* hyperparameters, as text */
    double num[DSI_CLASSIC_PARAMS];                      /* and as numbers (words: index) */
    ds_classic_task task;
    char features[DSI_CLASSIC_TEXT];   /* "", "pixels", "hog:O:C:B", "moments" */
    int in_ndim;                       /* the sample shape fit saw (before features) */
    int64_t in_shape[DS_MAX_DIMS];
    int64_t features_out;              /* values per sample after the features */
    ds_scale_kind scale;
    float scale_a;
    ds_tensor *mean, *std;             /* DS_SCALE_STANDARDIZE */
    ds_classic *transform;             /* a fitted PCA applied after scaling, or NULL */
    int64_t features_in;               /* values per sample the method reads */
    int64_t classes, outputs;
    ds_tensor_set *arrays;             /* the fitted arrays, by the method's names */
    ds_tensor_set *stats;              /* scalars: inertia, iterations, ... */
    bool fitted;
    void *aux;                         /* a method's cache (knn's k-d tree) */
};

/* The methods (classic.c holds the table). */
extern const dsi_classic_method dsi_classic_logistic, dsi_classic_linear, dsi_classic_knn,
    dsi_classic_kmeans, dsi_classic_pca, dsi_classic_forest, dsi_classic_boost, dsi_classic_svm;

/* A hyperparameter's number (words: the index of the word) by name; DS_ASSERTs it exists. */
double dsi_classic_num(const ds_classic *m, const char *name);
/* Adds a fitted array / a statistic; DS_ERR_NOMEM. */
ds_status dsi_classic_put(ds_classic *m, const char *name, int ndim, const int64_t *shape,
                          const float *data);
ds_status dsi_classic_stat(ds_classic *m, const char *name, double v);
/* The data of a fitted array, checked to be [d0] (d1 < 0) or [d0, d1]; NULL otherwise. */
const float *dsi_classic_arr(const ds_classic *m, const char *name, int64_t d0, int64_t d1);
/* DS_ERR_FORMAT "<file>: classic model '<method>': array '<name>' ..." when an array is
 * absent or its shape is not [d0] / [d0, d1]. */
ds_status dsi_classic_need(const ds_classic *m, const char *file, const char *name, int64_t d0,
                           int64_t d1);

/* Values per sample of m's features for its sample shape (in_shape); 0 with a message. */
int64_t dsi_classic_features_size(const ds_classic *m);

/* Sums that do not depend on the thread count: row chunks of DSI_CHUNK samples, each summed
 * by one thread in row order, then the chunks added in order. */
#define DSI_CHUNK 256
static inline int64_t dsi_chunks(int64_t n) { return (n + DSI_CHUNK - 1) / DSI_CHUNK; }

/* Symmetric eigen-decomposition (Jacobi rotations, double): a [n, n] is destroyed; values
 * in descending order into w, the unit eigenvectors as the rows of v [n, n], each signed so
 * that its largest absolute component is positive. */
void dsi_sym_eigen(double *a, int64_t n, double *w, double *v);
/* Cholesky solve of a [n, n] symmetric positive definite (destroyed) x = b (in place);
 * false if a is not positive definite. */
bool dsi_chol_solve(double *a, int64_t n, double *b);

/* k-means's silhouette (kmeans.c), also for evaluate: mean over samples. */
double dsi_silhouette(const float *x, int64_t n, int64_t f, const int64_t *label, int64_t k);

#endif
