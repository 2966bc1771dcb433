/*
 * erpq_report_internal.h - what the writer front (erpq_report_writer.c)
 * shares with the three format back ends (erpq_report_csv.c, _xlsx.c,
 * _pdf.c). Not for callers.
 *
 * The front validates every call, repairs text, keeps the sums and the
 * state machine; a back end only turns already-checked rows and resolved
 * total lines into bytes. Back ends see:
 *  - cells whose TEXT is well-formed UTF-8 (NULL text: empty), dates in
 *    range, and whose null flag is authoritative;
 *  - total lines with, per column, what to show (erpq_rtl_kind) and the
 *    int64 value.
 * A back end's functions return 0 or a negative code with a message; the
 * front turns any failure into the FAILED state. destroy() frees the back
 * end's state whatever happened (it must not create the output file);
 * finish() produces the output (called once, only if nothing failed).
 */
#ifndef ERPQ_REPORT_INTERNAL_H
#define ERPQ_REPORT_INTERNAL_H

#include "erpq_buf.h"
#include "erpq_money.h"
#include "erpq_report_writer.h"

typedef enum { ERPQ_RTL_NONE, ERPQ_RTL_SUM, ERPQ_RTL_VALUE } erpq_rtl_kind;

typedef struct erpq_rtl {
  const char *label;         /* well-formed UTF-8 */
  int group_col;             /* -1 or a GROUP column */
  const char *group_value;   /* well-formed UTF-8 with group_col */
  const erpq_rtl_kind *kind; /* per column */
  const int64_t *value;      /* per column, where kind != NONE */
} erpq_rtl;

typedef struct erpq_rw_ops {
  int (*row)(erpq_rw *w, const erpq_cell *cells, char *err, size_t errlen);
  int (*total)(erpq_rw *w, const erpq_rtl *t, char *err, size_t errlen);
  int (*finish)(erpq_rw *w, char *err, size_t errlen);
  void (*destroy)(erpq_rw *w);
} erpq_rw_ops;

struct erpq_rw {
  const erpq_rw_ops *ops;
  void *impl; /* the back end's state, freed by ops->destroy */
  erpq_rformat format;
  size_t ncols;
  erpq_rcol *cols; /* copies; titles owned */
  char **headers;  /* display titles ("Amount (INR)"), owned */
  erpq_rmeta meta; /* copies, owned (never NULL: "" when not given) */
  erpq_ropts opts; /* copies; string options owned */
  erpq_rdest dest; /* path owned */
  erpq_currency cur;
  int indian; /* Indian digit grouping for display */
  erpq_rstats st;
  /* private to the front */
  int state;
  int failed_code;
  int64_t *sums;              /* per column */
  struct erpq_rgroup *groups; /* per column, NULL unless GROUP */
  erpq_buf scratch;           /* repaired text of the current row */
  erpq_cell *clean;           /* the current row as the back end sees it */
};

/* Back-end constructors: fill w->ops and w->impl. Called by the front
 * after w is complete (columns, meta, options). */
int erpq_rw_csv_init(erpq_rw *w, char *err, size_t errlen);
int erpq_rw_xlsx_init(erpq_rw *w, char *err, size_t errlen);
int erpq_rw_pdf_init(erpq_rw *w, char *err, size_t errlen);

#endif
