/*
 * erpq_email_addr.h - e-mail addresses: a pragmatic check, normalisation,
 * and a mask for records.
 *
 * RFC 5321/5322 allow far more than anyone stores ("quoted local"@[IPv6:..],
 * comments, folding whitespace). A school's parent list holds
 * local@domain.tld, typed by people, imported from spreadsheets; what we
 * must catch is the typo that bounces and the value that would break or
 * inject into an SMTP envelope or a header. So erpq_email_addr_valid()
 * accepts exactly:
 *
 *   local "@" domain, with
 *   - no CR or LF anywhere (refused first, by name: header injection), no
 *     other control character, no space;
 *   - total length at most 254 octets (RFC 5321's 256-octet path less the
 *     angle brackets), local part 1..64 octets (RFC 5321 4.5.3.1.1);
 *   - a dot-atom local part: letters, digits and ! # $ % & ' * + / = ? ^ _
 *     ` { | } ~ - and dots, no leading, trailing or doubled dot (no quoted
 *     local parts, hence exactly one '@');
 *   - a domain of at least two dot-separated labels of 1..63 letters,
 *     digits or hyphens, no label starting or ending with a hyphen, the last
 *     label not all digits (no address literals, no trailing dot);
 *   - ASCII only: an internationalised local part needs SMTPUTF8 end to end
 *     and an internationalised domain must be given in its xn-- (punycode)
 *     form; both are refused with a message saying so.
 *
 * erpq_email_addr_normalize() trims spaces and tabs at both ends, lowercases
 * the domain (domains are case-insensitive; the local part is not, RFC 5321
 * 2.4, so it is kept as written) and then checks the result.
 *
 * erpq_email_mask() keeps the first character of the local part and the
 * whole domain: "priya.sharma@example.com" -> "p***@example.com", always
 * three stars whatever the length, for records and support screens.
 *
 * Error messages name the problem, never the address (personal data).
 * No allocation, no global state; thread-safe.
 */
#ifndef ERPQ_EMAIL_ADDR_H
#define ERPQ_EMAIL_ADDR_H

#include <stddef.h>

#define ERPQ_EMAIL_MAX 254
#define ERPQ_EMAIL_LOCAL_MAX 64

/* 0 when addr (NUL-terminated) is acceptable; -EINVAL and the reason. */
int erpq_email_addr_valid(const char *addr, char *err, size_t errlen);

/* Trims, lowercases the domain and checks, into out (outlen >= 255 always
 * suffices). 0, -EINVAL (reason in err) or -ENOSPC; out is "" on failure. */
int erpq_email_addr_normalize(const char *in, char *out, size_t outlen, char *err, size_t errlen);

/* "p***@example.com" into out: 0; -EINVAL (out "***") when addr has no '@'
 * or an empty local part; -ENOSPC (out "") when out is too small
 * (strlen(addr) + 4 always suffices). */
int erpq_email_mask(const char *addr, char *out, size_t outlen);

#endif
