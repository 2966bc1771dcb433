/* erpq_http_options.c - the options of `erpq-producer serve`, from two
 * tables. See erpq_http_options.h. */
#include "erpq_http_options.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_jsonschema.h"

static const char usage[] =
    "Usage: erpq-producer [--redis URL] [--prefix P] serve [OPTIONS]\n"
    "\n"
    "Runs the HTTP API (see schemas/openapi.yaml) until SIGINT or SIGTERM.\n"
    "\n"
    "  --listen HOST:PORT       (env ERPQ_HTTP_ADDR; default 127.0.0.1:8080); HOST is an IPv4\n"
    "                           address, [IPV6] (IPv6 only), a host name (every address it\n"
    "                           resolves to) or * (every address, IPv4 and IPv6)\n"
    "  --roles FILE             roles and queues (env ERPQ_ROLES_FILE; default "
    "schemas/roles.json)\n"
    "  --schemas DIR            job data schemas (env ERPQ_SCHEMA_DIR; default schemas/jobs)\n"
    "  --jwt-rs256-key FILE     also accept RS256 tokens signed for this PEM public key\n"
    "                           (env ERPQ_JWT_PUBLIC_KEY_FILE); HS256 uses the secret in\n"
    "                           ERPQ_JWT_SECRET_FILE (or ERPQ_JWT_SECRET), at least 32 bytes\n"
    "  --jwt-leeway S           clock skew allowed on exp/nbf (default 30)\n"
    "  --threads N              event loops, one thread and one Redis connection each\n"
    "                           (env ERPQ_HTTP_THREADS; default 1)\n"
    "  --max-connections N      open connections in all (default 1024)\n"
    "  --per-ip-connections N   open connections per client address and event loop\n"
    "                           (default 256; 0 = no limit)\n"
    "  --client-timeout S       close a connection idle this long (default 10)\n"
    "  --header-timeout S       the request line and headers must arrive within S (default 10)\n"
    "  --body-timeout S         the whole request body must arrive within S (default 10)\n"
    "  --rate-subject N         requests per minute per token subject (env ERPQ_RATE_SUBJECT;\n"
    "                           default 6000; 0 = off)\n"
    "  --rate-ip N              requests per minute per client address (env ERPQ_RATE_IP;\n"
    "                           default 12000; 0 = off)\n"
    "  --redis-timeout MS       a Redis call not answered within MS fails with 503 (default 1000)\n"
    "  --trusted-proxies LIST   reverse proxies (CIDRs, comma-separated) whose X-Forwarded-For\n"
    "                           names the client (env ERPQ_TRUSTED_PROXIES; default none)\n";

const char *erpq_http_usage(void) { return usage; }

#define FIELD(f) offsetof(erpq_http_config, f)

/* Integer options: flag, environment variable (or NULL), range, default,
 * field. */
static const struct {
  const char *flag, *env;
  long min, max, dflt;
  size_t off;
} ints[] = {
    {"--threads", "ERPQ_HTTP_THREADS", 1, 64, 1, FIELD(threads)},
    {"--max-connections", NULL, 1, 100000, 1024, FIELD(max_connections)},
    {"--per-ip-connections", NULL, 0, 100000, 256, FIELD(per_ip_connections)},
    {"--client-timeout", NULL, 1, 3600, 10, FIELD(client_timeout_s)},
    {"--body-timeout", NULL, 1, 3600, 10, FIELD(body_timeout_s)},
    {"--header-timeout", NULL, 1, 3600, 10, FIELD(header_timeout_s)},
    {"--jwt-leeway", NULL, 0, 300, 30, FIELD(jwt_leeway_s)},
    {"--redis-timeout", NULL, 10, 60000, 1000, FIELD(redis_timeout_ms)},
    {"--rate-subject", "ERPQ_RATE_SUBJECT", 0, 100000000, 6000, FIELD(rate_subject)},
    {"--rate-ip", "ERPQ_RATE_IP", 0, 100000000, 12000, FIELD(rate_ip)},
};

