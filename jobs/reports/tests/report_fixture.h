/*
 * report_fixture.h - test data for the report writer tests, and the glue
 * that hands outputs to the Python checkers (tests/check_*.py).
 *
 * The data is a fee-collection report made up deterministically from a row
 * index: names in many scripts and the nasty cases (formula-like text,
 * commas, quotes, newlines, invalid UTF-8), amounts including refunds
 * (negative) and empty cells. The checkers get the INPUT (rf_dump: the
 * columns, the currency and every cell as a JSON value) and compute what
 * the output must hold themselves; nothing expected is computed by the code
 * under test.
 *
 * All functions run in the test's process; strings returned are static or
 * owned by the rf_row they sit in.
 */
#ifndef REPORT_FIXTURE_H
#define REPORT_FIXTURE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "erpq_report_writer.h"

/* Fee collection columns: paid at, receipt, admission no., student, class,
 * fee head, period, method (GROUP), amount (MONEY, SUM). */
#define RF_NCOLS 9
#define RF_COL_METHOD 7
#define RF_COL_AMOUNT 8
extern const erpq_rcol RF_COLS[RF_NCOLS];
extern const char *const RF_METHODS[5];

/* The names used, in order (row i uses RF_NAMES[i % RF_NNAMES]). */
#define RF_NNAMES 24
extern const char *const RF_NAMES[RF_NNAMES];

typedef struct rf_row {
  erpq_cell cells[RF_NCOLS];
  char receipt[32], adm[32], cls[32];
} rf_row;

/* Fills row i. With plain set, every name is ASCII "Student <i>". */
void rf_make_row(size_t i, int plain, rf_row *r);

/* JSON value of one cell of column type t (what the checker expects back):
 * null, string, {"b64": ...} for text that is not UTF-8, integer, [y,m,d]
 * or [y,m,d,h,mi,s]. */
json_t *rf_cell_json(erpq_rcol_type t, const erpq_cell *c);

/* Appends columns to a JSON document (titles, types, flags). */
void rf_cols_json(json_t *doc, const erpq_rcol *cols, size_t ncols);

/* Writes doc to path (pretty enough to read when a test fails). */
void rf_write_json(const char *path, json_t *doc);

/* A fresh temporary directory (removed by rf_rmdir). */
char *rf_tmpdir(void);
void rf_rmdir(const char *dir);

/* Runs /usr/bin/python3 tests/<script> with args (NULL-terminated); its
 * output goes to the test's stderr. Returns the exit status (-1 when it
 * could not be run). */
int rf_python(const char *script, ...);

/* A CSV sink writing into a FILE*. */
int rf_file_sink(void *ud, const void *buf, size_t len);

/* Peak RSS of this process in KiB. */
long rf_maxrss_kib(void);

/* Writes the standard fee-collection report: nrows rows (plain names if
 * plain), one total line per method, then "Grand total". The writer is
 * opened on format/dest/opts; the input is recorded into doc (if not
 * NULL) as {"columns","currency","rows","totals"}. Returns the close()
 * code; stats are filled. */
int rf_write_fee_report(erpq_rformat format, const erpq_rdest *dest, const erpq_ropts *opts,
                        const char *currency, const char *locale, size_t nrows, int plain,
                        json_t *doc, erpq_rstats *stats, char *err, size_t errlen);

#endif
