/*
 * erpq_report_pdf.c - the PDF back end, libharu 2.3 with embedded DejaVu.
 *
 * Fonts: DejaVu Sans and Sans Bold (Debian fonts-dejavu-core) are loaded
 * as embedded TrueType fonts with libharu's UTF-8 encoder
 * (HPDF_UseUTFEncodings, HPDF_LoadTTFontFromFile(embed), HPDF_GetFont(..,
 * "UTF-8")): a CID font with Identity-H encoding and a ToUnicode map, so
 * pdftotext and copy/paste get the text back. libharu writes only the
 * glyphs that were used.
 *
 * What libharu cannot draw (see README.md): it maps each character to one
 * glyph, left to right, with no shaping and no bidi, and only in the Basic
 * Multilingual Plane. So every character is drawn as '?' and counted in
 * stats.undrawable when the font has no glyph for it (erpq_ttf_cover reads
 * the font's cmap: Devanagari, CJK, emoji... in DejaVu Sans), when it is
 * above U+FFFF, or when its script needs shaping or right-to-left layout
 * (Hebrew, Arabic, Syriac, Thaana, N'Ko, the Indic scripts, Thai, Lao,
 * Tibetan, Myanmar, Khmer, Mongolian and the Arabic/Hebrew presentation
 * forms): DejaVu has Arabic and Hebrew glyphs, but drawn one by one left
 * to right they spell the name backwards and unjoined, which is worse than
 * a visible '?'. U+FFFD (from repaired UTF-8) is also drawn as '?'.
 * Control characters become spaces.
 *
 * Layout: A4, landscape unless opts.pdf_orientation or the auto rule
 * (portrait for 5 columns or fewer, e.g. the fee statement) says
 * otherwise. Column widths are fixed at open from the columns' weights (a
 * PDF is written top to bottom, so the data cannot size them). Every page
 * has the school name, the title, the period and the generation text at
 * the top, then the column header row; "Page N of M" is drawn at the
 * bottom of every page at finish(), when M is known (libharu keeps every
 * page's content stream in memory, so earlier pages can still be drawn
 * on). A cell wider than its column is cut and ends in "…" (text) or drawn
 * in a smaller size (numbers, down to 4 pt, so an amount is never cut).
 * Widths are measured with libharu (HPDF_Font_TextWidth,
 * HPDF_Font_GetUnicodeWidth). Money is shown in display form
 * (erpq_money_display), dates as YYYY-MM-DD.
 *
 * Memory: libharu holds the whole document until HPDF_SaveToFile(), about
 * 1 KiB per row (README.md has the measurements), so the number of rows is
 * capped by opts.pdf_max_rows (ERPQ_RW_PDF_MAX_ROWS by default): a report
 * with opts.expected_rows above the cap is refused at open, and the row
 * past the cap is refused with -E2BIG, long before the process could be
 * killed for its memory.
 *
 * Errors: an error handler is installed with HPDF_New (libharu without one
 * prints nothing and only records the error; the classic libharu examples
 * longjmp from theirs); it records the first error, and every call's status
 * or handle is checked, so the first failure fails the writer with
 * libharu's error number in the message.
 */
#include <hpdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erpq_err.h"
#include "erpq_report_internal.h"
#include "erpq_report_text.h"
#include "erpq_ttf_cover.h"

#define DEJAVU_DIR "/usr/share/fonts/truetype/dejavu/"
#define MARGIN 28.0f
#define BODY_SIZE 8.0f
#define ROW_H 11.0f
#define PAD 2.5f
#define MIN_NUM_SIZE 4.0f

typedef struct pdf_impl {
  HPDF_Doc doc;
  HPDF_Font reg, bold;
  erpq_ttf_cover *cov_reg, *cov_bold;
  HPDF_STATUS hpdf_err, hpdf_detail;
  HPDF_Page *pages;
  size_t npages, cap;
  HPDF_Page page;
  float pw, ph;   /* page size */
  float *colx;    /* left edge of each column, ncols + 1 entries */
  float y;        /* baseline of the next row on the current page */
  float bottom;   /* lowest baseline allowed */
  uint64_t drawn; /* data rows on pages, for zebra shading */
  int totals_started;
  erpq_buf line; /* cleaned text of one cell */
  char *scratch; /* ellipsised text */
  size_t scratch_cap;
} pdf_impl;

