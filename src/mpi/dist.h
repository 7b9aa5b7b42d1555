/* dist.h - the command line's MPI group: joining a job started by mpirun or srun, the
 * collectives of data-parallel training (a ds_dist) and the work queue of sharded
 * inference (src/mpi/dist.c with MPI; src/mpi/dist_none.c, the plain build, without). */
#ifndef DS_MPI_DIST_H
#define DS_MPI_DIST_H

#include "deepsky.h"

#include <stdbool.h>

/* Default seconds a rank waits in one collective or for the queue before it gives up. */
#define CLI_MPI_TIMEOUT 300.0

/* Joins the job when the launcher's environment says there is one (OMPI_COMM_WORLD_SIZE,
 * PMI_SIZE, PMIX_RANK): every collective then gives up after timeout_s seconds. Returns 0,
 * or 1 after printing why not (a build without MPI started as several ranks). A process
 * started alone is a group of one. */
int cli_mpi_start(double timeout_s);
int cli_mpi_rank(void);                 /* 0 alone */
int cli_mpi_size(void);                 /* 1 alone */
const ds_dist *cli_mpi_dist(void);      /* the group, or NULL when alone */
/* Ends the job after this rank's failure (status rc, already printed): with several ranks
 * MPI_Abort brings down the others, which would otherwise wait for this one. Returns rc. */
int cli_mpi_fail(int rc);
/* Leaves the job (MPI_Finalize) at a normal end; returns rc. */
int cli_mpi_end(int rc);
/* The work queue of rank 0: the next of n items for this rank (0..n-1), each handed out
 * once over all the ranks, or -1 when none is left; -2 after a failure (printed). */
long cli_mpi_next(long n);
/* Sums v[0..n) over the ranks (identical on all); 0, or 1 after printing a failure. */
int cli_mpi_sum_long(long *v, int n);
/* Rank 0's text (NUL-terminated, cap bytes) to all: 0, or 1 after printing a failure. */
int cli_mpi_bcast_text(char *buf, int cap);
/* Waits for every rank: 0, or 1 after printing a failure. */
int cli_mpi_barrier(void);

#endif
