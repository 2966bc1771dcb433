/*
 * test_report_csv.c - the CSV writer, read back by Python's csv module
 * (tests/check_csv.py).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "report_fixture.h"

static char *dir;

static void setup(void) { cr_assert_not_null(dir = rf_tmpdir()); }
static void teardown(void) {
  rf_rmdir(dir);
  free(dir);
}

TestSuite(report_csv, .init = setup, .fini = teardown);

/* Writes the fee report as CSV and has check_csv.py read it back. */
static void roundtrip(const char *currency, const char *locale, size_t nrows, int bom,
                      size_t buffer) {
  char in[512], out[512], err[256] = "";
  snprintf(in, sizeof in, "%s/input.json", dir);
  snprintf(out, sizeof out, "%s/out.csv", dir);
  FILE *f = fopen(out, "wb");
  cr_assert_not_null(f);
  erpq_rdest dest = {.write = rf_file_sink, .ud = f};
  erpq_ropts opts = {.csv_no_bom = !bom, .csv_buffer = buffer};
  json_t *doc = json_object();
  erpq_rstats st;
  int rc = rf_write_fee_report(ERPQ_RFORMAT_CSV, &dest, &opts, currency, locale, nrows, 0, doc, &st,
                               err, sizeof err);
  cr_assert_eq(fclose(f), 0);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(st.rows, nrows);
  long size = 0;
  f = fopen(out, "rb");
  fseek(f, 0, SEEK_END);
  size = ftell(f);
  fclose(f);
  cr_assert_eq(st.bytes, (uint64_t)size, "stats.bytes %llu, file %ld", (unsigned long long)st.bytes,
               size);
  /* RF_NAMES[18] holds two ill-formed sequences; it is used every 24 rows. */
  cr_assert_eq(st.repaired, 2 * ((nrows + 24 - 19) / 24));
  rf_write_json(in, doc);
  json_decref(doc);
  cr_assert_eq(rf_python("check_csv.py", in, out, bom ? "bom" : "nobom", NULL), 0,
               "check_csv.py found problems (see above)");
}

Test(report_csv, fee_collection_inr_with_bom) { roundtrip("INR", "en-IN", 500, 1, 0); }

Test(report_csv, without_bom_tiny_buffer) { roundtrip("INR", "en-IN", 97, 0, 7); }

Test(report_csv, kuwaiti_dinar_three_decimals) { roundtrip("KWD", "ar-KW", 120, 1, 0); }

Test(report_csv, yen_no_decimals) { roundtrip("JPY", "ja-JP", 60, 1, 0); }

Test(report_csv, no_rows_header_and_totals_only) { roundtrip("USD", "en-US", 0, 1, 0); }

/* The sink gets bytes as rows arrive, not only at close. */
typedef struct {
  size_t calls, bytes, max_chunk;
  int fail_after;
} counting_sink;

static int count_write(void *ud, const void *buf, size_t len) {
  counting_sink *s = ud;
  (void)buf;
  if (s->fail_after && s->calls >= (size_t)s->fail_after)
    return -ENOSPC;
  s->calls++;
  s->bytes += len;
  if (len > s->max_chunk)
    s->max_chunk = len;
  return 0;
}

Test(report_csv, streams_as_rows_arrive) {
  counting_sink s = {0};
  erpq_rdest dest = {.write = count_write, .ud = &s};
  erpq_ropts opts = {.csv_buffer = 4096};
  erpq_rmeta meta = {"S", "T", "P", "G", "INR", "en-IN"};
  erpq_rw *w;
  char err[256];
  cr_assert_eq(
      erpq_rw_open(&w, ERPQ_RFORMAT_CSV, &dest, RF_COLS, RF_NCOLS, &meta, &opts, err, sizeof err),
      0, "%s", err);
  for (size_t i = 0; i < 20000; i++) {
    rf_row r;
    rf_make_row(i, 1, &r);
    cr_assert_eq(erpq_rw_row(w, r.cells, err, sizeof err), 0, "%s", err);
    erpq_rstats st;
    erpq_rw_stats(w, &st);
    /* What the sink has not seen yet fits in the buffer. */
    cr_assert_eq(st.bytes, s.bytes);
  }
  cr_assert_gt(s.calls, 100, "the sink was called %zu times for 20000 rows", s.calls);
  cr_assert_leq(s.max_chunk, 4096);
  size_t before = s.bytes;
  erpq_rstats st;
  cr_assert_eq(erpq_rw_close(w, &st, err, sizeof err), 0, "%s", err);
  cr_assert_leq(s.bytes - before, 4096, "close flushed %zu bytes", s.bytes - before);
  cr_assert_eq(st.bytes, s.bytes);
}