static void on_hpdf_error(HPDF_STATUS error_no, HPDF_STATUS detail_no, void *user_data) {
  pdf_impl *p = user_data;
  if (!p->hpdf_err) {
    p->hpdf_err = error_no;
    p->hpdf_detail = detail_no;
  }
}

/* The failure of a libharu call: its recorded error, or the status. */
static int hfail(pdf_impl *p, HPDF_STATUS st, const char *what, char *err, size_t errlen) {
  HPDF_STATUS e = p->hpdf_err ? p->hpdf_err : st;
  return erpq_fail(err, errlen, e == HPDF_FAILD_TO_ALLOC_MEM ? -ENOMEM : -EIO,
                   "PDF: libharu error 0x%04X (detail %u) while %s", (unsigned)e,
                   (unsigned)p->hpdf_detail, what);
}

#define CK(call, what)                                                                             \
  do {                                                                                             \
    HPDF_STATUS st_ = (call);                                                                      \
    if (st_ != HPDF_OK || p->hpdf_err)                                                             \
      return hfail(p, st_, what, err, errlen);                                                     \
  } while (0)

/* Scripts libharu cannot lay out: right-to-left or needing shaping. */
static int needs_shaping(uint32_t cp) {
  return (cp >= 0x0590 && cp <= 0x08FF) || (cp >= 0x0900 && cp <= 0x0DFF) ||
         (cp >= 0x0E00 && cp <= 0x0FFF) || (cp >= 0x1000 && cp <= 0x109F) ||
         (cp >= 0x1780 && cp <= 0x18AF) || (cp >= 0xA8E0 && cp <= 0xA8FF) ||
         (cp >= 0xFB1D && cp <= 0xFDFF) || (cp >= 0xFE70 && cp <= 0xFEFF) ||
         (cp >= 0x200E && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

/* Appends s to p->line with what cannot be drawn by cover replaced;
 * returns the number of replacements. */
static uint64_t clean(pdf_impl *p, const erpq_ttf_cover *cover, const char *s) {
  uint64_t bad = 0;
  size_t n = strlen(s), i = 0;
  erpq_buf_reset(&p->line);
  while (i < n) {
    uint32_t cp;
    int ill;
    size_t k = erpq_utf8_decode(s + i, n - i, &cp, &ill);
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) {
      erpq_buf_add(&p->line, " ", 1);
    } else if (ill || cp == 0xFFFD || cp > 0xFFFF || needs_shaping(cp) ||
               !erpq_ttf_has(cover, cp)) {
      erpq_buf_add(&p->line, "?", 1);
      bad++;
    } else {
      erpq_buf_add(&p->line, s + i, k);
    }
    i += k;
  }
  erpq_buf_add(&p->line, "", 0);
  return bad;
}

static float text_width(HPDF_Font f, const char *s, size_t n, float size) {
  HPDF_TextWidth tw = HPDF_Font_TextWidth(f, (const HPDF_BYTE *)s, (HPDF_UINT)n);
  return (float)tw.width * size / 1000.0f;
}

/* Draws the clean text s in the cell [x, x + width) at baseline y inside
 * a text object. Text is cut with an ellipsis; numbers shrink. */
static int draw_fit(pdf_impl *p, HPDF_Font f, float size, float x, float width, float y,
                    const char *s, int right, int numeric, char *err, size_t errlen) {
  size_t n = strlen(s);
  float avail = width - 2 * PAD;
  if (n == 0 || avail <= 0)
    return 0;
  float tw = text_width(f, s, n, size);
  float sz = size;
  const char *out = s;
  if (tw > avail && numeric) {
    sz = size * avail / tw;
    if (sz < MIN_NUM_SIZE)
      sz = MIN_NUM_SIZE;
    tw = text_width(f, s, n, sz);
  } else if (tw > avail) {
    static const char ELLIPSIS[] = "\xE2\x80\xA6";
    float ew = (float)HPDF_Font_GetUnicodeWidth(f, 0x2026) * size / 1000.0f;
    float used = 0;
    size_t i = 0, cut = 0;
    while (i < n) {
      uint32_t cp;
      int ill;
      size_t k = erpq_utf8_decode(s + i, n - i, &cp, &ill);
      float cw = (float)HPDF_Font_GetUnicodeWidth(f, (HPDF_UNICODE)cp) * size / 1000.0f;
      if (used + cw + ew > avail)
        break;
      used += cw;
      i += k;
      cut = i;
    }
    if (cut + sizeof ELLIPSIS > p->scratch_cap) {
      char *ns = realloc(p->scratch, cut + sizeof ELLIPSIS);
      if (!ns)
        return erpq_fail(err, errlen, -ENOMEM, "out of memory");
      p->scratch = ns;
      p->scratch_cap = cut + sizeof ELLIPSIS;
    }
    memcpy(p->scratch, s, cut);
    memcpy(p->scratch + cut, ELLIPSIS, sizeof ELLIPSIS);
    out = p->scratch;
    tw = used + ew;
  }
  CK(HPDF_Page_SetFontAndSize(p->page, f, sz), "setting the font");
  float tx = right ? x + width - PAD - tw : x + PAD;
  CK(HPDF_Page_TextOut(p->page, tx, y, out), "drawing text");
  return 0;
}

/* The cell's text (display form) into buf, or the text pointer itself. */
static const char *cell_text(erpq_rw *w, size_t c, const erpq_cell *v, char *buf, size_t len) {
  switch (w->cols[c].type) {
  case ERPQ_RCOL_TEXT: return v->text;
  case ERPQ_RCOL_INT: snprintf(buf, len, "%lld", (long long)v->num); return buf;
  case ERPQ_RCOL_MONEY: erpq_money_display(v->num, &w->cur, w->indian, buf); return buf;
  case ERPQ_RCOL_DATE: snprintf(buf, len, "%04d-%02d-%02d", v->t.y, v->t.m, v->t.d); return buf;
  case ERPQ_RCOL_DATETIME:
    snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d", v->t.y, v->t.m, v->t.d, v->t.hh, v->t.mi,
             v->t.ss);
    return buf;
  }
  return "";
}

