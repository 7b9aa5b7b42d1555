/* build.c - what this build of the library contains (the Makefile's NO_* and PORTABLE). */
#include "internal.h"

#ifdef DS_NO_FITS
#define FITS 0, "-fits"
#else
#define FITS 1, "+fits"
#endif
#ifdef DS_NO_PLOT
#define PLOT 0, "-plot"
#else
#define PLOT 1, "+plot"
#endif
#ifdef DS_NO_BLAS
#define BLAS 0, "-blas"
#else
#define BLAS 1, "+blas"
#endif
#ifdef DS_NO_ONNX
#define ONNX 0, "-onnx"
#else
#define ONNX 1, "+onnx"
#endif
#ifdef _OPENMP
#define OPENMP 1, "+openmp"
#else
#define OPENMP 0, "-openmp"
#endif
#ifdef DS_PORTABLE
#define PORTABLE 1, "portable"
#else
#define PORTABLE 0, "native"
#endif

/* The second half of each pair, spelled out for the string below. */
#define TAG_(on, tag) tag
#define TAG(f) TAG_(f)
#define ON_(on, tag) on
#define ON(f) ON_(f)

static const struct {
    const char *name;
    int on;
} features[] = {
    {"fits", ON(FITS)}, {"plot", ON(PLOT)}, {"blas", ON(BLAS)},
    {"openmp", ON(OPENMP)}, {"portable", ON(PORTABLE)}, {"onnx", ON(ONNX)},
};

int ds_has_feature(const char *name)
{
    for (size_t i = 0; name && i < sizeof features / sizeof features[0]; i++)
        if (!strcmp(features[i].name, name))
            return features[i].on;
    return 0;
}

const char *ds_build_info(void)
{
    return DS_VERSION " (" TAG(FITS) " " TAG(PLOT) " " TAG(BLAS) " " TAG(OPENMP) " " TAG(ONNX) ", "
           TAG(PORTABLE) ")";
}
