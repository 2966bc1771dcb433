/*
 * erpq_util.h - small helpers with no state: clocks, random tokens, base64.
 *
 * Everything here is thread-safe and allocation-free unless noted.
 */
#ifndef ERPQ_UTIL_H
#define ERPQ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock time in milliseconds since the epoch (as Node's Date.now()). */
int64_t erpq_now_ms(void);

/* Monotonic time in milliseconds, for measuring intervals. */
int64_t erpq_mono_ms(void);

/* Writes a random RFC 4122 version-4 UUID (36 characters plus NUL) into out,
 * which must hold at least 37 bytes. */
void erpq_uuid4(char out[37]);

/* Standard base64 (with padding) of len bytes of in, into out, which must
 * hold 4*((len+2)/3)+1 bytes.  Returns the length written (without NUL). */
size_t erpq_base64(const void *in, size_t len, char *out);

/* Parses a decimal int64 from a string of exactly that number (no trailing
 * characters).  Returns 0 or -EINVAL. */
int erpq_parse_i64(const char *s, int64_t *out);

/* Makes s valid UTF-8 in place: every byte that does not start a valid
 * sequence becomes '?', and a sequence cut off by the end of the string is
 * dropped. Returns s. */
char *erpq_utf8_fix(char *s);

#endif
