#include "erpq_http.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_catalog.h"
#include "erpq_datapath.h"
#include "erpq_err.h"
#include "erpq_http_listen.h"
#include "erpq_http_metrics.h"
#include "erpq_http_options.h"
#include "erpq_http_private.h"
#include "erpq_log.h"
#include "erpq_queues.h"
#include "erpq_scripts.h"
#include "erpq_tz.h"

/* ---- main ----------------------------------------------------------------------- */

/* Which jobs each queue takes: the built-in families on their default
 * queues and on the bindings given (--queue / ERPQ_QUEUES, as the worker
 * reads them), the roles file's other queues; with their schemas (the
 * built-in ones, or --schemas DIR) unless --no-schemas. */
static int load_jobtypes(server *srv, const erpq_http_config *cfg, char *err, size_t errlen) {
  erpq_bindings b;
  erpq_bindings_init(&b, erpq_catalog);
  int rc = 0;
  for (size_t i = 0; i < cfg->nqueues && !rc; i++)
    rc = cfg->queues_from_env ? erpq_bindings_add_list(&b, cfg->queues[i], NULL, err, errlen)
                              : erpq_bindings_add(&b, cfg->queues[i], NULL, err, errlen);
  if (!rc) rc = erpq_bindings_check(&b, err, errlen);
  if (!rc && !cfg->no_schemas)
    rc = erpq_schemas_load(&srv->schemas, erpq_catalog, cfg->schemas, err, errlen);
  if (!rc)
    rc = erpq_jobtypes_build(&srv->jobtypes, &b, srv->schemas,
                             json_object_get(srv->policy.doc, "queues"), err, errlen);
  erpq_bindings_free(&b);
  return rc;
}

