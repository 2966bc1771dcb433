/*
 * erpq_buf.h - a growable, NUL-terminated string buffer.
 *
 * For code that builds text piece by piece: JSON written as JavaScript
 * writes it (erpq_repeat), log lines (erpq_log), the metrics page. States:
 * empty ({0}: s NULL), holding text (s NUL-terminated, len bytes), or out of
 * memory (oom set: later appends are ignored, erpq_buf_take() answers NULL,
 * so a builder checks once at the end). The buffer owns s until
 * erpq_buf_take() hands it over or erpq_buf_free() releases it.
 */
#ifndef ERPQ_BUF_H
#define ERPQ_BUF_H

#include <stddef.h>
#include <stdio.h>

typedef struct erpq_buf {
  char *s;
  size_t len, cap;
  int oom;
} erpq_buf;

void erpq_buf_add(erpq_buf *b, const char *s, size_t n);
void erpq_buf_adds(erpq_buf *b, const char *s);
void erpq_buf_addf(erpq_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Everything f has left to read (binary-safe), as a NUL-terminated string
 * owned by the caller, its length in *len (may be NULL); NULL on a read
 * error or when memory ran out. f is borrowed, not closed. */
char *erpq_buf_read_all(FILE *f, size_t *len);
/* Forgets the text but keeps the memory (and clears oom). */
void erpq_buf_reset(erpq_buf *b);
/* Hands the text to the caller ("" when nothing was added; NULL when
 * memory ran out); the buffer is empty afterwards. */
char *erpq_buf_take(erpq_buf *b);
void erpq_buf_free(erpq_buf *b);

#endif
