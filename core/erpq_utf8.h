/*
 * erpq_utf8.h - the one UTF-8 decoder of erpq, shared by every family that
 * walks text a code point at a time: the SMS encoder, the e-mail header
 * encoder and the address checks (notifications) refuse what is not
 * UTF-8; the report writers replace it with U+FFFD.
 *
 * Well-formed means RFC 3629 and Unicode 15 section 3.9, as Python's
 * strict "utf-8" codec (the tests' peer) decides it: no stray byte, no
 * truncated sequence, no overlong form (C0 80 for NUL), no UTF-16
 * surrogate (ED A0 80..ED BF BF), nothing above U+10FFFF. An ill-formed
 * sequence is consumed as its maximal subpart (the longest prefix of a
 * well-formed sequence, 1 to 3 bytes), one U+FFFD for it, as Python's and
 * the WHATWG decoders do when they replace.
 *
 * No state, no allocation; thread-safe.
 */
#ifndef ERPQ_UTF8_H
#define ERPQ_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define ERPQ_UTF8_REPLACEMENT 0xFFFDu

/* Decodes the code point at s (n > 0 bytes available). Returns the bytes
 * consumed (1..4). An ill-formed sequence consumes its maximal subpart,
 * sets *cp to U+FFFD and *bad to 1; otherwise *bad is 0. */
size_t erpq_utf8_decode(const char *s, size_t n, uint32_t *cp, int *bad);

/* Strict: decodes the sequence at s (len > 0 bytes available) into *cp.
 * Returns its length (1..4), or 0 when the bytes at s do not start a
 * valid, complete, shortest-form UTF-8 sequence. */
int erpq_utf8_next(const unsigned char *s, size_t len, uint32_t *cp);

/* Returns the byte offset of the first invalid sequence of s[0..len), or
 * len when all of it is valid UTF-8. */
size_t erpq_utf8_check(const char *s, size_t len);

/* 1 when s[0..n) is well-formed UTF-8. */
int erpq_utf8_valid(const char *s, size_t n);

/* Writes the UTF-8 form of cp (a scalar value, <= 0x10FFFF) to out, which
 * must hold 4 bytes; returns the number of bytes written (1..4). */
int erpq_utf8_put(uint32_t cp, char *out);

#endif
