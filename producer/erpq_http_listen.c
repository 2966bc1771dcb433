/* erpq_http_listen.c - --listen HOST:PORT to listening sockets. See
 * erpq_http_listen.h. */
#include "erpq_http_listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "erpq_err.h"
#include "erpq_log.h"

/* "a.b.c.d:port" or "[v6%scope]:port". */
static void fmt_addr(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen) {
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (getnameinfo(sa, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV)) {
    snprintf(buf, buflen, "?");
    return;
  }
  snprintf(buf, buflen, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

static void set_port(erpq_listen_addr *a, unsigned port) {
  if (a->sa.ss_family == AF_INET)
    ((struct sockaddr_in *)&a->sa)->sin_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in6 *)&a->sa)->sin6_port = htons((uint16_t)port);
}

/* Appends an address unless it is there already. Returns 0 or -1 when full. */
static int add_addr(erpq_listen *l, const struct sockaddr *sa, socklen_t len, int from_name) {
  if (len > sizeof l->v[0].sa)
    return 0;
  for (int i = 0; i < l->n; i++)
    if (l->v[i].len == len && !memcmp(&l->v[i].sa, sa, len))
      return 0;
  if (l->n == ERPQ_LISTEN_MAX)
    return -1;
  erpq_listen_addr *a = &l->v[l->n++];
  memset(a, 0, sizeof *a);
  memcpy(&a->sa, sa, len);
  a->len = len;
  a->from_name = from_name;
  a->fd = -1;
  return 0;
}

/* The port: 0 to 65535, digits only. */
static int parse_port(const char *s, unsigned *port) {
  unsigned v = 0;
  size_t n = strlen(s);
  if (n == 0 || n > 5)
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (v > 65535)
    return -1;
  *port = v;
  return 0;
}

int erpq_listen_resolve(erpq_listen *l, const char *spec, char *err, size_t errlen) {
  memset(l, 0, sizeof *l);
  char host[256];
  const char *port_s;
  if (spec[0] == '[') {
    const char *close = strchr(spec, ']');
    if (!close || close[1] != ':')
      return erpq_fail(err, errlen, ERPQ_E_ARG,
                       "--listen must be HOST:PORT or [IPV6]:PORT, got '%s'", spec);
    size_t hl = (size_t)(close - spec - 1);
    if (hl == 0 || hl >= sizeof host)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "--listen: '%s' holds no IPv6 address", spec);
    memcpy(host, spec + 1, hl);
    host[hl] = '\0';
    port_s = close + 2;
  } else {
    const char *colon = strrchr(spec, ':');
    if (!colon)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "--listen must be HOST:PORT, got '%s'", spec);
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof host)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "--listen: the host of '%s' is too long", spec);
    memcpy(host, spec, hl);
    host[hl] = '\0';
    if (strchr(host, ':'))
      return erpq_fail(err, errlen, ERPQ_E_ARG,
                       "--listen: an IPv6 address goes in brackets, as in [::1]:8080; got '%s'",
                       spec);
    port_s = colon + 1;
  }
  unsigned port;
  if (parse_port(port_s, &port))
    return erpq_fail(err, errlen, ERPQ_E_ARG, "--listen: the port of '%s' must be 0 to 65535",
                     spec);

  if (spec[0] == '[') {
    struct addrinfo hints = {
        .ai_family = AF_INET6, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) || !res) {
      if (res)
        freeaddrinfo(res);
      return erpq_fail(err, errlen, ERPQ_E_ARG, "--listen: '%s' is not an IPv6 address", host);
    }
    add_addr(l, res->ai_addr, res->ai_addrlen, 0);
    freeaddrinfo(res);
  } else if (!host[0] || !strcmp(host, "*")) {
    struct sockaddr_in6 any;
    memset(&any, 0, sizeof any);
    any.sin6_family = AF_INET6;
    any.sin6_addr = in6addr_any;
    add_addr(l, (const struct sockaddr *)&any, sizeof any, 0);
    l->v[0].dual_stack = 1;
  } else {
    struct sockaddr_in v4;
    memset(&v4, 0, sizeof v4);
    v4.sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
      add_addr(l, (const struct sockaddr *)&v4, sizeof v4, 0);
    } else if (strspn(host, "0123456789.") == strlen(host)) {
      /* Not a name (no top-level domain is all digits), and getaddrinfo()
       * would read "10.1" as 10.0.0.1: refused. */
      return erpq_fail(err, errlen, ERPQ_E_ARG, "--listen: '%s' is not an IPv4 address", host);
    } else {
      struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
      struct addrinfo *res = NULL;
      int g = getaddrinfo(host, NULL, &hints, &res);
      if (g)
        return erpq_fail(err, errlen, ERPQ_E_ARG, "--listen: cannot resolve host '%s': %s", host,
                         g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
      int full = 0;
      for (const struct addrinfo *ai = res; ai && !full; ai = ai->ai_next)
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
          full = add_addr(l, ai->ai_addr, ai->ai_addrlen, 1) != 0;
      freeaddrinfo(res);
      if (full)
        return erpq_fail(err, errlen, ERPQ_E_ARG,
                         "--listen: host '%s' resolves to more than %d addresses", host,
                         ERPQ_LISTEN_MAX);
      if (!l->n)
        return erpq_fail(err, errlen, ERPQ_E_ARG,
                         "--listen: host '%s' resolves to no IPv4 or IPv6 address", host);
    }
  }
  for (int i = 0; i < l->n; i++)
    set_port(&l->v[i], port);
  return 0;
}

