#define _GNU_SOURCE /* memmem */
#include "erpq_mime.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "erpq_email_addr.h"
#include "erpq_err.h"
#include "erpq_mime_enc.h"
#include "erpq_utf8.h"

/* ---- Checks ---------------------------------------------------------------- */

/* Header text: valid UTF-8, no CR/LF (injection), no other controls but tab. */
static int check_text(const char *what, const char *s, char *err, size_t errlen) {
  size_t len = strlen(s);
  if (strpbrk(s, "\r\n"))
    return erpq_fail(err, errlen, -EINVAL,
                     "%s contains a line break (CR/LF): refused to prevent header injection", what);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return erpq_fail(err, errlen, -EINVAL, "%s contains a control character", what);
  }
  size_t bad = erpq_utf8_check(s, len);
  if (bad < len)
    return erpq_fail(err, errlen, -EINVAL, "%s is not valid UTF-8", what);
  return 0;
}

static int check_addr(const char *what, const erpq_mime_addr *a, char *err, size_t errlen) {
  char why[200];
  if (!a->email)
    return erpq_fail(err, errlen, -EINVAL, "%s has no e-mail address", what);
  if (erpq_email_addr_valid(a->email, why, sizeof why))
    return erpq_fail(err, errlen, -EINVAL, "%s: %s", what, why);
  if (a->name) {
    char w[96];
    snprintf(w, sizeof w, "the display name of %s", what);
    return check_text(w, a->name, err, errlen);
  }
  return 0;
}

/* Printable ASCII without blanks and without the characters a URI or a
 * msg-id may not hold. */
static int check_token(const char *what, const char *s, const char *forbid, char *err,
                       size_t errlen) {
  int rc = check_text(what, s, err, errlen);
  if (rc)
    return rc;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f || strchr(forbid, *p))
      return erpq_fail(err, errlen, -EINVAL,
                       "%s contains a blank, a non-ASCII character or one of %s", what, forbid);
  if (strlen(s) > 900)
    return erpq_fail(err, errlen, -EINVAL, "%s is too long", what);
  return 0;
}

static const char *const reserved[] = {
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "list-unsubscribe",
    "list-unsubscribe-post",
};

static int check_header_name(const char *n, char *err, size_t errlen) {
  if (!n || !*n)
    return erpq_fail(err, errlen, -EINVAL, "an extra header has no name");
  for (const unsigned char *p = (const unsigned char *)n; *p; p++)
    if (*p < 33 || *p > 126 || *p == ':')
      return erpq_fail(err, errlen, -EINVAL,
                       "an extra header name holds a character a field name may not "
                       "(CR/LF, blank, ':' or non-ASCII)");
  if (strlen(n) > 76)
    return erpq_fail(err, errlen, -EINVAL, "an extra header name is too long");
  if (strncasecmp(n, "content-", 8) == 0)
    return erpq_fail(err, errlen, -EINVAL, "extra header %s is written by the builder", n);
  for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
    if (strcasecmp(n, reserved[i]) == 0)
      return erpq_fail(err, errlen, -EINVAL, "extra header %s is written by the builder", n);
  return 0;
}

static int check_content_type(const char *t, char *err, size_t errlen) {
  const char *slash = strchr(t, '/');
  int ok = slash && slash != t && slash[1];
  for (const unsigned char *p = (const unsigned char *)t; ok && *p; p++) {
    unsigned char c = *p;
    if ((const char *)p == slash)
      continue;
    ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         strchr("!#$%&'*+-.^_`{|}~", c);
  }
  if (!ok)
    return erpq_fail(err, errlen, -EINVAL,
                     "an attachment's content type is not type/subtype (no parameters, no "
                     "line breaks)");
  return 0;
}

