/*
 * erpq_report_text.c - UTF-8 repair and display widths (see erpq_report_text.h;
 * the decoder is core/erpq_utf8.c).
 */
#include "erpq_report_text.h"

size_t erpq_utf8_repair(erpq_buf *b, const char *s, size_t n) {
  size_t fixed = 0, i = 0, run = 0;
  while (i < n) {
    uint32_t cp;
    int bad;
    size_t k = (unsigned char)s[i] < 0x80 ? (bad = 0, 1) : erpq_utf8_decode(s + i, n - i, &cp, &bad);
    if (bad) {
      erpq_buf_add(b, s + run, i - run);
      erpq_buf_add(b, "\xEF\xBF\xBD", 3);
      fixed++;
      run = i + k;
    }
    i += k;
  }
  erpq_buf_add(b, s + run, n - run);
  return fixed;
}

int erpq_cp_columns(uint32_t cp) {
  if (cp == 0)
    return 0;
  /* Combining marks and zero-width characters. */
  if ((cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x0483 && cp <= 0x0489) ||
      (cp >= 0x0591 && cp <= 0x05BD) || (cp >= 0x0610 && cp <= 0x061A) ||
      (cp >= 0x064B && cp <= 0x065F) || (cp >= 0x0900 && cp <= 0x0903) ||
      (cp >= 0x093A && cp <= 0x094F && cp != 0x093D) || (cp >= 0x1AB0 && cp <= 0x1AFF) ||
      (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0x200B && cp <= 0x200F) ||
      (cp >= 0x20D0 && cp <= 0x20FF) || (cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0xFEFF)
    return 0;
  /* East Asian wide and fullwidth, emoji. */
  if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0x303E) ||
      (cp >= 0x3041 && cp <= 0x33FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
      (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xA000 && cp <= 0xA4CF) ||
      (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
      (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
      (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1F64F) ||
      (cp >= 0x1F900 && cp <= 0x1F9FF) || (cp >= 0x20000 && cp <= 0x3FFFD))
    return 2;
  return 1;
}

size_t erpq_utf8_columns(const char *s, size_t n) {
  size_t cols = 0, i = 0;
  while (i < n) {
    uint32_t cp;
    int bad;
    i += erpq_utf8_decode(s + i, n - i, &cp, &bad);
    cols += (size_t)erpq_cp_columns(cp);
  }
  return cols;
}

size_t erpq_utf8_prefix(const char *s, size_t n, size_t max_cp) {
  size_t i = 0, count = 0;
  while (i < n && count < max_cp) {
    uint32_t cp;
    int bad;
    i += erpq_utf8_decode(s + i, n - i, &cp, &bad);
    count++;
  }
  return i;
}