Test(report_csv, sink_failure_fails_the_writer) {
  counting_sink s = {.fail_after = 3};
  erpq_rdest dest = {.write = count_write, .ud = &s};
  erpq_ropts opts = {.csv_buffer = 512};
  erpq_rmeta meta = {"S", "T", "P", "G", "INR", "en-IN"};
  erpq_rw *w;
  char err[256];
  cr_assert_eq(
      erpq_rw_open(&w, ERPQ_RFORMAT_CSV, &dest, RF_COLS, RF_NCOLS, &meta, &opts, err, sizeof err),
      0, "%s", err);
  int rc = 0;
  size_t i;
  for (i = 0; i < 1000 && rc == 0; i++) {
    rf_row r;
    rf_make_row(i, 1, &r);
    rc = erpq_rw_row(w, r.cells, err, sizeof err);
  }
  cr_assert_eq(rc, -ENOSPC, "rc %d after %zu rows: %s", rc, i, err);
  rf_row r;
  rf_make_row(0, 1, &r);
  cr_assert_eq(erpq_rw_row(w, r.cells, err, sizeof err), -ENOSPC);
  erpq_rtotal t = {"Grand total", -1, NULL, NULL};
  cr_assert_eq(erpq_rw_total(w, &t, err, sizeof err), -ENOSPC);
  cr_assert_eq(erpq_rw_close(w, NULL, err, sizeof err), -ENOSPC);
}

Test(report_csv, totals_given_by_caller_must_match) {
  counting_sink s = {0};
  erpq_rdest dest = {.write = count_write, .ud = &s};
  erpq_rmeta meta = {"S", "T", "P", "G", "INR", "en-IN"};
  erpq_rw *w;
  char err[256];
  cr_assert_eq(
      erpq_rw_open(&w, ERPQ_RFORMAT_CSV, &dest, RF_COLS, RF_NCOLS, &meta, NULL, err, sizeof err), 0,
      "%s", err);
  int64_t sum = 0;
  for (size_t i = 0; i < 10; i++) {
    rf_row r;
    rf_make_row(i, 1, &r);
    if (!r.cells[RF_COL_AMOUNT].null)
      sum += r.cells[RF_COL_AMOUNT].num;
    cr_assert_eq(erpq_rw_row(w, r.cells, err, sizeof err), 0, "%s", err);
  }
  erpq_cell vals[RF_NCOLS];
  for (size_t c = 0; c < RF_NCOLS; c++)
    vals[c] = erpq_cell_null();
  vals[RF_COL_AMOUNT] = erpq_cell_money(sum);
  erpq_rtotal ok = {"Grand total", -1, NULL, vals};
  cr_assert_eq(erpq_rw_total(w, &ok, err, sizeof err), 0, "%s", err);
  vals[RF_COL_AMOUNT] = erpq_cell_money(sum + 1);
  erpq_rtotal bad = {"Grand total", -1, NULL, vals};
  cr_assert_eq(erpq_rw_total(w, &bad, err, sizeof err), ERPQ_E_ARG);
  cr_assert(strstr(err, "Amount"), "%s", err);
  erpq_rw_abort(w);
}

