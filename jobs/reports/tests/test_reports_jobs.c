/*
 * test_reports_jobs.c - the reports family end to end: the real
 * erpq-worker against a MariaDB database of the test's own (seed-demo
 * data plus a few rows the test adds), storing into the test s3rver (or a
 * local directory), jobs added with the real erpq-producer. Every report
 * is fetched back and read with tools that are not ours (read_report.py:
 * Python's csv, openpyxl, pdftotext) and compared with the test's own SQL
 * (counts and sums written here, not computed by the family): row counts,
 * money totals, totals per method, UTF-8 names, a formula-like name kept as
 * text, the time-zone boundaries of the period, the object's SHA-256 and
 * the presigned link.
 *
 * School DEMO-001 is in Asia/Kolkata (+05:30, no DST): April 2026 there is
 * [2026-03-31 18:30:00, 2026-04-30 18:30:00) in UTC.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "reports_test_util.h"
#include "s3_test_util.h"

#define APRIL_UTC "p.paid_at >= '2026-03-31 18:30:00' AND p.paid_at < '2026-04-30 18:30:00'"
#define FORMULA_NAME "=SUM(1,2)"

static rt_env E;
static int64_t g_edge_student, g_greek_student;

static void setup(void) {
  rt_setup(&E, 120, 2);
  /* Payments on both sides of the period's ends, in UTC. */
  int64_t fee = rt_q64(&E, "SELECT MIN(id) FROM fees WHERE school_id = 1 AND MOD(student_id, 3) = 0"
                           " AND period = '2026-04'");
  g_edge_student = rt_q64(&E, "SELECT student_id FROM fees WHERE id = %lld", (long long)fee);
  static const char *const edges[][2] = {{"EDGE-1", "2026-03-31 18:29:59"},
                                         {"EDGE-2", "2026-03-31 18:30:00"},
                                         {"EDGE-3", "2026-04-30 18:29:59"},
                                         {"EDGE-4", "2026-04-30 18:30:00"}};
  for (int i = 0; i < 4; i++)
    rt_exec(&E,
            "INSERT INTO payments (fee_id, student_id, amount_minor, method, external_ref, paid_at)"
            " VALUES (%lld, %lld, %d, 'online', '%s', '%s')",
            (long long)fee, (long long)g_edge_student, 1001 + i, edges[i][0], edges[i][1]);
  rt_exec(&E, "UPDATE students SET first_name = '" FORMULA_NAME "', last_name = '' WHERE id = %lld",
          (long long)g_edge_student);
  g_greek_student =
      rt_q64(&E,
             "SELECT MIN(student_id) FROM payments p JOIN students s ON s.id = p.student_id"
             " WHERE s.school_id = 1 AND s.id > %lld",
             (long long)g_edge_student);
  rt_exec(&E,
          "UPDATE students SET first_name = 'Ελένη', last_name = 'Παπαδοπούλου' WHERE id = %lld",
          (long long)g_greek_student);
  rt_worker_start(&E, NULL, NULL);
}

/* Both plans of fee-collection: school 2 gets many more payments, so
 * school 1's report reads its own students' payments and lets the
 * database sort them, and school 2's reads the period in paid_at order. */
static void setup_busy(void) { rt_add_payments(&E, 2, 20000); } /* after the suite's setup() */

static void teardown(void) { rt_teardown(&E); }

TestSuite(reports_jobs, .init = setup, .fini = teardown, .timeout = 300);

static int64_t coll_sql(const char *what, const char *extra) {
  return rt_q64(&E,
                "SELECT COALESCE(%s, 0) FROM payments p JOIN students s ON s.id = p.student_id"
                " WHERE s.school_id = 1 AND " APRIL_UTC "%s",
                what, extra ? extra : "");
}

static const char *const NAMES[] = {"Ελένη Παπαδοπούλου", "Дмитрий", "Zoë", FORMULA_NAME, NULL};

