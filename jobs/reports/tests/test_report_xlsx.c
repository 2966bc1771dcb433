/*
 * test_report_xlsx.c - the XLSX writer, read back by openpyxl
 * (tests/check_xlsx.py).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erpq_err.h"
#include "report_fixture.h"

static char *dir;

static void setup(void) { cr_assert_not_null(dir = rf_tmpdir()); }
static void teardown(void) {
  rf_rmdir(dir);
  free(dir);
}

TestSuite(report_xlsx, .init = setup, .fini = teardown);

static void roundtrip(const char *currency, const char *locale, size_t nrows, uint32_t rps) {
  char in[512], out[512], err[256] = "", rps_s[32];
  snprintf(in, sizeof in, "%s/input.json", dir);
  snprintf(out, sizeof out, "%s/out.xlsx", dir);
  erpq_rdest dest = {.path = out};
  erpq_ropts opts = {.xlsx_rows_per_sheet = rps, .tmpdir = dir};
  json_t *doc = json_object();
  erpq_rstats st;
  int rc = rf_write_fee_report(ERPQ_RFORMAT_XLSX, &dest, &opts, currency, locale, nrows, 0, doc,
                               &st, err, sizeof err);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(st.rows, nrows);
  uint32_t per = rps ? rps : 1048575;
  cr_assert_eq(st.sheets, nrows ? (nrows + per - 1) / per : 1);
  cr_assert_gt(st.bytes, 0);
  rf_write_json(in, doc);
  json_decref(doc);
  snprintf(rps_s, sizeof rps_s, "%u", per);
  cr_assert_eq(rf_python("check_xlsx.py", in, out, rps_s, NULL), 0,
               "check_xlsx.py found problems (see above)");
}

Test(report_xlsx, fee_collection_inr) { roundtrip("INR", "en-IN", 600, 0); }

Test(report_xlsx, split_at_configured_limit) { roundtrip("INR", "en-IN", 3500, 1000); }

Test(report_xlsx, split_exactly_full_sheets) { roundtrip("USD", "en-US", 2000, 1000); }

Test(report_xlsx, kuwaiti_dinar_and_yen) {
  roundtrip("KWD", "ar-KW", 150, 0);
  roundtrip("JPY", "ja-JP", 150, 0);
}

Test(report_xlsx, no_rows) { roundtrip("INR", "en-IN", 0, 0); }

/* constant_memory really is on: peak RSS does not grow with rows. */
Test(report_xlsx, memory_stays_flat, .timeout = 300) {
  char out[512], err[256];
  snprintf(out, sizeof out, "%s/big.xlsx", dir);
  erpq_rdest dest = {.path = out};
  erpq_ropts opts = {.tmpdir = dir};
  erpq_rmeta meta = {"S", "T", "P", "G", "INR", "en-IN"};
  erpq_rw *w;
  cr_assert_eq(
      erpq_rw_open(&w, ERPQ_RFORMAT_XLSX, &dest, RF_COLS, RF_NCOLS, &meta, &opts, err, sizeof err),
      0, "%s", err);
  long at50k = 0;
  for (size_t i = 0; i < 300000; i++) {
    rf_row r;
    rf_make_row(i, 1, &r);
    cr_assert_eq(erpq_rw_row(w, r.cells, err, sizeof err), 0, "%s", err);
    if (i == 50000)
      at50k = rf_maxrss_kib();
  }
  long at300k = rf_maxrss_kib();
  cr_assert_eq(erpq_rw_close(w, NULL, err, sizeof err), 0, "%s", err);
  /* Keeping the cells would cost ~100 bytes each: 225 MB for 250k rows. */
  cr_assert_lt(at300k - at50k, 4096, "peak RSS grew from %ld KiB to %ld KiB over 250k rows", at50k,
               at300k);
}

/* Excel's real limit: 1,048,576 rows make a full first sheet (header +
 * 1,048,575) and one row on "Report (2)". */
