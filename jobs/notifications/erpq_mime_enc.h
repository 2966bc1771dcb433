/*
 * erpq_mime_enc.h - the encodings an e-mail message is made of.
 *
 * erpq_mime (the message builder) assembles headers and parts; this module
 * holds the transformations it needs, each appending to an erpq_buf:
 *
 *   - quoted-printable bodies (RFC 2045 6.7): line breaks canonicalised to
 *     CRLF, '=' and bytes outside printable ASCII as =XX, a space or tab
 *     before a line break as =20 / =09, lines at most 76 characters with
 *     soft breaks ("=" CRLF) that never split an =XX triple nor a UTF-8
 *     character, a line-initial "From " or "." protected as =46 / =2E
 *     (mbox and SMTP relays that mangle them), and a final soft break when
 *     the text does not end with a line break, so the decoded part is
 *     byte for byte the (canonical) input;
 *   - base64 in 76-character lines (RFC 2045 6.8), streaming: feed any
 *     number of chunks, then end;
 *   - header text: RFC 5322 unstructured values (Subject, extra headers)
 *     and display names (phrases), folded at 78 characters; plain ASCII
 *     stays readable, anything else becomes RFC 2047 encoded-words
 *     (charset UTF-8, B or Q, whichever is shorter for the value), each at
 *     most 75 characters, never splitting a UTF-8 character across words;
 *   - MIME parameters: quoted ASCII (name="report.pdf"), RFC 2231
 *     extended values with continuations for non-ASCII or long ones
 *     (filename*0*=utf-8''%E0%A4...), and the RFC 2047-in-quotes form
 *     that mail clients still read for Content-Type's name.
 *
 * Column tracking: header functions take `size_t *col`, the length of the
 * current header line so far (e.g. 8 after "Subject:"), and keep it up to
 * date; a fold is CRLF + one space. Values must already be checked by the
 * caller: valid UTF-8, no CR, LF or other control characters except tab;
 * the functions do not fail (out-of-memory shows in the buffer's oom).
 *
 * Stateless apart from the caller-owned erpq_mime_b64 stream; thread-safe.
 */
#ifndef ERPQ_MIME_ENC_H
#define ERPQ_MIME_ENC_H

#include <stddef.h>

#include "erpq_buf.h"

#define ERPQ_MIME_LINE 78      /* header lines are folded at this length */
#define ERPQ_MIME_BODY_LINE 76 /* encoded body lines */

/* Bytes of s that quoted-printable must escape (non-ASCII, controls, '='):
 * the builder picks QP when they are at most a sixth of the text (QP then
 * stays within ~1.33x, base64's fixed cost) and base64 otherwise. */
size_t erpq_mime_qp_cost(const char *s, size_t len);
void erpq_mime_qp(erpq_buf *b, const char *s, size_t len);

/* Canonical CRLF form of text (LF and lone CR become CRLF) appended raw;
 * base64 callers encode the result. */
void erpq_mime_crlf(erpq_buf *b, const char *s, size_t len);

typedef struct erpq_mime_b64 {
  unsigned char pend[57]; /* 57 bytes make one 76-character line */
  size_t npend;
} erpq_mime_b64;
void erpq_mime_b64_add(erpq_mime_b64 *st, erpq_buf *b, const void *data, size_t len);
void erpq_mime_b64_end(erpq_mime_b64 *st, erpq_buf *b);

/* An unstructured header value (leading/trailing blanks already trimmed). */
void erpq_mime_header_text(erpq_buf *b, size_t *col, const char *s, size_t len);
/* A display name: atoms, a quoted-string, or encoded-words. */
void erpq_mime_header_phrase(erpq_buf *b, size_t *col, const char *s, size_t len);
/* Appends a token with a preceding space, folding first if it would pass
 * ERPQ_MIME_LINE (reserve: characters that will follow on the line). */
void erpq_mime_header_token(erpq_buf *b, size_t *col, const char *tok, size_t n, size_t reserve);

/* ";" CRLF SP name=value, value quoted or RFC 2231-encoded as needed. */
void erpq_mime_param(erpq_buf *b, size_t *col, const char *name, const char *value);
/* ";" CRLF SP name="=?UTF-8?B?...?=" (encoded-words folded within the
 * quotes), or a plain quoted value when value is short printable ASCII. */
void erpq_mime_param_2047(erpq_buf *b, size_t *col, const char *name, const char *value);

#endif