Test(report_csv, bad_dates_and_late_rows_are_refused) {
  counting_sink s = {0};
  erpq_rdest dest = {.write = count_write, .ud = &s};
  erpq_rmeta meta = {"S", "T", "P", "G", "INR", "en-IN"};
  erpq_rw *w;
  char err[256];
  cr_assert_eq(
      erpq_rw_open(&w, ERPQ_RFORMAT_CSV, &dest, RF_COLS, RF_NCOLS, &meta, NULL, err, sizeof err), 0,
      "%s", err);
  rf_row r;
  rf_make_row(0, 1, &r);
  r.cells[0] = erpq_cell_datetime(2023, 2, 29, 10, 0, 0);
  cr_assert_eq(erpq_rw_row(w, r.cells, err, sizeof err), ERPQ_E_ARG);
  cr_assert(strstr(err, "row 1, column 1 (Paid at)"), "%s", err);
  erpq_rw_abort(w);

  cr_assert_eq(
      erpq_rw_open(&w, ERPQ_RFORMAT_CSV, &dest, RF_COLS, RF_NCOLS, &meta, NULL, err, sizeof err), 0,
      "%s", err);
  rf_make_row(0, 1, &r);
  cr_assert_eq(erpq_rw_row(w, r.cells, err, sizeof err), 0, "%s", err);
  erpq_rtotal t = {"Grand total", -1, NULL, NULL};
  cr_assert_eq(erpq_rw_total(w, &t, err, sizeof err), 0, "%s", err);
  cr_assert_eq(erpq_rw_row(w, r.cells, err, sizeof err), ERPQ_E_ARG);
  erpq_rw_abort(w);

  erpq_rcol bad[2] = {{"Amount", ERPQ_RCOL_MONEY, ERPQ_RCOL_SUM, 0}, {"X", ERPQ_RCOL_TEXT, 0, 0}};
  cr_assert_eq(erpq_rw_open(&w, ERPQ_RFORMAT_CSV, &dest, bad, 2, &meta, NULL, err, sizeof err),
               ERPQ_E_ARG);
  erpq_rmeta badcur = {"S", "T", "P", "G", "RUPEES", "en-IN"};
  cr_assert_eq(
      erpq_rw_open(&w, ERPQ_RFORMAT_CSV, &dest, RF_COLS, RF_NCOLS, &badcur, NULL, err, sizeof err),
      -EINVAL);
}

/* Options from configuration, through the caller's lookup. */
static const char *lookup(void *ud, const char *name) {
  const char *const *kv = ud;
  for (; kv[0]; kv += 2)
    if (strcmp(kv[0], name) == 0)
      return kv[1];
  return NULL;
}

Test(report_csv, options_from_config) {
  const char *const good[] = {"ERPQ_REPORT_CSV_BOM",
                              "0",
                              "ERPQ_REPORT_PDF_MAX_ROWS",
                              "5000",
                              "ERPQ_REPORT_XLSX_ROWS_PER_SHEET",
                              "1000",
                              "ERPQ_REPORT_TMPDIR",
                              "/var/tmp",
                              NULL};
  erpq_ropts o = {0};
  char err[256];
  cr_assert_eq(erpq_ropts_from_config(&o, lookup, (void *)good, err, sizeof err), 0, "%s", err);
  cr_expect_eq(o.csv_no_bom, 1);
  cr_expect_eq(o.pdf_max_rows, 5000);
  cr_expect_eq(o.xlsx_rows_per_sheet, 1000);
  cr_expect_str_eq(o.tmpdir, "/var/tmp");
  const char *const bad[] = {"ERPQ_REPORT_XLSX_ROWS_PER_SHEET", "2000000", NULL};
  cr_expect_eq(erpq_ropts_from_config(&o, lookup, (void *)bad, err, sizeof err), -EINVAL);
  cr_expect(strstr(err, "ERPQ_REPORT_XLSX_ROWS_PER_SHEET"), "%s", err);
  const char *const neg[] = {"ERPQ_REPORT_PDF_MAX_ROWS", "-1", NULL};
  cr_expect_eq(erpq_ropts_from_config(&o, lookup, (void *)neg, err, sizeof err), -EINVAL);
}
