/*
 * erpq_ttf_cover.c - glyph coverage from a TrueType cmap (see the header).
 *
 * Layout (OpenType spec, "cmap" and "Font file"): the table directory at
 * offset 12 holds numTables records of {tag, checksum, offset, length}; the
 * cmap table holds {version, numTables} and encoding records of
 * {platformID, encodingID, offset}; a format 4 subtable holds segCountX2,
 * then the arrays endCode, a pad, startCode, idDelta, idRangeOffset, and
 * glyphIdArray. Every read is bounds-checked against the file size.
 */
#include "erpq_ttf_cover.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_buf.h"
#include "erpq_err.h"

typedef struct {
  const uint8_t *p;
  size_t n;
} span;

static int u16(span s, size_t off, uint32_t *v) {
  if (off + 2 > s.n || off + 2 < off)
    return -1;
  *v = (uint32_t)s.p[off] << 8 | s.p[off + 1];
  return 0;
}

static int u32(span s, size_t off, uint32_t *v) {
  if (off + 4 > s.n || off + 4 < off)
    return -1;
  *v = (uint32_t)s.p[off] << 24 | (uint32_t)s.p[off + 1] << 16 | (uint32_t)s.p[off + 2] << 8 |
       s.p[off + 3];
  return 0;
}

static int parse(span f, erpq_ttf_cover *out) {
  uint32_t ntables, cmap_off = 0, found = 0;
  if (u16(f, 4, &ntables))
    return -1;
  for (uint32_t i = 0; i < ntables; i++) {
    size_t rec = 12 + (size_t)i * 16;
    if (rec + 16 > f.n)
      return -1;
    if (memcmp(f.p + rec, "cmap", 4) == 0) {
      if (u32(f, rec + 8, &cmap_off))
        return -1;
      found = 1;
      break;
    }
  }
  if (!found)
    return -1;
  uint32_t nsub, sub = 0;
  if (u16(f, cmap_off + 2, &nsub))
    return -1;
  found = 0;
  for (uint32_t i = 0; i < nsub; i++) {
    size_t rec = cmap_off + 4 + (size_t)i * 8;
    uint32_t plat, enc, off, format;
    if (u16(f, rec, &plat) || u16(f, rec + 2, &enc) || u32(f, rec + 4, &off))
      return -1;
    if (plat == 3 && enc == 1 && u16(f, (size_t)cmap_off + off, &format) == 0 && format == 4) {
      sub = cmap_off + off;
      found = 1;
      break;
    }
  }
  if (!found)
    return -1;
  uint32_t segx2;
  if (u16(f, (size_t)sub + 6, &segx2) || segx2 == 0 || segx2 % 2)
    return -1;
  size_t ends = (size_t)sub + 14, starts = ends + segx2 + 2, deltas = starts + segx2,
         ranges = deltas + segx2;
  memset(out, 0, sizeof *out);
  for (uint32_t i = 0; i < segx2 / 2; i++) {
    uint32_t end, start, delta, roff;
    if (u16(f, ends + 2 * i, &end) || u16(f, starts + 2 * i, &start) ||
        u16(f, deltas + 2 * i, &delta) || u16(f, ranges + 2 * i, &roff))
      return -1;
    if (start > end)
      continue;
    for (uint32_t c = start; c <= end && c < 0xFFFF; c++) {
      uint32_t gid;
      if (roff == 0) {
        gid = (c + delta) & 0xFFFF;
      } else {
        uint32_t g;
        if (u16(f, ranges + 2 * i + roff + 2 * (c - start), &g))
          return -1;
        gid = g ? (g + delta) & 0xFFFF : 0;
      }
      if (gid) {
        out->bits[c >> 3] |= (uint8_t)(1u << (c & 7));
        out->count++;
      }
    }
  }
  return 0;
}

int erpq_ttf_cover_load(const char *path, erpq_ttf_cover *out, char *err, size_t errlen) {
  FILE *fp = fopen(path, "rb");
  if (!fp)
    return erpq_fail(err, errlen, -errno, "font %s cannot be opened: %s", path, strerror(errno));
  size_t n = 0;
  char *data = erpq_buf_read_all(fp, &n);
  int rd_err = ferror(fp);
  fclose(fp);
  if (!data || rd_err) {
    free(data);
    return erpq_fail(err, errlen, -EIO, "font %s cannot be read", path);
  }
  span f = {(const uint8_t *)data, n};
  int rc = parse(f, out);
  free(data);
  if (rc < 0)
    return erpq_fail(err, errlen, -EINVAL,
                     "font %s is not a TrueType font with a Unicode (3,1) format 4 cmap", path);
  return 0;
}
