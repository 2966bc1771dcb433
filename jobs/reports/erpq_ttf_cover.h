/*
 * erpq_ttf_cover.h - which Unicode characters a TrueType font has glyphs
 * for, read from the font's own cmap table.
 *
 * libharu cannot say whether a font has a glyph: for a missing character it
 * quietly draws glyph 0 (a box in DejaVu Sans) and its width functions
 * answer that box's width. The PDF writer needs to know, so that it can
 * draw '?' instead and count the character. This module reads the same
 * table libharu 2.3.0 uses to map characters to glyphs (the cmap subtable
 * for platform 3, encoding 1, format 4: the Basic Multilingual Plane), and
 * records one bit per code point U+0000..U+FFFF: set when the character
 * maps to a glyph other than 0. Characters above U+FFFF are never covered
 * (libharu's UTF-8 encoder turns them into spaces).
 *
 * The font file is read once (it is closed before load returns); the
 * cover is a plain 8 KiB value the caller owns; erpq_ttf_has() is pure and
 * thread-safe.
 */
#ifndef ERPQ_TTF_COVER_H
#define ERPQ_TTF_COVER_H

#include <stddef.h>
#include <stdint.h>

typedef struct erpq_ttf_cover {
  uint8_t bits[0x10000 / 8];
  uint32_t count; /* characters covered */
} erpq_ttf_cover;

/* Reads the cmap of the TrueType font at path into *out. Returns 0, -errno
 * when the file cannot be read, or -EINVAL when it is not a TrueType font
 * with a (3,1) format 4 cmap. */
int erpq_ttf_cover_load(const char *path, erpq_ttf_cover *out, char *err, size_t errlen);

static inline int erpq_ttf_has(const erpq_ttf_cover *c, uint32_t cp) {
  return cp < 0x10000 && ((c->bits[cp >> 3] >> (cp & 7)) & 1);
}

#endif