Test(report_xlsx, real_excel_row_limit, .timeout = 300) {
  char out[512], err[256], n_s[32], grand_s[32];
  snprintf(out, sizeof out, "%s/limit.xlsx", dir);
  erpq_rdest dest = {.path = out};
  erpq_ropts opts = {.tmpdir = dir};
  size_t n = 1048576;
  int64_t grand = 0;
  for (size_t i = 0; i < n; i++) {
    rf_row r;
    rf_make_row(i, 1, &r);
    if (!r.cells[RF_COL_AMOUNT].null)
      grand += r.cells[RF_COL_AMOUNT].num;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  erpq_rstats st;
  int rc = rf_write_fee_report(ERPQ_RFORMAT_XLSX, &dest, &opts, "INR", "en-IN", n, 1, NULL, &st,
                               err, sizeof err);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(st.sheets, 2);
  fprintf(stderr, "1,048,576 rows: %.1f s, %llu bytes\n",
          (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
          (unsigned long long)st.bytes);
  snprintf(n_s, sizeof n_s, "%zu", n);
  snprintf(grand_s, sizeof grand_s, "%lld", (long long)grand);
  cr_assert_eq(rf_python("check_xlsx.py", "--big", out, n_s, "1048575", grand_s, NULL), 0,
               "check_xlsx.py found problems (see above)");
}

Test(report_xlsx, too_large_amount_is_refused) {
  char out[512], err[256];
  snprintf(out, sizeof out, "%s/x.xlsx", dir);
  erpq_rdest dest = {.path = out};
  erpq_rmeta meta = {"S", "T", "P", "G", "INR", "en-IN"};
  erpq_rw *w;
  cr_assert_eq(
      erpq_rw_open(&w, ERPQ_RFORMAT_XLSX, &dest, RF_COLS, RF_NCOLS, &meta, NULL, err, sizeof err),
      0, "%s", err);
  rf_row r;
  rf_make_row(0, 1, &r);
  r.cells[RF_COL_AMOUNT] = erpq_cell_money(INT64_C(1000000000000000));
  cr_assert_eq(erpq_rw_row(w, r.cells, err, sizeof err), -ERANGE);
  cr_assert(strstr(err, "Amount"), "%s", err);
  cr_assert_eq(erpq_rw_close(w, NULL, err, sizeof err), -ERANGE);
  cr_assert_eq(access(out, F_OK), -1, "a failed report left a file");
}

Test(report_xlsx, abort_creates_nothing_and_bad_path_fails_at_close) {
  char out[512], err[256];
  snprintf(out, sizeof out, "%s/aborted.xlsx", dir);
  erpq_rdest dest = {.path = out};
  erpq_rmeta meta = {"S", "T", "P", "G", "INR", "en-IN"};
  erpq_rw *w;
  cr_assert_eq(
      erpq_rw_open(&w, ERPQ_RFORMAT_XLSX, &dest, RF_COLS, RF_NCOLS, &meta, NULL, err, sizeof err),
      0, "%s", err);
  for (size_t i = 0; i < 100; i++) {
    rf_row r;
    rf_make_row(i, 0, &r);
    cr_assert_eq(erpq_rw_row(w, r.cells, err, sizeof err), 0, "%s", err);
  }
  erpq_rw_abort(w);
  cr_assert_eq(access(out, F_OK), -1);

  snprintf(out, sizeof out, "%s/no/such/dir/x.xlsx", dir);
  dest.path = out;
  cr_assert_eq(
      erpq_rw_open(&w, ERPQ_RFORMAT_XLSX, &dest, RF_COLS, RF_NCOLS, &meta, NULL, err, sizeof err),
      0, "%s", err);
  int rc = erpq_rw_close(w, NULL, err, sizeof err);
  cr_assert_lt(rc, 0);
  cr_assert(strstr(err, "XLSX"), "%s", err);
}
