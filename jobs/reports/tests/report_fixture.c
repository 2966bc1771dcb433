/*
 * report_fixture.c - test data and checker glue (see report_fixture.h).
 */
#define _GNU_SOURCE
#include "report_fixture.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "erpq_report_text.h"
#include "erpq_util.h"

const erpq_rcol RF_COLS[RF_NCOLS] = {
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

const char *const RF_METHODS[5] = {"Cash", "UPI", "Card", "Cheque", "Bank transfer"};

const char
    *const RF_NAMES[RF_NNAMES] =
        {
            "Aarav Sharma",
            "Zo\xc3\xab \xc3\x91\xc3\xba\xc3\xb1"
            "ez-Garc\xc3\xad"
            "a",                            /* Zoë Ñúñez-García */
            "\xc3\x89lodie Lef\xc3\xa8vre", /* Élodie Lefèvre */
            "\xce\x95\xce\xbb\xce\xad\xce\xbd\xce\xb7 \xce\xa0\xce\xb1\xcf\x80\xce\xb1\xce\xb4"
            "\xce\xbf\xcf\x80\xce\xbf\xcf\x8d\xce\xbb\xce\xbf\xcf\x85", /* Ελένη Παπαδοπούλου */
            "\xd0\x94\xd0\xbc\xd0\xb8\xd1\x82\xd1\x80\xd0\xb8\xd0\xb9 \xd0\x98\xd0\xb2\xd0\xb0"
            "\xd0\xbd\xd0\xbe\xd0\xb2", /* Дмитрий Иванов */
            "\xe0\xa4\x85\xe0\xa4\xa8\xe0\xa4\xa8\xe0\xa5\x8d\xe0\xa4\xaf\xe0\xa4\xbe "
            "\xe0\xa4\xb6\xe0\xa4\xb0\xe0\xa5\x8d\xe0\xa4\xae\xe0\xa4\xbe", /* अनन्या शर्मा */
            "Ahmed \xf0\x9f\x98\x80 Khan",                                  /* emoji */
            "\xd9\x85\xd8\xad\xd9\x85\xd8\xaf \xd8\xb9\xd9\x84\xd9\x8a", /* محمد علي */
            "\xe7\x8e\x8b\xe5\xb0\x8f\xe6\x98\x8e",                      /* 王小明 */
            "=HYPERLINK(\"http://example.com\",\"click\")",
            "+1",
            "-2+3",
            "@SUM(A1:A2)",
            "O'Brien, Se\xc3\xa1n", /* comma */
            "Say \"Hi\" Kumar",     /* quotes */
            "Line1\nLine2",         /* newline */
            "\tTabbed Name",
            "Ravi\r\nKumar",
            "Bad \xe2\x82 UTF-8 \xff end",                  /* ill-formed */
            "\xc5\x81ukasz \xc5\xbb\xc3\xb3\xc5\x82kowski", /* Łukasz Żółkowski */
            "Priya Nair",
            "Fran\xc3\xa7ois M\xc3\xbcller", /* François Müller */
            "\xd0\x9e\xd0\xbb\xd1\x8c\xd0\xb3\xd0\xb0 "
            "\xd0\xa9\xd1\x83\xd0\xba\xd0\xb8\xd0\xbd\xd0\xb0", /* Ольга Щукина */
            "Neha Gupta",
};

static char plain_names[RF_NNAMES][32];

void rf_make_row(size_t i, int plain, rf_row *r) {
  /* A payment every 7 minutes from 1 Apr 2024 08:00, skipping nothing:
   * fine-grained enough that days and months roll over. */
  uint64_t minutes = 8 * 60 + (uint64_t)i * 7;
  int day = (int)(minutes / 1440), m = 4, y = 2024;
  static const int DAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  while (1) {
    int dim = DAYS[m - 1] + (m == 2 && y % 4 == 0);
    if (day < dim)
      break;
    day -= dim;
    if (++m > 12)
      m = 1, y++;
  }
  int mod = (int)(minutes % 1440);
  r->cells[0] = erpq_cell_datetime(y, m, day + 1, mod / 60, mod % 60, (int)(i % 60));
  snprintf(r->receipt, sizeof r->receipt, "R-%07zu", i + 1);
  snprintf(r->adm, sizeof r->adm, "ADM/2024/%05zu", (i * 37) % 99991);
  snprintf(r->cls, sizeof r->cls, "Grade %zu - %c", 1 + i % 12, (char)('A' + i % 4));
  r->cells[1] = erpq_cell_text(r->receipt);
  r->cells[2] = erpq_cell_text(r->adm);
  if (plain) {
    char *p = plain_names[i % RF_NNAMES];
    snprintf(p, sizeof plain_names[0], "Student %zu", i % 5000);
    r->cells[3] = erpq_cell_text(p);
  } else {
    r->cells[3] = erpq_cell_text(RF_NAMES[i % RF_NNAMES]);
  }
  r->cells[4] = erpq_cell_text(r->cls);
  static const char *const HEADS[] = {"Tuition", "Transport", "Library", "Exam fee", "Sports"};
  r->cells[5] = erpq_cell_text(HEADS[i % 5]);
  static const char *const PERIODS[] = {"Apr 2024", "Q1 2024-25", "2024-25", "May 2024"};
  r->cells[6] = erpq_cell_text(PERIODS[i % 4]);
  r->cells[7] = erpq_cell_text(RF_METHODS[(i * 3 + i / 7) % 5]);
  if (i % 29 == 28)
    r->cells[8] = erpq_cell_null();
  else if (i % 17 == 16)
    r->cells[8] = erpq_cell_money(-(int64_t)(i % 300) - 5); /* a refund */
  else
    r->cells[8] = erpq_cell_money((int64_t)((i * 7919) % 2500000) + 100);
}

json_t *rf_cell_json(erpq_rcol_type t, const erpq_cell *c) {
  if (c->null || (t == ERPQ_RCOL_TEXT && !c->text))
    return json_null();
  switch (t) {
  case ERPQ_RCOL_TEXT: {
    size_t n = strlen(c->text);
    if (erpq_utf8_valid(c->text, n))
      return json_string(c->text);
    char *b = malloc(4 * ((n + 2) / 3) + 1);
    erpq_base64(c->text, n, b);
    json_t *o = json_pack("{s:s}", "b64", b);
    free(b);
    return o;
  }
  case ERPQ_RCOL_INT:
  case ERPQ_RCOL_MONEY: return json_integer(c->num);
  case ERPQ_RCOL_DATE: return json_pack("[iii]", c->t.y, c->t.m, c->t.d);
  case ERPQ_RCOL_DATETIME:
    return json_pack("[iiiiii]", c->t.y, c->t.m, c->t.d, c->t.hh, c->t.mi, c->t.ss);
  }
  return json_null();
}

void rf_cols_json(json_t *doc, const erpq_rcol *cols, size_t ncols) {
  static const char *const TYPES[] = {"TEXT", "INT", "MONEY", "DATE", "DATETIME"};
  json_t *a = json_array();
  for (size_t c = 0; c < ncols; c++)
    json_array_append_new(a, json_pack("{s:s,s:s,s:b,s:b}", "title", cols[c].title, "type",
                                       TYPES[cols[c].type], "sum",
                                       (cols[c].flags & ERPQ_RCOL_SUM) != 0, "group",
                                       (cols[c].flags & ERPQ_RCOL_GROUP) != 0));
  json_object_set_new(doc, "columns", a);
}

void rf_write_json(const char *path, json_t *doc) {
  if (json_dump_file(doc, path, JSON_INDENT(1)) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    abort();
  }
}

char *rf_tmpdir(void) {
  char tmpl[] = "/tmp/erpq-report-test.XXXXXX";
  char *d = mkdtemp(tmpl);
  return d ? strdup(d) : NULL;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

void rf_rmdir(const char *dir) {
  if (dir)
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int rf_python(const char *script, ...) {
  const char *argv[32];
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", ERPQ_REPORT_TESTS_DIR, script);
  size_t n = 0;
  argv[n++] = "/usr/bin/python3";
  argv[n++] = path;
  va_list ap;
  va_start(ap, script);
  const char *a;
  while ((a = va_arg(ap, const char *)) && n < 31)
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    dup2(2, 1);
    /* The checker is not ours to sanitize: keep ASan's preload out. */
    unsetenv("LD_PRELOAD");
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int rf_file_sink(void *ud, const void *buf, size_t len) {
  return fwrite(buf, 1, len, (FILE *)ud) == len ? 0 : -EIO;
}

long rf_maxrss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

int rf_write_fee_report(erpq_rformat format, const erpq_rdest *dest, const erpq_ropts *opts,
                        const char *currency, const char *locale, size_t nrows, int plain,
                        json_t *doc, erpq_rstats *stats, char *err, size_t errlen) {
  erpq_rmeta meta = {"Green Valley School",
                     "Fee collection",
                     "1 Apr 2024 - 31 Mar 2025",
                     "Generated 2 Apr 2025 10:15 IST",
                     currency,
                     locale};
  erpq_rw *w;
  int rc = erpq_rw_open(&w, format, dest, RF_COLS, RF_NCOLS, &meta, opts, err, errlen);
  if (rc < 0)
    return rc;
  json_t *rows = doc ? json_array() : NULL;
  for (size_t i = 0; i < nrows; i++) {
    rf_row r;
    rf_make_row(i, plain, &r);
    if (rows) {
      json_t *row = json_array();
      for (size_t c = 0; c < RF_NCOLS; c++)
        json_array_append_new(row, rf_cell_json(RF_COLS[c].type, &r.cells[c]));
      json_array_append_new(rows, row);
    }
    if ((rc = erpq_rw_row(w, r.cells, err, errlen)) < 0)
      break;
  }
  json_t *totals = doc ? json_array() : NULL;
  for (size_t m = 0; rc == 0 && m < 5; m++) {
    char label[64];
    snprintf(label, sizeof label, "Total (%s)", RF_METHODS[m]);
    erpq_rtotal t = {label, RF_COL_METHOD, RF_METHODS[m], NULL};
    rc = erpq_rw_total(w, &t, err, errlen);
    if (totals)
      json_array_append_new(totals, json_pack("{s:s,s:i,s:s}", "label", label, "group_col",
                                              RF_COL_METHOD, "group_value", RF_METHODS[m]));
  }
  if (rc == 0) {
    erpq_rtotal t = {"Grand total", -1, NULL, NULL};
    rc = erpq_rw_total(w, &t, err, errlen);
    if (totals)
      json_array_append_new(totals,
                            json_pack("{s:s,s:i}", "label", "Grand total", "group_col", -1));
  }
  if (doc) {
    rf_cols_json(doc, RF_COLS, RF_NCOLS);
    json_object_set_new(doc, "currency", json_string(currency));
    json_object_set_new(doc, "locale", json_string(locale));
    json_object_set_new(doc, "school", json_string(meta.school));
    json_object_set_new(doc, "title", json_string(meta.title));
    json_object_set_new(doc, "period", json_string(meta.period));
    json_object_set_new(doc, "generated", json_string(meta.generated));
    json_object_set_new(doc, "rows", rows);
    json_object_set_new(doc, "totals", totals);
  }
  if (rc < 0) {
    erpq_rw_abort(w);
    return rc;
  }
  return erpq_rw_close(w, stats, err, errlen);
}
