/*
 * erpq_http_options.h - the options of `erpq-producer serve`.
 *
 * erpq_http_options() reads the arguments after "serve" with the project's
 * one option parser (core/erpq_args.h: a flag, else its ERPQ_* variable,
 * else the default; ranges checked) and fills an erpq_http_config. It
 * prints nothing and starts nothing: a bad value is one sentence in err.
 *
 * Ownership: the string fields point into cfg->args, which
 * erpq_http_options_free() releases; valid until then.
 */
#ifndef ERPQ_HTTP_OPTIONS_H
#define ERPQ_HTTP_OPTIONS_H

#include <stddef.h>

#include "erpq_args.h"

typedef struct erpq_http_config {
  erpq_args *args;             /* Owns every string below. */
  const char *listen;          /* --listen HOST:PORT (ERPQ_HTTP_ADDR). */
  const char *roles;           /* --roles FILE (ERPQ_ROLES_FILE), or NULL: the data path. */
  const char *roles_origin;    /* "--roles" / "ERPQ_ROLES_FILE", for messages. */
  const char *schemas;         /* --schemas DIR (ERPQ_SCHEMA_DIR), or NULL: built in. */
  int no_schemas;              /* --no-schemas (ERPQ_NO_SCHEMAS). */
  const char *const *queues;   /* --queue SPEC... or ERPQ_QUEUES (one list). */
  size_t nqueues;
  int queues_from_env;         /* The one element is ERPQ_QUEUES's whole list. */
  const char *rs256_key;       /* --jwt-rs256-key FILE, or NULL. */
  const char *trusted_proxies; /* --trusted-proxies LIST, or NULL. */
  long threads, max_connections, per_ip_connections;
  long client_timeout_s, body_timeout_s, header_timeout_s;
  long jwt_leeway_s, redis_timeout_ms;
  long rate_subject, rate_ip; /* Requests per minute; 0 = off. */
  long link_ttl_s;             /* --report-link-ttl (ERPQ_REPORT_LINK_TTL). */
  int has_storage;             /* ERPQ_S3_BUCKET or ERPQ_STORAGE_DIR is set: read the
                                  storage settings (erpq_storage_conf_read on args). */
} erpq_http_config;

/* What erpq_http_options() returns for -h/--help: print
 * erpq_http_usage() and exit 0. */
#define ERPQ_HTTP_OPTIONS_HELP 1

/* Fills cfg. Returns 0, ERPQ_HTTP_OPTIONS_HELP, or ERPQ_E_ARG with the
 * reason in err (an unknown option, a missing value, an integer out of its
 * range). Free with erpq_http_options_free() in every case. */
int erpq_http_options(erpq_http_config *cfg, int argc, char **argv, char *err, size_t errlen);
void erpq_http_options_free(erpq_http_config *cfg);

/* Prints the usage text of serve. */
void erpq_http_usage(FILE *f);

#endif