static int is_numeric(const erpq_rw *w, size_t c) {
  return w->cols[c].type == ERPQ_RCOL_INT || w->cols[c].type == ERPQ_RCOL_MONEY;
}

static int rule(pdf_impl *p, float y, float lw, char *err, size_t errlen) {
  CK(HPDF_Page_SetLineWidth(p->page, lw), "drawing a rule");
  CK(HPDF_Page_MoveTo(p->page, MARGIN, y), "drawing a rule");
  CK(HPDF_Page_LineTo(p->page, p->pw - MARGIN, y), "drawing a rule");
  CK(HPDF_Page_Stroke(p->page), "drawing a rule");
  return 0;
}

/* A line of page-header text, cleaned, at (x, y); right-aligned to x when
 * right is set (1); 2: alone on its line (the school, the title), so it
 * may take the page's whole width; else half of it. */
static int head_text(erpq_rw *w, HPDF_Font f, const erpq_ttf_cover *cov, float size, float x,
                     float y, const char *s, int right, char *err, size_t errlen) {
  pdf_impl *p = w->impl;
  clean(p, cov, s); /* page furniture: not counted, the same on every page */
  float width = right == 2 ? p->pw - 2 * MARGIN : p->pw / 2 - MARGIN;
  right = right == 1;
  return draw_fit(p, f, size, right ? x - width : x, width + PAD, y, p->line.s, right, 0, err,
                  errlen);
}

