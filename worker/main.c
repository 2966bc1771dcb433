/*
 * erpq-worker: serves bull queues with the job families built into it.
 *
 *   erpq-worker [options]              run the worker (until SIGTERM/SIGINT)
 *   erpq-worker families               list the families built in
 *   erpq-worker COMMAND [options]      a family's command (fees: migrate, ...)
 *
 * Configuration comes from flags, then ERPQ_* environment variables (and
 * <VAR>_FILE for secrets), then defaults (erpq_args.h); each family adds
 * its own settings. The worker names no family: the queues it serves and
 * the families serving them come from --queue NAME[:N][@family,...]
 * (erpq_queues.h) and the build's family table (erpq_family.h). Exit
 * status: 0 after a clean shutdown, 2 on bad arguments or configuration,
 * 1 on a start-up failure.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "erpq_args.h"
#include "erpq_catalog.h"
#include "erpq_config.h"
#include "erpq_datapath.h"
#include "erpq_err.h"
#include "erpq_family.h"
#include "erpq_familyset.h"
#include "erpq_log.h"
#include "erpq_queues.h"
#include "erpq_schemas.h"
#include "erpq_tz.h"
#include "erpq_worker.h"

#define MAX_BACKOFFS 16
#define MAX_TABLES 64

static const erpq_opt worker_opts[] = {
    {"redis", ERPQ_OPT_STRING, "ERPQ_REDIS_URL", "URL",
     "Redis: redis://[user:pass@]host:port/db or unix:///path/redis.sock?db=N", 0, 0,
     ERPQ_DEFAULT_REDIS_URL, ERPQ_OPT_SECRET},
    {"prefix", ERPQ_OPT_STRING, "ERPQ_PREFIX", "P",
     "key prefix; a hash tag such as {erp} on Redis Cluster", 0, 0, ERPQ_DEFAULT_PREFIX, 0},
    {"queue", ERPQ_OPT_LIST, "ERPQ_QUEUES", "NAME[:N][@FAM[,FAM]]",
     "serve queue NAME, N jobs at a time (1), with the families named after @\n"
     "(default: the families whose default queue NAME is); the variable holds\n"
     "several, separated by spaces, ';' or ','",
     0, 0, NULL, 0},
    {"diag-queue", ERPQ_OPT_LIST, "ERPQ_DIAG_QUEUES", "NAME[:N]",
     "serve the diagnostic jobs on NAME (the same as --queue NAME[:N]@diag)", 0, 0, NULL, 0},
    {"limiter", ERPQ_OPT_LIST, NULL, "Q:MAX:MS[:GROUP]",
     "rate limit queue Q to MAX jobs per MS ms (bull's limiter, optional groupKey)", 0, 0, NULL,
     0},
    {"backoff-strategy", ERPQ_OPT_LIST, NULL, "NAME:KIND[:MS]",
     "a custom backoff named NAME: KIND fixed, exponential, linear (attempts*MS)\n"
     "or none (no retry); MS defaults to the job's backoff.options.delay",
     0, 0, NULL, 0},
    {"lock-duration", ERPQ_OPT_INT, "ERPQ_LOCK_DURATION", "MS", "job lock TTL", 100, 86400000,
     "30000", 0},
    {"lock-renew-time", ERPQ_OPT_INT, "ERPQ_LOCK_RENEW_TIME", "MS",
     "lock renewal period (default: lock-duration/2)", 10, 86400000, NULL, 0},
    {"stalled-interval", ERPQ_OPT_INT, "ERPQ_STALLED_INTERVAL", "MS",
     "stalled-job check period, 0 = off", 0, 86400000, "30000", 0},
    {"max-stalled-count", ERPQ_OPT_INT, "ERPQ_MAX_STALLED_COUNT", "N", "stalls before a job fails",
     0, 1000000, "1", 0},
    {"guard-interval", ERPQ_OPT_INT, "ERPQ_GUARD_INTERVAL", "MS",
     "longest gap between delayed-job promotions", 10, 86400000, "5000", 0},
    {"drain-delay", ERPQ_OPT_INT, "ERPQ_DRAIN_DELAY", "S", "blocking pop timeout", 1, 3600, "5", 0},
    {"retry-process-delay", ERPQ_OPT_INT, "ERPQ_RETRY_PROCESS_DELAY", "MS",
     "pause after a Redis error", 0, 3600000, "5000", 0},
    {"grace", ERPQ_OPT_INT, "ERPQ_GRACE", "S", "shutdown grace for running jobs", 0, 86400, "30", 0},
    {"schemas", ERPQ_OPT_STRING, "ERPQ_SCHEMA_DIR", "DIR",
     "job data schemas from DIR/<family>/<job>.json instead of the built-in ones", 0, 0, NULL, 0},
    {"no-schemas", ERPQ_OPT_FLAG, NULL, NULL,
     "do not check job data against the job schemas (not recommended)", 0, 0, NULL, 0},
    {"log-level", ERPQ_OPT_STRING, "ERPQ_LOG_LEVEL", "L", "debug, info, warn or error", 0, 0,
     "info", 0},
    {"help", ERPQ_OPT_FLAG, NULL, NULL, "this text", 0, 0, NULL, 0},
    {"version", ERPQ_OPT_FLAG, NULL, NULL, "the version", 0, 0, NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0, 0, NULL, 0}};

static const erpq_opt command_opts[] = {
    {"log-level", ERPQ_OPT_STRING, "ERPQ_LOG_LEVEL", "L", "debug, info, warn or error", 0, 0,
     "info", 0},
    {"help", ERPQ_OPT_FLAG, NULL, NULL, "this text", 0, 0, NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0, 0, NULL, 0}};

static void list_join(FILE *f, const char *const *v, const char *sep) {
  for (int i = 0; v && v[i]; i++) fprintf(f, "%s%s", i ? sep : "", v[i]);
}

static void jobs_join(FILE *f, const erpq_family_meta *m) {
  for (size_t j = 0; j < m->njobs; j++) fprintf(f, "%s%s", j ? ", " : "", m->jobs[j].name);
}

static void print_families(FILE *f) {
  for (const erpq_family_meta *m = erpq_catalog; m->name; m++) {
    const erpq_family *d = erpq_family_find(erpq_families, m->name);
    fprintf(f, "%s: %s\n  default queues: ", m->name, m->summary);
    list_join(f, m->queues, ", ");
    fputs("\n  jobs: ", f);
    jobs_join(f, m);
    fputc('\n', f);
    if (d && d->commands && d->commands[0].name) {
      fputs("  commands:", f);
      for (const erpq_family_cmd *c = d->commands; c->name; c++) fprintf(f, " %s", c->name);
      fputc('\n', f);
    }
  }
}

static void usage(FILE *f) {
  fputs("usage: erpq-worker [options]\n"
        "       erpq-worker families\n"
        "       erpq-worker COMMAND [options]      (a family's command, below)\n"
        "\n"
        "Serves bull 4.16.5 queues from Redis with the job families built in.\n"
        "\n",
        f);
  erpq_args_help(f, worker_opts);
  fputs("\nJob families built in (--queue NAME@FAMILY binds any queue to a family):\n", f);
  for (const erpq_family_meta *m = erpq_catalog; m->name; m++) {
    const erpq_family *d = erpq_family_find(erpq_families, m->name);
    fprintf(f, "\n%s: %s\n  default queues: ", m->name, m->summary);
    list_join(f, m->queues, ", ");
    fputs("\n  jobs: ", f);
    jobs_join(f, m);
    fputc('\n', f);
    if (d && d->settings && d->settings[0].name) erpq_args_help(f, d->settings);
    for (const erpq_family_cmd *c = d ? d->commands : NULL; c && c->name; c++)
      fprintf(f, "  erpq-worker %s %s\n      %s\n", c->name, c->usage ? c->usage : "", c->summary);
  }
  fputs("\nEvery setting is a flag and an ERPQ_* variable; secrets may also come\n"
        "from a file named by <VAR>_FILE. Flags win over variables.\n",
        f);
}

typedef struct backoff_conf {
  char kind[32];
  int64_t ms; /* -1: use backoff.options.delay (what bull hands a custom strategy). */
} backoff_conf;

