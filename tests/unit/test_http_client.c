/* The HTTP API's client address: trusted proxies and X-Forwarded-For. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_http_client.h"

static struct sockaddr_storage v4(const char *ip) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
  sa->sin_family = AF_INET;
  cr_assert_eq(inet_pton(AF_INET, ip, &sa->sin_addr), 1);
  return ss;
}

static struct sockaddr_storage v6(const char *ip) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;
  sa->sin6_family = AF_INET6;
  cr_assert_eq(inet_pton(AF_INET6, ip, &sa->sin6_addr), 1);
  return ss;
}

/* The client of peer + xff under proxy list, as "addr net". */
static void client(const char *list, struct sockaddr_storage peer, const char *xff, const char *want_addr,
                   const char *want_net) {
  erpq_proxies p;
  char err[256];
  cr_assert_eq(erpq_proxies_parse(&p, list, err, sizeof err), 0, "%s", err);
  char addr[64], net[64];
  erpq_client_of(&p, (const struct sockaddr *)&peer, xff, addr, sizeof addr, net, sizeof net);
  cr_expect_str_eq(addr, want_addr, "list '%s' xff '%s'", list ? list : "", xff ? xff : "");
  cr_expect_str_eq(net, want_net, "list '%s' xff '%s'", list ? list : "", xff ? xff : "");
  erpq_proxies_free(&p);
}

Test(http_client, no_proxies_ignores_the_header) {
  client(NULL, v4("198.51.100.23"), "203.0.113.9", "198.51.100.23", "198.51.100.0/24");
  client("", v4("198.51.100.23"), NULL, "198.51.100.23", "198.51.100.0/24");
  client(NULL, v6("2001:db8:aa:bb::1"), NULL, "2001:db8:aa:bb::1", "2001:db8:aa::/48");
}

Test(http_client, an_untrusted_peer_is_the_client_whatever_it_sends) {
  client("10.0.0.0/8", v4("198.51.100.23"), "203.0.113.9", "198.51.100.23", "198.51.100.0/24");
}

Test(http_client, a_trusted_proxy_names_the_client) {
  client("10.0.0.0/8", v4("10.1.2.3"), "203.0.113.9", "203.0.113.9", "203.0.113.0/24");
  /* The right-most untrusted entry wins; what the client wrote left of it
   * is not believed. */
  client("10.0.0.0/8", v4("10.1.2.3"), "1.2.3.4, 203.0.113.9", "203.0.113.9", "203.0.113.0/24");
  /* Chains of trusted proxies are walked past. */
  client("10.0.0.0/8, 192.168.7.7", v4("10.1.2.3"), "1.2.3.4,203.0.113.9 , 192.168.7.7,10.9.9.9",
         "203.0.113.9", "203.0.113.0/24");
  /* Every hop trusted: the left-most one. */
  client("10.0.0.0/8", v4("10.1.2.3"), "10.5.5.5", "10.5.5.5", "10.5.5.0/24");
  client("::1, 2001:db8::/32", v6("::1"), "2001:db8:1:2::5", "2001:db8:1:2::5", "2001:db8:1::/48");
}

Test(http_client, a_malformed_entry_stops_at_the_last_trusted_hop) {
  client("10.0.0.0/8", v4("10.1.2.3"), "203.0.113.9, not-an-ip", "10.1.2.3", "10.1.2.0/24");
  client("10.0.0.0/8", v4("10.1.2.3"), "203.0.113.9,,", "10.1.2.3", "10.1.2.0/24");
  client("10.0.0.0/8", v4("10.1.2.3"), "", "10.1.2.3", "10.1.2.0/24");
  client("10.0.0.0/8", v4("10.1.2.3"), "203.0.113.9:4711", "10.1.2.3", "10.1.2.0/24");
}

Test(http_client, ipv4_mapped_peers_match_ipv4_cidrs) {
  client("127.0.0.1", v6("::ffff:127.0.0.1"), "203.0.113.9", "203.0.113.9", "203.0.113.0/24");
}

Test(http_client, cidr_bits_are_honoured) {
  erpq_proxies p;
  char err[256];
  cr_assert_eq(erpq_proxies_parse(&p, "192.168.4.0/22", err, sizeof err), 0);
  struct sockaddr_storage in = v4("192.168.7.255"), out = v4("192.168.8.0");
  cr_expect_eq(erpq_proxies_trust(&p, (const struct sockaddr *)&in), 1);
  cr_expect_eq(erpq_proxies_trust(&p, (const struct sockaddr *)&out), 0);
  erpq_proxies_free(&p);
}

Test(http_client, bad_lists_are_refused_with_the_entry) {
  const char *bad[] = {"10.0.0.0/33", "10.0.0.0/", "nope", "::1/129", "10.0.0.0/8,1.2.3", "10.0.0.0/x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    erpq_proxies p;
    char err[256] = "";
    cr_expect_eq(erpq_proxies_parse(&p, bad[i], err, sizeof err), ERPQ_E_ARG, "%s", bad[i]);
    cr_expect(strstr(err, "--trusted-proxies") != NULL, "%s: %s", bad[i], err);
    cr_expect_null(p.v);
  }
}
