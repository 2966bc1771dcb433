/* erpq_reports_family.c - the reports family's descriptor: its settings
 * (flags, ERPQ_* variables, <VAR>_FILE for secrets), its context and the
 * three handlers (see erpq_reports.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erpq_err.h"
#include "erpq_log.h"
#include "erpq_storage_settings.h"
#include "reports/erpq_reports.h"

static int h_collection(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                        size_t errlen) {
  return rep_handle(RK_COLLECTION, ctx, data, result, err, errlen);
}

static int h_defaulters(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                        size_t errlen) {
  return rep_handle(RK_DEFAULTERS, ctx, data, result, err, errlen);
}

static int h_statement(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                       size_t errlen) {
  return rep_handle(RK_STATEMENT, ctx, data, result, err, errlen);
}

/* S3 retries and refused aborts: one worker log line each (the message
 * names the operation and the reason, never a key or a URL). */
static void s3_log(void *ud, const char *msg) {
  (void)ud;
  erpq_log(ERPQ_LOG_WARN, "reports.storage", "message", msg, NULL);
}

static int reports_init(void **out, const erpq_family_env *env, char *err, size_t errlen) {
  const erpq_args *a = env->args;
  reports_ctx *rc = calloc(1, sizeof *rc);
  if (!rc)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  char why[512] = "";
  int ret = 0;
  const char *url = erpq_args_env(a, "ERPQ_MYSQL_URL");
  if (!url || !*url)
    ret = erpq_fail(err, errlen, ERPQ_E_ARG,
                    "reports: no database: set ERPQ_MYSQL_URL (or --mysql-url), for example "
                    "mysql://erpq:PASSWORD@127.0.0.1:3306/erp");
  else if (erpq_mysql_url_parse(url, &rc->db, why, sizeof why))
    ret = erpq_fail(err, errlen, ERPQ_E_ARG, "reports: ERPQ_MYSQL_URL: %s", why);
  if (!ret && erpq_storage_conf_read(&rc->sconf, erpq_args_lookup, (void *)a, why, sizeof why))
    ret = erpq_fail(err, errlen, ERPQ_E_ARG, "reports: %s", why);
  if (!ret && erpq_ropts_from_config(&rc->ropts, erpq_args_lookup, (void *)a, why, sizeof why))
    ret = erpq_fail(err, errlen, ERPQ_E_ARG, "reports: %s", why);
  if (!ret) {
    const char *t = erpq_args_env(a, "ERPQ_REPORT_TMPDIR");
    snprintf(rc->tmpdir, sizeof rc->tmpdir, "%s", t && *t ? t : "/var/tmp");
    struct stat sb;
    if (rc->tmpdir[0] != '/' || stat(rc->tmpdir, &sb) || !S_ISDIR(sb.st_mode) ||
        access(rc->tmpdir, W_OK | X_OK))
      ret = erpq_fail(err, errlen, ERPQ_E_ARG,
                      "reports: ERPQ_REPORT_TMPDIR (%s) must be a writable directory given by "
                      "its absolute path",
                      rc->tmpdir);
  }
  if (!ret) {
    rc->link_ttl_s = erpq_args_int(a, "report-link-ttl", ERPQ_LINK_TTL_DEFAULT);
    rc->max_rows = (uint64_t)erpq_args_int(a, "report-max-rows", 0);
    rc->db_stall_s = (unsigned)erpq_args_int(a, "report-db-stall-timeout", 120);
    const char *kp = erpq_args_env(a, "ERPQ_REPORT_KEY_PREFIX");
    snprintf(rc->key_prefix, sizeof rc->key_prefix, "%s", kp && *kp ? kp : "reports");
    char probe[200];
    snprintf(probe, sizeof probe, "%s/1/x", rc->key_prefix);
    if (strlen(kp ? kp : "") >= sizeof rc->key_prefix - 1 ||
        rc->key_prefix[strlen(rc->key_prefix) - 1] == '/' ||
        erpq_storage_key_check(probe, strlen(probe), why, sizeof why))
      ret = erpq_fail(err, errlen, ERPQ_E_ARG,
                      "reports: ERPQ_REPORT_KEY_PREFIX must be a relative path such as reports or "
                      "staging/reports");
    const char *nq = erpq_args_env(a, "ERPQ_REPORT_NOTIFY_QUEUE");
    snprintf(rc->notify_queue, sizeof rc->notify_queue, "%s", nq && *nq ? nq : "email");
    if (rc->sconf.kind == ERPQ_STORAGE_S3) {
      rc->sconf.s3.log = s3_log;
      rc->sconf.s3.log_ud = NULL;
    }
    if (!ret && erpq_storage_new(&rc->st, &rc->sconf, why, sizeof why))
      ret = erpq_fail(err, errlen, ERPQ_E_ARG, "reports: %s", why);
  }
  if (ret) {
    erpq_storage_conf_clear(&rc->sconf);
    memset(&rc->db, 0, sizeof rc->db);
    free(rc);
    return ret;
  }
  /* Only what the result needs stays: the bucket, the part size, the kind. */
  memset(rc->sconf.s3.secret_access_key, 0, sizeof rc->sconf.s3.secret_access_key);
  memset(rc->sconf.s3.session_token, 0, sizeof rc->sconf.s3.session_token);
  erpq_link_signer_clear(&rc->sconf.links);
  *out = rc;
  return 0;
}

