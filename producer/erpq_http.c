#include "erpq_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "erpq_err.h"
#include "erpq_http_metrics.h"
#include "erpq_http_private.h"
#include "erpq_log.h"
#include "erpq_scripts.h"

/* ---- main ----------------------------------------------------------------------- */

static const char serve_usage[] =
    "Usage: erpq-producer [--redis URL] [--prefix P] serve [OPTIONS]\n"
    "\n"
    "Runs the HTTP API (see schemas/openapi.yaml) until SIGINT or SIGTERM.\n"
    "\n"
    "  --listen HOST:PORT       (env ERPQ_HTTP_ADDR; default 127.0.0.1:8080)\n"
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

static int parse_listen(const char *s, struct sockaddr_in *sa) {
  const char *colon = strrchr(s, ':');
  if (!colon)
    return -1;
  char host[128];
  size_t hl = (size_t)(colon - s);
  if (hl >= sizeof host)
    return -1;
  memcpy(host, s, hl);
  host[hl] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (!colon[1] || *end || port < 0 || port > 65535)
    return -1;
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)port);
  if (!hl || !strcmp(host, "*"))
    sa->sin_addr.s_addr = htonl(INADDR_ANY);
  else if (!strcmp(host, "localhost"))
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
    return -1;
  return 0;
}

static int int_opt(const char *name, const char *v, long min, long max, long *out) {
  char *end;
  long x = strtol(v, &end, 10);
  if (!*v || *end || x < min || x > max) {
    fprintf(stderr, "erpq-producer serve: %s must be an integer from %ld to %ld, got '%s'\n", name,
            min, max, v);
    return -1;
  }
  *out = x;
  return 0;
}