int erpq_http_main(const char *redis_url, const char *prefix, int argc, char **argv) {
  erpq_http_config cfg;
  char err[1024];
  int orc = erpq_http_options(&cfg, argc, argv, err, sizeof err);
  if (orc == ERPQ_HTTP_OPTIONS_HELP) {
    erpq_http_usage(stdout);
    erpq_http_options_free(&cfg);
    return 0;
  }
  if (orc) {
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    erpq_http_options_free(&cfg);
    return 2;
  }
  const char *listen = cfg.listen;
  server srv;
  memset(&srv, 0, sizeof srv);
  erpq_listen ls;
  if (erpq_redis_url_parse(redis_url, &srv.addr, err, sizeof err) ||
      erpq_listen_resolve(&ls, listen, err, sizeof err)) {
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    erpq_http_options_free(&cfg);
    return 2;
  }
  srv.prefix = prefix;
  srv.redis_timeout_ms = (int)cfg.redis_timeout_ms;
  srv.rate_subject = (int)cfg.rate_subject;
  srv.rate_ip = (int)cfg.rate_ip;
  srv.body_timeout_s = (int)cfg.body_timeout_s;
  srv.header_timeout_s = (int)cfg.header_timeout_s;
  if (erpq_proxies_parse(&srv.proxies, cfg.trusted_proxies, err, sizeof err)) {
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    erpq_http_options_free(&cfg);
    return 2;
  }
  if (erpq_auth_init(&srv.auth, cfg.rs256_key, (int)cfg.jwt_leeway_s, err, sizeof err)) {
    erpq_proxies_free(&srv.proxies);
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    erpq_http_options_free(&cfg);
    return 2;
  }
  int rc = 2;
  int opened = 0;
  hloop *loops = NULL;
  int nloops = 0, nstarted = 0;
  char roles[4096];
  if (erpq_datapath("roles.json", cfg.roles, cfg.roles_origin, roles, sizeof roles, err,
                    sizeof err) ||
      erpq_policy_load(&srv.policy, roles, err, sizeof err) ||
      load_jobtypes(&srv, &cfg, err, sizeof err)) {
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    goto out;
  }
  /* Report downloads: the storage the reports family writes. Settings
   * that are given but wrong stop the start; none at all turns the two
   * download routes off (they answer 503), and the log says so. */
  srv.link_ttl_s = cfg.link_ttl_s;
  if (cfg.has_storage) {
    if (erpq_storage_conf_read(&srv.storage_conf, erpq_args_lookup, (void *)cfg.args, err,
                               sizeof err) ||
        erpq_storage_new(&srv.storage, &srv.storage_conf, err, sizeof err)) {
      fprintf(stderr, "erpq-producer serve: report storage: %s\n", err);
      goto out;
    }
    if (srv.storage_conf.kind == ERPQ_STORAGE_S3)
      srv.bucket = srv.storage_conf.s3.bucket;
  } else {
    erpq_log(ERPQ_LOG_INFO, "http.downloads_off", "note",
             "neither ERPQ_S3_BUCKET nor ERPQ_STORAGE_DIR is set: report downloads answer 503",
             NULL);
  }
  if (cfg.no_schemas)
    erpq_log(ERPQ_LOG_WARN, "http.no_schemas", "note",
             "--no-schemas: job data is not checked against the job schemas", NULL);
  int src = erpq_scripts_init();
  if (src) {
    fprintf(stderr, "erpq-producer serve: cannot load the Lua scripts: %s\n", erpq_strerror(src));
    rc = 5;
    goto out;
  }
  erpq_metrics_init();
  /* Repeat schedules with a tz are computed on the loops: every zone now. */
  erpq_tz_preload(NULL, NULL, 0);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  if (erpq_listen_open(&ls, err, sizeof err)) {
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    rc = 4;
    goto out;
  }
  opened = 1;
  int fds[ERPQ_LISTEN_MAX];
  for (int i = 0; i < ls.n; i++)
    fds[i] = ls.v[i].fd;
  nloops = (int)cfg.threads;
  loops = calloc((size_t)nloops, sizeof *loops);
  if (!loops)
    goto out;
  loop_limits lim = {(unsigned)((cfg.max_connections + nloops - 1) / nloops),
                     (unsigned)cfg.per_ip_connections, (unsigned)cfg.client_timeout_s};
  for (; nstarted < nloops; nstarted++) {
    if (http_loop_init(&loops[nstarted], &srv, nstarted, fds, ls.n, &lim, err, sizeof err)) {
      fprintf(stderr, "erpq-producer serve: %s\n", err);
      rc = 4;
      break;
    }
  }
  if (nstarted == nloops) {
    for (int i = 0; i < nloops; i++)
      pthread_create(&loops[i].thread, NULL, http_loop_main, &loops[i]);
    char th[16], ns[16], bound[ERPQ_LISTEN_MAX * 64];
    snprintf(th, sizeof th, "%d", nloops);
    size_t nq = 0;
    while (erpq_jobtypes_queue(srv.jobtypes, nq)) nq++;
    snprintf(ns, sizeof ns, "%zu", nq);
    erpq_listen_describe(&ls, bound, sizeof bound);
    erpq_log(ERPQ_LOG_INFO, "http.listening", "addr", listen, "bound", bound, "#threads", th,
             "#queues", ns, NULL);
    int sig = 0;
    sigwait(&set, &sig);
    for (int i = 0; i < nloops; i++)
      uv_async_send(&loops[i].stop_async);
    for (int i = 0; i < nloops; i++)
      pthread_join(loops[i].thread, NULL);
    rc = 0;
    for (int i = 0; i < nloops; i++)
      if (http_loop_free(&loops[i])) {
        erpq_log(ERPQ_LOG_ERROR, "http.loop_not_closed", NULL);
        rc = 1;
      }
    erpq_log(ERPQ_LOG_INFO, "http.stopped", NULL);
  } else {
    /* A loop failed to start: none runs yet; close those that were made. */
    for (int i = 0; i < nstarted; i++) {
      loops[i].stopping = 1;
      http_loop_finish(&loops[i]);
      uv_run(&loops[i].loop, UV_RUN_DEFAULT);
      http_loop_free(&loops[i]);
    }
  }
out:
  if (opened)
    erpq_listen_close(&ls);
  free(loops);
  erpq_metrics_free();
  erpq_storage_free(srv.storage);
  erpq_storage_conf_clear(&srv.storage_conf);
  erpq_jobtypes_free(srv.jobtypes);
  erpq_schemas_free(srv.schemas);
  erpq_policy_free(&srv.policy);
  erpq_auth_free(&srv.auth);
  erpq_proxies_free(&srv.proxies);
  erpq_http_options_free(&cfg);
  return rc;
}