static int check_msg(const erpq_mime_msg *m, char *err, size_t errlen) {
  int rc;
  if ((rc = check_addr("From", &m->from, err, errlen)))
    return rc;
  if (m->reply_to && (rc = check_addr("Reply-To", m->reply_to, err, errlen)))
    return rc;
  if (!m->nto || !m->to)
    return erpq_fail(err, errlen, -EINVAL, "the message has no To");
  for (size_t i = 0; i < m->nto; i++) {
    char w[32];
    snprintf(w, sizeof w, "To #%zu", i + 1);
    if ((rc = check_addr(w, &m->to[i], err, errlen)))
      return rc;
  }
  for (size_t i = 0; i < m->ncc; i++) {
    char w[32];
    snprintf(w, sizeof w, "Cc #%zu", i + 1);
    if ((rc = check_addr(w, &m->cc[i], err, errlen)))
      return rc;
  }
  if (!m->subject)
    return erpq_fail(err, errlen, -EINVAL, "the message has no Subject");
  if ((rc = check_text("the Subject", m->subject, err, errlen)))
    return rc;
  if (!m->message_id)
    return erpq_fail(err, errlen, -EINVAL, "the message has no Message-ID");
  if ((rc = check_token("the Message-ID", m->message_id, "\"(),:;[\\]", err, errlen)))
    return rc;
  {
    const char *id = m->message_id;
    size_t l = strlen(id);
    if (id[0] == '<')
      id++, l -= 1 + (l > 1 && id[l - 2] == '>');
    const char *at = memchr(id, '@', l);
    if (!at || at == id || at == id + l - 1 || memchr(id, '<', l) || memchr(id, '>', l))
      return erpq_fail(err, errlen, -EINVAL, "the Message-ID is not <left@right>");
  }
  if (m->tz_minutes < -1439 || m->tz_minutes > 1439)
    return erpq_fail(err, errlen, -EINVAL, "the time zone offset is out of range");
  char date[32];
  if (erpq_mime_date(m->date, m->tz_minutes, date))
    return erpq_fail(err, errlen, -EINVAL, "the date is outside the years 1900..9999");
  if (m->unsubscribe_url) {
    if ((rc = check_token("the List-Unsubscribe URL", m->unsubscribe_url, "<>\"", err, errlen)))
      return rc;
    if (strncmp(m->unsubscribe_url, "https://", 8) != 0)
      return erpq_fail(err, errlen, -EINVAL,
                       "the List-Unsubscribe URL must be https:// (RFC 8058)");
  }
  if (m->unsubscribe_mailto) {
    if ((rc = check_token("the List-Unsubscribe mailto", m->unsubscribe_mailto, "<>\"", err,
                          errlen)))
      return rc;
    if (strncmp(m->unsubscribe_mailto, "mailto:", 7) != 0)
      return erpq_fail(err, errlen, -EINVAL, "the List-Unsubscribe mailto must be mailto:");
  }
  for (size_t i = 0; i < m->nheaders; i++) {
    if ((rc = check_header_name(m->headers[i].name, err, errlen)))
      return rc;
    char w[120];
    snprintf(w, sizeof w, "the value of header %s", m->headers[i].name);
    if (!m->headers[i].value)
      return erpq_fail(err, errlen, -EINVAL, "%s is missing", w);
    if ((rc = check_text(w, m->headers[i].value, err, errlen)))
      return rc;
  }
  if (!m->text && !m->html)
    return erpq_fail(err, errlen, -EINVAL, "the message has neither text nor html");
  if (m->text && erpq_utf8_check(m->text, strlen(m->text)) < strlen(m->text))
    return erpq_fail(err, errlen, -EINVAL, "the text body is not valid UTF-8");
  if (m->html && erpq_utf8_check(m->html, strlen(m->html)) < strlen(m->html))
    return erpq_fail(err, errlen, -EINVAL, "the html body is not valid UTF-8");
  for (size_t i = 0; i < m->nattachments; i++) {
    const erpq_mime_attachment *a = &m->attachments[i];
    char w[64];
    snprintf(w, sizeof w, "the file name of attachment #%zu", i + 1);
    if (!a->filename || !*a->filename)
      return erpq_fail(err, errlen, -EINVAL, "%s is empty", w);
    if ((rc = check_text(w, a->filename, err, errlen)))
      return rc;
    if (a->content_type && (rc = check_content_type(a->content_type, err, errlen)))
      return rc;
    if (!a->data && !a->path && a->len)
      return erpq_fail(err, errlen, -EINVAL, "attachment #%zu has neither data nor path", i + 1);
  }
  return 0;
}

