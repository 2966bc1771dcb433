/* erpq_redact.c - see erpq_redact.h. */
#include "erpq_redact.h"

#include <string.h>

#include "erpq_util.h"

typedef struct out {
  char *s;
  size_t len, cap; /* cap: bytes for text, without the NUL. */
  int full;
} out;

static void put(out *o, const char *s, size_t n) {
  if (o->full)
    return;
  if (o->len + n > o->cap) {
    size_t room = o->cap - o->len;
    memcpy(o->s + o->len, s, room);
    o->len = o->cap;
    o->full = 1;
    return;
  }
  memcpy(o->s + o->len, s, n);
  o->len += n;
}

static int word_delim(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '"' || c == '\'' || c == '(' ||
         c == ')' || c == '[' || c == ']' || c == ',' || c == ';' || c == '<' || c == '>' ||
         (unsigned char)c < 0x20;
}

static int num_part(char c) {
  return (c >= '0' && c <= '9') || c == '+' || c == ' ' || c == '-' || c == '.' || c == '/' ||
         c == '(' || c == ')';
}

char *erpq_redact(const char *in, size_t len, char *outbuf, size_t outlen) {
  if (!outlen)
    return outbuf;
  out o = {outbuf, 0, outlen - 1, 0};
  size_t i = 0;
  while (i < len && !o.full) {
    char c = in[i];
    /* <...> on one line: an address. */
    if (c == '<') {
      size_t j = i + 1;
      while (j < len && j - i < 512 && in[j] != '>' && in[j] != '\n')
        j++;
      if (j < len && in[j] == '>') {
        put(&o, "[address]", 9);
        i = j + 1;
        continue;
      }
    }
    /* A word holding an '@'. */
    if (!word_delim(c) && (i == 0 || word_delim(in[i - 1]))) {
      size_t j = i;
      int at = 0;
      while (j < len && !word_delim(in[j]))
        at |= in[j++] == '@';
      if (at) {
        put(&o, "[address]", 9);
        i = j;
        continue;
      }
    }
    /* Seven digits or more, separators allowed between them. */
    if ((c >= '0' && c <= '9') ||
        (c == '+' && i + 1 < len && in[i + 1] >= '0' && in[i + 1] <= '9')) {
      size_t j = i, digits = 0, last = i;
      while (j < len && num_part(in[j])) {
        if (in[j] >= '0' && in[j] <= '9') {
          digits++;
          last = j;
        }
        j++;
      }
      if (digits >= 7) {
        put(&o, "[number]", 8);
        i = last + 1;
        continue;
      }
      /* Fewer: copy the digits up to the last one as they are. */
      put(&o, in + i, last + 1 - i);
      i = last + 1;
      continue;
    }
    if ((unsigned char)c < 0x20 || c == 0x7f) {
      if (o.len && o.s[o.len - 1] != ' ')
        put(&o, " ", 1);
      i++;
      continue;
    }
    put(&o, &c, 1);
    i++;
  }
  if (o.full || i < len) {
    size_t keep = o.cap >= 3 ? o.cap - 3 : 0;
    if (o.len > keep)
      o.len = keep;
    o.s[o.len] = 0;
    erpq_utf8_fix(o.s); /* A character cut in half goes. */
    o.len = strlen(o.s);
    o.cap = outlen - 1;
    o.full = 0;
    put(&o, "...", o.cap - o.len < 3 ? o.cap - o.len : 3);
  }
  while (o.len && o.s[o.len - 1] == ' ')
    o.len--;
  o.s[o.len] = 0;
  erpq_utf8_fix(o.s);
  return outbuf;
}