static void reports_shutdown(void *ctx) {
  reports_ctx *rc = ctx;
  if (!rc)
    return;
  erpq_storage_free(rc->st);
  erpq_storage_conf_clear(&rc->sconf);
  memset(&rc->db, 0, sizeof rc->db); /* The password. */
  free(rc);
}

#define END                                                                                        \
  { NULL, 0, NULL, NULL, NULL, 0, 0, NULL, 0 }

static const erpq_opt reports_settings[] = {
    ERPQ_STORAGE_SETTINGS,
    {"mysql-url", ERPQ_OPT_STRING, "ERPQ_MYSQL_URL", "URL",
     "the ERP's MariaDB/MySQL database: mysql://user:pass@host:port/db\n"
     "(?socket=/path for a unix socket; connect/read/write timeouts)",
     0, 0, NULL, ERPQ_OPT_SECRET},
    {"report-link-ttl", ERPQ_OPT_INT, "ERPQ_REPORT_LINK_TTL", "S",
     "lifetime of the download link in a report's result (at most 7 days)", 1, 604800, "900", 0},
    {"report-max-rows", ERPQ_OPT_INT, "ERPQ_REPORT_MAX_ROWS", "N",
     "refuse a report of more rows, any format (0: no limit)", 0, INT64_C(1000000000000),
     "10000000", 0},
    {"report-pdf-max-rows", ERPQ_OPT_INT, "ERPQ_REPORT_PDF_MAX_ROWS", "N",
     "refuse a PDF of more rows (libharu holds the document in memory:\n"
     "about 9 MiB per 10,000 rows)",
     1, 4294967295, "200000", 0},
    {"report-csv-bom", ERPQ_OPT_INT, "ERPQ_REPORT_CSV_BOM", "0|1",
     "start CSV files with a UTF-8 BOM (Excel needs it to read UTF-8)", 0, 1, "1", 0},
    {"report-csv-buffer", ERPQ_OPT_INT, "ERPQ_REPORT_CSV_BUFFER", "BYTES",
     "CSV bytes buffered before the upload (default 16384)", 1024, 67108864, NULL, 0},
    {"report-xlsx-rows-per-sheet", ERPQ_OPT_INT, "ERPQ_REPORT_XLSX_ROWS_PER_SHEET", "N",
     "XLSX data rows per sheet before a new sheet (default and most: 1048575)", 1, 1048575, NULL,
     0},
    {"report-tmpdir", ERPQ_OPT_STRING, "ERPQ_REPORT_TMPDIR", "DIR",
     "temporary files of XLSX and PDF reports (a disk, not a tmpfs)", 0, 0, "/var/tmp", 0},
    {"report-font-regular", ERPQ_OPT_STRING, "ERPQ_REPORT_FONT_REGULAR", "TTF",
     "PDF font (default DejaVu Sans of fonts-dejavu-core)", 0, 0, NULL, 0},
    {"report-font-bold", ERPQ_OPT_STRING, "ERPQ_REPORT_FONT_BOLD", "TTF",
     "PDF bold font (default DejaVu Sans Bold)", 0, 0, NULL, 0},
    {"report-db-stall-timeout", ERPQ_OPT_INT, "ERPQ_REPORT_DB_STALL_TIMEOUT", "S",
     "the database drops a report's result that nobody reads for this long\n"
     "(net_write_timeout: a stalled upload cannot hold it open for ever)",
     1, 86400, "120", 0},
    {"report-key-prefix", ERPQ_OPT_STRING, "ERPQ_REPORT_KEY_PREFIX", "PATH",
     "first part of report object keys: give each deployment sharing a bucket\n"
     "or directory its own",
     0, 0, "reports", 0},
    {"report-notify-queue", ERPQ_OPT_STRING, "ERPQ_REPORT_NOTIFY_QUEUE", "QUEUE",
     "queue of the report-ready e-mails (job send-email)", 0, 0, "email", 0},
    END};

static const erpq_family_job reports_jobs[] = {{"fee-collection", h_collection},
                                               {"defaulters", h_defaulters},
                                               {"fee-statement", h_statement},
                                               {NULL, NULL}};

const erpq_family erpq_family_reports = {
    .name = "reports",
    .settings = reports_settings,
    .jobs = reports_jobs,
    .threads = 0,
    .init = reports_init,
    .shutdown = reports_shutdown,
};
