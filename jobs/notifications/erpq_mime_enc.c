#include "erpq_mime_enc.h"

#include <string.h>

#include "erpq_util.h"

static const char hexd[] = "0123456789ABCDEF";

/* Length of the UTF-8 sequence starting with lead byte c (input is valid
 * UTF-8; a stray byte counts as 1). */
static size_t u8len(unsigned char c) {
  if (c < 0xc0)
    return 1;
  if (c < 0xe0)
    return 2;
  if (c < 0xf0)
    return 3;
  return 4;
}

static size_t clamp_len(const char *s, size_t i, size_t len) {
  size_t n = u8len((unsigned char)s[i]);
  return i + n > len ? len - i : n;
}

/* ---- Quoted-printable ------------------------------------------------------ */

size_t erpq_mime_qp_cost(const char *s, size_t len) {
  size_t k = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80 || c == '=' || (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
      k++;
  }
  return k;
}

static void put_hex(char *o, unsigned char c) {
  o[0] = '=';
  o[1] = hexd[c >> 4];
  o[2] = hexd[c & 15];
}

/* Encodes one unit (an ASCII byte or a whole UTF-8 character) of a line
 * into u; `last` says it ends the line, `col` is the output column. */
static size_t qp_unit(const char *s, size_t i, size_t n, size_t len, int last, size_t col,
                      char *u) {
  unsigned char c = (unsigned char)s[i];
  if (n > 1) {
    for (size_t k = 0; k < n; k++)
      put_hex(u + 3 * k, (unsigned char)s[i + k]);
    return 3 * n;
  }
  int lit = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last);
  if (lit && col == 0) {
    if (c == '.')
      lit = 0;
    if (c == 'F' && len - i >= 5 && memcmp(s + i, "From ", 5) == 0)
      lit = 0;
  }
  if (lit) {
    u[0] = (char)c;
    return 1;
  }
  put_hex(u, c);
  return 3;
}

void erpq_mime_qp(erpq_buf *b, const char *s, size_t len) {
  size_t i = 0, col = 0;
  int ended_with_break = 0;
  while (i < len) {
    /* One hard line: [i, e), then the break (LF, CRLF or lone CR). */
    size_t e = i;
    while (e < len && s[e] != '\n' && s[e] != '\r')
      e++;
    for (size_t k = i; k < e;) {
      size_t n = clamp_len(s, k, e);
      char u[12];
      size_t ul = qp_unit(s, k, n, e, k + n == e, col, u);
      if (col + ul > ERPQ_MIME_BODY_LINE - 1) {
        erpq_buf_add(b, "=\r\n", 3);
        col = 0;
        ul = qp_unit(s, k, n, e, k + n == e, col, u);
      }
      erpq_buf_add(b, u, ul);
      col += ul;
      k += n;
    }
    ended_with_break = e < len;
    if (e < len) {
      erpq_buf_add(b, "\r\n", 2);
      col = 0;
      e += (s[e] == '\r' && e + 1 < len && s[e + 1] == '\n') ? 2 : 1;
    }
    i = e;
  }
  /* No final line break: a soft one, so the decoded text ends as given
   * and the part still ends with CRLF. */
  if (len && !ended_with_break)
    erpq_buf_add(b, "=\r\n", 3);
}

void erpq_mime_crlf(erpq_buf *b, const char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    size_t e = i;
    while (e < len && s[e] != '\n' && s[e] != '\r')
      e++;
    erpq_buf_add(b, s + i, e - i);
    if (e < len) {
      erpq_buf_add(b, "\r\n", 2);
      e += (s[e] == '\r' && e + 1 < len && s[e + 1] == '\n') ? 2 : 1;
    }
    i = e;
  }
}

/* ---- Base64 ------------------------------------------------------------------ */

static void b64_line(erpq_buf *b, const unsigned char *p, size_t n) {
  char line[80];
  size_t w = erpq_base64(p, n, line);
  erpq_buf_add(b, line, w);
  erpq_buf_add(b, "\r\n", 2);
}

