/* dist_none.c - the plain build's stand-in for src/mpi/dist.c: every process is alone, and
 * one started as several MPI ranks says that this deepsky was built without MPI. */
#ifndef DS_MPI
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>

int cli_mpi_start(double timeout_s)
{
    (void)timeout_s;
    const char *v = getenv("OMPI_COMM_WORLD_SIZE");
    if (!v)
        v = getenv("PMI_SIZE");
    if (v && atoi(v) > 1) {
        fprintf(stderr, "deepsky: error: started as %d MPI ranks, but deepsky was not built "
                "with MPI: rebuild with 'make MPI=1' (OpenMPI's mpicc)\n", atoi(v));
        return 1;
    }
    return 0;
}

int cli_mpi_rank(void) { return 0; }
int cli_mpi_size(void) { return 1; }
const ds_dist *cli_mpi_dist(void) { return NULL; }
int cli_mpi_fail(int rc) { return rc; }
int cli_mpi_end(int rc) { return rc; }

long cli_mpi_next(long n)
{
    static long next;
    return next < n ? next++ : -1;
}

int cli_mpi_sum_long(long *v, int n)
{
    (void)v;
    (void)n;
    return 0;
}

int cli_mpi_bcast_text(char *buf, int cap)
{
    (void)buf;
    (void)cap;
    return 0;
}

int cli_mpi_barrier(void) { return 0; }
#endif /* !DS_MPI */
