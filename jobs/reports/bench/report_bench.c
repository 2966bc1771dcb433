/*
 * report_bench.c - writes N rows of fee-collection-like data to one format
 * and prints the wall time and the peak RSS of the process.
 *
 *   erpq-report-bench csv|xlsx|pdf NROWS OUTPUT [PDF_MAX_ROWS]
 *
 * One format per run, so that the peak RSS (getrusage ru_maxrss) belongs
 * to that format alone; run.sh drives it. Output, one line:
 *   format=xlsx rows=100000 seconds=1.93 peak_rss_mib=5.1 base_rss_mib=3.2 bytes=... pages=0
 * base_rss_mib is the peak before the first row (libraries, fonts).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "erpq_report_writer.h"

static const erpq_rcol COLS[] = {
    {"Paid at", ERPQ_RCOL_DATETIME, 0, 0},
    {"Receipt", ERPQ_RCOL_TEXT, 0, 4},
    {"Admission no.", ERPQ_RCOL_TEXT, 0, 4},
    {"Student", ERPQ_RCOL_TEXT, 0, 8},
    {"Class", ERPQ_RCOL_TEXT, 0, 3},
    {"Fee head", ERPQ_RCOL_TEXT, 0, 4},
    {"Period", ERPQ_RCOL_TEXT, 0, 3},
    {"Method", ERPQ_RCOL_TEXT, ERPQ_RCOL_GROUP, 4},
    {"Amount", ERPQ_RCOL_MONEY, ERPQ_RCOL_SUM, 4},
};
#define NCOLS (sizeof COLS / sizeof COLS[0])

static const char *const FIRST[] = {
    "Aarav",  "Zo\xc3\xab",
    "Ananya", "\xce\x95\xce\xbb\xce\xad\xce\xbd\xce\xb7",
    "Priya",  "Fran\xc3\xa7ois",
    "Neha",   "\xd0\x94\xd0\xbc\xd0\xb8\xd1\x82\xd1\x80\xd0\xb8\xd0\xb9"};
static const char *const LAST[] = {"Sharma", "Nair", "Gupta", "M\xc3\xbcller", "Iyer", "Khan"};
static const char *const METHODS[] = {"Cash", "UPI", "Card", "Cheque", "Bank transfer"};
static const char *const HEADS[] = {"Tuition", "Transport", "Library", "Exam fee", "Sports"};

static double mib(long kib) { return (double)kib / 1024.0; }

static long maxrss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static int file_sink(void *ud, const void *buf, size_t len) {
  return fwrite(buf, 1, len, (FILE *)ud) == len ? 0 : -EIO;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s csv|xlsx|pdf NROWS OUTPUT [PDF_MAX_ROWS]\n", argv[0]);
    return 2;
  }
  erpq_rformat fmt;
  if (strcmp(argv[1], "csv") == 0)
    fmt = ERPQ_RFORMAT_CSV;
  else if (strcmp(argv[1], "xlsx") == 0)
    fmt = ERPQ_RFORMAT_XLSX;
  else if (strcmp(argv[1], "pdf") == 0)
    fmt = ERPQ_RFORMAT_PDF;
  else {
    fprintf(stderr, "unknown format %s\n", argv[1]);
    return 2;
  }
  size_t n = strtoull(argv[2], NULL, 10);
  FILE *csv = NULL;
  erpq_rdest dest = {.path = argv[3]};
  if (fmt == ERPQ_RFORMAT_CSV) {
    if (!(csv = fopen(argv[3], "wb"))) {
      perror(argv[3]);
      return 1;
    }
    dest = (erpq_rdest){.write = file_sink, .ud = csv};
  }
  erpq_ropts opts = {.pdf_max_rows = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 0};
  erpq_rmeta meta = {"Green Valley School",
                     "Fee collection",
                     "1 Apr 2024 - 31 Mar 2025",
                     "Generated 2 Apr 2025 10:15 IST",
                     "INR",
                     "en-IN"};
  char err[256];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  erpq_rw *w;
  int rc = erpq_rw_open(&w, fmt, &dest, COLS, NCOLS, &meta, &opts, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "open: %s\n", err);
    return 1;
  }
  long base = maxrss_kib();
  char receipt[32], adm[32], name[96], cls[32];
  for (size_t i = 0; i < n && rc == 0; i++) {
    int day = (int)(i / 2000 % 28), sec = (int)(i % 86400);
    snprintf(receipt, sizeof receipt, "R-%08zu", i + 1);
    snprintf(adm, sizeof adm, "ADM/2024/%05zu", i * 37 % 99991);
    snprintf(name, sizeof name, "%s %s", FIRST[i % 8], LAST[i / 8 % 6]);
    snprintf(cls, sizeof cls, "Grade %zu - %c", 1 + i % 12, (char)('A' + i % 4));
    erpq_cell c[NCOLS] = {
        erpq_cell_datetime(2024, 4 + (int)(i / 56000 % 9), 1 + day, sec / 3600, sec / 60 % 60,
                           sec % 60),
        erpq_cell_text(receipt),
        erpq_cell_text(adm),
        erpq_cell_text(name),
        erpq_cell_text(cls),
        erpq_cell_text(HEADS[i % 5]),
        erpq_cell_text("Apr 2024"),
        erpq_cell_text(METHODS[i * 7 % 5]),
        erpq_cell_money((int64_t)(i * 7919 % 2500000) + 100),
    };
    rc = erpq_rw_row(w, c, err, sizeof err);
  }
  for (size_t m = 0; m < 5 && rc == 0; m++) {
    char label[64];
    snprintf(label, sizeof label, "Total (%s)", METHODS[m]);
    erpq_rtotal t = {label, 7, METHODS[m], NULL};
    rc = erpq_rw_total(w, &t, err, sizeof err);
  }
  if (rc == 0) {
    erpq_rtotal t = {"Grand total", -1, NULL, NULL};
    rc = erpq_rw_total(w, &t, err, sizeof err);
  }
  erpq_rstats st = {0};
  if (rc == 0)
    rc = erpq_rw_close(w, &st, err, sizeof err);
  else
    erpq_rw_abort(w);
  if (csv && fclose(csv) != 0 && rc == 0)
    rc = -EIO, snprintf(err, sizeof err, "closing the CSV file failed");
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", argv[1], err);
    return 1;
  }
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("format=%s rows=%zu seconds=%.2f peak_rss_mib=%.1f base_rss_mib=%.1f bytes=%llu "
         "pages=%u sheets=%u\n",
         argv[1], n, secs, mib(maxrss_kib()), mib(base), (unsigned long long)st.bytes, st.pages,
         st.sheets);
  return 0;
}
