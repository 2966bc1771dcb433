/*
 * erpq_redact.h - server texts made safe for logs and error messages.
 *
 * SMTP servers echo addresses in their replies ("550 5.1.1 <a@b.example>:
 * Recipient address rejected") and SMS gateways echo phone numbers ("The
 * 'To' number +15551234567 is not a valid phone number"). Personal data
 * never goes into our logs, metrics or error messages, so every text that
 * comes from a server passes through erpq_redact() first:
 *   - anything between '<' and '>' becomes "[address]";
 *   - every word (a run without blanks, quotes, brackets, commas or
 *     semicolons) that holds an '@' becomes "[address]";
 *   - every run of 7 or more digits, with '+', blanks, '-', '.', '/', '('
 *     and ')' between them, becomes "[number]" (phone numbers in any
 *     notation; short codes such as "21211" or "5.1.1" stay);
 *   - control characters (CR, LF, tabs...) become one blank.
 * The result is cut to fit out (ending in "...") and always
 * NUL-terminated. Stateless and thread-safe.
 */
#ifndef ERPQ_REDACT_H
#define ERPQ_REDACT_H

#include <stddef.h>

/* Redacts len bytes of in into out (outlen > 0). Returns out. */
char *erpq_redact(const char *in, size_t len, char *out, size_t outlen);

#endif
