/*
 * test_report_pdf.c - the PDF writer, read back by poppler's pdftotext and
 * pdfinfo (tests/check_pdf.py), fonts checked with fontTools.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_err.h"
#include "report_fixture.h"

static char *dir;

static void setup(void) { cr_assert_not_null(dir = rf_tmpdir()); }
static void teardown(void) {
  rf_rmdir(dir);
  free(dir);
}

TestSuite(report_pdf, .init = setup, .fini = teardown);

static void check(const char *in, const char *out, const erpq_rstats *st, const char *orient) {
  char bad[32];
  snprintf(bad, sizeof bad, "%llu", (unsigned long long)st->undrawable);
  cr_assert_eq(rf_python("check_pdf.py", in, out, bad, orient, NULL), 0,
               "check_pdf.py found problems (see above)");
}

static void fee_report(const char *currency, const char *locale, size_t nrows) {
  char in[512], out[512], err[256] = "";
  snprintf(in, sizeof in, "%s/input.json", dir);
  snprintf(out, sizeof out, "%s/out.pdf", dir);
  erpq_rdest dest = {.path = out};
  json_t *doc = json_object();
  erpq_rstats st;
  int rc = rf_write_fee_report(ERPQ_RFORMAT_PDF, &dest, NULL, currency, locale, nrows, 0, doc, &st,
                               err, sizeof err);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(st.rows, nrows);
  cr_assert_gt(st.pages, 0);
  rf_write_json(in, doc);
  json_decref(doc);
  check(in, out, &st, "landscape");
}

/* 300 rows: several pages; names in many scripts; totals per method. */
Test(report_pdf, fee_collection_inr) { fee_report("INR", "en-IN", 300); }

Test(report_pdf, kuwaiti_dinar_western_grouping) { fee_report("KWD", "ar-KW", 60); }

Test(report_pdf, empty_report_has_one_page) { fee_report("INR", "en-IN", 0); }

/* A fee statement: 5 columns, portrait, a running balance that is not
 * summed, and a closing balance given by the caller. */
Test(report_pdf, fee_statement_portrait) {
  static const erpq_rcol cols[] = {
      {"Date", ERPQ_RCOL_DATE, 0, 0},
      {"Description", ERPQ_RCOL_TEXT, 0, 10},
      {"Debit", ERPQ_RCOL_MONEY, ERPQ_RCOL_SUM, 0},
      {"Credit", ERPQ_RCOL_MONEY, ERPQ_RCOL_SUM, 0},
      {"Balance", ERPQ_RCOL_MONEY, 0, 0},
  };
  char in[512], out[512], err[256];
  snprintf(in, sizeof in, "%s/input.json", dir);
  snprintf(out, sizeof out, "%s/statement.pdf", dir);
  erpq_rdest dest = {.path = out};
  erpq_rmeta meta = {"Green Valley School",
                     "Fee statement: \xc3\x89lodie Lef\xc3\xa8vre",
                     "2024-25",
                     "Generated 2 Apr 2025",
                     "INR",
                     "en-IN"};
  erpq_rw *w;
  cr_assert_eq(erpq_rw_open(&w, ERPQ_RFORMAT_PDF, &dest, cols, 5, &meta, NULL, err, sizeof err), 0,
               "%s", err);
  json_t *doc = json_object(), *rows = json_array();
  int64_t balance = 0;
  for (int i = 0; i < 140; i++) {
    char desc[96];
    int debit = i % 3 != 2;
    int64_t amt = debit ? 250000 + i * 1001 : 200000 + i * 77;
    balance += debit ? amt : -amt;
    snprintf(desc, sizeof desc, "%s %d - Tuition fee, term %d", debit ? "Invoice" : "Payment",
             1000 + i, 1 + i % 3);
    erpq_cell c[5] = {erpq_cell_date(2024, 4 + i / 31 % 9, 1 + i % 28), erpq_cell_text(desc),
                      debit ? erpq_cell_money(amt) : erpq_cell_null(),
                      debit ? erpq_cell_null() : erpq_cell_money(amt), erpq_cell_money(balance)};
    json_t *row = json_array();
    for (int k = 0; k < 5; k++)
      json_array_append_new(row, rf_cell_json(cols[k].type, &c[k]));
    json_array_append_new(rows, row);
    cr_assert_eq(erpq_rw_row(w, c, err, sizeof err), 0, "%s", err);
  }
  erpq_cell vals[5] = {erpq_cell_null(), erpq_cell_null(), erpq_cell_null(), erpq_cell_null(),
                       erpq_cell_money(balance)};
  erpq_rtotal t = {"Total and closing balance", -1, NULL, vals};
  cr_assert_eq(erpq_rw_total(w, &t, err, sizeof err), 0, "%s", err);
  erpq_rstats st;
  cr_assert_eq(erpq_rw_close(w, &st, err, sizeof err), 0, "%s", err);
  rf_cols_json(doc, cols, 5);
  json_object_set_new(doc, "currency", json_string("INR"));
  json_object_set_new(doc, "locale", json_string("en-IN"));
  json_object_set_new(doc, "school", json_string(meta.school));
  json_object_set_new(doc, "title", json_string(meta.title));
  json_object_set_new(doc, "period", json_string(meta.period));
  json_object_set_new(doc, "generated", json_string(meta.generated));
  json_object_set_new(doc, "rows", rows);
  json_object_set_new(doc, "totals",
                      json_pack("[{s:s,s:i,s:{s:I}}]", "label", t.label, "group_col", -1, "values",
                                "4", (json_int_t)balance));
  rf_write_json(in, doc);
  json_decref(doc);
  check(in, out, &st, "portrait");
}

