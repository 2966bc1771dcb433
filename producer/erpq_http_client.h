/*
 * erpq_http_client.h - who is calling: the client address of an HTTP request.
 *
 * The API counts rate limits per client address and logs the client's
 * network. Its socket peer is the client, unless the peer is a reverse
 * proxy we were told to trust (--trusted-proxies, a list of CIDRs): then the
 * client is read from X-Forwarded-For, walking it from the right (the entry
 * the nearest proxy appended) past every address that is itself a trusted
 * proxy. Entries left of the first untrusted one are not used: a client
 * can write anything there. A malformed entry stops the walk and the
 * request counts as coming from the last trusted hop, so a forged header
 * cannot make a client look like someone else. Without trusted proxies the
 * header is ignored.
 *
 * Addresses are IPv4 or IPv6 text as inet_ntop() writes them; the network
 * for the log is the address masked to /24 (IPv4) or /48 (IPv6): an address
 * can be personal data, its network tells operations enough.
 *
 * The proxy list is parsed once at start and read-only afterwards, so any
 * thread may use it.
 */
#ifndef ERPQ_HTTP_CLIENT_H
#define ERPQ_HTTP_CLIENT_H

#include <stddef.h>
#include <sys/socket.h>

typedef struct erpq_cidr {
  int family; /* AF_INET or AF_INET6. */
  unsigned char addr[16];
  int bits;
} erpq_cidr;

typedef struct erpq_proxies {
  erpq_cidr *v; /* Owned; NULL when none. */
  size_t n;
} erpq_proxies;

/* Parses "10.0.0.0/8, 192.168.1.7, ::1" (a bare address is a /32 or
 * /128). NULL or "" is an empty list. Returns 0, or ERPQ_E_ARG with the
 * bad entry in err. */
int erpq_proxies_parse(erpq_proxies *p, const char *list, char *err, size_t errlen);
void erpq_proxies_free(erpq_proxies *p);

/* 1 if sa (borrowed) is inside one of the trusted CIDRs. */
int erpq_proxies_trust(const erpq_proxies *p, const struct sockaddr *sa);

/* The client of a request whose socket peer is peer (borrowed, may be
 * NULL) and whose X-Forwarded-For header is xff (may be NULL): writes its
 * address to addr and its masked network to net ("unknown" when none). */
void erpq_client_of(const erpq_proxies *p, const struct sockaddr *peer, const char *xff, char *addr,
                    size_t alen, char *net, size_t nlen);

#endif