void erpq_mime_b64_add(erpq_mime_b64 *st, erpq_buf *b, const void *data, size_t len) {
  const unsigned char *p = data;
  while (len) {
    if (st->npend == 0 && len >= sizeof st->pend) {
      b64_line(b, p, sizeof st->pend);
      p += sizeof st->pend, len -= sizeof st->pend;
      continue;
    }
    size_t take = sizeof st->pend - st->npend;
    if (take > len)
      take = len;
    memcpy(st->pend + st->npend, p, take);
    st->npend += take, p += take, len -= take;
    if (st->npend == sizeof st->pend) {
      b64_line(b, st->pend, st->npend);
      st->npend = 0;
    }
  }
}

void erpq_mime_b64_end(erpq_mime_b64 *st, erpq_buf *b) {
  if (st->npend)
    b64_line(b, st->pend, st->npend);
  st->npend = 0;
}

/* ---- Encoded-words (RFC 2047) ------------------------------------------------ */

/* Q: characters allowed literally even in a phrase (RFC 2047 5(3)). */
static int q_literal(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '!' ||
         c == '*' || c == '+' || c == '-' || c == '/';
}

static int use_q(const char *s, size_t len) {
  size_t q = 0;
  for (size_t i = 0; i < len; i++)
    q += (q_literal((unsigned char)s[i]) || s[i] == ' ') ? 1 : 3;
  return q <= 4 * ((len + 2) / 3);
}

/* Writes into w (>= 76 bytes) the longest encoded-word of at most wmax
 * characters starting at s[*i], advancing *i by whole characters. */
static size_t encoded_word(const char *s, size_t len, size_t *i, int q, size_t wmax, char *w) {
  size_t pay = wmax - 12; /* "=?UTF-8?X?" + "?=" */
  size_t start = *i, end = *i, cost = 0;
  while (end < len) {
    size_t n = clamp_len(s, end, len), c = 0;
    if (q) {
      for (size_t k = 0; k < n; k++)
        c += (q_literal((unsigned char)s[end + k]) || s[end + k] == ' ') ? 1 : 3;
      if (cost + c > pay && end > start)
        break;
    } else if (4 * ((end + n - start + 2) / 3) > pay && end > start) {
      break;
    }
    cost += c;
    end += n;
  }
  size_t o = 0;
  memcpy(w, q ? "=?UTF-8?Q?" : "=?UTF-8?B?", 10);
  o = 10;
  if (q) {
    for (size_t k = start; k < end; k++) {
      unsigned char c = (unsigned char)s[k];
      if (c == ' ')
        w[o++] = '_';
      else if (q_literal(c))
        w[o++] = (char)c;
      else
        put_hex(w + o, c), o += 3;
    }
  } else {
    o += erpq_base64(s + start, end - start, w + o);
  }
  memcpy(w + o, "?=", 2);
  o += 2;
  *i = end;
  return o;
}

/* The whole of s as encoded-words, each preceded by a space or a fold. */
static void encoded_words(erpq_buf *b, size_t *col, const char *s, size_t len, size_t reserve) {
  int q = use_q(s, len);
  size_t i = 0;
  while (i < len) {
    size_t avail = ERPQ_MIME_LINE > *col + 1 + reserve ? ERPQ_MIME_LINE - *col - 1 - reserve : 0;
    if (avail < 24) {
      erpq_buf_add(b, "\r\n", 2);
      *col = 0;
      avail = ERPQ_MIME_LINE - 1 - reserve;
    }
    char w[96];
    size_t wl = encoded_word(s, len, &i, q, avail < 75 ? avail : 75, w);
    erpq_buf_add(b, " ", 1);
    erpq_buf_add(b, w, wl);
    *col += 1 + wl;
  }
}

/* ---- Header text -------------------------------------------------------------- */