static int new_page(erpq_rw *w, char *err, size_t errlen) {
  pdf_impl *p = w->impl;
  int rc;
  if (p->npages == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    HPDF_Page *n = realloc(p->pages, cap * sizeof *n);
    if (!n)
      return erpq_fail(err, errlen, -ENOMEM, "out of memory");
    p->pages = n;
    p->cap = cap;
  }
  p->page = HPDF_AddPage(p->doc);
  if (!p->page)
    return hfail(p, HPDF_OK, "adding a page", err, errlen);
  p->pages[p->npages++] = p->page;
  int landscape = p->pw > p->ph;
  CK(HPDF_Page_SetSize(p->page, HPDF_PAGE_SIZE_A4,
                       landscape ? HPDF_PAGE_LANDSCAPE : HPDF_PAGE_PORTRAIT),
     "sizing a page");
  float top = p->ph - MARGIN;
  CK(HPDF_Page_BeginText(p->page), "starting text");
  if ((rc = head_text(w, p->bold, p->cov_bold, 12, MARGIN, top - 12, w->meta.school, 2, err,
                      errlen)) < 0 ||
      (rc = head_text(w, p->bold, p->cov_bold, 10, MARGIN, top - 26, w->meta.title, 2, err,
                      errlen)) < 0 ||
      (rc = head_text(w, p->reg, p->cov_reg, 8, MARGIN, top - 38, w->meta.period, 0, err, errlen)) <
          0 ||
      (rc = head_text(w, p->reg, p->cov_reg, 8, p->pw - MARGIN, top - 38, w->meta.generated, 1, err,
                      errlen)) < 0)
    return rc;
  float hy = top - 54;
  for (size_t c = 0; c < w->ncols; c++) {
    clean(p, p->cov_bold, w->headers[c]);
    if ((rc = draw_fit(p, p->bold, BODY_SIZE, p->colx[c], p->colx[c + 1] - p->colx[c], hy,
                       p->line.s, is_numeric(w, c), 0, err, errlen)) < 0)
      return rc;
  }
  CK(HPDF_Page_EndText(p->page), "ending text");
  if ((rc = rule(p, hy - 3.5f, 0.6f, err, errlen)) < 0)
    return rc;
  p->y = hy - ROW_H - 1;
  return 0;
}

/* Makes room for one more line; a new page when the current one is full. */
static int room(erpq_rw *w, char *err, size_t errlen) {
  pdf_impl *p = w->impl;
  if (p->page && p->y >= p->bottom)
    return 0;
  return new_page(w, err, errlen);
}

static int pdf_row(erpq_rw *w, const erpq_cell *cells, char *err, size_t errlen) {
  pdf_impl *p = w->impl;
  int rc;
  if (w->st.rows >= w->opts.pdf_max_rows)
    return erpq_fail(err, errlen, -E2BIG,
                     "PDF: a report holds at most %u rows (the whole document stays in memory "
                     "until it is saved); use CSV or XLSX for this one",
                     (unsigned)w->opts.pdf_max_rows);
  if ((rc = room(w, err, errlen)) < 0)
    return rc;
  if (!w->opts.pdf_no_zebra && (p->drawn & 1)) {
    CK(HPDF_Page_SetRGBFill(p->page, 0.93f, 0.94f, 0.96f), "shading a row");
    CK(HPDF_Page_Rectangle(p->page, MARGIN, p->y - 3, p->pw - 2 * MARGIN, ROW_H), "shading a row");
    CK(HPDF_Page_Fill(p->page), "shading a row");
    CK(HPDF_Page_SetRGBFill(p->page, 0, 0, 0), "shading a row");
  }
  CK(HPDF_Page_BeginText(p->page), "starting text");
  for (size_t c = 0; c < w->ncols; c++) {
    if (cells[c].null)
      continue;
    char buf[ERPQ_MONEY_BUF + 16];
    const char *s = cell_text(w, c, &cells[c], buf, sizeof buf);
    w->st.undrawable += clean(p, p->cov_reg, s);
    if ((rc = draw_fit(p, p->reg, BODY_SIZE, p->colx[c], p->colx[c + 1] - p->colx[c], p->y,
                       p->line.s, is_numeric(w, c), is_numeric(w, c), err, errlen)) < 0)
      return rc;
  }
  CK(HPDF_Page_EndText(p->page), "ending text");
  if (p->line.oom)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  p->y -= ROW_H;
  p->drawn++;
  return 0;
}

