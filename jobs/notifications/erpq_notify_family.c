/* erpq_notify_family.c - the notifications family's descriptor: its
 * settings, init (templates, database, transports, dispatchers, ledger,
 * relay), quiesce and shutdown (erpq_notifications.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_log.h"
#include "erpq_notifications.h"
#include "erpq_notify_internal.h"
#include "erpq_s3.h"
#include "erpq_storage.h"

#define S ERPQ_OPT_STRING
#define I ERPQ_OPT_INT
#define SECRET ERPQ_OPT_SECRET

static const erpq_opt nt_settings[] = {
    {"mysql-url", S, "ERPQ_MYSQL_URL", "URL",
     "the ERP's MariaDB/MySQL database: mysql://user:pass@host:port/db\n"
     "(?socket=/path for a unix socket; connect/read/write timeouts)",
     0, 0, NULL, SECRET},
    {"templates-dir", S, "ERPQ_TEMPLATES_DIR", "DIR",
     "mail and SMS templates (default: templates/ of the data directory)", 0, 0, NULL, 0},
    /* E-mail. */
    {"smtp-url", S, "ERPQ_SMTP_URL", "URL",
     "SMTP relay: smtp://[user:pass@]host[:port][?starttls=required|try] or smtps://...\n"
     "(unset: this worker sends no e-mail)",
     0, 0, NULL, SECRET},
    {"smtp-user", S, "ERPQ_SMTP_USER", "USER", "SMTP user (when not in the URL)", 0, 0, NULL, 0},
    {"smtp-password", S, "ERPQ_SMTP_PASSWORD", "PASS", "SMTP password (or ERPQ_SMTP_PASSWORD_FILE)",
     0, 0, NULL, SECRET},
    {"smtp-connections", I, "ERPQ_SMTP_CONNECTIONS", "N", "SMTP sessions at most", 1, 256, "4", 0},
    {"smtp-messages-per-connection", I, "ERPQ_SMTP_MESSAGES_PER_CONNECTION", "N",
     "messages per SMTP session before it is replaced", 1, 1000000, "100", 0},
    {"smtp-connect-timeout-ms", I, "ERPQ_SMTP_CONNECT_TIMEOUT_MS", "MS", "SMTP connect timeout",
     100, 600000, "10000", 0},
    {"smtp-timeout-ms", I, "ERPQ_SMTP_TIMEOUT_MS", "MS", "whole SMTP send timeout", 100, 3600000,
     "60000", 0},
    {"smtp-reply-timeout-ms", I, "ERPQ_SMTP_REPLY_TIMEOUT_MS", "MS", "each SMTP reply", 1000,
     600000, "30000", 0},
    {"smtp-ca-file", S, "ERPQ_SMTP_CA_FILE", "FILE", "CA bundle for the SMTP server", 0, 0, NULL,
     0},
    {"mail-from", S, "ERPQ_MAIL_FROM", "FROM",
     "the sender: \"School Office <office@school.example>\" (its domain names the Message-IDs)", 0,
     0, NULL, 0},
    {"smtp-rate", I, "ERPQ_SMTP_RATE", "N",
     "e-mails per second across the fleet (0: no limit; counted in Redis)", 0, 1000000, "0", 0},
    {"smtp-daily-limit", I, "ERPQ_SMTP_DAILY_LIMIT", "N",
     "e-mails per UTC day across the fleet (0: none)", 0, 1000000000, "0", 0},
    {"mail-max-attachment-bytes", I, "ERPQ_MAIL_MAX_ATTACHMENT_BYTES", "N",
     "attachments of one mail at most", 0, 1073741824, "10485760", 0},
    {"unsubscribe-url", S, "ERPQ_UNSUBSCRIBE_URL", "URL",
     "https base of reminder unsubscribe links (List-Unsubscribe + RFC 8058 one-click)", 0, 0, NULL,
     0},
    {"unsubscribe-secret", S, "ERPQ_UNSUBSCRIBE_SECRET", "S",
     "signs the unsubscribe links (32+ bytes; shared with the HTTP API)", 0, 0, NULL, SECRET},
    {"unsubscribe-mailto", S, "ERPQ_UNSUBSCRIBE_MAILTO", "ADDR",
     "an address for mailto: unsubscribe requests", 0, 0, NULL, 0},
    /* SMS. */
    {"sms-url", S, "ERPQ_SMS_URL", "URL",
     "Twilio-compatible API base, e.g. https://api.twilio.com (unset: no SMS)", 0, 0, NULL, 0},
    {"sms-account-sid", S, "ERPQ_SMS_ACCOUNT_SID", "SID", "SMS account SID", 0, 0, NULL, 0},
    {"sms-auth-token", S, "ERPQ_SMS_AUTH_TOKEN", "TOKEN", "SMS auth token (or _FILE)", 0, 0, NULL,
     SECRET},
    {"sms-from", S, "ERPQ_SMS_FROM", "E164", "SMS sender number or id", 0, 0, NULL, 0},
    {"sms-connections", I, "ERPQ_SMS_CONNECTIONS", "N", "SMS requests in flight at most", 1, 256,
     "4", 0},
    {"sms-connect-timeout-ms", I, "ERPQ_SMS_CONNECT_TIMEOUT_MS", "MS", "SMS connect timeout", 100,
     600000, "10000", 0},
    {"sms-timeout-ms", I, "ERPQ_SMS_TIMEOUT_MS", "MS", "whole SMS request timeout", 100, 3600000,
     "30000", 0},
    {"sms-throttle-default-ms", I, "ERPQ_SMS_THROTTLE_DEFAULT_MS", "MS",
     "delay after a 429 without Retry-After", 0, 86400000, "1000", 0},
    {"sms-ca-file", S, "ERPQ_SMS_CA_FILE", "FILE", "CA bundle for the SMS API", 0, 0, NULL, 0},
    {"sms-rate", I, "ERPQ_SMS_RATE", "N", "SMS per second across the fleet (0: no limit)", 0,
     1000000, "0", 0},
    {"sms-daily-limit", I, "ERPQ_SMS_DAILY_LIMIT", "N",
     "SMS per UTC day across the fleet (0: none)", 0, 1000000000, "0", 0},
    {"sms-default-country", I, "ERPQ_SMS_DEFAULT_COUNTRY", "CC",
     "country calling code for numbers stored without one (0: refuse them)", 0, 999, "91", 0},
    {"sms-max-segments", I, "ERPQ_SMS_MAX_SEGMENTS", "N", "refuse an SMS longer than N segments", 1,
     255, "10", 0},
    /* Shared limits, breaker, sends. */
    {"notify-rate-margin-ms", I, "ERPQ_NOTIFY_RATE_MARGIN_MS", "MS",
     "a rate slot is held 1000 ms plus this (network jitter)", 0, 60000, "100", 0},
    {"breaker-threshold", I, "ERPQ_BREAKER_THRESHOLD", "N",
     "consecutive provider failures that open the circuit", 1, 100000, "5", 0},
    {"breaker-open-ms", I, "ERPQ_BREAKER_OPEN_MS", "MS", "first open period", 1, 86400000, "30000",
     0},
    {"breaker-max-open-ms", I, "ERPQ_BREAKER_MAX_OPEN_MS", "MS",
     "longest open period (doubles per failed probe)", 1, 86400000, "600000", 0},
    {"breaker-probe-ms", I, "ERPQ_BREAKER_PROBE_MS", "MS", "how long a half-open probe may take", 1,
     86400000, "60000", 0},
    {"notify-attempts", I, "ERPQ_NOTIFY_ATTEMPTS", "N", "attempts of the sends fee-reminders adds",
     1, 100, "5", 0},
    {"notify-backoff-ms", I, "ERPQ_NOTIFY_BACKOFF_MS", "MS", "their exponential backoff", 0,
     86400000, "30000", 0},
    {"notify-keep-completed-s", I, "ERPQ_NOTIFY_KEEP_COMPLETED_S", "S",
     "their removeOnComplete age (a re-run within it counts them as alreadyQueued)", 0, 31536000,
     "86400", 0},
    {"notify-page-size", I, "ERPQ_NOTIFY_PAGE_SIZE", "N", "defaulters per fee-reminders page", 1,
     100000, "500", 0},
    {"notify-pay-url", S, "ERPQ_NOTIFY_PAY_URL", "URL",
     "payUrl of reminders; {schoolId} and {studentId} are replaced (unset: null)", 0, 0, NULL, 0},
    {"notify-email-queue", S, "ERPQ_NOTIFY_EMAIL_QUEUE", "Q", "where fee-reminders adds send-email",
     0, 0, "email", 0},
    {"notify-sms-queue", S, "ERPQ_NOTIFY_SMS_QUEUE", "Q", "where fee-reminders adds send-sms", 0, 0,
     "sms", 0},
    {"notify-reports-queue", S, "ERPQ_NOTIFY_REPORTS_QUEUE", "Q",
     "the queue of report jobs that attachments name", 0, 0, "reports", 0},
    {"notify-lease-ms", I, "ERPQ_NOTIFY_LEASE_MS", "MS",
     "how long a claimed send blocks other jobs with its dedup key", 120000, 86400000, "300000", 0},
    {"notify-batch", I, "ERPQ_NOTIFY_BATCH", "N", "sends per ledger transaction", 1, 10000, "200",
     0},
    /* Records in MongoDB. */
    {"mongo-url", S, "ERPQ_MONGO_URL", "URL",
     "MongoDB for notification records and the audit log (unset: they stay in MySQL)", 0, 0, NULL,
     SECRET},
    {"mongo-db", S, "ERPQ_MONGO_DB", "DB", "database when the URL names none", 0, 0, "erp", 0},
    {"outbox-batch", I, "ERPQ_OUTBOX_BATCH", "N", "outbox rows per MongoDB write", 1, 100000, "500",
     0},
    {"outbox-idle-ms", I, "ERPQ_OUTBOX_IDLE_MS", "MS", "outbox poll period when it is empty", 10,
     3600000, "1000", 0},
    {"outbox-log-ms", I, "ERPQ_OUTBOX_LOG_MS", "MS", "period of the outbox.backlog line", 100,
     86400000, "30000", 0},
    /* Report storage (attachments), as the reports family reads it. */
    {"storage-dir", S, "ERPQ_STORAGE_DIR", "DIR", "local report storage directory", 0, 0, NULL, 0},
    {"storage-secret", S, "ERPQ_STORAGE_SECRET", "S", "report link secret", 0, 0, NULL, SECRET},
    {"public-url", S, "ERPQ_PUBLIC_URL", "URL", "base of local report links", 0, 0, NULL, 0},
    {"s3-bucket", S, "ERPQ_S3_BUCKET", "B", "S3 bucket of report files", 0, 0, NULL, 0},
    {"s3-endpoint", S, "ERPQ_S3_ENDPOINT", "URL", "S3 endpoint", 0, 0, NULL, 0},
    {"s3-region", S, "ERPQ_S3_REGION", "R", "S3 region", 0, 0, NULL, 0},
    {"s3-access-key-id", S, "ERPQ_S3_ACCESS_KEY_ID", "K", "S3 access key id", 0, 0, NULL, 0},
    {"s3-secret-access-key", S, "ERPQ_S3_SECRET_ACCESS_KEY", "S", "S3 secret key", 0, 0, NULL,
     SECRET},
    {"s3-session-token", S, "ERPQ_S3_SESSION_TOKEN", "T", "S3 session token", 0, 0, NULL, SECRET},
    {"s3-addressing", S, "ERPQ_S3_ADDRESSING", "path|virtual", "S3 addressing", 0, 0, NULL, 0},
    {"s3-connect-timeout", S, "ERPQ_S3_CONNECT_TIMEOUT", "S", "S3 connect timeout", 0, 0, NULL, 0},
    {"s3-stall-timeout", S, "ERPQ_S3_STALL_TIMEOUT", "S", "S3 stall timeout", 0, 0, NULL, 0},
    {"s3-part-size", S, "ERPQ_S3_PART_SIZE", "N", "S3 part size", 0, 0, NULL, 0},
    {"s3-sse", S, "ERPQ_S3_SSE", "KIND", "S3 server-side encryption", 0, 0, NULL, 0},
    {"s3-sse-kms-key-id", S, "ERPQ_S3_SSE_KMS_KEY_ID", "K", "S3 KMS key id", 0, 0, NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0, 0, NULL, 0}};

