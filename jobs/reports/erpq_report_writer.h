/*
 * erpq_report_writer.h - turns report rows into CSV, XLSX or PDF.
 *
 * The reports job family (SQL, jobs, upload) feeds rows it reads from MySQL
 * into one writer and uploads what comes out. The writer knows nothing of
 * fees: a report is a list of typed columns, metadata, data rows and
 * labelled total lines. The three school reports map onto it as
 *   fee collection: paid at (DATETIME, school's local time), receipt,
 *     admission no., student, class, fee head, period, method (TEXT, GROUP),
 *     amount (MONEY, SUM); total lines "Total (UPI)" grouped by method,
 *     then "Grand total";
 *   defaulters: admission no., student, class, parent name, parent phone
 *     (TEXT), overdue fees (INT, SUM), oldest due date (DATE), days overdue
 *     (INT), outstanding (MONEY, SUM); one "Total" line;
 *   fee statement: date (DATE), description (TEXT), debit, credit (MONEY,
 *     SUM), balance (MONEY, running, no SUM); a "Total" line whose balance
 *     value (the closing balance) the caller gives.
 *
 * Life cycle (one writer, one thread; no function here is shared-state):
 *
 *   erpq_rw_open() -> OPEN --row()*--> OPEN --total()*--> TOTALS --close()
 *                       \___________ any error: FAILED ______/
 *
 * row() is refused once a total line was written. After any error the
 * writer is FAILED: every later call answers the same error code at once,
 * and only erpq_rw_close() (which then frees and reports failure) or
 * erpq_rw_abort() remain useful. close() and abort() always free the writer.
 *
 * Outputs:
 *  - CSV streams: bytes go to the caller's sink AS ROWS ARRIVE, through a
 *    small internal buffer (opts.csv_buffer, 16 KiB by default), so a CSV of
 *    any size needs constant memory; the sink may be an S3 multipart upload.
 *    A sink that returns < 0 fails the writer with that code.
 *  - XLSX and PDF are files at a caller-given path: their libraries
 *    assemble the document at close (libxlsxwriter from per-sheet temp
 *    files in constant_memory mode, libharu from memory), and the caller
 *    uploads the file after close() succeeds. The writer creates the file
 *    only in close(); if close() fails the partial file is removed. A
 *    writer aborted before close() creates nothing.
 *
 * Cells: one erpq_cell per column, its meaning chosen by the column type
 * (TEXT: text, INT/MONEY: num, DATE/DATETIME: t); null = 1 (or a TEXT cell
 * whose text is NULL) is an empty cell. Text must be UTF-8; ill-formed bytes
 * are replaced by U+FFFD (counted in stats.repaired), never passed through.
 * MONEY is int64 minor units of meta.currency (ISO 4217; erpq_money.h has
 * the exponents). DATETIME is local time already converted to the school's
 * time zone by the caller (core/erpq_tz.h); the writers never shift it.
 * Dates are checked (month 1-12, the month's days, year 1-9999, h:m:s in
 * range): a bad one fails the writer (ERPQ_E_ARG). Pointers in a cell are
 * borrowed for the duration of the call only.
 *
 * Totals: a column flagged ERPQ_RCOL_SUM (INT or MONEY) is summed by the
 * writer itself as rows pass, in int64 with overflow checks. A total line
 * has a label (written in the first column, which must not be a SUM
 * column) and covers either all rows (group_col = -1) or the rows whose
 * ERPQ_RCOL_GROUP column equals group_value byte for byte. The writer
 * tracks the sums of up to ERPQ_RW_MAX_GROUPS distinct values per GROUP
 * column. For each SUM column the line shows the writer's own sum; a value
 * the caller gives in values[] for a SUM column must equal it (or the
 * writer fails with ERPQ_E_ARG: a report whose totals disagree with its
 * rows is worse than none); for a group whose sums were not tracked (too
 * many distinct values) the caller's value is used as is. Non-SUM INT and
 * MONEY columns show the caller's value if given (the statement's closing
 * balance), nothing otherwise. XLSX writes SUM columns of total lines as
 * formulas (SUM, or SUMPRODUCT(--EXACT()) for a group) over the data rows
 * of every sheet, with the writer's sum as the cached result.
 *
 * Ownership: open() copies everything it is given (columns, titles,
 * metadata, options, path); nothing passed in needs to outlive the call.
 * The sink's ud is borrowed until close()/abort() returns.
 *
 * Errors: functions return 0 or a negative code (-errno, ERPQ_E_*) and write
 * one sentence into err; messages name columns and rows by position and
 * title, never the cell contents (which are personal data).
 */