/* String options: flag, environment variable, whether an empty variable
 * counts as unset, default, field. The roles file and the schema directory
 * have a default found at start (the checkout's, next to the binary, else
 * the installed one): dflt is then the path under schemas/ and buf the
 * field it is written to. */
#define NO_BUF ((size_t)-1)
static const struct {
  const char *flag, *env;
  int nonempty;
  const char *dflt;
  size_t buf, off;
} strs[] = {
    {"--listen", "ERPQ_HTTP_ADDR", 1, "127.0.0.1:8080", NO_BUF, FIELD(listen)},
    {"--roles", "ERPQ_ROLES_FILE", 1, "roles.json", FIELD(roles_default), FIELD(roles)},
    {"--schemas", "ERPQ_SCHEMA_DIR", 1, "jobs", FIELD(schemas_default), FIELD(schemas)},
    {"--jwt-rs256-key", "ERPQ_JWT_PUBLIC_KEY_FILE", 0, NULL, NO_BUF, FIELD(rs256_key)},
    {"--trusted-proxies", "ERPQ_TRUSTED_PROXIES", 0, NULL, NO_BUF, FIELD(trusted_proxies)},
};

#define NINTS (sizeof ints / sizeof ints[0])
#define NSTRS (sizeof strs / sizeof strs[0])

static long *int_at(erpq_http_config *cfg, size_t k) {
  return (long *)(void *)((char *)cfg + ints[k].off);
}

static const char **str_at(erpq_http_config *cfg, size_t k) {
  return (const char **)(void *)((char *)cfg + strs[k].off);
}

static int int_value(const char *name, const char *v, size_t k, long *out, char *err,
                     size_t errlen) {
  char *end;
  long x = strtol(v, &end, 10);
  if (!*v || *end || x < ints[k].min || x > ints[k].max)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "%s must be an integer from %ld to %ld, got '%s'",
                     name, ints[k].min, ints[k].max, v);
  *out = x;
  return 0;
}

int erpq_http_options(erpq_http_config *cfg, const char *(*get)(void *ud, const char *name),
                      void *ud, int argc, char **argv, char *err, size_t errlen) {
  memset(cfg, 0, sizeof *cfg);
  for (size_t k = 0; k < NSTRS; k++) {
    const char *e = get(ud, strs[k].env);
    if (strs[k].buf != NO_BUF) {
      char *buf = (char *)cfg + strs[k].buf;
      erpq_schema_default_path(NULL, strs[k].dflt, buf, ERPQ_HTTP_PATH_MAX);
      *str_at(cfg, k) = buf;
    } else {
      *str_at(cfg, k) = strs[k].dflt;
    }
    if (e && (*e || !strs[k].nonempty))
      *str_at(cfg, k) = e;
  }
  for (size_t k = 0; k < NINTS; k++) {
    *int_at(cfg, k) = ints[k].dflt;
    const char *e = ints[k].env ? get(ud, ints[k].env) : NULL;
    if (e) {
      int rc = int_value(ints[k].env, e, k, int_at(cfg, k), err, errlen);
      if (rc)
        return rc;
    }
  }
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help"))
      return ERPQ_HTTP_OPTIONS_HELP;
    if (i + 1 >= argc)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "unknown option or missing value: %s", a);
    const char *v = argv[++i];
    int known = 0;
    for (size_t k = 0; k < NSTRS && !known; k++)
      if (!strcmp(a, strs[k].flag)) {
        *str_at(cfg, k) = v;
        known = 1;
      }
    for (size_t k = 0; k < NINTS && !known; k++)
      if (!strcmp(a, ints[k].flag)) {
        int rc = int_value(a, v, k, int_at(cfg, k), err, errlen);
        if (rc)
          return rc;
        known = 1;
      }
    if (!known)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "unknown option %s (see serve --help)", a);
  }
  return 0;
}