static void tpl_warn(void *ud, const char *msg) {
  (void)ud;
  erpq_log(ERPQ_LOG_WARN, "notify.templates", "note", msg, NULL);
}

static void do_quiesce(nt_ctx *nc) {
  if (atomic_exchange(&nc->stopping, 1))
    return;
  /* Every transfer completes (cancelled) and files its outcome; the
   * dispatchers hand outcomes to the ledger and end what they queue; the
   * ledger records and ends the rest. */
  if (nc->runner)
    erpq_curl_async_stop(nc->runner, 0);
  nc->runner = NULL;
  erpq_log(ERPQ_LOG_DEBUG, "notify.quiesce", "step", "transfers ended", NULL);
  for (int ch = 0; ch < NT_NCH; ch++)
    nt_pipe_stop(nc->pipe[ch]);
  erpq_log(ERPQ_LOG_DEBUG, "notify.quiesce", "step", "dispatchers stopped", NULL);
  nt_ledger_stop(nc->ledger);
  erpq_log(ERPQ_LOG_DEBUG, "notify.quiesce", "step", "ledger stopped", NULL);
  nt_relay_stop(nc->relay);
  nc->relay = NULL;
  /* Every send has ended its job by now: none is left registered. */
  pthread_mutex_lock(&nc->reg_mu);
  char held[24];
  snprintf(held, sizeof held, "%zu", nc->reg_n);
  pthread_mutex_unlock(&nc->reg_mu);
  erpq_log(nc->reg_n ? ERPQ_LOG_ERROR : ERPQ_LOG_INFO, "notify.quiesced", "#held", held, NULL);
}