void erpq_mime_header_token(erpq_buf *b, size_t *col, const char *tok, size_t n, size_t reserve) {
  if (*col + 1 + n + reserve > ERPQ_MIME_LINE && *col > 1) {
    erpq_buf_add(b, "\r\n", 2);
    *col = 0;
  }
  erpq_buf_add(b, " ", 1);
  erpq_buf_add(b, tok, n);
  *col += 1 + n;
}

static int is_wsp(char c) { return c == ' ' || c == '\t'; }

static int plain_ascii_ok(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80 || (c < 0x20 && c != '\t') || c == 0x7f)
      return 0;
    if (c == '=' && i + 1 < len && s[i + 1] == '?')
      return 0;
  }
  /* Every blank run + word must fit a folded line. */
  for (size_t i = 0; i < len;) {
    size_t j = i;
    while (j < len && is_wsp(s[j]))
      j++;
    while (j < len && !is_wsp(s[j]))
      j++;
    if (j - i > ERPQ_MIME_LINE - 2)
      return 0;
    i = j;
  }
  return 1;
}

void erpq_mime_header_text(erpq_buf *b, size_t *col, const char *s, size_t len) {
  if (!plain_ascii_ok(s, len)) {
    encoded_words(b, col, s, len, 0);
    return;
  }
  size_t i = 0;
  int first = 1;
  while (i < len) {
    size_t ws = i;
    while (i < len && is_wsp(s[i]))
      i++;
    size_t wd = i;
    while (i < len && !is_wsp(s[i]))
      i++;
    if (first) {
      erpq_mime_header_token(b, col, s + wd, i - wd, 0);
      first = 0;
    } else if (*col + (i - ws) > ERPQ_MIME_LINE) {
      erpq_buf_add(b, "\r\n", 2); /* folding = CRLF before the blanks */
      erpq_buf_add(b, s + ws, i - ws);
      *col = i - ws;
    } else {
      erpq_buf_add(b, s + ws, i - ws);
      *col += i - ws;
    }
  }
}

static int is_atext(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+/=?^_`{|}~-", c));
}

void erpq_mime_header_phrase(erpq_buf *b, size_t *col, const char *s, size_t len) {
  int ascii = 1, atoms = 1;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80 || c < 0x20 || c == 0x7f)
      ascii = 0;
    if (!(is_atext(c) || (c == ' ' && i > 0 && i + 1 < len && s[i + 1] != ' ')))
      atoms = 0;
    if (c == '=' && i + 1 < len && s[i + 1] == '?')
      ascii = 0;
  }
  if (ascii && atoms) {
    for (size_t i = 0; i < len;) {
      size_t j = i;
      while (j < len && s[j] != ' ')
        j++;
      erpq_mime_header_token(b, col, s + i, j - i, 0);
      i = j + 1;
    }
    return;
  }
  if (ascii) {
    /* A quoted-string, when it fits on a line. */
    char q[ERPQ_MIME_LINE];
    size_t n = 0, i = 0;
    q[n++] = '"';
    for (; i < len && n < sizeof q - 3; i++) {
      if (s[i] == '"' || s[i] == '\\')
        q[n++] = '\\';
      q[n++] = s[i];
    }
    q[n++] = '"';
    if (i == len && n <= ERPQ_MIME_LINE - 4) {
      erpq_mime_header_token(b, col, q, n, 0);
      return;
    }
  }
  encoded_words(b, col, s, len, 0);
}

/* ---- Parameters ---------------------------------------------------------------- */

static int attr_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$&+-.^_`{|}~", c));
}

static int short_printable(const char *name, const char *v, size_t vl) {
  size_t extra = 0;
  for (size_t i = 0; i < vl; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c < 0x20 || c >= 0x7f)
      return 0;
    if (c == '=' && i + 1 < vl && v[i + 1] == '?')
      return 0;
    extra += c == '"' || c == '\\';
  }
  /* " name="value";" on one line */
  return 1 + strlen(name) + 2 + vl + extra + 2 <= ERPQ_MIME_LINE;
}

