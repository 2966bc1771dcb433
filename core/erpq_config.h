/*
 * erpq_config.h - configuration shared by the worker and the producer.
 *
 * Settings come from command-line flags first, then ERPQ_* environment
 * variables, then bull's defaults. This module parses the pieces both
 * programs share: Redis URLs and numeric values with units.
 */
#ifndef ERPQ_CONFIG_H
#define ERPQ_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define ERPQ_DEFAULT_REDIS_URL "redis://127.0.0.1:6379/0"
#define ERPQ_DEFAULT_PREFIX "bull"

/* A parsed Redis address: TCP host/port or a unix socket path, with an
 * optional password (and ACL user) and database number. */
typedef struct erpq_redis_addr {
  char host[256];
  int port;
  char unix_path[256]; /* Non-empty for a unix socket. */
  char user[128];
  char password[256];
  int db;
} erpq_redis_addr;

/* Parses redis://[[user]:password@]host[:port][/db] or
 * unix:///path/to/socket[?db=N] (also redis+unix://...). Returns 0 or
 * ERPQ_E_ARG with a message. */
int erpq_redis_url_parse(const char *url, erpq_redis_addr *out, char *err, size_t errlen);

/* Reads an environment variable, returning dflt when unset or empty. */
const char *erpq_env(const char *name, const char *dflt);

/* Parses a non-negative integer (no sign, no trailing text) within
 * [min, max]. Returns 0 or ERPQ_E_ARG with a message naming what. */
int erpq_parse_int_arg(const char *what, const char *s, int64_t min, int64_t max,
                       int64_t *out, char *err, size_t errlen);

#endif