/* ---- Pieces ------------------------------------------------------------------ */

int erpq_mime_date(int64_t t, int tz_minutes, char out[32]) {
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  out[0] = '\0';
  if (tz_minutes < -1439 || tz_minutes > 1439)
    return -EINVAL;
  time_t local = (time_t)(t + (int64_t)tz_minutes * 60);
  struct tm tm;
  if (!gmtime_r(&local, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 1900)
    return -EINVAL;
  int off = tz_minutes < 0 ? -tz_minutes : tz_minutes;
  /* Formatted into a roomy buffer: the ranges above keep it at 31. */
  char tmp[96];
  int n =
      snprintf(tmp, sizeof tmp, "%s, %02d %s %04d %02d:%02d:%02d %c%02d%02d", days[tm.tm_wday % 7],
               tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
               tm.tm_sec, tz_minutes < 0 ? '-' : '+', off / 60, off % 60);
  if (n < 0 || n > 31)
    return -EINVAL;
  memcpy(out, tmp, (size_t)n + 1);
  return 0;
}

int erpq_mime_message_id(const void *key, size_t keylen, const char *domain, char *out,
                         size_t outlen, char *err, size_t errlen) {
  if (outlen)
    out[0] = '\0';
  if (!domain || !*domain || strlen(domain) > 253)
    return erpq_fail(err, errlen, -EINVAL, "the Message-ID domain is empty or too long");
  for (const char *p = domain; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '.'))
      return erpq_fail(err, errlen, -EINVAL, "the Message-ID domain is not a host name");
  if (outlen < 36 + strlen(domain))
    return erpq_fail(err, errlen, -ENOSPC, "the Message-ID buffer is too small");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (!EVP_Digest(key, keylen, md, &mdlen, EVP_sha256(), NULL) || mdlen < 16)
    return erpq_fail(err, errlen, -EIO, "SHA-256 failed");
  static const char hex[] = "0123456789abcdef";
  size_t n = 0;
  out[n++] = '<';
  for (int i = 0; i < 16; i++) {
    out[n++] = hex[md[i] >> 4];
    out[n++] = hex[md[i] & 15];
  }
  snprintf(out + n, outlen - n, "@%s>", domain);
  return 0;
}

static void header_start(erpq_buf *b, size_t *col, const char *name) {
  erpq_buf_adds(b, name);
  erpq_buf_add(b, ":", 1);
  *col = strlen(name) + 1;
}

/* The value without leading and trailing blanks. */
static void trimmed(const char *s, const char **p, size_t *n) {
  const char *e = s + strlen(s);
  while (*s == ' ' || *s == '\t')
    s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  *p = s;
  *n = (size_t)(e - s);
}

static void put_addr_list(erpq_buf *b, const char *field, const erpq_mime_addr *a, size_t n) {
  size_t col;
  header_start(b, &col, field);
  for (size_t i = 0; i < n; i++) {
    /* Display names: blanks trimmed, runs of blanks made one space. */
    erpq_buf nm = {0};
    if (a[i].name) {
      const char *p;
      size_t pl;
      trimmed(a[i].name, &p, &pl);
      for (size_t k = 0; k < pl; k++) {
        int blank = p[k] == ' ' || p[k] == '\t';
        if (!blank)
          erpq_buf_add(&nm, p + k, 1);
        else if (p[k - 1] != ' ' && p[k - 1] != '\t')
          erpq_buf_add(&nm, " ", 1);
      }
    }
    if (nm.oom)
      b->oom = 1;
    size_t nl = nm.oom ? 0 : nm.len;
    size_t el = strlen(a[i].email);
    size_t comma = i + 1 < n;
    if (nl) {
      erpq_mime_header_phrase(b, &col, nm.s, nl);
      char tok[ERPQ_EMAIL_MAX + 4];
      snprintf(tok, sizeof tok, "<%s>%s", a[i].email, comma ? "," : "");
      erpq_mime_header_token(b, &col, tok, el + 2 + comma, 0);
    } else {
      char tok[ERPQ_EMAIL_MAX + 4];
      snprintf(tok, sizeof tok, "%s%s", a[i].email, comma ? "," : "");
      erpq_mime_header_token(b, &col, tok, el + comma, 0);
    }
    erpq_buf_free(&nm);
  }
  erpq_buf_add(b, "\r\n", 2);
}

