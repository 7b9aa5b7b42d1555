/* threads.c - the thread count of the kernels (one OpenMP pool; 1 without OpenMP) and of BLAS. */
#include "internal.h"

#include <unistd.h>

void ds_set_num_threads(int n)
{
#ifdef _OPENMP
    if (n <= 0)
        n = omp_get_num_procs();
    omp_set_num_threads(n);
    dsi_blas_set_threads(n);
    /* Never nested teams: OpenBLAS called inside one of our regions that runs on a single
     * thread would open a team of its own beside our idle (spinning) threads, and the two
     * teams then fight for the cores (measured: 2 threads 3x slower than 1). */
    omp_set_max_active_levels(1);
#else
    /* Built without OpenMP: our kernels run on the calling thread; a BLAS library with
     * threads of its own still gets the count. */
    if (n <= 0)
        n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    dsi_blas_set_threads(n > 0 ? n : 1);
#endif
}

int ds_get_num_threads(void)
{
    return omp_get_max_threads();
}

int dsi_threads(void)
{
    return omp_get_max_threads();
}
