/*
 * erpq-worker: serves bull queues with the job families linked into it.
 *
 * Configuration comes from flags, then ERPQ_* environment variables, then
 * bull's defaults (see --help). The process runs until SIGTERM/SIGINT and
 * then shuts down gracefully (erpq_worker.h); it exits 0 after a clean
 * shutdown, 2 on bad arguments and 1 on a start-up failure.
 */
#include <ctype.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "diag/erpq_diag.h"
#include "fees/erpq_fees.h"
#include "erpq_config.h"
#include "erpq_err.h"
#include "erpq_log.h"
#include "erpq_tz.h"
#include "erpq_worker.h"

#define MAX_QUEUES 64
#define MAX_BACKOFFS 16

static void usage(FILE *f) {
  fputs(
      "usage: erpq-worker [options]\n"
      "\n"
      "       erpq-worker migrate [--dir DIR]    apply schemas/mysql (ERPQ_MYSQL_URL)\n"
      "       erpq-worker seed-demo [--students N] [--schools N]\n"
      "\n"
      "Serves bull 4.16.5 queues from Redis. Queue bulk-operations runs the fee\n"
      "jobs (generate-fees, create-fee) against ERPQ_MYSQL_URL.\n"
      "\n"
      "  --redis URL                 Redis (ERPQ_REDIS_URL; default redis://127.0.0.1:6379/0;\n"
      "                              also unix:///path/redis.sock?db=N)\n"
      "  --prefix P                  key prefix (ERPQ_PREFIX; default bull; {tag} for Cluster)\n"
      "  --queue NAME[:N]            serve NAME with concurrency N (default 1); repeatable\n"
      "                              (ERPQ_QUEUES=name:n,name:n)\n"
      "  --diag-queue NAME[:N]       serve the diagnostic jobs on NAME (ERPQ_DIAG_QUEUES)\n"
      "  --diag-catch-all            diag queues also take any other job name ('*')\n"
      "  --limiter Q:MAX:MS[:GROUP]  rate limit queue Q to MAX jobs per MS ms (bull's limiter)\n"
      "  --backoff-strategy NAME:KIND[:MS]\n"
      "                              a custom backoff named NAME: KIND fixed, exponential,\n"
      "                              linear (attempts*MS) or none (no retry); MS defaults to\n"
      "                              backoff.delay of the job\n"
      "  --lock-duration MS          job lock TTL (30000)\n"
      "  --lock-renew-time MS        lock renewal period (lock-duration/2)\n"
      "  --stalled-interval MS       stalled check period, 0 = off (30000)\n"
      "  --max-stalled-count N       stalls before a job fails (1)\n"
      "  --guard-interval MS         longest gap between delayed promotions (5000)\n"
      "  --drain-delay S             blocking pop timeout in seconds (5)\n"
      "  --retry-process-delay MS    pause after a Redis error (5000)\n"
      "  --grace S                   shutdown grace for running jobs (30)\n"
      "  --log-level L               debug, info, warn or error (ERPQ_LOG_LEVEL; info)\n"
      "  --help, --version\n"
      "\n"
      "Every numeric setting also reads ERPQ_<NAME> (for example ERPQ_LOCK_DURATION).\n",
      f);
}

typedef struct backoff_conf {
  char kind[32];
  int64_t ms; /* -1: use backoff.delay. */
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

static int add_queue(erpq_queue_conf *qs, int *n, const char *spec, int diag, int *diag_flags,
                     char *err, size_t errlen) {
  if (*n >= MAX_QUEUES) return erpq_fail(err, errlen, ERPQ_E_ARG, "too many queues (max %d)", MAX_QUEUES);
  erpq_queue_conf *q = &qs[*n];
  memset(q, 0, sizeof *q);
  q->concurrency = 1;
  const char *colon = strrchr(spec, ':');
  size_t len = strlen(spec);
  if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
    int64_t c;
    int rc = erpq_parse_int_arg("queue concurrency", colon + 1, 1, 10000, &c, err, errlen);
    if (rc) return rc;
    q->concurrency = (int)c;
    len = (size_t)(colon - spec);
  }
  if (len == 0 || len >= sizeof q->name)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "bad queue name in '%s'", spec);
  memcpy(q->name, spec, len);
  q->name[len] = '\0';
  for (int i = 0; i < *n; i++)
    if (!strcmp(qs[i].name, q->name))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "queue '%s' given twice", q->name);
  diag_flags[*n] = diag;
  (*n)++;
  return 0;
}

