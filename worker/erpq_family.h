/*
 * erpq_family.h - what a job family gives the worker: the plug-in interface.
 *
 * A family is one folder under jobs/ (jobs/<name>/) holding
 *   - CMakeLists.txt: erpq_family(<name> QUEUES ... SUMMARY ... SOURCES ...
 *     LIBS ...), which builds the family as its own static library with its
 *     own dependencies and enters it into the build's family table (leave
 *     it out with -DERPQ_FAMILIES=<the others>);
 *   - schemas/<job>.json: one JSON schema per job; the file names ARE the
 *     family's job names (erpq_catalog.h), embedded into both binaries;
 *   - the C code, which defines one descriptor, `const erpq_family
 *     erpq_family_<name>` (dashes in the name become underscores).
 * The worker never names a family: it walks the generated table.
 *
 * Life of a family in a worker process (all on the main thread unless
 * said otherwise):
 *   1. its settings table is merged into the worker's options, so every
 *      setting is a flag and an environment variable (and <VAR>_FILE for
 *      secrets) and shows in --help;
 *   2. init() makes the family's context from those settings, once, and
 *      only when at least one queue is bound to the family (a family that
 *      serves nothing costs nothing and needs no configuration);
 *   3. bind() registers handlers on each queue bound to it (NULL: every job
 *      of `jobs` on the queue). Every job of the catalog must get a handler
 *      and nothing else may be registered ("*" excepted): the worker checks
 *      it at start, so handlers and schemas cannot drift apart;
 *   4. handlers run on the family's own thread pool: `threads` threads, or
 *      with threads 0 one thread per concurrency slot of the queues bound
 *      to the family (blocking work: SQL, files). A family whose work is
 *      network I/O sets a small `threads` and returns ERPQ_JOB_ASYNC from
 *      its handlers, finishing each job later with erpq_job_finish() from
 *      its own I/O thread (erpq_job.h), so thousands of sends are in
 *      flight on a few threads;
 *   5. quiesce() (may be NULL) runs after the event loop has ended: it must
 *      make every job the family still holds (ERPQ_JOB_ASYNC ones) finish
 *      or give up, and return only then;
 *   6. shutdown() frees the context once no handler runs any more.
 * Subcommands (`erpq-worker migrate`) run instead of the worker: the
 * worker parses the family's settings plus the subcommand's own options,
 * calls init() and then main(); shutdown() afterwards.
 *
 * Ownership: descriptors are static; the context is the family's, passed
 * back to every callback and to handlers as erpq_job_userdata().
 */
#ifndef ERPQ_FAMILY_H
#define ERPQ_FAMILY_H

#include <stddef.h>

#include "erpq_args.h"
#include "erpq_catalog.h"
#include "erpq_job.h"

/* What a family learns at init. Borrowed; valid until shutdown(). */
typedef struct erpq_family_env {
  const erpq_family_meta *meta; /* Its catalog entry: name, queues, jobs. */
  const erpq_args *args;        /* Settings: erpq_args_lookup(args, "ERPQ_X"). */
  const char *datadir;          /* erpq_datapath.h's data directory, or "". */
  int concurrency;              /* Slots of all queues bound to it (0 in a subcommand). */
} erpq_family_env;

/* Registration of one queue's handlers, for bind(). */
typedef struct erpq_binder erpq_binder;
/* Registers fn for job name ("*" = any name no other handler of the queue
 * takes) with userdata (usually the family context). */
int erpq_binder_handle(erpq_binder *b, const char *name, erpq_handler_fn fn, void *userdata);
/* The queue being bound. */
const char *erpq_binder_queue(const erpq_binder *b);

typedef struct erpq_family_job {
  const char *name; /* NULL ends the table. */
  erpq_handler_fn fn;
} erpq_family_job;

typedef struct erpq_family_cmd {
  const char *name;     /* NULL ends the table. */
  const char *usage;    /* "[--dir DIR]" */
  const char *summary;  /* One line. */
  const erpq_opt *opts; /* Its own options (may be NULL). */
  /* Runs the command; args holds the family's settings and opts, and the
   * positional arguments. Returns the process exit status. */
  int (*main)(void *ctx, const erpq_family_env *env, const erpq_args *args);
} erpq_family_cmd;

typedef struct erpq_family {
  const char *name;          /* As in the catalog. */
  const erpq_opt *settings;  /* The settings it reads (NULL-terminated table) or NULL. */
  const erpq_family_job *jobs;
  int threads;               /* 0: one per concurrency slot; N: N threads. */
  /* Each may be NULL. init's *ctx is passed to everything else. */
  int (*init)(void **ctx, const erpq_family_env *env, char *err, size_t errlen);
  int (*bind)(void *ctx, erpq_binder *b, char *err, size_t errlen);
  void (*quiesce)(void *ctx);
  void (*shutdown)(void *ctx);
  const erpq_family_cmd *commands;
} erpq_family;

/* The families linked into this erpq-worker, NULL-terminated (generated
 * by the build, in the order of the catalog). */
extern const erpq_family *const erpq_families[];

#endif
