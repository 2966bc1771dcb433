/*
 * erpq_mime.h - one e-mail message, RFC 5322 + MIME, ready for SMTP DATA.
 *
 * erpq_mime_build() turns an erpq_mime_msg (plain C strings, UTF-8) into
 * the bytes an SMTP client uploads: CRLF line endings, every header line
 * folded at 78 characters, every body line at most 76, 7-bit clean (8-bit
 * text is transfer-encoded, so it survives any relay, with or without
 * 8BITMIME), no line over 998 octets.
 *
 * Headers, in this order:
 *   Date            from m->date (Unix seconds) shown at m->tz_minutes east
 *                   of UTC ("Tue, 01 Dec 2026 09:30:00 +0530");
 *   From, Reply-To  display name + address; To, Cc: one or more;
 *   Subject;
 *   Message-ID      given by the caller, "<left@right>" (brackets added if
 *                   missing): derive it from the job's dedup key with
 *                   erpq_mime_message_id() so a retried job re-sends the
 *                   SAME message and receivers can drop the duplicate;
 *   MIME-Version: 1.0;
 *   List-Unsubscribe: <https://...>, <mailto:...> (either or both) and,
 *                   when the https URL is given, List-Unsubscribe-Post:
 *                   List-Unsubscribe=One-Click (RFC 8058, which Gmail and
 *                   Yahoo require of bulk senders);
 *   the caller's extra headers, in order (unstructured text; structured
 *   ones must be ASCII); then Content-Type / Content-Transfer-Encoding.
 * There is no Bcc header: blind recipients exist only in the SMTP envelope.
 * Display names and the Subject: printable ASCII as is (quoted when a name
 * has specials such as "Sharma, Priya"); anything else as RFC 2047
 * encoded-words (UTF-8, B or Q, each <= 75 characters, folded, never
 * splitting a UTF-8 character). Leading and trailing blanks of header
 * values are dropped (readers drop them too); in display names a run of
 * blanks becomes one space (readers collapse them inside encoded-words).
 * A display name longer than one encoded-word (about 15 Devanagari or 22
 * Greek letters) becomes several adjacent words, whose separating blanks
 * RFC 2047 6.2 tells readers to ignore; Python's policy.default parser
 * before gh-128110 (fixed in 2025, not in Debian 12's 3.11) shows a space
 * there instead; the tests check such names with the stdlib's RFC-correct
 * email.header decoder and count the cases.
 *
 * Body:
 *   text only           text/plain; charset=utf-8
 *   html only           text/html; charset=utf-8
 *   text + html         multipart/alternative (text first, as RFC 2046
 *                       wants the preferred, richest part last)
 *   + attachments       multipart/mixed: the above, then each attachment
 *                       (base64, 76-character lines; Content-Type with the
 *                       caller's type and a name parameter, RFC 2047 in
 *                       quotes for non-ASCII names: not standard (Python's
 *                       parser notes it as a defect, then decodes it) but
 *                       what Gmail and Thunderbird send and older clients
 *                       read; Content-Disposition: attachment with filename,
 *                       RFC 2231 filename*= for non-ASCII or long names,
 *                       the standard form every current client reads).
 *   Text parts: line breaks become CRLF (RFC 2046 4.1.1: the canonical
 *   form of text); then quoted-printable when at most a sixth of the bytes
 *   need escaping (mostly Latin text stays readable and about as small),
 *   base64 otherwise (Hindi, Greek: QP would triple the size, base64 adds
 *   a third). Either way a decoder gets back the canonical text exactly.
 *   An attachment is bytes in memory (data, len) or a file (path), read in
 *   64 KiB chunks straight into the base64 encoder while building.
 *   Boundaries are "=_erpq_" + 24 random hex digits (OpenSSL RAND_bytes):
 *   "=_" can never occur in quoted-printable or base64 output; the built
 *   message is still searched and rebuilt with new boundaries (3 tries)
 *   should a boundary appear more often than the structure puts it.
 *
 * Refusals (-EINVAL, err names the field, never the personal value): CR or
 * LF in any header value, display name, Subject, Message-ID, URL, extra
 * header or file name ("header injection"); other control characters;
 * invalid UTF-8 anywhere; an address erpq_email_addr_valid() refuses; no
 * To; neither text nor html; an extra header that names one this module
 * writes (From, To, Cc, Bcc, Subject, Date, Message-ID, Reply-To,
 * MIME-Version, Content-*, List-Unsubscribe*) or is not a field name; a
 * List-Unsubscribe URL that is not https:// (or mailto:) or holds
 * characters a URI may not. A file that cannot be read gives -errno.
 *
 * Ownership: the message struct and its strings are borrowed for the call;
 * the text is appended to the caller's erpq_buf (which must not be oom;
 * on failure it is restored to its length before the call). No global
 * state; thread-safe (RAND_bytes is).
 */
#ifndef ERPQ_MIME_H
#define ERPQ_MIME_H

#include <stddef.h>
#include <stdint.h>

#include "erpq_buf.h"

typedef struct erpq_mime_addr {
  const char *name;  /* display name, UTF-8, may be NULL or "" */
  const char *email; /* local@domain (ASCII) */
} erpq_mime_addr;

typedef struct erpq_mime_header {
  const char *name;  /* field name, e.g. "X-Erpq-Job" */
  const char *value; /* UTF-8 text */
} erpq_mime_header;

typedef struct erpq_mime_attachment {
  const char *filename;     /* UTF-8, shown to the recipient */
  const char *content_type; /* "type/subtype"; NULL: application/octet-stream */
  const void *data;         /* bytes in memory (len of them), or NULL ... */
  size_t len;
  const char *path; /* ... to read this file while building */
} erpq_mime_attachment;

typedef struct erpq_mime_msg {
  erpq_mime_addr from;
  const erpq_mime_addr *reply_to; /* optional */
  const erpq_mime_addr *to;
  size_t nto;
  const erpq_mime_addr *cc;
  size_t ncc;
  const char *subject;
  int64_t date;   /* Unix seconds */
  int tz_minutes; /* e.g. 330 for +0530; -1439..1439 */
  const char *message_id;
  const char *unsubscribe_url;    /* "https://..." or NULL */
  const char *unsubscribe_mailto; /* "mailto:..." or NULL */
  const erpq_mime_header *headers;
  size_t nheaders;
  const char *text; /* UTF-8 or NULL */
  const char *html; /* UTF-8 or NULL */
  const erpq_mime_attachment *attachments;
  size_t nattachments;
} erpq_mime_msg;

int erpq_mime_build(const erpq_mime_msg *m, erpq_buf *out, char *err, size_t errlen);

/* "<" + the first 32 hex digits of SHA-256(key) + "@" + domain + ">" into
 * out (outlen >= 36 + strlen(domain)). The domain must be a host name
 * (letters, digits, '-', '.'). 0, -EINVAL or -ENOSPC. */
int erpq_mime_message_id(const void *key, size_t keylen, const char *domain, char *out,
                         size_t outlen, char *err, size_t errlen);

/* The RFC 5322 date-time of t at tz_minutes east of UTC into out[32]. */
int erpq_mime_date(int64_t t, int tz_minutes, char out[32]);

#endif