static void put_text_header(erpq_buf *b, const char *name, const char *value) {
  size_t col;
  header_start(b, &col, name);
  const char *v;
  size_t n;
  trimmed(value, &v, &n);
  if (n)
    erpq_mime_header_text(b, &col, v, n);
  erpq_buf_add(b, "\r\n", 2);
}

static void put_headers(erpq_buf *b, const erpq_mime_msg *m) {
  char date[32];
  erpq_mime_date(m->date, m->tz_minutes, date);
  erpq_buf_addf(b, "Date: %s\r\n", date);
  put_addr_list(b, "From", &m->from, 1);
  if (m->reply_to)
    put_addr_list(b, "Reply-To", m->reply_to, 1);
  put_addr_list(b, "To", m->to, m->nto);
  if (m->ncc)
    put_addr_list(b, "Cc", m->cc, m->ncc);
  put_text_header(b, "Subject", m->subject);
  const char *id = m->message_id;
  if (id[0] == '<')
    erpq_buf_addf(b, "Message-ID: %s\r\n", id);
  else
    erpq_buf_addf(b, "Message-ID: <%s>\r\n", id);
  erpq_buf_adds(b, "MIME-Version: 1.0\r\n");
  if (m->unsubscribe_url || m->unsubscribe_mailto) {
    size_t col;
    header_start(b, &col, "List-Unsubscribe");
    char tok[1024];
    if (m->unsubscribe_url) {
      int n =
          snprintf(tok, sizeof tok, "<%s>%s", m->unsubscribe_url, m->unsubscribe_mailto ? "," : "");
      erpq_mime_header_token(b, &col, tok, (size_t)n, 0);
    }
    if (m->unsubscribe_mailto) {
      int n = snprintf(tok, sizeof tok, "<%s>", m->unsubscribe_mailto);
      erpq_mime_header_token(b, &col, tok, (size_t)n, 0);
    }
    erpq_buf_add(b, "\r\n", 2);
    if (m->unsubscribe_url)
      erpq_buf_adds(b, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
  }
  for (size_t i = 0; i < m->nheaders; i++)
    put_text_header(b, m->headers[i].name, m->headers[i].value);
}

static void put_text_part(erpq_buf *b, const char *subtype, const char *s) {
  size_t len = strlen(s);
  int qp = erpq_mime_qp_cost(s, len) * 6 <= len;
  erpq_buf_addf(b, "Content-Type: text/%s; charset=utf-8\r\nContent-Transfer-Encoding: %s\r\n\r\n",
                subtype, qp ? "quoted-printable" : "base64");
  if (qp) {
    erpq_mime_qp(b, s, len);
    return;
  }
  erpq_buf canon = {0};
  erpq_mime_crlf(&canon, s, len);
  if (canon.oom) {
    b->oom = 1;
  } else {
    erpq_mime_b64 st = {0};
    erpq_mime_b64_add(&st, b, canon.s ? canon.s : "", canon.len);
    erpq_mime_b64_end(&st, b);
  }
  erpq_buf_free(&canon);
}

static int put_attachment(erpq_buf *b, const erpq_mime_attachment *a, size_t idx, char *err,
                          size_t errlen) {
  size_t col;
  const char *type = a->content_type ? a->content_type : "application/octet-stream";
  header_start(b, &col, "Content-Type");
  erpq_mime_header_token(b, &col, type, strlen(type), 1);
  erpq_mime_param_2047(b, &col, "name", a->filename);
  erpq_buf_adds(b, "\r\nContent-Disposition: attachment");
  erpq_mime_param(b, &col, "filename", a->filename);
  erpq_buf_adds(b, "\r\nContent-Transfer-Encoding: base64\r\n\r\n");
  erpq_mime_b64 st = {0};
  if (a->data || !a->path) {
    erpq_mime_b64_add(&st, b, a->data ? a->data : "", a->data ? a->len : 0);
  } else {
    FILE *f = fopen(a->path, "rb");
    if (!f)
      return erpq_fail(err, errlen, -errno, "cannot open the file of attachment #%zu: %s", idx + 1,
                       strerror(errno));
    unsigned char chunk[65536 - 65536 % 57];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
      erpq_mime_b64_add(&st, b, chunk, n);
    int rerr = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (rerr)
      return erpq_fail(err, errlen, -rerr, "cannot read the file of attachment #%zu: %s", idx + 1,
                       strerror(rerr));
  }
  erpq_mime_b64_end(&st, b);
  return 0;
}

static int new_boundary(char out[40]) {
  unsigned char r[12];
  if (RAND_bytes(r, sizeof r) != 1)
    return -EIO;
  static const char hex[] = "0123456789abcdef";
  memcpy(out, "=_erpq_", 7);
  for (size_t i = 0; i < sizeof r; i++) {
    out[7 + 2 * i] = hex[r[i] >> 4];
    out[8 + 2 * i] = hex[r[i] & 15];
  }
  out[7 + 2 * sizeof r] = '\0';
  return 0;
}

static size_t count_occurrences(const char *hay, size_t n, const char *needle) {
  size_t k = 0, nl = strlen(needle);
  const char *p = hay, *end = hay + n;
  while (p + nl <= end && (p = memmem(p, (size_t)(end - p), needle, nl)))
    k++, p += nl;
  return k;
}

/* ---- Assembly -------------------------------------------------------------------- */

static int build_once(const erpq_mime_msg *m, erpq_buf *b, char *err, size_t errlen,
                      int *boundary_clash) {
  size_t start = b->len;
  char alt[40], mix[40];
  if (new_boundary(alt) || new_boundary(mix))
    return erpq_fail(err, errlen, -EIO, "no random bytes for the MIME boundaries (RAND_bytes)");
  put_headers(b, m);
  int both = m->text && m->html, mixed = m->nattachments > 0;
  if (mixed) {
    erpq_buf_addf(b, "Content-Type: multipart/mixed;\r\n boundary=\"%s\"\r\n\r\n--%s\r\n", mix,
                  mix);
  }
  if (both) {
    erpq_buf_addf(b, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n--%s\r\n",
                  alt, alt);
    put_text_part(b, "plain", m->text);
    erpq_buf_addf(b, "\r\n--%s\r\n", alt);
    put_text_part(b, "html", m->html);
    erpq_buf_addf(b, "\r\n--%s--\r\n", alt);
  } else {
    put_text_part(b, m->text ? "plain" : "html", m->text ? m->text : m->html);
  }
  if (mixed) {
    for (size_t i = 0; i < m->nattachments; i++) {
      erpq_buf_addf(b, "\r\n--%s\r\n", mix);
      int rc = put_attachment(b, &m->attachments[i], i, err, errlen);
      if (rc)
        return rc;
    }
    erpq_buf_addf(b, "\r\n--%s--\r\n", mix);
  }
  if (b->oom)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory building a message");
  /* Each boundary: once in its header, once per part, once closing. */
  const char *msg = b->s + start;
  size_t n = b->len - start;
  *boundary_clash = (both && count_occurrences(msg, n, alt) != 4) ||
                    (mixed && count_occurrences(msg, n, mix) != m->nattachments + 3);
  return 0;
}

int erpq_mime_build(const erpq_mime_msg *m, erpq_buf *out, char *err, size_t errlen) {
  if (!m || !out)
    return erpq_fail(err, errlen, -EINVAL, "no message or no buffer");
  if (out->oom)
    return erpq_fail(err, errlen, -ENOMEM, "the output buffer is out of memory");
  int rc = check_msg(m, err, errlen);
  if (rc)
    return rc;
  size_t start = out->len;
  for (int attempt = 0; attempt < 3; attempt++) {
    int clash = 0;
    rc = build_once(m, out, err, errlen, &clash);
    if (rc == 0 && !clash)
      return 0;
    /* Undo what this attempt appended. */
    out->len = start;
    if (out->s)
      out->s[start] = '\0';
    out->oom = 0;
    if (rc)
      return rc;
  }
  return erpq_fail(err, errlen, -EAGAIN,
                   "a MIME boundary kept occurring in the content (3 attempts)");
}