/* Opens one socket on a; returns the descriptor or -errno. */
static int open_one(const erpq_listen_addr *a) {
  int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1, v6only = !a->dual_stack;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      (a->sa.ss_family == AF_INET6 &&
       setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only)) ||
      bind(fd, (const struct sockaddr *)&a->sa, a->len) || listen(fd, 1024)) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

int erpq_listen_open(erpq_listen *l, char *err, size_t errlen) {
  int kept = 0, last = 0;
  char where[INET6_ADDRSTRLEN + 64], last_where[INET6_ADDRSTRLEN + 64] = "";
  for (int i = 0; i < l->n; i++) {
    erpq_listen_addr *a = &l->v[i];
    int fd = open_one(a);
    if (fd < 0 && a->dual_stack && (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)) {
      /* No IPv6 here: every IPv4 address instead. */
      in_port_t port = ((struct sockaddr_in6 *)&a->sa)->sin6_port;
      struct sockaddr_in *v4 = (struct sockaddr_in *)&a->sa;
      memset(&a->sa, 0, sizeof a->sa);
      v4->sin_family = AF_INET;
      v4->sin_addr.s_addr = htonl(INADDR_ANY);
      v4->sin_port = port;
      a->len = sizeof *v4;
      a->dual_stack = 0;
      fd = open_one(a);
    }
    fmt_addr((const struct sockaddr *)&a->sa, a->len, where, sizeof where);
    if (fd < 0 && a->from_name && (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)) {
      erpq_log(ERPQ_LOG_WARN, "http.listen_skipped", "addr", where, "error", strerror(-fd), NULL);
      last = fd;
      memcpy(last_where, where, sizeof where);
      continue;
    }
    if (fd < 0) {
      erpq_fail(err, errlen, fd, "cannot listen on %s: %s", where, strerror(-fd));
      for (int k = 0; k < kept; k++)
        close(l->v[k].fd), l->v[k].fd = -1;
      return fd;
    }
    a->fd = fd;
    l->v[kept++] = *a;
  }
  l->n = kept;
  if (!kept) /* Only when every address came from a name and was skipped. */
    return erpq_fail(err, errlen, last ? last : -EADDRNOTAVAIL,
                     "cannot listen on %s nor any other address of the name: %s", last_where,
                     strerror(last ? -last : EADDRNOTAVAIL));
  return 0;
}

void erpq_listen_close(erpq_listen *l) {
  for (int i = 0; i < l->n; i++)
    if (l->v[i].fd >= 0) {
      close(l->v[i].fd);
      l->v[i].fd = -1;
    }
}

void erpq_listen_describe(const erpq_listen *l, char *buf, size_t buflen) {
  size_t used = 0;
  if (buflen)
    buf[0] = '\0';
  for (int i = 0; i < l->n && used + 1 < buflen; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    const struct sockaddr *sa = (const struct sockaddr *)&l->v[i].sa;
    if (l->v[i].fd >= 0 && !getsockname(l->v[i].fd, (struct sockaddr *)&ss, &len))
      sa = (const struct sockaddr *)&ss;
    else
      len = l->v[i].len;
    char one[INET6_ADDRSTRLEN + 64];
    fmt_addr(sa, len, one, sizeof one);
    int w = snprintf(buf + used, buflen - used, "%s%s", i ? "," : "", one);
    if (w < 0)
      break;
    used += (size_t)w;
  }
}