static void nt_quiesce(void *ctx) {
  if (ctx)
    do_quiesce(ctx);
}

static void nt_shutdown(void *ctx) {
  nt_ctx *nc = ctx;
  if (!nc)
    return;
  do_quiesce(nc);
  erpq_log(ERPQ_LOG_DEBUG, "notify.shutdown", NULL);
  for (int ch = 0; ch < NT_NCH; ch++)
    nt_pipe_free(nc->pipe[ch]);
  nt_ledger_free(nc->ledger);
  if (nc->smtp)
    erpq_smtp_free(nc->smtp);
  if (nc->sms)
    erpq_sms_free(nc->sms);
  if (nc->s3)
    erpq_s3_free(nc->s3);
  if (nc->storage)
    erpq_storage_free(nc->storage);
  erpq_mysql_pool_free(nc->pool);
  erpq_templates_free(nc->tpl);
  nt_registry_free(nc);
  pthread_mutex_destroy(&nc->reg_mu);
  nt_conf_clear(&nc->conf);
  memset(&nc->db, 0, sizeof nc->db);
  free(nc);
  erpq_log(ERPQ_LOG_DEBUG, "notify.shutdown_done", NULL);
}

static void open_storage(nt_ctx *nc, const erpq_family_env *env) {
  erpq_storage_conf sc;
  char why[512] = "";
  int rc = erpq_storage_conf_read(&sc, erpq_args_lookup, (void *)env->args, why, sizeof why);
  erpq_storage *st = NULL;
  if (!rc)
    rc = erpq_storage_new(&st, &sc, why, sizeof why);
  if (!rc && erpq_storage_kind_of(st) == ERPQ_STORAGE_S3) {
    erpq_s3 *s3 = NULL;
    rc = erpq_s3_new(&s3, &sc.s3, why, sizeof why);
    nc->s3 = s3;
  }
  erpq_storage_conf_clear(&sc);
  if (rc) {
    if (st)
      erpq_storage_free(st);
    snprintf(nc->storage_off, sizeof nc->storage_off, "%s", why);
    return;
  }
  nc->storage = st;
}