#ifndef ERPQ_REPORT_WRITER_H
#define ERPQ_REPORT_WRITER_H

#include <stddef.h>
#include <stdint.h>

/* Up to this many distinct values per GROUP column are summed. */
#define ERPQ_RW_MAX_GROUPS 64
/* Columns per report. */
#define ERPQ_RW_MAX_COLS 64
/* Default limit of data rows of a PDF (see README.md for the memory it
 * takes: libharu holds the whole document until it is saved). */
#define ERPQ_RW_PDF_MAX_ROWS 200000u
/* Excel's last row is 1,048,576; one is the header. */
#define ERPQ_RW_XLSX_MAX_ROWS_PER_SHEET 1048575u

typedef enum erpq_rformat { ERPQ_RFORMAT_CSV, ERPQ_RFORMAT_XLSX, ERPQ_RFORMAT_PDF } erpq_rformat;

typedef enum erpq_rcol_type {
  ERPQ_RCOL_TEXT,
  ERPQ_RCOL_INT,
  ERPQ_RCOL_MONEY,    /* int64 minor units of meta.currency */
  ERPQ_RCOL_DATE,     /* y, m, d */
  ERPQ_RCOL_DATETIME, /* local y-m-d h:m:s */
} erpq_rcol_type;

/* Column flags. */
#define ERPQ_RCOL_SUM 1u   /* INT/MONEY: summed in total lines */
#define ERPQ_RCOL_GROUP 2u /* TEXT: total lines may cover one of its values */

typedef struct erpq_rcol {
  const char *title; /* UTF-8; MONEY columns get " (INR)" appended */
  erpq_rcol_type type;
  unsigned flags;
  unsigned pdf_weight; /* relative PDF column width; 0: by type */
} erpq_rcol;

typedef struct erpq_rtime {
  int y, m, d;    /* DATE and DATETIME */
  int hh, mi, ss; /* DATETIME only */
} erpq_rtime;

typedef struct erpq_cell {
  int null;         /* non-zero: empty cell */
  const char *text; /* TEXT (NULL: empty) */
  int64_t num;      /* INT; MONEY in minor units */
  erpq_rtime t;     /* DATE, DATETIME */
} erpq_cell;

static inline erpq_cell erpq_cell_null(void) { return (erpq_cell){.null = 1}; }
static inline erpq_cell erpq_cell_text(const char *s) { return (erpq_cell){.text = s}; }
static inline erpq_cell erpq_cell_int(int64_t v) { return (erpq_cell){.num = v}; }
static inline erpq_cell erpq_cell_money(int64_t minor) { return (erpq_cell){.num = minor}; }
static inline erpq_cell erpq_cell_date(int y, int m, int d) {
  return (erpq_cell){.t = {y, m, d, 0, 0, 0}};
}
static inline erpq_cell erpq_cell_datetime(int y, int m, int d, int hh, int mi, int ss) {
  return (erpq_cell){.t = {y, m, d, hh, mi, ss}};
}

typedef struct erpq_rmeta {
  const char *school;    /* "Green Valley School" */
  const char *title;     /* "Fee collection" */
  const char *period;    /* "1 Apr 2024 - 31 Mar 2025" (caller's text) */
  const char *generated; /* "Generated 2 Apr 2025 10:15 IST" (caller's text) */
  const char *currency;  /* ISO 4217, e.g. "INR" (required) */
  const char *locale;    /* BCP 47, e.g. "en-IN" (NULL: "en") */
} erpq_rmeta;