static void quoted_param(erpq_buf *b, size_t *col, const char *name, const char *v, size_t vl) {
  erpq_buf_add(b, ";\r\n ", 4);
  erpq_buf_adds(b, name);
  erpq_buf_add(b, "=\"", 2);
  for (size_t i = 0; i < vl; i++) {
    if (v[i] == '"' || v[i] == '\\')
      erpq_buf_add(b, "\\", 1);
    erpq_buf_add(b, v + i, 1);
  }
  erpq_buf_add(b, "\"", 1);
  *col = 1 + strlen(name) + 2 + vl + 1;
}

static void pct_char(erpq_buf *b, unsigned char c) {
  if (attr_char(c)) {
    erpq_buf_add(b, (const char *)&c, 1);
  } else {
    char h[3] = {'%', hexd[c >> 4], hexd[c & 15]};
    erpq_buf_add(b, h, 3);
  }
}

void erpq_mime_param(erpq_buf *b, size_t *col, const char *name, const char *value) {
  size_t vl = strlen(value);
  if (short_printable(name, value, vl)) {
    quoted_param(b, col, name, value, vl);
    return;
  }
  /* RFC 2231: utf-8'' then %XX for all but attribute-chars; in sections
   * name*N*= of at most one line each, cut between characters (decoders
   * such as Python's decode each section on its own). */
  size_t nl = strlen(name), total = 7;
  for (size_t i = 0; i < vl; i++)
    total += attr_char((unsigned char)value[i]) ? 1 : 3;
  if (1 + nl + 2 + total + 1 <= ERPQ_MIME_LINE) {
    erpq_buf_add(b, ";\r\n ", 4);
    erpq_buf_adds(b, name);
    erpq_buf_add(b, "*=utf-8''", 9);
    for (size_t i = 0; i < vl; i++)
      pct_char(b, (unsigned char)value[i]);
    *col = 1 + nl + 2 + total;
    return;
  }
  size_t i = 0;
  for (int sec = 0; i < vl; sec++) {
    char head[96];
    int hl = snprintf(head, sizeof head, "%s*%d*=%s", name, sec, sec ? "" : "utf-8''");
    size_t room = ERPQ_MIME_LINE - 1 - (size_t)hl - 1; /* SP ... ";" */
    size_t j = i, used = 0;
    while (j < vl) {
      size_t n = clamp_len(value, j, vl), c = 0;
      for (size_t k = 0; k < n; k++)
        c += attr_char((unsigned char)value[j + k]) ? 1 : 3;
      if (used + c > room && j > i)
        break;
      used += c;
      j += n;
    }
    erpq_buf_add(b, ";\r\n ", 4);
    erpq_buf_add(b, head, (size_t)hl);
    for (size_t k = i; k < j; k++)
      pct_char(b, (unsigned char)value[k]);
    *col = 1 + (size_t)hl + used;
    i = j;
  }
}

void erpq_mime_param_2047(erpq_buf *b, size_t *col, const char *name, const char *value) {
  size_t vl = strlen(value);
  if (short_printable(name, value, vl)) {
    quoted_param(b, col, name, value, vl);
    return;
  }
  erpq_buf_add(b, ";\r\n ", 4);
  erpq_buf_adds(b, name);
  erpq_buf_add(b, "=\"", 2);
  *col = 1 + strlen(name) + 2;
  size_t i = 0;
  int first = 1;
  while (i < vl) {
    /* Room for the word and a closing quote and semicolon. */
    size_t avail = ERPQ_MIME_LINE > *col + 3 ? ERPQ_MIME_LINE - *col - 3 : 0;
    if (!first) {
      erpq_buf_add(b, "\r\n ", 3);
      *col = 1;
      avail = ERPQ_MIME_LINE - 1 - 3;
    }
    char w[96];
    size_t wl = encoded_word(value, vl, &i, 0, avail < 75 ? avail : 75, w);
    erpq_buf_add(b, w, wl);
    *col += wl;
    first = 0;
  }
  erpq_buf_add(b, "\"", 1);
  *col += 1;
}