static int64_t custom_backoff(int attempts, const char *msg, const json_t *options, void *ud) {
  (void)msg;
  const backoff_conf *b = ud;
  int64_t d = b->ms;
  if (d < 0) {
    const json_t *v = json_is_object(options) ? json_object_get(options, "delay") : NULL;
    d = json_is_integer(v) ? json_integer_value(v) : 0;
  }
  if (!strcmp(b->kind, "none")) return -1;
  if (!strcmp(b->kind, "linear")) return d * attempts;
  if (!strcmp(b->kind, "exponential")) return ((1LL << (attempts > 40 ? 40 : attempts)) - 1) * d;
  return d;
}

/* The option tables: fixed first, then every family's settings. */
static void tables_of(const erpq_opt **t, const erpq_opt *first, const erpq_opt *second) {
  int n = 0;
  t[n++] = first;
  if (second) t[n++] = second;
  for (int i = 0; erpq_families[i] && n < MAX_TABLES - 1; i++)
    if (erpq_families[i]->settings) t[n++] = erpq_families[i]->settings;
  t[n] = NULL;
}

static int set_log_level(const erpq_args *a, char *err, size_t errlen) {
  const char *ll = erpq_args_str(a, "log-level");
  erpq_log_level lv;
  if (ll && erpq_log_parse_level(ll, &lv))
    return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: log level must be debug, info, warn or error",
                     erpq_args_origin(a, "log-level"));
  if (ll) erpq_log_set_level(lv);
  return 0;
}