/* libharu holds the whole document in memory: past the limit the writer
 * refuses, at open when the row count is known, else at the first row
 * past it; the file is not created. */
Test(report_pdf, row_limit_is_refused) {
  char out[512], err[256];
  snprintf(out, sizeof out, "%s/limit.pdf", dir);
  erpq_rdest dest = {.path = out};
  erpq_rmeta meta = {"S", "T", "P", "G", "INR", "en-IN"};
  erpq_ropts opts = {.pdf_max_rows = 100};
  erpq_rw *w;
  cr_assert_eq(
      erpq_rw_open(&w, ERPQ_RFORMAT_PDF, &dest, RF_COLS, RF_NCOLS, &meta, &opts, err, sizeof err),
      0, "%s", err);
  for (size_t i = 0; i < 100; i++) {
    rf_row r;
    rf_make_row(i, 1, &r);
    cr_assert_eq(erpq_rw_row(w, r.cells, err, sizeof err), 0, "%s", err);
  }
  rf_row r;
  rf_make_row(100, 1, &r);
  cr_assert_eq(erpq_rw_row(w, r.cells, err, sizeof err), -E2BIG);
  cr_assert(strstr(err, "at most 100 rows"), "%s", err);
  cr_assert_eq(erpq_rw_close(w, NULL, err, sizeof err), -E2BIG);
  cr_assert_eq(access(out, F_OK), -1, "a refused report left a file");

  erpq_ropts known = {.expected_rows = ERPQ_RW_PDF_MAX_ROWS + 1};
  cr_assert_eq(
      erpq_rw_open(&w, ERPQ_RFORMAT_PDF, &dest, RF_COLS, RF_NCOLS, &meta, &known, err, sizeof err),
      -E2BIG);
  cr_assert(strstr(err, "use CSV or XLSX"), "%s", err);
  known.expected_rows = ERPQ_RW_PDF_MAX_ROWS;
  cr_assert_eq(
      erpq_rw_open(&w, ERPQ_RFORMAT_PDF, &dest, RF_COLS, RF_NCOLS, &meta, &known, err, sizeof err),
      0, "%s", err);
  erpq_rw_abort(w);
  cr_assert_eq(access(out, F_OK), -1);
}

Test(report_pdf, missing_font_is_a_clear_error) {
  char out[512], err[256];
  snprintf(out, sizeof out, "%s/x.pdf", dir);
  erpq_rdest dest = {.path = out};
  erpq_rmeta meta = {"S", "T", "P", "G", "INR", "en-IN"};
  erpq_ropts opts = {.font_regular = "/nonexistent/DejaVuSans.ttf"};
  erpq_rw *w;
  cr_assert_eq(
      erpq_rw_open(&w, ERPQ_RFORMAT_PDF, &dest, RF_COLS, RF_NCOLS, &meta, &opts, err, sizeof err),
      -ENOENT);
  cr_assert(strstr(err, "/nonexistent/DejaVuSans.ttf"), "%s", err);
}
