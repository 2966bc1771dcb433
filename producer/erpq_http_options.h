/*
 * erpq_http_options.h - the options of `erpq-producer serve`.
 *
 * erpq_http_options() fills an erpq_http_config from the environment (read
 * through the caller's lookup callback, never getenv()) and the arguments
 * after "serve", in that order: a flag overrides its variable. Two tables
 * drive it, one of integer options (flag, variable or none, range,
 * default) and one of string options (flag, variable, default); the
 * usage text lists the same options. It prints nothing and starts nothing:
 * a bad value is one sentence in err. An integer variable that is set is
 * checked even when its flag overrides it.
 *
 * This parser is kept apart from the server so that it can give way to the
 * project's shared option parser without touching the server.
 *
 * Ownership: the string fields point into argv, into strings the lookup
 * returned (which must stay valid while the config is used), or into the
 * config's own default buffers; nothing is allocated, nothing to free.
 * Thread-safe as long as the lookup is (it only reads).
 */
#ifndef ERPQ_HTTP_OPTIONS_H
#define ERPQ_HTTP_OPTIONS_H

#include <stddef.h>

#define ERPQ_HTTP_PATH_MAX 4096

typedef struct erpq_http_config {
  const char *listen;          /* --listen HOST:PORT (ERPQ_HTTP_ADDR). */
  const char *roles;           /* --roles FILE (ERPQ_ROLES_FILE). */
  const char *schemas;         /* --schemas DIR (ERPQ_SCHEMA_DIR). */
  const char *rs256_key;       /* --jwt-rs256-key FILE, or NULL. */
  const char *trusted_proxies; /* --trusted-proxies LIST, or NULL. */
  long threads, max_connections, per_ip_connections;
  long client_timeout_s, body_timeout_s, header_timeout_s;
  long jwt_leeway_s, redis_timeout_ms;
  long rate_subject, rate_ip; /* Requests per minute; 0 = off. */
  char roles_default[ERPQ_HTTP_PATH_MAX], schemas_default[ERPQ_HTTP_PATH_MAX];
} erpq_http_config;

/* What erpq_http_options() returns for -h/--help: print
 * erpq_http_usage() and exit 0. */
#define ERPQ_HTTP_OPTIONS_HELP 1

/* Fills cfg. get(ud, name) returns a variable's value or NULL. Returns 0,
 * ERPQ_HTTP_OPTIONS_HELP, or ERPQ_E_ARG with the reason in err (an unknown
 * option, a missing value, an integer out of its range). */
int erpq_http_options(erpq_http_config *cfg, const char *(*get)(void *ud, const char *name),
                      void *ud, int argc, char **argv, char *err, size_t errlen);

/* The usage text of serve (static). */
const char *erpq_http_usage(void);

#endif