/* The result's fields, the object's SHA-256 and the presigned link. */
static char *check_result(const json_t *view, const char *fmt, const char *name, int64_t rows) {
  cr_assert_str_eq(rt_state(view), "completed", "failed: %s",
                   json_string_value(json_object_get(view, "failedReason")));
  const json_t *rv = rt_rv(view);
  const char *id = json_string_value(json_object_get(view, "id"));
  cr_assert_str_eq(json_string_value(json_object_get(rv, "format")), fmt);
  cr_assert_eq(rt_int(rv, "rows"), rows);
  cr_assert_str_eq(json_string_value(json_object_get(rv, "storage")), "s3");
  cr_assert_str_eq(json_string_value(json_object_get(rv, "bucket")), getenv("ERPQ_TEST_S3_BUCKET"));
  char key[256];
  snprintf(key, sizeof key, "reports/1/2026-04/%s-%s.%s", id, name, fmt);
  cr_assert_str_eq(json_string_value(json_object_get(rv, "key")), key);
  static const char *const types[][2] = {
      {"csv", "text/csv; charset=utf-8"},
      {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
      {"pdf", "application/pdf"}};
  for (int i = 0; i < 3; i++)
    if (!strcmp(types[i][0], fmt))
      cr_assert_str_eq(json_string_value(json_object_get(rv, "contentType")), types[i][1]);
  char *path = rt_fetch(&E, rv);
  char sha[65];
  rt_sha256_file(path, sha);
  cr_assert_str_eq(sha, json_string_value(json_object_get(rv, "sha256")),
                   "the object's SHA-256 differs from the result's");
  struct stat sb;
  cr_assert_eq(stat(path, &sb), 0);
  cr_assert_eq(rt_int(rv, "bytes"), (int64_t)sb.st_size);
  /* The link: a presigned GET that downloads the same bytes, named. */
  char *body = NULL, disp[512] = "";
  size_t len = 0;
  cr_assert_eq(
      t_http_get(json_string_value(json_object_get(rv, "url")), &body, &len, disp, sizeof disp),
      200);
  char sha2[65];
  t_sha256(body, len, sha2);
  cr_assert_str_eq(sha2, sha);
  free(body);
  cr_assert(strstr(disp, json_string_value(json_object_get(rv, "fileName"))), "%s", disp);
  struct tm tm = {0};
  cr_assert(
      strptime(json_string_value(json_object_get(rv, "expiresAt")), "%Y-%m-%dT%H:%M:%SZ", &tm));
  int64_t left = (int64_t)timegm(&tm) - (int64_t)time(NULL);
  cr_assert(left > 800 && left <= 900, "link valid for %lld s, expected 15 minutes",
            (long long)left);
  /* The audit event, in the outbox: this file, no person. */
  cr_assert_eq(rt_q64(&E,
                      "SELECT COUNT(*) FROM outbox WHERE event_type = 'report.completed' AND "
                      "aggregate_type = 'report' AND aggregate_id = '%s' AND "
                      "JSON_VALUE(payload, '$.sha256') = '%s' AND JSON_VALUE(payload, '$.key') = "
                      "'%s' AND JSON_VALUE(payload, '$.rows') = %lld AND "
                      "JSON_VALUE(payload, '$.report') = '%s' AND "
                      "JSON_VALUE(payload, '$.format') = '%s'",
                      id, sha, json_string_value(json_object_get(rv, "key")), (long long)rows,
                      name, fmt),
               1, "one report.completed event for job %s", id);
  return path;
}

static const json_t *found(const json_t *sum, const char *text) {
  return json_object_get(json_object_get(sum, "found"), text);
}

static void check_collection(const char *fmt) {
  char data[256];
  snprintf(data, sizeof data,
           "{\"schoolId\":1,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\",\"format\":\"%s\"}", fmt);
  json_t *v = rt_job(&E, "fee-collection", data, NULL, 120);
  int64_t rows = coll_sql("COUNT(*)", NULL), total = coll_sql("SUM(p.amount_minor)", NULL);
  cr_assert_gt(rows, 20);
  char *path = check_result(v, fmt, "fee-collection", rows);
  const json_t *rv = rt_rv(v);
  char fname[128];
  snprintf(fname, sizeof fname, "fee-collection-DEMO-001-2026-04-01-to-2026-04-30.%s", fmt);
  cr_assert_str_eq(json_string_value(json_object_get(rv, "fileName")), fname);
  cr_assert_eq(rt_int(rv, "totals.amountMinor"), total);
  cr_assert_eq(rt_int(rv, "totals.rows"), rows);
  const char *const finds[] = {"Ελένη Παπαδοπούλου",
                               "Дмитрий",
                               "Zoë",
                               FORMULA_NAME,
                               "EDGE-1",
                               "EDGE-2",
                               "EDGE-3",
                               "EDGE-4",
                               NULL};
  json_t *s = rt_read(fmt, path, "fee-collection", finds);
  cr_assert_eq(rt_int(s, "rows"), rows, "rows read back");
  const char *money = !strcmp(fmt, "pdf") ? "last" : "Amount (INR)";
  char k[64];
  snprintf(k, sizeof k, "sums.%s", money);
  cr_assert_eq(rt_int(s, k), total, "the amounts read back add up to the SQL sum");
  snprintf(k, sizeof k, "totals.Grand total.%s", money);
  cr_assert_eq(rt_int(s, k), total, "grand total");
  /* Per method: the SQL's sums, the result's and the file's. */
  static const char *const methods[][2] = {{"cash", "Cash"},     {"card", "Card"},
                                           {"upi", "UPI"},       {"bank_transfer", "Bank transfer"},
                                           {"cheque", "Cheque"}, {"online", "Online"}};
  for (int i = 0; i < 6; i++) {
    char extra[64];
    snprintf(extra, sizeof extra, " AND p.method = '%s'", methods[i][0]);
    int64_t n = coll_sql("COUNT(*)", extra), sum = coll_sql("SUM(p.amount_minor)", extra);
    if (!n)
      continue;
    char path2[96];
    snprintf(path2, sizeof path2, "totals.byMethod.%s.amountMinor", methods[i][0]);
    cr_assert_eq(rt_int(rv, path2), sum);
    snprintf(path2, sizeof path2, "totals.Total (%s).%s", methods[i][1], money);
    cr_assert_eq(rt_int(s, path2), sum, "%s", path2);
  }
  /* Names in several scripts survive; the formula-like one stays text. */
  for (int i = 0; NAMES[i]; i++)
    cr_assert_gt(rt_int(found(s, NAMES[i]), "cells"), 0, "%s lost in %s", NAMES[i], fmt);
  const json_t *f = found(s, FORMULA_NAME);
  if (!strcmp(fmt, "csv"))
    cr_assert_str_eq(json_string_value(json_object_get(f, "sample")), "'" FORMULA_NAME);
  if (!strcmp(fmt, "xlsx")) {
    cr_assert_str_eq(json_string_value(json_object_get(f, "sample")), FORMULA_NAME);
    cr_assert_str_eq(json_string_value(json_object_get(f, "type")), "s", "a text cell");
    cr_assert_gt(json_array_size(json_object_get(s, "formulas")), 0, "totals are formulas");
  }
  /* The period's ends in the school's time zone. */
  cr_assert_eq(rt_int(found(s, "EDGE-1"), "cells"), 0);
  cr_assert_eq(rt_int(found(s, "EDGE-4"), "cells"), 0);
  cr_assert_eq(rt_int(found(s, "EDGE-2"), "cells"), 1);
  cr_assert_eq(rt_int(found(s, "EDGE-3"), "cells"), 1);
  const json_t *r2 = json_object_get(found(s, "EDGE-2"), "row");
  const json_t *r3 = json_object_get(found(s, "EDGE-3"), "row");
  const char *t2 = json_string_value(json_array_get(r2, 0)),
             *t3 = json_string_value(json_array_get(r3, 0));
  cr_assert(t2 && strstr(t2, "2026-04-01 00:00:00"), "EDGE-2 shows %s", t2);
  cr_assert(t3 && strstr(t3, "2026-04-30 23:59:59"), "EDGE-3 shows %s", t3);
  json_decref(s);
  json_decref(v);
  unlink(path);
  free(path);
  cr_assert_eq(rt_tmp_left(&E), 0, "temporary files left");
}

Test(reports_jobs, fee_collection_csv) { check_collection("csv"); }
Test(reports_jobs, fee_collection_xlsx) { check_collection("xlsx"); }
Test(reports_jobs, fee_collection_pdf) { check_collection("pdf"); }

Test(reports_jobs, fee_collection_both_plans, .init = setup_busy) {
  for (int school = 1; school <= 2; school++) {
    char data[256];
    snprintf(data, sizeof data,
             "{\"schoolId\":%d,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\",\"format\":\"csv\"}",
             school);
    json_t *v = rt_job(&E, "fee-collection", data, NULL, 120);
    cr_assert_str_eq(rt_state(v), "completed");
    char *logs = rt_logs(&E, json_string_value(json_object_get(v, "id")));
    cr_assert(strstr(logs, school == 1 ? "sorted by the database" : "in paid_at order"), "%s",
              logs);
    free(logs);
    char where[64];
    snprintf(where, sizeof where, "s.school_id = %d", school);
    int64_t rows = rt_q64(&E,
                          "SELECT COUNT(*) FROM payments p JOIN students s ON s.id ="
                          " p.student_id WHERE %s AND " APRIL_UTC,
                          where);
    int64_t total = rt_q64(&E,
                           "SELECT SUM(p.amount_minor) FROM payments p JOIN students s ON s.id"
                           " = p.student_id WHERE %s AND " APRIL_UTC,
                           where);
    char *path = rt_fetch(&E, rt_rv(v));
    json_t *s = rt_read("csv", path, "fee-collection", NULL);
    cr_assert_eq(rt_int(s, "rows"), rows);
    cr_assert_eq(rt_int(s, "sums.Amount (INR)"), total);
    /* In paid_at order either way (the CSV's first column, local time). */
    char *out;
    cr_assert_eq(
        rt_sh(&out, "tail -n +2 '%s' | sed '/^\r$/,$d' | cut -d, -f1 | sort -c 2>&1", path), 0,
        "rows out of order");
    free(out);
    json_decref(s);
    free(path);
    json_decref(v);
  }
}

Test(reports_jobs, fee_collection_filters) {
  int64_t klass =
      rt_q64(&E, "SELECT class_id FROM students WHERE id = %lld", (long long)g_greek_student);
  char data[256];
  snprintf(data, sizeof data,
           "{\"schoolId\":1,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\",\"classId\":%lld,"
           "\"method\":\"upi\",\"format\":\"csv\",\"locale\":\"en-IN\"}",
           (long long)klass);
  json_t *v = rt_job(&E, "fee-collection", data, NULL, 60);
  char extra[128];
  snprintf(extra, sizeof extra, " AND s.class_id = %lld AND p.method = 'upi'", (long long)klass);
  int64_t rows = coll_sql("COUNT(*)", extra), total = coll_sql("SUM(p.amount_minor)", extra);
  cr_assert_gt(rows, 0);
  char *path = check_result(v, "csv", "fee-collection", rows);
  json_t *s = rt_read("csv", path, "fee-collection", NULL);
  cr_assert_eq(rt_int(s, "rows"), rows);
  cr_assert_eq(rt_int(s, "sums.Amount (INR)"), total);
  cr_assert_eq(rt_int(s, "totals.Total (UPI).Amount (INR)"), total);
  json_decref(s);
  json_decref(v);
  free(path);
}

static void check_defaulters(const char *fmt) {
  /* A formula-like parent name of a defaulter stays text too. */
  int64_t debtor = rt_q64(&E, "SELECT MIN(student_id) FROM fees WHERE school_id = 1"
                              " AND status IN ('pending', 'partially_paid')");
  rt_exec(&E, "UPDATE students SET parent_name = '@SUM(1)' WHERE id = %lld", (long long)debtor);
  char data[256];
  snprintf(data, sizeof data,
           "{\"schoolId\":1,\"asOf\":\"2026-04-25\",\"minOverdueDays\":5,\"format\":\"%s\"}", fmt);
  json_t *v = rt_job(&E, "defaulters", data, NULL, 120);
  const char *owing = "FROM fees WHERE school_id = 1 AND due_date <= '2026-04-20'"
                      " AND status IN ('pending', 'partially_paid') AND amount_minor > paid_minor";
  int64_t students = rt_q64(&E, "SELECT COUNT(DISTINCT student_id) %s", owing);
  int64_t nfees = rt_q64(&E, "SELECT COUNT(*) %s", owing);
  int64_t outstanding = rt_q64(&E, "SELECT SUM(amount_minor - paid_minor) %s", owing);
  cr_assert_gt(students, 10);
  char *path = check_result(v, fmt, "defaulters", students);
  const json_t *rv = rt_rv(v);
  cr_assert_eq(rt_int(rv, "totals.students"), students);
  cr_assert_eq(rt_int(rv, "totals.overdueFees"), nfees);
  cr_assert_eq(rt_int(rv, "totals.outstandingMinor"), outstanding);
  const char *const finds[] = {"@SUM(1)", NULL};
  json_t *s = rt_read(fmt, path, "defaulters", finds);
  cr_assert_eq(rt_int(s, "rows"), students);
  if (!strcmp(fmt, "pdf")) {
    cr_assert_eq(rt_int(s, "sums.last"), outstanding);
    cr_assert_eq(rt_int(s, "totals.Total.last"), outstanding);
  } else {
    cr_assert_eq(rt_int(s, "sums.Outstanding (INR)"), outstanding);
    cr_assert_eq(rt_int(s, "sums.Overdue fees"), nfees);
    cr_assert_eq(rt_int(s, "totals.Total.Outstanding (INR)"), outstanding);
    cr_assert_eq(rt_int(s, "totals.Total.Overdue fees"), nfees);
    /* Days overdue: asOf - oldest due date, per student, from SQL. */
    int64_t days = rt_q64(&E,
                          "SELECT SUM(d) FROM (SELECT DATEDIFF('2026-04-25', MIN(due_date)) AS d"
                          " %s GROUP BY student_id) x",
                          owing);
    cr_assert_eq(rt_int(s, "sums.Days overdue"), days);
  }
  const json_t *f = found(s, "@SUM(1)");
  cr_assert_eq(rt_int(f, "cells"), 1);
  if (!strcmp(fmt, "csv"))
    cr_assert_str_eq(json_string_value(json_object_get(f, "sample")), "'@SUM(1)");
  if (!strcmp(fmt, "xlsx"))
    cr_assert_str_eq(json_string_value(json_object_get(f, "type")), "s");
  json_decref(s);
  json_decref(v);
  free(path);
}

Test(reports_jobs, defaulters_csv) { check_defaulters("csv"); }
Test(reports_jobs, defaulters_xlsx) { check_defaulters("xlsx"); }
Test(reports_jobs, defaulters_pdf) { check_defaulters("pdf"); }

static void check_statement(const char *fmt) {
  int64_t st = g_greek_student;
  /* A fee due in March (opening balance), one due in May (outside). */
  int64_t fs = rt_q64(&E, "SELECT fee_structure_id FROM fees WHERE student_id = %lld LIMIT 1",
                      (long long)st);
  rt_exec(&E,
          "INSERT INTO fees (school_id, student_id, fee_structure_id, period, gross_minor,"
          " amount_minor, due_date) VALUES (1, %lld, %lld, '2026-03', 70000, 70000, '2026-03-10'),"
          " (1, %lld, %lld, '2026-05', 80000, 80000, '2026-05-10')",
          (long long)st, (long long)fs, (long long)st, (long long)fs);
  char data[256];
  snprintf(data, sizeof data,
           "{\"schoolId\":1,\"studentId\":%lld,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\","
           "\"format\":\"%s\"}",
           (long long)st, fmt);
  json_t *v = rt_job(&E, "fee-statement", data, NULL, 60);
  const char *live = "status NOT IN ('waived', 'cancelled')";
  int64_t opening =
      rt_q64(&E,
             "SELECT COALESCE(SUM(amount_minor), 0) FROM fees WHERE student_id = %lld AND %s"
             " AND due_date < '2026-04-01'",
             (long long)st, live) -
      rt_q64(&E,
             "SELECT COALESCE(SUM(amount_minor), 0) FROM payments WHERE student_id = %lld"
             " AND paid_at < '2026-03-31 18:30:00'",
             (long long)st);
  int64_t debit = rt_q64(&E,
                         "SELECT COALESCE(SUM(amount_minor), 0) FROM fees WHERE student_id ="
                         " %lld AND %s AND due_date BETWEEN '2026-04-01' AND '2026-04-30'",
                         (long long)st, live);
  int64_t nfees = rt_q64(&E,
                         "SELECT COUNT(*) FROM fees WHERE student_id = %lld AND %s"
                         " AND due_date BETWEEN '2026-04-01' AND '2026-04-30'",
                         (long long)st, live);
  int64_t credit = rt_q64(&E,
                          "SELECT COALESCE(SUM(amount_minor), 0) FROM payments p WHERE"
                          " p.student_id = %lld AND " APRIL_UTC,
                          (long long)st);
  int64_t npay =
      rt_q64(&E, "SELECT COUNT(*) FROM payments p WHERE p.student_id = %lld AND " APRIL_UTC,
             (long long)st);
  cr_assert_eq(opening, 70000);
  cr_assert_gt(npay, 0);
  char *path = check_result(v, fmt, "fee-statement", 1 + nfees + npay);
  const json_t *rv = rt_rv(v);
  cr_assert_eq(rt_int(rv, "totals.openingBalanceMinor"), opening);
  cr_assert_eq(rt_int(rv, "totals.debitMinor"), debit);
  cr_assert_eq(rt_int(rv, "totals.creditMinor"), credit);
  cr_assert_eq(rt_int(rv, "totals.closingBalanceMinor"), opening + debit - credit);
  const char *const finds[] = {"Ελένη Παπαδοπούλου", "Opening balance", NULL};
  json_t *s = rt_read(fmt, path, "fee-statement", finds);
  cr_assert_eq(rt_int(s, "rows"), 1 + nfees + npay);
  if (!strcmp(fmt, "pdf")) {
    cr_assert_eq(rt_int(s, "totals.Closing balance.last"), opening + debit - credit);
    /* The student's name is in the title of every page. */
    cr_assert_geq(rt_int(found(s, "Ελένη Παπαδοπούλου"), "cells"), 1);
  } else {
    cr_assert_eq(rt_int(s, "sums.Debit (INR)"), debit);
    cr_assert_eq(rt_int(s, "sums.Credit (INR)"), credit);
    cr_assert_eq(rt_int(s, "totals.Closing balance.Balance (INR)"), opening + debit - credit);
  }
  json_decref(s);
  json_decref(v);
  free(path);
}

Test(reports_jobs, fee_statement_pdf) { check_statement("pdf"); }
Test(reports_jobs, fee_statement_xlsx) { check_statement("xlsx"); }