static int run_command(const char *name, int argc, char **argv) {
  const erpq_family *fam = NULL;
  const erpq_family_cmd *cmd = NULL;
  for (int i = 0; erpq_families[i] && !cmd; i++)
    for (const erpq_family_cmd *c = erpq_families[i]->commands; c && c->name && !cmd; c++)
      if (!strcmp(c->name, name)) fam = erpq_families[i], cmd = c;
  if (!cmd) {
    fprintf(stderr, "erpq-worker: unknown command '%s' (see erpq-worker --help)\n", name);
    return 2;
  }
  const erpq_opt *t[MAX_TABLES];
  int n = 0;
  t[n++] = command_opts;
  if (cmd->opts) t[n++] = cmd->opts;
  if (fam->settings) t[n++] = fam->settings;
  t[n] = NULL;
  erpq_args *a = NULL;
  char err[1024] = "";
  if (erpq_args_parse(&a, t, argc, argv, 0, NULL, err, sizeof err) ||
      set_log_level(a, err, sizeof err)) {
    fprintf(stderr, "erpq-worker %s: %s\n", name, err);
    erpq_args_free(a);
    return 2;
  }
  if (erpq_args_flag(a, "help")) {
    printf("usage: erpq-worker %s %s\n%s\n\n", cmd->name, cmd->usage ? cmd->usage : "",
           cmd->summary);
    if (cmd->opts) erpq_args_help(stdout, cmd->opts);
    if (fam->settings) erpq_args_help(stdout, fam->settings);
    erpq_args_help(stdout, command_opts);
    erpq_args_free(a);
    return 0;
  }
  char datadir[4096] = "";
  erpq_datadir(datadir, sizeof datadir, NULL, 0);
  int status = erpq_family_command(fam, erpq_catalog_family(erpq_catalog, fam->name), cmd, a,
                                   datadir);
  erpq_args_free(a);
  return status;
}

