/*
 * erpq_diag.h - the diagnostic job family, for tests and benchmarks.
 *
 * Default queue erpq-diag; also served on the queues named by --diag-queue /
 * ERPQ_DIAG_QUEUES or --queue NAME@diag:
 *   noop      returns {"ok":true}
 *   echo      returns its data
 *   sleep     {"ms":N}: waits N ms, stopping early on cancellation
 *   cpu       {"ms":N}: keeps a CPU busy for N ms (checks cancellation)
 *   fail      {"message":"...","times":N}: fails the first N attempts, or
 *             every attempt without times
 *   progress  {"steps":N}: reports progress 1..N and logs one line a step
 *   throttle  {"until":T}: before T (epoch ms) goes back to delayed until T
 *             without using an attempt (erpq_job_delay); then completes
 *   *         (only with catch_all) any other name: returns
 *             {"name": <job name>, "data": <data>}
 * Bad data (a missing or ill-typed field) fails the job for good with a
 * message naming the field.
 */
#ifndef ERPQ_DIAG_H
#define ERPQ_DIAG_H

#include "erpq_family.h"
#include "erpq_job.h"
#include "erpq_registry.h"

/* The family descriptor (the build's family table points at it). */
extern const erpq_family erpq_family_diag;

/* For in-process tests: registers the diag handlers on queue (no schemas,
 * the registry's default pool), and a "*" handler too when catch_all is
 * set. Returns 0 or a negative error. */
int erpq_diag_register(erpq_registry *r, const char *queue, int catch_all);

#endif