static int nt_init(void **out, const erpq_family_env *env, char *err, size_t errlen) {
  *out = NULL;
  nt_ctx *nc = calloc(1, sizeof *nc);
  if (!nc)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  pthread_mutex_init(&nc->reg_mu, NULL);
  atomic_init(&nc->stopping, 0);
  int rc = nt_conf_read(&nc->conf, env, err, errlen);
  const char *url = erpq_args_env(env->args, "ERPQ_MYSQL_URL");
  if (!rc && (!url || !*url))
    rc = erpq_fail(err, errlen, ERPQ_E_ARG,
                   "no database: set ERPQ_MYSQL_URL (or --mysql-url); the send records live there");
  if (!rc)
    rc = erpq_mysql_url_parse(url, &nc->db, err, errlen);
  if (!rc)
    rc = erpq_templates_load(nc->conf.templates_dir, tpl_warn, NULL, &nc->tpl, err, errlen);
  if (rc || env->concurrency <= 0)
    goto done;

  rc = erpq_mysql_pool_new(&nc->pool, &nc->db, 4);
  if (rc) {
    erpq_fail(err, errlen, rc, "cannot create the MySQL connection pool");
    goto done;
  }
  erpq_conf_src src = {erpq_args_lookup, (void *)env->args};
  erpq_curl_async_conf cc = {
      .max_total_connections = 0, .max_host_connections = 0, .max_active = 512};
  rc = erpq_curl_async_start(&nc->runner, &cc, err, errlen);
  if (rc)
    goto done;
  if (erpq_args_env(env->args, "ERPQ_SMTP_URL")) {
    if ((rc = erpq_smtp_new(&nc->smtp, nc->runner, &src, err, errlen)))
      goto done;
  } else {
    snprintf(nc->smtp_off, sizeof nc->smtp_off, "ERPQ_SMTP_URL is not set");
  }
  if (erpq_args_env(env->args, "ERPQ_SMS_URL")) {
    if ((rc = erpq_sms_new(&nc->sms, nc->runner, &src, err, errlen)))
      goto done;
  } else {
    snprintf(nc->sms_off, sizeof nc->sms_off, "ERPQ_SMS_URL is not set");
  }
  open_storage(nc, env);
  if ((rc = nt_ledger_start(&nc->ledger, nc, err, errlen)))
    goto done;
  if (nc->smtp && (rc = nt_pipe_start(&nc->pipe[NT_EMAIL], nc, NT_EMAIL, err, errlen)))
    goto done;
  if (nc->sms && (rc = nt_pipe_start(&nc->pipe[NT_SMS], nc, NT_SMS, err, errlen)))
    goto done;
  if (nc->conf.mongo_url && (rc = nt_relay_start(&nc->relay, &nc->db, &nc->conf, err, errlen)))
    goto done;
  char rate_e[24], rate_s[24];
  snprintf(rate_e, sizeof rate_e, "%lld", (long long)nc->conf.lim[NT_EMAIL].per_window);
  snprintf(rate_s, sizeof rate_s, "%lld", (long long)nc->conf.lim[NT_SMS].per_window);
  erpq_log(ERPQ_LOG_INFO, "notify.ready", "email", nc->smtp ? "on" : nc->smtp_off, "sms",
           nc->sms ? "on" : nc->sms_off, "records", nc->relay ? "mongodb" : "mysql", "attachments",
           nc->storage ? "on" : "off", "#smtpRate", rate_e, "#smsRate", rate_s, NULL);
done:
  if (rc) {
    nt_shutdown(nc);
    return rc;
  }
  *out = nc;
  return 0;
}

static const erpq_family_job nt_jobs[] = {{"send-email", nt_h_send_email},
                                          {"send-sms", nt_h_send_sms},
                                          {"fee-reminders", nt_h_fee_reminders},
                                          {NULL, NULL}};

const erpq_family erpq_family_notifications = {
    .name = "notifications",
    .settings = nt_settings,
    .jobs = nt_jobs,
    .threads = 4,
    .init = nt_init,
    .quiesce = nt_quiesce,
    .shutdown = nt_shutdown,
};
