/* engine.h - the playground's C API (engine.c), for the WebAssembly build and the native check. */
#ifndef PG_ENGINE_H
#define PG_ENGINE_H

#include "deepsky.h"

#ifdef __EMSCRIPTEN__
#include <emscripten.h>
#define PG_API EMSCRIPTEN_KEEPALIVE
#else
#define PG_API
#endif

PG_API const char *pg_error(void);
PG_API void   pg_free(void *p);
PG_API void  *pg_alloc(int bytes);
PG_API void   pg_reset(void);
PG_API int    pg_build(const char *text, double seed, int batch, double l1);
PG_API int    pg_features(void);
PG_API int    pg_classes(void);
PG_API int    pg_set_data(int which, const float *x, const float *y, int n, int nf, int ycols);
PG_API double pg_train(int epochs);
PG_API int    pg_epoch(void);
PG_API double pg_lr(void);
PG_API double pg_loss(int which);
PG_API int    pg_predict(const float *x, int n, float *out);
PG_API int    pg_viz(const float *x, int n);
PG_API int    pg_viz_read(const char *name, float *out, int cap);
PG_API int    pg_param(const char *name, float *out, int cap);
PG_API void  *pg_export_weights(int *len);
PG_API char  *pg_summary(void);

#endif