/* Every worker setting into conf and bindings. Returns 0 or ERPQ_E_ARG. */
static int configure(const erpq_args *a, erpq_worker_conf *conf, erpq_bindings *b,
                     erpq_queue_conf **queues, backoff_conf *backoffs, char names[][64], int *nb,
                     char *err, size_t errlen) {
  int rc = erpq_redis_url_parse(erpq_args_str(a, "redis"), &conf->redis, err, errlen);
  const char *pfx = erpq_args_str(a, "prefix");
  if (!rc && (!*pfx || strlen(pfx) >= sizeof conf->prefix))
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "bad prefix '%s'", pfx);
  if (rc) return rc;
  snprintf(conf->prefix, sizeof conf->prefix, "%s", pfx);
  conf->lock_duration_ms = erpq_args_int(a, "lock-duration", 30000);
  conf->lock_renew_ms = erpq_args_int(a, "lock-renew-time", conf->lock_duration_ms / 2);
  if (erpq_args_str(a, "lock-renew-time") && conf->lock_renew_ms >= conf->lock_duration_ms)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "--lock-renew-time must be below --lock-duration");
  conf->stalled_interval_ms = erpq_args_int(a, "stalled-interval", 30000);
  conf->max_stalled_count = (int)erpq_args_int(a, "max-stalled-count", 1);
  conf->guard_interval_ms = erpq_args_int(a, "guard-interval", 5000);
  conf->drain_delay_s = (double)erpq_args_int(a, "drain-delay", 5);
  conf->retry_process_delay_ms = erpq_args_int(a, "retry-process-delay", 5000);
  conf->grace_ms = erpq_args_int(a, "grace", 30) * 1000;

  const char *const *v;
  size_t n = erpq_args_list(a, "queue", &v);
  int env = erpq_args_source(a, "queue") == ERPQ_SRC_ENV;
  for (size_t i = 0; i < n && !rc; i++)
    rc = env ? erpq_bindings_add_list(b, v[i], NULL, err, errlen)
             : erpq_bindings_add(b, v[i], NULL, err, errlen);
  n = erpq_args_list(a, "diag-queue", &v);
  env = erpq_args_source(a, "diag-queue") == ERPQ_SRC_ENV;
  for (size_t i = 0; i < n && !rc; i++)
    rc = env ? erpq_bindings_add_list(b, v[i], "diag", err, errlen)
             : erpq_bindings_add(b, v[i], "diag", err, errlen);
  if (rc) return rc;
  if (!b->n)
    return erpq_fail(err, errlen, ERPQ_E_ARG,
                     "no queue given (use --queue, --diag-queue or ERPQ_QUEUES)");
  if ((rc = erpq_bindings_check(b, err, errlen))) return rc;

  *queues = calloc((size_t)b->n, sizeof **queues);
  if (!*queues) return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  for (int i = 0; i < b->n; i++) {
    snprintf((*queues)[i].name, sizeof (*queues)[i].name, "%s", b->q[i].name);
    (*queues)[i].concurrency = b->q[i].concurrency;
  }
  conf->queues = *queues;
  conf->nqueues = b->n;

  n = erpq_args_list(a, "limiter", &v);
  for (size_t i = 0; i < n; i++) {
    char qn[128] = "", group[64] = "";
    long long max = 0, dur = 0;
    int got = sscanf(v[i], "%127[^:]:%lld:%lld:%63s", qn, &max, &dur, group);
    int found = 0;
    for (int k = 0; got >= 3 && max > 0 && dur > 0 && k < b->n; k++)
      if (!strcmp((*queues)[k].name, qn)) {
        (*queues)[k].limiter.max = max;
        (*queues)[k].limiter.duration_ms = dur;
        snprintf((*queues)[k].limiter.group_key, sizeof (*queues)[k].limiter.group_key, "%s", group);
        found = 1;
      }
    if (!found)
      return erpq_fail(err, errlen, ERPQ_E_ARG,
                       "--limiter wants QUEUE:MAX:DURATION_MS[:GROUPKEY] for a served queue; got '%s'",
                       v[i]);
  }
  n = erpq_args_list(a, "backoff-strategy", &v);
  for (size_t i = 0; i < n; i++) {
    if (*nb >= MAX_BACKOFFS)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "too many backoff strategies (max %d)", MAX_BACKOFFS);
    char kind[32] = "", name[64] = "";
    long long ms = -1;
    int got = sscanf(v[i], "%63[^:]:%31[^:]:%lld", name, kind, &ms);
    if (got < 2 ||
        (strcmp(kind, "fixed") && strcmp(kind, "exponential") && strcmp(kind, "linear") &&
         strcmp(kind, "none")) ||
        (got == 3 && ms < 0))
      return erpq_fail(err, errlen, ERPQ_E_ARG,
                       "--backoff-strategy wants NAME:KIND[:MS] with KIND fixed, exponential, "
                       "linear or none; got '%s'",
                       v[i]);
    snprintf(names[*nb], 64, "%s", name);
    snprintf(backoffs[*nb].kind, sizeof backoffs[*nb].kind, "%s", kind);
    backoffs[*nb].ms = got == 3 ? ms : -1;
    (*nb)++;
  }
  return 0;
}