static int pdf_total(erpq_rw *w, const erpq_rtl *t, char *err, size_t errlen) {
  pdf_impl *p = w->impl;
  int rc;
  if (!p->totals_started) {
    p->totals_started = 1;
    p->y -= ROW_H / 2;
    if ((rc = room(w, err, errlen)) < 0)
      return rc;
    if ((rc = rule(p, p->y + ROW_H - 2, 0.6f, err, errlen)) < 0)
      return rc;
  } else if ((rc = room(w, err, errlen)) < 0) {
    return rc;
  }
  /* The label spans the columns up to the first one with a value. */
  size_t span = 1;
  while (span < w->ncols && t->kind[span] == ERPQ_RTL_NONE)
    span++;
  CK(HPDF_Page_BeginText(p->page), "starting text");
  w->st.undrawable += clean(p, p->cov_bold, t->label);
  if ((rc = draw_fit(p, p->bold, BODY_SIZE, p->colx[0], p->colx[span] - p->colx[0], p->y, p->line.s,
                     0, 0, err, errlen)) < 0)
    return rc;
  for (size_t c = 1; c < w->ncols; c++) {
    if (t->kind[c] == ERPQ_RTL_NONE)
      continue;
    char buf[ERPQ_MONEY_BUF + 16];
    erpq_cell v = erpq_cell_int(t->value[c]);
    clean(p, p->cov_bold, cell_text(w, c, &v, buf, sizeof buf));
    if ((rc = draw_fit(p, p->bold, BODY_SIZE, p->colx[c], p->colx[c + 1] - p->colx[c], p->y,
                       p->line.s, 1, 1, err, errlen)) < 0)
      return rc;
  }
  CK(HPDF_Page_EndText(p->page), "ending text");
  p->y -= ROW_H;
  return 0;
}

static int pdf_finish(erpq_rw *w, char *err, size_t errlen) {
  pdf_impl *p = w->impl;
  int rc;
  if (!p->page && (rc = new_page(w, err, errlen)) < 0) /* an empty report: one page */
    return rc;
  for (size_t i = 0; i < p->npages; i++) {
    char txt[64];
    snprintf(txt, sizeof txt, "Page %zu of %zu", i + 1, p->npages);
    p->page = p->pages[i];
    float tw = text_width(p->reg, txt, strlen(txt), BODY_SIZE);
    CK(HPDF_Page_BeginText(p->page), "numbering pages");
    CK(HPDF_Page_SetFontAndSize(p->page, p->reg, BODY_SIZE), "numbering pages");
    CK(HPDF_Page_TextOut(p->page, (p->pw - tw) / 2, MARGIN - 6, txt), "numbering pages");
    CK(HPDF_Page_EndText(p->page), "numbering pages");
  }
  CK(HPDF_SaveToFile(p->doc, w->dest.path), "saving the document");
  struct stat sb;
  if (stat(w->dest.path, &sb) < 0)
    return erpq_fail(err, errlen, -errno, "PDF: the saved file cannot be read");
  w->st.bytes = (uint64_t)sb.st_size;
  w->st.pages = (uint32_t)p->npages;
  return 0;
}

static void pdf_destroy(erpq_rw *w) {
  pdf_impl *p = w->impl;
  if (!p)
    return;
  if (p->doc)
    HPDF_Free(p->doc);
  free(p->cov_reg);
  free(p->cov_bold);
  free(p->pages);
  free(p->colx);
  free(p->scratch);
  erpq_buf_free(&p->line);
  free(p);
  w->impl = NULL;
}

static const erpq_rw_ops PDF_OPS = {pdf_row, pdf_total, pdf_finish, pdf_destroy};

static unsigned default_weight(erpq_rcol_type t) {
  switch (t) {
  case ERPQ_RCOL_TEXT: return 6;
  case ERPQ_RCOL_INT: return 2;
  case ERPQ_RCOL_MONEY: return 4;
  case ERPQ_RCOL_DATE: return 3;
  case ERPQ_RCOL_DATETIME: return 5;
  }
  return 4;
}

