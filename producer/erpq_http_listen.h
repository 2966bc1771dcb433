/*
 * erpq_http_listen.h - where `erpq-producer serve` listens.
 *
 * --listen HOST:PORT names the addresses; erpq_listen_resolve() turns it
 * into a list once at start (before any loop runs) and erpq_listen_open()
 * binds them. HOST is one of:
 *   - an IPv4 address ("127.0.0.1", "0.0.0.0"): that address only;
 *   - an IPv6 address in brackets ("[::1]", "[::]", "[fe80::1%eth0]"):
 *     that address only, IPv6 only: the socket is opened with IPV6_V6ONLY
 *     set, so "[::]" does not also take IPv4 (whatever the system's
 *     net.ipv6.bindv6only says) and can run next to a "0.0.0.0" listener;
 *   - "*" or nothing ("*:8080", ":8080"): every address, IPv4 and IPv6, on
 *     one socket: "[::]" with IPV6_V6ONLY cleared. IPv4 clients then show
 *     as IPv4-mapped IPv6 addresses, which the client-address code
 *     (erpq_http_client.h) reads as the IPv4 addresses they are. On a
 *     kernel without IPv6 it is "0.0.0.0";
 *   - a host name ("localhost", "api.internal"): resolved once with
 *     getaddrinfo(), and EVERY address it resolves to is bound (duplicates
 *     once), each on its own socket, IPv6 ones with IPV6_V6ONLY set. An
 *     address of the name that this host cannot bind because it lacks the
 *     family or the address (an IPv6 "localhost" in a container without
 *     IPv6: EAFNOSUPPORT, EADDRNOTAVAIL) is skipped when another address
 *     of the name binds; any other failure fails the start. The name is not
 *     resolved again later: a change of address needs a restart.
 * PORT is 0 to 65535 (0: the kernel picks, per socket).
 *
 * Errors: a malformed value, an unbracketed IPv6 address, a bad IPv4
 * address and a name that resolves to nothing are refused by
 * erpq_listen_resolve() (ERPQ_E_ARG: the caller exits 2); an address that
 * cannot be bound is refused by erpq_listen_open() (-errno: exit 4). Both
 * write one sentence naming the value into err.
 *
 * Sockets are non-blocking, close-on-exec, SO_REUSEADDR, with a backlog of
 * 1024; every event loop accepts from every one of them (they race).
 * Owner: the erpq_listen owns its sockets until erpq_listen_close(). Not
 * thread-safe; used by the main thread only.
 */
#ifndef ERPQ_HTTP_LISTEN_H
#define ERPQ_HTTP_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

/* At most this many addresses (a host name resolving to more is refused). */
#define ERPQ_LISTEN_MAX 16

typedef struct erpq_listen_addr {
  struct sockaddr_storage sa;
  socklen_t len;
  int dual_stack; /* "*": [::] with IPV6_V6ONLY off (0.0.0.0 without IPv6). */
  int from_name;  /* Resolved from a host name: may be skipped (see above). */
  int fd;         /* The listening socket once open, else -1. */
} erpq_listen_addr;

typedef struct erpq_listen {
  erpq_listen_addr v[ERPQ_LISTEN_MAX];
  int n;
} erpq_listen;

/* Parses and resolves spec into l (no socket yet). Returns 0, or
 * ERPQ_E_ARG with the reason in err. */
int erpq_listen_resolve(erpq_listen *l, const char *spec, char *err, size_t errlen);

/* Opens a listening socket on every address of l; skipped addresses leave
 * the list, so afterwards l->v[0..l->n) all have a socket. Returns 0, or
 * -errno with the failing address in err (every socket closed again). */
int erpq_listen_open(erpq_listen *l, char *err, size_t errlen);

/* Closes the sockets (the list stays). */
void erpq_listen_close(erpq_listen *l);

/* The bound addresses as "127.0.0.1:8080,[::1]:8080" (the ports the
 * kernel gave), for the start-up log. */
void erpq_listen_describe(const erpq_listen *l, char *buf, size_t buflen);

#endif