int main(int argc, char **argv) {
  mallopt(M_ARENA_MAX, 2);
  signal(SIGPIPE, SIG_IGN);
  if (argc > 1 && argv[1][0] != '-') {
    if (!strcmp(argv[1], "families")) {
      print_families(stdout);
      return 0;
    }
    if (!strcmp(argv[1], "help")) {
      usage(stdout);
      return 0;
    }
    return run_command(argv[1], argc - 2, argv + 2);
  }

  const erpq_opt *tables[MAX_TABLES];
  tables_of(tables, worker_opts, NULL);
  erpq_args *a = NULL;
  char err[1024] = "";
  if (erpq_args_parse(&a, tables, argc - 1, argv + 1, 0, NULL, err, sizeof err)) {
    fprintf(stderr, "erpq-worker: %s (see erpq-worker --help)\n", err);
    return 2;
  }
  if (erpq_args_flag(a, "help")) {
    usage(stdout);
    erpq_args_free(a);
    return 0;
  }
  if (erpq_args_flag(a, "version")) {
    printf("erpq-worker %s\n", ERPQ_VERSION);
    erpq_args_free(a);
    return 0;
  }
  if (erpq_args_npos(a)) {
    fprintf(stderr, "erpq-worker: unexpected argument '%s' (see erpq-worker --help)\n",
            erpq_args_pos(a, 0));
    erpq_args_free(a);
    return 2;
  }

  erpq_worker_conf conf;
  erpq_worker_conf_defaults(&conf);
  erpq_bindings b;
  erpq_bindings_init(&b, erpq_catalog);
  erpq_queue_conf *queues = NULL;
  static backoff_conf backoffs[MAX_BACKOFFS];
  static char backoff_names[MAX_BACKOFFS][64];
  int nb = 0;
  int rc = set_log_level(a, err, sizeof err);
  if (!rc) rc = configure(a, &conf, &b, &queues, backoffs, backoff_names, &nb, err, sizeof err);
  if (rc) {
    fprintf(stderr, "erpq-worker: %s\n", err);
    free(queues);
    erpq_bindings_free(&b);
    erpq_args_free(a);
    return 2;
  }

  /* The job schemas: the built-in ones, or --schemas DIR (which must hold
   * every one); only --no-schemas turns the checks off. */
  erpq_schemas *schemas = NULL;
  int status = 1;
  erpq_registry reg;
  erpq_registry_init(&reg);
  erpq_familyset *fams = NULL;
  char datadir[4096] = "";
  erpq_datadir(datadir, sizeof datadir, NULL, 0);
  if (erpq_args_flag(a, "no-schemas")) {
    erpq_log(ERPQ_LOG_WARN, "worker.no_schemas", "note",
             "--no-schemas: job data is not checked against the job schemas", NULL);
  } else if (erpq_schemas_load(&schemas, erpq_catalog, erpq_args_str(a, "schemas"), err,
                               sizeof err)) {
    fprintf(stderr, "erpq-worker: %s%s\n", erpq_args_str(a, "schemas") ? "--schemas: " : "", err);
    status = 2;
    goto out;
  }
  if (erpq_familyset_start(&fams, erpq_families, &b, a, schemas, datadir, &reg, err, sizeof err)) {
    fprintf(stderr, "erpq-worker: %s\n", err);
    status = 2;
    goto out;
  }
  for (int i = 0; i < nb; i++)
    if ((rc = erpq_registry_add_backoff(&reg, backoff_names[i], custom_backoff, &backoffs[i]))) {
      fprintf(stderr, "erpq-worker: backoff strategy %s: %s\n", backoff_names[i],
              rc == -EEXIST ? "given twice" : erpq_strerror(rc));
      status = 2;
      goto out;
    }

  erpq_tz_preload(NULL, NULL, 0); /* every zone, before the loop: lookups never read files */
  uv_loop_t loop;
  uv_loop_init(&loop);
  erpq_worker *w = NULL;
  rc = erpq_worker_new(&w, &loop, &conf, &reg, err, sizeof err);
  if (!rc) rc = erpq_worker_start(w);
  if (rc) {
    fprintf(stderr, "erpq-worker: %s\n", err[0] ? err : erpq_strerror(rc));
    erpq_worker_free(w);
    uv_loop_close(&loop);
    goto out;
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  erpq_familyset_quiesce(fams);
  int left = erpq_worker_free(w);
  if (left) {
    /* Handlers still running after the grace period: their jobs were
     * handed back, so leave without waiting for them. */
    fflush(stdout);
    erpq_log_flush(2000);
    _exit(0);
  }
  int lrc = uv_loop_close(&loop);
  status = 0;
  if (lrc) {
    erpq_log(ERPQ_LOG_WARN, "worker.loop_not_closed", "error", uv_strerror(lrc), NULL);
    status = 1;
  }
out:
  erpq_familyset_free(fams);
  erpq_registry_free(&reg);
  erpq_schemas_free(schemas);
  free(queues);
  erpq_bindings_free(&b);
  erpq_args_free(a);
  erpq_log_flush(2000);
  return status;
}