/* The listening socket all loops accept from (non-blocking: they race). */
static int listen_socket(const struct sockaddr_in *sa) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) || listen(fd, 1024)) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int erpq_http_main(const char *redis_url, const char *prefix, int argc, char **argv) {
  const char *listen = erpq_env("ERPQ_HTTP_ADDR", "127.0.0.1:8080");
  char roles_def[4096], schemas_def[4096];
  erpq_schema_default_path("ERPQ_ROLES_FILE", "roles.json", roles_def, sizeof roles_def);
  erpq_schema_default_path("ERPQ_SCHEMA_DIR", "jobs", schemas_def, sizeof schemas_def);
  const char *roles = roles_def, *schemas = schemas_def;
  const char *rs_key = getenv("ERPQ_JWT_PUBLIC_KEY_FILE");
  const char *proxies = getenv("ERPQ_TRUSTED_PROXIES");
  long threads = 1, maxconn = 1024, perip = 256, client_to = 10, body_to = 10, header_to = 10,
       leeway = 30, rto = 1000, rate_sub = 6000, rate_ip = 12000;
  /* Integer options: flag, environment variable (or NULL), range, value. */
  const struct {
    const char *flag, *env;
    long min, max;
    long *v;
  } ints[] = {
      {"--threads", "ERPQ_HTTP_THREADS", 1, 64, &threads},
      {"--max-connections", NULL, 1, 100000, &maxconn},
      {"--per-ip-connections", NULL, 0, 100000, &perip},
      {"--client-timeout", NULL, 1, 3600, &client_to},
      {"--body-timeout", NULL, 1, 3600, &body_to},
      {"--header-timeout", NULL, 1, 3600, &header_to},
      {"--jwt-leeway", NULL, 0, 300, &leeway},
      {"--redis-timeout", NULL, 10, 60000, &rto},
      {"--rate-subject", "ERPQ_RATE_SUBJECT", 0, 100000000, &rate_sub},
      {"--rate-ip", "ERPQ_RATE_IP", 0, 100000000, &rate_ip},
  };
  const size_t nints = sizeof ints / sizeof ints[0];
  for (size_t k = 0; k < nints; k++)
    if (ints[k].env && getenv(ints[k].env) &&
        int_opt(ints[k].env, getenv(ints[k].env), ints[k].min, ints[k].max, ints[k].v))
      return 2;
  /* String options: flag, value. */
  const struct {
    const char *flag;
    const char **v;
  } strs[] = {{"--listen", &listen},
              {"--roles", &roles},
              {"--schemas", &schemas},
              {"--jwt-rs256-key", &rs_key},
              {"--trusted-proxies", &proxies}};
  const size_t nstrs = sizeof strs / sizeof strs[0];
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(serve_usage, stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "erpq-producer serve: unknown option or missing value: %s\n", a);
      return 2;
    }
    const char *v = argv[++i];
    int known = 0;
    for (size_t k = 0; k < nstrs && !known; k++)
      if (!strcmp(a, strs[k].flag)) {
        *strs[k].v = v;
        known = 1;
      }
    for (size_t k = 0; k < nints && !known; k++)
      if (!strcmp(a, ints[k].flag)) {
        if (int_opt(a, v, ints[k].min, ints[k].max, ints[k].v))
          return 2;
        known = 1;
      }
    if (!known) {
      fprintf(stderr, "erpq-producer serve: unknown option %s (see serve --help)\n", a);
      return 2;
    }
  }
  char err[1024];
  server srv;
  memset(&srv, 0, sizeof srv);
  if (erpq_redis_url_parse(redis_url, &srv.addr, err, sizeof err)) {
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    return 2;
  }
  struct sockaddr_in sa;
  if (parse_listen(listen, &sa)) {
    fprintf(stderr, "erpq-producer serve: --listen must be IPV4:PORT, got '%s'\n", listen);
    return 2;
  }
  srv.prefix = prefix;
  srv.redis_timeout_ms = (int)rto;
  srv.rate_subject = (int)rate_sub;
  srv.rate_ip = (int)rate_ip;
  srv.body_timeout_s = (int)body_to;
  srv.header_timeout_s = (int)header_to;
  if (erpq_proxies_parse(&srv.proxies, proxies, err, sizeof err)) {
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    return 2;
  }
  if (erpq_auth_init(&srv.auth, rs_key, (int)leeway, err, sizeof err)) {
    erpq_proxies_free(&srv.proxies);
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    return 2;
  }
  int rc = 2;
  int fd = -1;
  hloop *loops = NULL;
  int nloops = 0, nstarted = 0;
  if (erpq_policy_load(&srv.policy, roles, err, sizeof err) ||
      erpq_schema_set_load(schemas, &srv.schemas, err, sizeof err)) {
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    goto out;
  }
  int src = erpq_scripts_init();
  if (src) {
    fprintf(stderr, "erpq-producer serve: cannot load the Lua scripts: %s\n", erpq_strerror(src));
    rc = 5;
    goto out;
  }
  erpq_metrics_init();

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  fd = listen_socket(&sa);
  if (fd < 0) {
    fprintf(stderr, "erpq-producer serve: cannot listen on %s: %s\n", listen, strerror(errno));
    rc = 4;
    goto out;
  }
  nloops = (int)threads;
  loops = calloc((size_t)nloops, sizeof *loops);
  if (!loops)
    goto out;
  loop_limits lim = {(unsigned)((maxconn + nloops - 1) / nloops), (unsigned)perip,
                     (unsigned)client_to};
  for (; nstarted < nloops; nstarted++) {
    if (http_loop_init(&loops[nstarted], &srv, nstarted, fd, &lim, err, sizeof err)) {
      fprintf(stderr, "erpq-producer serve: %s\n", err);
      rc = 4;
      break;
    }
  }
  if (nstarted == nloops) {
    for (int i = 0; i < nloops; i++)
      pthread_create(&loops[i].thread, NULL, http_loop_main, &loops[i]);
    char th[16], ns[16];
    snprintf(th, sizeof th, "%d", nloops);
    snprintf(ns, sizeof ns, "%zu", erpq_schema_set_count(srv.schemas));
    erpq_log(ERPQ_LOG_INFO, "http.listening", "addr", listen, "#threads", th, "#schemas", ns, NULL);
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
  if (fd >= 0)
    close(fd);
  free(loops);
  erpq_metrics_free();
  erpq_schema_set_free(srv.schemas);
  erpq_policy_free(&srv.policy);
  erpq_auth_free(&srv.auth);
  erpq_proxies_free(&srv.proxies);
  return rc;
}