/* Loads a TTF for UTF-8 text and its glyph cover. */
static int load_font(pdf_impl *p, const char *path, HPDF_Font *font, erpq_ttf_cover **cov,
                     char *err, size_t errlen) {
  if (!(*cov = malloc(sizeof **cov)))
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  int rc = erpq_ttf_cover_load(path, *cov, err, errlen);
  if (rc < 0)
    return rc;
  const char *name = HPDF_LoadTTFontFromFile(p->doc, path, HPDF_TRUE);
  if (!name)
    return hfail(p, HPDF_OK, "loading a font", err, errlen);
  *font = HPDF_GetFont(p->doc, name, "UTF-8");
  if (!*font)
    return hfail(p, HPDF_OK, "selecting a font", err, errlen);
  return 0;
}

/* Document info strings: PDFDocEncoding, so non-ASCII becomes '?'. */
static int set_info(pdf_impl *p, HPDF_InfoType type, const char *s, char *err, size_t errlen) {
  char buf[256];
  size_t n = 0;
  for (size_t i = 0; s[i] && n < sizeof buf - 1; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80 && (c & 0xC0) == 0x80)
      continue; /* continuation byte: the '?' was written for the lead */
    buf[n++] = c >= 0x20 && c < 0x7F ? (char)c : '?';
  }
  buf[n] = '\0';
  CK(HPDF_SetInfoAttr(p->doc, type, buf), "setting document info");
  return 0;
}

int erpq_rw_pdf_init(erpq_rw *w, char *err, size_t errlen) {
  if (w->opts.expected_rows > w->opts.pdf_max_rows)
    return erpq_fail(err, errlen, -E2BIG,
                     "PDF: %llu rows expected, a report holds at most %u (the whole document "
                     "stays in memory until it is saved); use CSV or XLSX",
                     (unsigned long long)w->opts.expected_rows, (unsigned)w->opts.pdf_max_rows);
  pdf_impl *p = calloc(1, sizeof *p);
  if (!p)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  w->impl = p;
  w->ops = &PDF_OPS;
  if (!(p->colx = calloc(w->ncols + 1, sizeof *p->colx)))
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  p->doc = HPDF_New(on_hpdf_error, p);
  if (!p->doc)
    return erpq_fail(err, errlen, -ENOMEM, "PDF: creating the document failed");
  int rc;
  CK(HPDF_SetCompressionMode(p->doc, HPDF_COMP_ALL), "setting compression");
  CK(HPDF_UseUTFEncodings(p->doc), "enabling UTF-8");
  const char *reg = w->opts.font_regular ? w->opts.font_regular : DEJAVU_DIR "DejaVuSans.ttf";
  const char *bold = w->opts.font_bold ? w->opts.font_bold : DEJAVU_DIR "DejaVuSans-Bold.ttf";
  if ((rc = load_font(p, reg, &p->reg, &p->cov_reg, err, errlen)) < 0 ||
      (rc = load_font(p, bold, &p->bold, &p->cov_bold, err, errlen)) < 0 ||
      (rc = set_info(p, HPDF_INFO_TITLE, w->meta.title, err, errlen)) < 0 ||
      (rc = set_info(p, HPDF_INFO_AUTHOR, w->meta.school, err, errlen)) < 0 ||
      (rc = set_info(p, HPDF_INFO_CREATOR, "erpq", err, errlen)) < 0)
    return rc;

  int landscape = w->opts.pdf_orientation == 2 || (w->opts.pdf_orientation == 0 && w->ncols > 5);
  float a4w = 595.276f, a4h = 841.89f;
  p->pw = landscape ? a4h : a4w;
  p->ph = landscape ? a4w : a4h;
  p->bottom = MARGIN + 14;
  unsigned total = 0;
  for (size_t c = 0; c < w->ncols; c++)
    total += w->cols[c].pdf_weight ? w->cols[c].pdf_weight : default_weight(w->cols[c].type);
  float avail = p->pw - 2 * MARGIN, x = MARGIN;
  unsigned acc = 0;
  for (size_t c = 0; c < w->ncols; c++) {
    p->colx[c] = x + avail * (float)acc / (float)total;
    acc += w->cols[c].pdf_weight ? w->cols[c].pdf_weight : default_weight(w->cols[c].type);
  }
  p->colx[w->ncols] = MARGIN + avail;
  return 0;
}