/* Options; all-zero means the defaults. */
typedef struct erpq_ropts {
  int csv_no_bom;               /* 1: no UTF-8 BOM at the start of a CSV */
  size_t csv_buffer;            /* bytes buffered before the sink; 0: 16384 */
  uint32_t xlsx_rows_per_sheet; /* data rows per sheet; 0: 1,048,575 (max) */
  const char *tmpdir;           /* libxlsxwriter temp files; NULL: tmpfile() */
  uint32_t pdf_max_rows;        /* 0: ERPQ_RW_PDF_MAX_ROWS */
  uint64_t expected_rows;       /* 0: unknown; else a PDF above the limit is
                                   refused at open */
  const char *font_regular;     /* TTF; NULL: DejaVu Sans (Debian path) */
  const char *font_bold;        /* TTF; NULL: DejaVu Sans Bold */
  int pdf_orientation;          /* 0: auto (portrait for <= 5 columns),
                                   1: portrait, 2: landscape */
  int pdf_no_zebra;             /* 1: no shading of every other row */
} erpq_ropts;

/* Reads options from configuration through the caller's lookup:
 * ERPQ_REPORT_CSV_BOM (0/1), ERPQ_REPORT_CSV_BUFFER, ERPQ_REPORT_XLSX_ROWS_PER_SHEET,
 * ERPQ_REPORT_TMPDIR, ERPQ_REPORT_PDF_MAX_ROWS, ERPQ_REPORT_FONT_REGULAR,
 * ERPQ_REPORT_FONT_BOLD. Unset names keep what *o holds. String options
 * point into get()'s answers, which must outlive *o (or until the open()
 * that copies them). Returns 0 or -EINVAL naming the bad setting. */
int erpq_ropts_from_config(erpq_ropts *o, const char *(*get)(void *ud, const char *name), void *ud,
                           char *err, size_t errlen);

/* The CSV sink: takes len > 0 bytes; returns 0, or < 0 to fail the writer. */
typedef int (*erpq_rw_write_fn)(void *ud, const void *buf, size_t len);

typedef struct erpq_rdest {
  erpq_rw_write_fn write; /* CSV */
  void *ud;               /* CSV: passed to write */
  const char *path;       /* XLSX, PDF: the file to create at close */
} erpq_rdest;

typedef struct erpq_rtotal {
  const char *label;       /* "Grand total", "Total (UPI)" */
  int group_col;           /* -1: all rows; else the index of a GROUP column */
  const char *group_value; /* with group_col: the rows whose cell equals this */
  const erpq_cell *values; /* NULL, or one cell per column (see above) */
} erpq_rtotal;

typedef struct erpq_rstats {
  uint64_t rows;       /* data rows written */
  uint64_t bytes;      /* CSV: bytes given to the sink; XLSX/PDF: file size */
  uint64_t repaired;   /* ill-formed UTF-8 sequences replaced by U+FFFD */
  uint64_t undrawable; /* PDF: characters drawn as '?' (no glyph, or a
                          script libharu cannot shape) */
  uint64_t truncated;  /* XLSX: text cells cut to 32,767 characters */
  uint32_t pages;      /* PDF */
  uint32_t sheets;     /* XLSX */
} erpq_rstats;

typedef struct erpq_rw erpq_rw;

/* Creates a writer. ncols 1..ERPQ_RW_MAX_COLS. dest->write for CSV,
 * dest->path for XLSX and PDF. Returns 0 (*out set) or a negative code. */
int erpq_rw_open(erpq_rw **out, erpq_rformat format, const erpq_rdest *dest, const erpq_rcol *cols,
                 size_t ncols, const erpq_rmeta *meta, const erpq_ropts *opts, char *err,
                 size_t errlen);

/* Writes one data row of ncols cells. */
int erpq_rw_row(erpq_rw *w, const erpq_cell *cells, char *err, size_t errlen);

/* Writes one total line (the first one is preceded by a gap). */
int erpq_rw_total(erpq_rw *w, const erpq_rtotal *t, char *err, size_t errlen);

/* Finishes the output (flushes the CSV; assembles and saves XLSX/PDF),
 * fills *stats (may be NULL) and frees w. Returns 0 or the error. */
int erpq_rw_close(erpq_rw *w, erpq_rstats *stats, char *err, size_t errlen);

/* Frees w without finishing (a CSV sink gets nothing more; no XLSX/PDF file
 * is created). NULL is a no-op. */
void erpq_rw_abort(erpq_rw *w);

/* Stats so far (rows, bytes for CSV, repaired...); for monitoring. */
void erpq_rw_stats(const erpq_rw *w, erpq_rstats *stats);

const char *erpq_rformat_name(erpq_rformat f);

#endif
