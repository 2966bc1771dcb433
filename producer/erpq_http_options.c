/* erpq_http_options.c - the options of `erpq-producer serve`, as one
 * erpq_args table. See erpq_http_options.h. */
#include "erpq_http_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_storage_settings.h"

#define END {NULL, 0, NULL, NULL, NULL, 0, 0, NULL, 0}
static const erpq_opt serve_opts[] = {
    {"listen", ERPQ_OPT_STRING, "ERPQ_HTTP_ADDR", "HOST:PORT",
     "HOST is an IPv4 address, [IPV6] (IPv6 only), a host name (every address it\n"
     "resolves to) or * (every address, IPv4 and IPv6)",
     0, 0, "127.0.0.1:8080", 0},
    {"roles", ERPQ_OPT_STRING, "ERPQ_ROLES_FILE", "FILE",
     "roles and queues (default: roles.json of the data directory, <bin>/../share/erpq)", 0, 0,
     NULL, 0},
    {"schemas", ERPQ_OPT_STRING, "ERPQ_SCHEMA_DIR", "DIR",
     "job data schemas DIR/<family>/<job>.json instead of the built-in ones", 0, 0, NULL, 0},
    {"no-schemas", ERPQ_OPT_FLAG, "ERPQ_NO_SCHEMAS", NULL,
     "do not check job data against the job schemas (not recommended)", 0, 0, NULL, 0},
    {"queue", ERPQ_OPT_LIST, "ERPQ_QUEUES", "SPEC",
     "a queue binding as the worker takes it (NAME[:N][@FAMILY,...]), so that the API\n"
     "knows which jobs a queue bound to a family takes",
     0, 0, NULL, 0},
    {"jwt-rs256-key", ERPQ_OPT_STRING, "ERPQ_JWT_PUBLIC_KEY_FILE", "FILE",
     "also accept RS256 tokens signed for this PEM public key; HS256 uses the secret in\n"
     "ERPQ_JWT_SECRET_FILE (or ERPQ_JWT_SECRET), at least 32 bytes",
     0, 0, NULL, 0},
    {"jwt-leeway", ERPQ_OPT_INT, NULL, "S", "clock skew allowed on exp/nbf", 0, 300, "30", 0},
    {"threads", ERPQ_OPT_INT, "ERPQ_HTTP_THREADS", "N",
     "event loops, one thread and one Redis connection each", 1, 64, "1", 0},
    {"max-connections", ERPQ_OPT_INT, NULL, "N", "open connections in all", 1, 100000, "1024", 0},
    {"per-ip-connections", ERPQ_OPT_INT, NULL, "N",
     "open connections per client address and event loop (0 = no limit)", 0, 100000, "256", 0},
    {"client-timeout", ERPQ_OPT_INT, NULL, "S", "close a connection idle this long", 1, 3600, "10",
     0},
    {"header-timeout", ERPQ_OPT_INT, NULL, "S",
     "the request line and headers must arrive within S", 1, 3600, "10", 0},
    {"body-timeout", ERPQ_OPT_INT, NULL, "S", "the whole request body must arrive within S", 1,
     3600, "10", 0},
    {"rate-subject", ERPQ_OPT_INT, "ERPQ_RATE_SUBJECT", "N",
     "requests per minute per token subject (0 = off)", 0, 100000000, "6000", 0},
    {"rate-ip", ERPQ_OPT_INT, "ERPQ_RATE_IP", "N",
     "requests per minute per client address (0 = off)", 0, 100000000, "12000", 0},
    {"redis-timeout", ERPQ_OPT_INT, NULL, "MS", "a Redis call not answered within MS fails with 503",
     10, 60000, "1000", 0},
    {"trusted-proxies", ERPQ_OPT_STRING, "ERPQ_TRUSTED_PROXIES", "LIST",
     "reverse proxies (CIDRs, comma-separated) whose X-Forwarded-For names the client", 0, 0,
     NULL, 0},
    {"report-link-ttl", ERPQ_OPT_INT, "ERPQ_REPORT_LINK_TTL", "S",
     "lifetime of the links .../download redirects to (at most 7 days)", 1, 604800, "900", 0},
    /* Report downloads read the storage the reports family writes: the
     * same settings, the same variables. */
    ERPQ_STORAGE_SETTINGS,
    {"help", ERPQ_OPT_FLAG, NULL, NULL, "this text", 0, 0, NULL, 0},
    END};

void erpq_http_usage(FILE *f) {
  fputs("Usage: erpq-producer [--redis URL] [--prefix P] serve [OPTIONS]\n"
        "\n"
        "Runs the HTTP API (see openapi.yaml in the data directory) until SIGINT or SIGTERM.\n"
        "\n",
        f);
  erpq_args_help(f, serve_opts);
}

int erpq_http_options(erpq_http_config *cfg, int argc, char **argv, char *err, size_t errlen) {
  memset(cfg, 0, sizeof *cfg);
  const erpq_opt *t[] = {serve_opts, NULL};
  int rc = erpq_args_parse(&cfg->args, t, argc, argv, 0, NULL, err, errlen);
  if (rc) return rc;
  const erpq_args *a = cfg->args;
  if (erpq_args_flag(a, "help")) return ERPQ_HTTP_OPTIONS_HELP;
  if (erpq_args_npos(a))
    return erpq_fail(err, errlen, ERPQ_E_ARG, "unexpected argument '%s' (see serve --help)",
                     erpq_args_pos(a, 0));
  cfg->listen = erpq_args_str(a, "listen");
  cfg->roles = erpq_args_str(a, "roles");
  cfg->roles_origin = erpq_args_origin(a, "roles");
  cfg->schemas = erpq_args_str(a, "schemas");
  cfg->no_schemas = erpq_args_flag(a, "no-schemas");
  cfg->nqueues = erpq_args_list(a, "queue", &cfg->queues);
  cfg->queues_from_env = erpq_args_source(a, "queue") == ERPQ_SRC_ENV;
  cfg->rs256_key = erpq_args_str(a, "jwt-rs256-key");
  cfg->trusted_proxies = erpq_args_str(a, "trusted-proxies");
  cfg->threads = (long)erpq_args_int(a, "threads", 1);
  cfg->max_connections = (long)erpq_args_int(a, "max-connections", 1024);
  cfg->per_ip_connections = (long)erpq_args_int(a, "per-ip-connections", 256);
  cfg->client_timeout_s = (long)erpq_args_int(a, "client-timeout", 10);
  cfg->header_timeout_s = (long)erpq_args_int(a, "header-timeout", 10);
  cfg->body_timeout_s = (long)erpq_args_int(a, "body-timeout", 10);
  cfg->jwt_leeway_s = (long)erpq_args_int(a, "jwt-leeway", 30);
  cfg->redis_timeout_ms = (long)erpq_args_int(a, "redis-timeout", 1000);
  cfg->rate_subject = (long)erpq_args_int(a, "rate-subject", 6000);
  cfg->rate_ip = (long)erpq_args_int(a, "rate-ip", 12000);
  cfg->link_ttl_s = (long)erpq_args_int(a, "report-link-ttl", 900);
  cfg->has_storage = erpq_args_str(a, "s3-bucket") || erpq_args_str(a, "storage-dir");
  return 0;
}

void erpq_http_options_free(erpq_http_config *cfg) {
  erpq_args_free(cfg->args);
  memset(cfg, 0, sizeof *cfg);
}
