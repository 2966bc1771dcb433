/*
 * erpq_diag.h - the diagnostic job family, for tests and benchmarks.
 *
 * Served on the queues named by --diag-queue / ERPQ_DIAG_QUEUES:
 *   noop      returns {"ok":true}
 *   echo      returns its data
 *   sleep     {"ms":N}: waits N ms, stopping early on cancellation
 *   cpu       {"ms":N}: keeps a CPU busy for N ms (checks cancellation)
 *   fail      {"message":"...","times":N}: fails the first N attempts, or
 *             every attempt without times
 *   progress  {"steps":N}: reports progress 1..N and logs one line a step
 *   *         (only with catch_all) any other name: returns
 *             {"name": <job name>, "data": <data>}
 * Bad data (a missing or ill-typed field) fails the job for good with a
 * message naming the field.
 */
#ifndef ERPQ_DIAG_H
#define ERPQ_DIAG_H

#include "erpq_job.h"

/* Registers the diag handlers on queue, and a "*" handler too when
 * catch_all is set. Returns 0 or a negative error. */
int erpq_diag_register(erpq_registry *r, const char *queue, int catch_all);

#endif
