/*
 * erpq_utf8.h - strict UTF-8 decoding for the notification text builders.
 *
 * The SMS encoder, the e-mail header encoder and the address checks all
 * walk text one code point at a time and must refuse what is not UTF-8:
 * a stray byte, a truncated sequence, an overlong form (C0 80 for NUL),
 * a UTF-16 surrogate (ED A0 80..ED BF BF) or anything above U+10FFFF.
 * erpq_utf8_next() is that one decoder, so the three agree on what "valid"
 * means (the same rules as RFC 3629 and Python's strict "utf-8" codec,
 * which the tests use as the peer).
 *
 * No state, no allocation; thread-safe.
 */
#ifndef ERPQ_UTF8_H
#define ERPQ_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the sequence at s (len bytes available, len > 0) into *cp.
 * Returns its length (1..4), or 0 when the bytes at s do not start a
 * valid, complete, shortest-form UTF-8 sequence. */
int erpq_utf8_next(const unsigned char *s, size_t len, uint32_t *cp);

/* Returns the byte offset of the first invalid sequence of s[0..len), or
 * len when all of it is valid UTF-8. */
size_t erpq_utf8_check(const char *s, size_t len);

/* Appends the UTF-8 form of cp (a scalar value) to out, which must hold 4
 * bytes; returns the number of bytes written (1..4). */
int erpq_utf8_put(uint32_t cp, char *out);

#endif
