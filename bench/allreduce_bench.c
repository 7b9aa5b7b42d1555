/* allreduce_bench.c - MPI_Allreduce (sum of floats, in place) time against message size,
 * for docs/scaling.md: `make bench-allreduce` runs it as mpirun -np 2 (MPI_NP=K for K).
 * Arguments: float counts (default 1, 4, ..., 4^11, then the gradients of the demo's CNN,
 * 355202, and of the bench's galaxy CNN, 1141634). Prints size in bytes, median and
 * minimum microseconds over the repetitions, and the bandwidth 2(p-1)/p x bytes / time the
 * ring model implies. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long sizes[64], count = 0, max_floats = 0;
    for (int i = 1; i < argc && count < 64; i++)
        sizes[count++] = atol(argv[i]);
    for (long n = 1; argc == 1 && n <= 1L << 22; n *= 4)
        sizes[count++] = n;
    if (argc == 1) {
        sizes[count++] = 355202;
        sizes[count++] = 1141634;
    }
    for (long i = 0; i < count; i++)
        max_floats = sizes[i] > max_floats ? sizes[i] : max_floats;
    float *x = malloc((size_t)max_floats * sizeof *x);
    double t[64];
    if (!x)
        MPI_Abort(MPI_COMM_WORLD, 1);
    for (long i = 0; i < max_floats; i++)
        x[i] = (float)(i % 7);
    if (rank == 0)
        printf("# %d ranks\n# bytes  median_us  min_us  ring_GBps\n", size);
    for (long k = 0; k < count; k++) {
        long n = sizes[k];
        int reps = n < (1 << 16) ? 64 : n < (1 << 20) ? 24 : 12;
        for (int r = -2; r < reps; r++) {   /* two warm-up rounds */
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double dt = MPI_Wtime() - t0;
            MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            if (r >= 0)
                t[r] = dt;
            for (long i = 0; i < n; i++)   /* keep the values finite and small */
                x[i] = (float)(i % 7);
        }
        qsort(t, (size_t)reps, sizeof t[0], cmp_double);
        double bytes = (double)n * sizeof(float), med = t[reps / 2];
        if (rank == 0)
            printf("%10.0f %10.1f %8.1f %9.3f\n", bytes, 1e6 * med, 1e6 * t[0],
                   2.0 * (size - 1) / size * bytes / med / 1e9);
    }
    free(x);
    MPI_Finalize();
    return 0;
}