static int add_queue_list(erpq_queue_conf *qs, int *n, const char *list, int diag, int *flags,
                          char *err, size_t errlen) {
  char *copy = strdup(list), *save = NULL;
  int rc = 0;
  for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
    while (isspace((unsigned char)*tok)) tok++;
    if (*tok) rc = add_queue(qs, n, tok, diag, flags, err, errlen);
  }
  free(copy);
  return rc;
}

static int num_setting(const char *what, const char *env, const char *flag, int64_t min,
                       int64_t max, int64_t *out, char *err, size_t errlen) {
  const char *v = flag ? flag : getenv(env);
  if (!v || !*v) return 0;
  return erpq_parse_int_arg(what, v, min, max, out, err, errlen);
}

int main(int argc, char **argv) {
  mallopt(M_ARENA_MAX, 2);
  signal(SIGPIPE, SIG_IGN);
  /* --- fees: database subcommands (jobs/fees/erpq_fees.h) --- */
  if (argc > 1 && !strcmp(argv[1], "migrate")) return erpq_fees_migrate_main(argc - 1, argv + 1);
  if (argc > 1 && !strcmp(argv[1], "seed-demo")) return erpq_fees_seed_main(argc - 1, argv + 1);
  /* --- end fees --- */
  enum {
    O_REDIS = 256, O_PREFIX, O_QUEUE, O_DIAG, O_LIMITER, O_BACKOFF, O_LOCK, O_RENEW, O_STALLED,
    O_MAXSTALLED, O_GUARD, O_DRAIN, O_RETRY, O_GRACE, O_LOGLEVEL, O_HELP, O_VERSION, O_CATCHALL
  };
  static const struct option longopts[] = {
      {"redis", required_argument, 0, O_REDIS},
      {"prefix", required_argument, 0, O_PREFIX},
      {"queue", required_argument, 0, O_QUEUE},
      {"diag-queue", required_argument, 0, O_DIAG},
      {"diag-catch-all", no_argument, 0, O_CATCHALL},
      {"limiter", required_argument, 0, O_LIMITER},
      {"backoff-strategy", required_argument, 0, O_BACKOFF},
      {"lock-duration", required_argument, 0, O_LOCK},
      {"lock-renew-time", required_argument, 0, O_RENEW},
      {"stalled-interval", required_argument, 0, O_STALLED},
      {"max-stalled-count", required_argument, 0, O_MAXSTALLED},
      {"guard-interval", required_argument, 0, O_GUARD},
      {"drain-delay", required_argument, 0, O_DRAIN},
      {"retry-process-delay", required_argument, 0, O_RETRY},
      {"grace", required_argument, 0, O_GRACE},
      {"log-level", required_argument, 0, O_LOGLEVEL},
      {"help", no_argument, 0, O_HELP},
      {"version", no_argument, 0, O_VERSION},
      {0, 0, 0, 0}};
  char err[512] = "";
  const char *redis = NULL, *prefix = NULL, *loglevel = NULL;
  const char *f_lock = NULL, *f_renew = NULL, *f_stalled = NULL, *f_maxst = NULL,
             *f_guard = NULL, *f_drain = NULL, *f_retry = NULL, *f_grace = NULL;
  static erpq_queue_conf queues[MAX_QUEUES];
  static int diag_flags[MAX_QUEUES];
  int nq = 0;
  const char *limiters[MAX_QUEUES];
  int nlim = 0;
  static backoff_conf backoffs[MAX_BACKOFFS];
  static char backoff_names[MAX_BACKOFFS][64];
  int nb = 0;
  int rc = 0, opt, catch_all = 0;
  while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (opt) {
    case O_REDIS: redis = optarg; break;
    case O_PREFIX: prefix = optarg; break;
    case O_QUEUE: rc = add_queue(queues, &nq, optarg, 0, diag_flags, err, sizeof err); break;
    case O_DIAG: rc = add_queue(queues, &nq, optarg, 1, diag_flags, err, sizeof err); break;
    case O_CATCHALL: catch_all = 1; break;
    case O_LIMITER:
      if (nlim >= MAX_QUEUES) rc = erpq_fail(err, sizeof err, ERPQ_E_ARG, "too many limiters");
      else limiters[nlim++] = optarg;
      break;
    case O_BACKOFF: {
      if (nb >= MAX_BACKOFFS) {
        rc = erpq_fail(err, sizeof err, ERPQ_E_ARG, "too many backoff strategies");
        break;
      }
      char kind[32] = "", name[64] = "";
      long long ms = -1;
      int got = sscanf(optarg, "%63[^:]:%31[^:]:%lld", name, kind, &ms);
      if (got < 2 || (strcmp(kind, "fixed") && strcmp(kind, "exponential") &&
                      strcmp(kind, "linear") && strcmp(kind, "none")) || (got == 3 && ms < 0)) {
        rc = erpq_fail(err, sizeof err, ERPQ_E_ARG,
                       "--backoff-strategy wants NAME:KIND[:MS] with KIND fixed, exponential, "
                       "linear or none; got '%s'", optarg);
        break;
      }
      snprintf(backoff_names[nb], sizeof backoff_names[nb], "%s", name);
      snprintf(backoffs[nb].kind, sizeof backoffs[nb].kind, "%s", kind);
      backoffs[nb].ms = got == 3 ? ms : -1;
      nb++;
      break;
    }
    case O_LOCK: f_lock = optarg; break;
    case O_RENEW: f_renew = optarg; break;
    case O_STALLED: f_stalled = optarg; break;
    case O_MAXSTALLED: f_maxst = optarg; break;
    case O_GUARD: f_guard = optarg; break;
    case O_DRAIN: f_drain = optarg; break;
    case O_RETRY: f_retry = optarg; break;
    case O_GRACE: f_grace = optarg; break;
    case O_LOGLEVEL: loglevel = optarg; break;
    case 'h':
    case O_HELP: usage(stdout); return 0;
    case O_VERSION: printf("erpq-worker %s\n", ERPQ_VERSION); return 0;
    default: usage(stderr); return 2;
    }
    if (rc) {
      fprintf(stderr, "erpq-worker: %s\n", err);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "erpq-worker: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
  }
  if (!nq) {
    const char *eq = getenv("ERPQ_QUEUES"), *ed = getenv("ERPQ_DIAG_QUEUES");
    if (eq && *eq) rc = add_queue_list(queues, &nq, eq, 0, diag_flags, err, sizeof err);
    if (!rc && ed && *ed) rc = add_queue_list(queues, &nq, ed, 1, diag_flags, err, sizeof err);
    if (rc) {
      fprintf(stderr, "erpq-worker: %s\n", err);
      return 2;
    }
  }
  if (!nq) {
    fprintf(stderr, "erpq-worker: no queue given (use --queue, --diag-queue or ERPQ_QUEUES)\n");
    return 2;
  }

  erpq_worker_conf conf;
  erpq_worker_conf_defaults(&conf);
  conf.queues = queues;
  conf.nqueues = nq;
  const char *url = redis ? redis : erpq_env("ERPQ_REDIS_URL", ERPQ_DEFAULT_REDIS_URL);
  rc = erpq_redis_url_parse(url, &conf.redis, err, sizeof err);
  const char *pfx = prefix ? prefix : erpq_env("ERPQ_PREFIX", ERPQ_DEFAULT_PREFIX);
  if (!rc && (!*pfx || strlen(pfx) >= sizeof conf.prefix))
    rc = erpq_fail(err, sizeof err, ERPQ_E_ARG, "bad prefix '%s'", pfx);
  snprintf(conf.prefix, sizeof conf.prefix, "%s", pfx);
  int64_t v;
  int renew_set = 0;
  if (!rc) {
    v = conf.lock_duration_ms;
    rc = num_setting("--lock-duration", "ERPQ_LOCK_DURATION", f_lock, 100, 86400000, &v, err, sizeof err);
    conf.lock_duration_ms = v;
    conf.lock_renew_ms = v / 2;
  }
  if (!rc) {
    v = -1;
    rc = num_setting("--lock-renew-time", "ERPQ_LOCK_RENEW_TIME", f_renew, 10, 86400000, &v, err, sizeof err);
    if (v > 0) {
      conf.lock_renew_ms = v;
      renew_set = 1;
    }
  }
  if (!rc && renew_set && conf.lock_renew_ms >= conf.lock_duration_ms)
    rc = erpq_fail(err, sizeof err, ERPQ_E_ARG, "--lock-renew-time must be below --lock-duration");
  if (!rc) {
    v = conf.stalled_interval_ms;
    rc = num_setting("--stalled-interval", "ERPQ_STALLED_INTERVAL", f_stalled, 0, 86400000, &v, err, sizeof err);
    conf.stalled_interval_ms = v;
  }
  if (!rc) {
    v = conf.max_stalled_count;
    rc = num_setting("--max-stalled-count", "ERPQ_MAX_STALLED_COUNT", f_maxst, 0, 1000000, &v, err, sizeof err);
    conf.max_stalled_count = (int)v;
  }
  if (!rc) {
    v = conf.guard_interval_ms;
    rc = num_setting("--guard-interval", "ERPQ_GUARD_INTERVAL", f_guard, 10, 86400000, &v, err, sizeof err);
    conf.guard_interval_ms = v;
  }
  if (!rc) {
    v = (int64_t)conf.drain_delay_s;
    rc = num_setting("--drain-delay", "ERPQ_DRAIN_DELAY", f_drain, 1, 3600, &v, err, sizeof err);
    conf.drain_delay_s = (double)v;
  }
  if (!rc) {
    v = conf.retry_process_delay_ms;
    rc = num_setting("--retry-process-delay", "ERPQ_RETRY_PROCESS_DELAY", f_retry, 0, 3600000, &v, err, sizeof err);
    conf.retry_process_delay_ms = v;
  }
  if (!rc) {
    v = conf.grace_ms / 1000;
    rc = num_setting("--grace", "ERPQ_GRACE", f_grace, 0, 86400, &v, err, sizeof err);
    conf.grace_ms = v * 1000;
  }
  for (int i = 0; !rc && i < nlim; i++) {
    char qn[128] = "", group[64] = "";
    long long max = 0, dur = 0;
    int got = sscanf(limiters[i], "%127[^:]:%lld:%lld:%63s", qn, &max, &dur, group);
    int found = 0;
    if (got >= 3 && max > 0 && dur > 0) {
      for (int k = 0; k < nq; k++)
        if (!strcmp(queues[k].name, qn)) {
          queues[k].limiter.max = max;
          queues[k].limiter.duration_ms = dur;
          snprintf(queues[k].limiter.group_key, sizeof queues[k].limiter.group_key, "%s", group);
          found = 1;
        }
    }
    if (!found)
      rc = erpq_fail(err, sizeof err, ERPQ_E_ARG,
                     "--limiter wants QUEUE:MAX:DURATION_MS[:GROUPKEY] for a served queue; got '%s'",
                     limiters[i]);
  }
  const char *ll = loglevel ? loglevel : getenv("ERPQ_LOG_LEVEL");
  if (!rc && ll && *ll) {
    erpq_log_level lv;
    if (erpq_log_parse_level(ll, &lv))
      rc = erpq_fail(err, sizeof err, ERPQ_E_ARG, "log level must be debug, info, warn or error");
    else
      erpq_log_set_level(lv);
  }
  if (rc) {
    fprintf(stderr, "erpq-worker: %s\n", err);
    return 2;
  }

  erpq_registry reg;
  erpq_registry_init(&reg);
  for (int i = 0; i < nq && !rc; i++) {
    if (diag_flags[i]) rc = erpq_diag_register(&reg, queues[i].name, catch_all);
    /* --- fees: the fee jobs on bulk-operations --- */
    if (!rc && !diag_flags[i] && !strcmp(queues[i].name, "bulk-operations") &&
        (rc = erpq_fees_register(&reg, queues[i].name, queues[i].concurrency, err, sizeof err))) {
      fprintf(stderr, "erpq-worker: %s\n", err);
      erpq_registry_free(&reg);
      return 2;
    }
    /* --- end fees --- */
    if (!rc && !erpq_registry_serves(&reg, queues[i].name))
      erpq_log(ERPQ_LOG_WARN, "worker.no_handlers", "queue", queues[i].name, "note",
               "jobs on this queue will fail with 'Missing process handler'", NULL);
  }
  for (int i = 0; i < nb && !rc; i++)
    rc = erpq_registry_add_backoff(&reg, backoff_names[i], custom_backoff, &backoffs[i]);
  if (rc) {
    fprintf(stderr, "erpq-worker: cannot register handlers: %s\n", erpq_strerror(rc));
    erpq_registry_free(&reg);
    return 1;
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
    erpq_registry_free(&reg);
    return 1;
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  int left = erpq_worker_free(w);
  if (left) {
    /* Handlers still running after the grace period: their jobs were
     * handed back, so leave without waiting for them. */
    fflush(stdout);
    erpq_log_flush(2000);
    _exit(0);
  }
  int lrc = uv_loop_close(&loop);
  erpq_registry_free(&reg);
  erpq_fees_shutdown(); /* fees */
  if (lrc) {
    erpq_log(ERPQ_LOG_WARN, "worker.loop_not_closed", "error", uv_strerror(lrc), NULL);
    erpq_log_flush(2000);
    return 1;
  }
  erpq_log_flush(2000);
  return 0;
}
