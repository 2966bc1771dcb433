#include "erpq_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for n more bytes and the NUL; 0 or -1 (oom set). */
static int reserve(erpq_buf *b, size_t n) {
  if (b->oom) return -1;
  if (b->len + n + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + n + 1) cap *= 2;
  char *p = realloc(b->s, cap);
  if (!p) {
    b->oom = 1;
    return -1;
  }
  b->s = p;
  b->cap = cap;
  return 0;
}

void erpq_buf_add(erpq_buf *b, const char *s, size_t n) {
  if (reserve(b, n)) return;
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
}

void erpq_buf_adds(erpq_buf *b, const char *s) { erpq_buf_add(b, s, strlen(s)); }

void erpq_buf_addf(erpq_buf *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) {
    erpq_buf_add(b, tmp, (size_t)n);
    return;
  }
  if (reserve(b, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

char *erpq_buf_read_all(FILE *f, size_t *len) {
  erpq_buf b = {0};
  for (;;) {
    if (reserve(&b, 4096)) break;
    size_t got = fread(b.s + b.len, 1, b.cap - b.len - 1, f);
    b.len += got;
    b.s[b.len] = '\0';
    if (got == 0) break;
  }
  if (!b.oom && ferror(f)) b.oom = 1; /* Dropped like a failed allocation. */
  if (len) *len = b.len;
  return erpq_buf_take(&b);
}

void erpq_buf_reset(erpq_buf *b) {
  b->len = 0;
  b->oom = 0;
  if (b->s) b->s[0] = '\0';
}

char *erpq_buf_take(erpq_buf *b) {
  char *s = b->oom ? NULL : b->s ? b->s : strdup("");
  if (b->oom) free(b->s);
  memset(b, 0, sizeof *b);
  return s;
}

void erpq_buf_free(erpq_buf *b) {
  free(b->s);
  memset(b, 0, sizeof *b);
}
