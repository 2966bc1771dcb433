/*
 * erpq_notify_ledger.c - the MySQL side of "no double sends": claims
 * before a send, outcomes (with their outbox records) after it, both in
 * batches, on two threads (one claims, one records outcomes), each with a
 * connection of its own, so that the two kinds of transaction are in the
 * database at the same time and their COMMITs share a log flush.
 *
 * A claim batch is one READ COMMITTED transaction:
 *   INSERT IGNORE the rows (status 'pending', owner = this job, a lease);
 *   SELECT them back; a row that is someone else's and claimable (failed,
 *   or pending with its lease run out) is taken over with one guarded
 *   UPDATE; a row of ours from an earlier attempt gets a fresh lease.
 *   Outcome per send: CLAIMED (go on), ALREADY_SENT (end the job with the
 *   earlier result, send nothing), BUSY (another live job holds it: delay
 *   the job by its lease). Fresh rows take no gap locks in READ COMMITTED,
 *   and the rows are taken in dedup-hash order, so two workers' batches
 *   rarely deadlock; a deadlock rolls the batch back and runs it again.
 *
 * An outcome batch is one transaction: one multi-row upsert marks every
 * accepted send 'sent'; a failure or a retry is one guarded UPDATE each
 * (never over a 'sent' row, only while the job still owns it); in the same
 * transaction the outbox rows that carry the notifications record and the
 * audit events to MongoDB. The jobs are finished only after the COMMIT.
 * When the database stays unreachable for RECORD_RETRY_MS, a send the
 * provider had accepted still completes its job (with "recorded": false and
 * an error line in the log): failing it would make bull send it again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "erpq_err.h"
#include "erpq_log.h"
#include "erpq_notify_internal.h"
#include "erpq_notify_sql.h"
#include "erpq_util.h"

#define TX_TRIES 5
#define RECORD_RETRY_MS 20000
#define BUSY_RECHECK_MS 2000

/* A connection of the ledger (one per thread). */
typedef struct lconn {
  nt_ctx *nc;
  MYSQL *m;
  erpq_stmt *up_failed, *up_retry;
} lconn;

struct nt_ledger {
  nt_ctx *nc;
  pthread_t th_claims, th_outs;
  int started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  nt_send *claims, *claims_tail, *outs, *outs_tail;
  int stop, woken_claims, woken_outs, outs_gone;
  lconn cc, oc;
};

static void push(nt_send **head, nt_send **tail, nt_send *s) {
  s->next = NULL;
  if (*tail)
    (*tail)->next = s;
  else
    *head = s;
  *tail = s;
}

void nt_ledger_claim(nt_ledger *l, nt_send *s) {
  pthread_mutex_lock(&l->mu);
  if (l->stop) {
    pthread_mutex_unlock(&l->mu);
    nt_send_finish(s, -ECANCELED, NULL, "the worker is stopping");
    return;
  }
  int was_empty = !l->claims;
  push(&l->claims, &l->claims_tail, s);
  if (was_empty)
    pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

void nt_ledger_outcome(nt_ledger *l, nt_send *s) {
  nt_send_stage(s, NT_STAGE_OUTCOME);
  pthread_mutex_lock(&l->mu);
  if (l->outs_gone) {
    /* Cannot happen (the dispatchers stop first); never leave a job held. */
    pthread_mutex_unlock(&l->mu);
    nt_send_finish(s, s->out == NT_OUT_ACCEPTED ? 0 : -ECANCELED, NULL, "the worker is stopping");
    return;
  }
  int was_empty = !l->outs;
  push(&l->outs, &l->outs_tail, s);
  if (was_empty)
    pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

void nt_ledger_wake(nt_ledger *l) {
  pthread_mutex_lock(&l->mu);
  l->woken_claims = l->woken_outs = 1;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

/* ---- The connection ----------------------------------------------------------------- */

static void drop_conn(lconn *l) {
  erpq_stmt_close(l->up_failed);
  erpq_stmt_close(l->up_retry);
  l->up_failed = l->up_retry = NULL;
  if (l->m)
    mysql_close(l->m);
  l->m = NULL;
}

static int ensure_conn(lconn *l, char *err, size_t errlen) {
  if (l->m)
    return 0;
  l->m = erpq_mysql_connect(&l->nc->db, 0, err, errlen);
  if (!l->m)
    return -ENOTCONN;
  int rc =
      erpq_mysql_exec(l->m, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", err, errlen);
  if (!rc)
    rc = erpq_stmt_prepare(l->m,
                           "UPDATE notifications SET status = 'failed', last_error = ?,"
                           " attempts = attempts + 1, record_version = record_version + 1,"
                           " owner = NULL, lease_until = NULL"
                           " WHERE dedup_hash = ? AND status <> 'sent' AND owner = ?",
                           &l->up_failed, err, errlen);
  if (!rc)
    rc = erpq_stmt_prepare(
        l->m,
        "UPDATE notifications SET last_error = ?, attempts = attempts + 1,"
        " lease_until = NULL WHERE dedup_hash = ? AND status = 'pending' AND owner = ?",
        &l->up_retry, err, errlen);
  if (rc)
    drop_conn(l);
  return rc;
}

static void rollback(lconn *l) {
  char ignore[128];
  if (l->m)
    erpq_mysql_exec(l->m, "ROLLBACK", ignore, sizeof ignore);
}

/* After a failed statement: drop a lost connection; 1 if the transaction
 * is worth running again. */
static int after_error(lconn *l, int rc) {
  if (erpq_mysql_lost(rc)) {
    drop_conn(l);
    return 1;
  }
  rollback(l);
  return erpq_mysql_retryable(rc);
}

/* ---- Claims --------------------------------------------------------------------------- */

static int cmp_hash(const void *a, const void *b) {
  const nt_send *x = *(nt_send *const *)a, *y = *(nt_send *const *)b;
  return strcmp(x->dedup_hash, y->dedup_hash);
}

static char *placeholders(const char *head, const char *row, size_t n, const char *tail) {
  size_t len = strlen(head) + n * (strlen(row) + 1) + strlen(tail) + 1;
  char *s = malloc(len), *p = s;
  if (!s)
    return NULL;
  p += sprintf(p, "%s", head);
  for (size_t i = 0; i < n; i++)
    p += sprintf(p, "%s%s", i ? "," : "", row);
  sprintf(p, "%s", tail);
  return s;
}

/* One claim transaction over v[0..n) (sorted, distinct hashes). */
static int claim_tx(lconn *l, nt_send **v, size_t n, char *err, size_t errlen) {
  int64_t lease_ms = l->nc->conf.lease_ms;
  int rc = erpq_mysql_exec(l->m, "START TRANSACTION", err, errlen);
  if (rc)
    return rc;
  enum { IC = 10 };
  char *ins = placeholders(
      "INSERT IGNORE INTO notifications (dedup_hash, school_id, channel, template,"
      " locale, recipient_masked, status, owner, lease_until, job_queue, job_id)"
      " VALUES ",
      "(?,?,?,?,?,?,'pending',?,TIMESTAMPADD(MICROSECOND, ? * 1000, NOW(3)),?,?)", n, "");
  char *sel = placeholders("SELECT dedup_hash, status, owner,"
                           " CASE WHEN lease_until IS NULL THEN NULL"
                           " ELSE TIMESTAMPDIFF(MICROSECOND, NOW(3), lease_until) DIV 1000 END,"
                           " record_version, attempts, provider_id,"
                           " CAST(UNIX_TIMESTAMP(created_at) * 1000 AS SIGNED)"
                           " FROM notifications WHERE dedup_hash IN (",
                           "?", n, ")");
  erpq_param *p = calloc(n * IC, sizeof *p);
  if (!ins || !sel || !p)
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
  for (size_t i = 0; !rc && i < n; i++) {
    nt_send *s = v[i];
    erpq_param *r = &p[i * IC];
    r[0] = ERPQ_PS(s->dedup_hash);
    r[1] = ERPQ_PI(s->school);
    r[2] = ERPQ_PS(nt_channel_name(s->ch));
    r[3] = ERPQ_PS(s->tmpl);
    r[4] = ERPQ_PS(s->locale);
    r[5] = ERPQ_PS(s->masked);
    r[6] = ERPQ_PS(s->owner);
    r[7] = ERPQ_PI(lease_ms);
    r[8] = ERPQ_PS(s->queue);
    r[9] = ERPQ_PS(s->job_id);
  }
  if (!rc)
    rc = erpq_mysql_run(l->m, ins, p, (int)(n * IC), NULL, NULL, err, errlen);
  nt_rows rows = {0};
  if (!rc) {
    for (size_t i = 0; i < n; i++)
      p[i] = ERPQ_PS(v[i]->dedup_hash);
    rc = nt_sql_rows(l->m, sel, p, (int)n, &rows, err, errlen);
  }
  for (size_t i = 0; !rc && i < n; i++) {
    nt_send *s = v[i];
    size_t r = rows.nrows;
    for (size_t k = 0; k < rows.nrows; k++)
      if (!strcmp(nt_cell(&rows, k, 0), s->dedup_hash))
        r = k;
    if (r == rows.nrows) {
      rc = erpq_fail(err, errlen, -EIO, "a claimed row is missing after its insert");
      break;
    }
    const char *status = nt_cell(&rows, r, 1), *owner = nt_cell(&rows, r, 2);
    const char *lease = nt_cell(&rows, r, 3), *pid = nt_cell(&rows, r, 6);
    int64_t left = lease ? strtoll(lease, NULL, 10) : 0;
    s->version = atoi(nt_cell(&rows, r, 4) ? nt_cell(&rows, r, 4) : "0");
    s->attempts = atoi(nt_cell(&rows, r, 5) ? nt_cell(&rows, r, 5) : "0");
    s->created_ms = nt_cell(&rows, r, 7) ? strtoll(nt_cell(&rows, r, 7), NULL, 10) : 0;
    snprintf(s->prev_provider_id, sizeof s->prev_provider_id, "%s", pid ? pid : "");
    int mine = owner && !strcmp(owner, s->owner);
    if (!strcmp(status, "sent")) {
      s->claim = NT_ALREADY_SENT;
      continue;
    }
    if (!strcmp(status, "pending") && !mine && lease && left > 0) {
      /* Another live job holds it: look again in a moment (it is usually
       * sent by then), not only when its lease runs out. */
      s->claim = NT_BUSY;
      s->busy_ms = left < BUSY_RECHECK_MS ? left : BUSY_RECHECK_MS;
      continue;
    }
    if (mine && lease && left > lease_ms - 60000) {
      s->claim = NT_CLAIMED; /* inserted just now */
      continue;
    }
    /* Ours from an earlier attempt (renew the lease), or claimable. */
    erpq_param up[] = {ERPQ_PS(s->owner),  ERPQ_PI(lease_ms),      ERPQ_PS(s->tmpl),
                       ERPQ_PS(s->locale), ERPQ_PS(s->masked),     ERPQ_PS(s->queue),
                       ERPQ_PS(s->job_id), ERPQ_PS(s->dedup_hash), ERPQ_PS(s->owner)};
    uint64_t aff = 0;
    rc = erpq_mysql_run(l->m,
                        "UPDATE notifications SET status = 'pending', owner = ?,"
                        " lease_until = TIMESTAMPADD(MICROSECOND, ? * 1000, NOW(3)), template = ?,"
                        " locale = ?, recipient_masked = ?, job_queue = ?, job_id = ?"
                        " WHERE dedup_hash = ? AND status <> 'sent' AND NOT (status = 'pending'"
                        " AND owner <> ? AND lease_until > NOW(3))",
                        up, 9, &aff, NULL, err, errlen);
    if (rc)
      break;
    if (aff == 1) {
      s->claim = NT_CLAIMED;
    } else {
      s->claim = NT_BUSY; /* taken by another worker since our SELECT */
      s->busy_ms = 1000;
    }
  }
  nt_rows_free(&rows);
  free(ins);
  free(sel);
  free(p);
  if (!rc)
    rc = erpq_mysql_exec(l->m, "COMMIT", err, errlen);
  return rc;
}

static void end_claim(lconn *l, nt_send *s) {
  nt_ctx *nc = l->nc;
  if (atomic_load(&s->cancelled) || atomic_load(&nc->stopping)) {
    nt_send_finish(s, -ECANCELED, NULL, "cancelled before the send");
    return;
  }
  switch (s->claim) {
  case NT_ALREADY_SENT:
    snprintf(s->provider_id, sizeof s->provider_id, "%s", s->prev_provider_id);
    nt_send_finish(s, 0, nt_result(s, "already-sent", s->attempts), NULL);
    return;
  case NT_BUSY: nt_send_delay(s, s->busy_ms, "another job is sending the same message"); return;
  default:
    if (!nc->pipe[s->ch]) {
      nt_send_finish(s, -ENOTSUP, NULL, "this worker does not send this channel");
      return;
    }
    nt_pipe_push(nc->pipe[s->ch], s);
    return;
  }
}

static void do_claims(lconn *l, nt_send *list) {
  size_t n = 0;
  for (nt_send *s = list; s; s = s->next)
    n++;
  nt_send **v = calloc(n ? n : 1, sizeof *v);
  if (!v) {
    for (nt_send *s = list, *next; s; s = next) {
      next = s->next;
      nt_send_finish(s, -ENOMEM, NULL, "out of memory");
    }
    return;
  }
  size_t k = 0;
  for (nt_send *s = list, *next; s; s = next) {
    next = s->next;
    if (atomic_load(&s->cancelled) || atomic_load(&l->nc->stopping))
      end_claim(l, s);
    else
      v[k++] = s;
  }
  qsort(v, k, sizeof *v, cmp_hash);
  /* Two jobs of one batch with the same dedup key: the later waits. */
  nt_send **dups = calloc(k ? k : 1, sizeof *dups);
  if (!dups) {
    for (size_t i = 0; i < k; i++)
      nt_send_finish(v[i], -ENOMEM, NULL, "out of memory");
    free(v);
    return;
  }
  size_t m = 0, nd = 0;
  for (size_t i = 0; i < k; i++) {
    if (m && !strcmp(v[m - 1]->dedup_hash, v[i]->dedup_hash)) {
      v[i]->claim = NT_BUSY;
      v[i]->busy_ms = 2000;
      dups[nd++] = v[i];
    } else {
      v[m++] = v[i];
    }
  }
  size_t u = m;
  char err[512] = "";
  int rc = 0;
  for (int t = 1; u && t <= TX_TRIES; t++) {
    rc = ensure_conn(l, err, sizeof err);
    if (!rc)
      rc = claim_tx(l, v, u, err, sizeof err);
    if (!rc || !after_error(l, rc))
      break;
    struct timespec ts = {0, (long)(20000000L << (t < 5 ? t : 5))};
    nanosleep(&ts, NULL);
  }
  if (rc) {
    char red[400], msg[512];
    nt_redact(err, red, sizeof red);
    snprintf(msg, sizeof msg, "could not claim the send in the database: %s", red);
    erpq_log(ERPQ_LOG_WARN, "notify.claim_failed", "error", red, NULL);
    for (size_t i = 0; i < u; i++)
      nt_send_finish(v[i], rc < 0 ? rc : -EIO, NULL, msg);
  } else {
    for (size_t i = 0; i < u; i++)
      end_claim(l, v[i]);
  }
  for (size_t i = 0; i < nd; i++)
    end_claim(l, dups[i]);
  free(dups);
  free(v);
}

/* ---- Outcomes ------------------------------------------------------------------------- */

typedef struct obrow {
  const char *type, *agg_id, *event;
  char *payload;
} obrow;

static int add_ob(obrow *rows, size_t *n, const char *type, const char *agg, const char *event,
                  json_t *doc) {
  if (!doc)
    return -ENOMEM;
  char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(doc);
  if (!text)
    return -ENOMEM;
  rows[*n] = (obrow){type, agg, event, text};
  (*n)++;
  return 0;
}

/* The rows of the nsent accepted sends of v[0..n) become 'sent' in one
 * statement (they exist: each was claimed; the INSERT part never inserts
 * unless a row was deleted meanwhile, and then it records the send). */
static int mark_sent(lconn *l, nt_send **v, size_t n, size_t nsent, char *err, size_t errlen) {
  enum { C = 12 };
  char *sql = placeholders(
      "INSERT INTO notifications (dedup_hash, school_id, channel, template, locale, "
      "recipient_masked,"
      " status, job_queue, job_id, provider_id, segments, encoding, sent_at, attempts, "
      "record_version)"
      " VALUES ",
      "(?,?,?,?,?,?,'sent',?,?,?,?,?,FROM_UNIXTIME(? / 1000),1,1)", nsent,
      " ON DUPLICATE KEY UPDATE status = 'sent', provider_id = VALUES(provider_id),"
      " segments = VALUES(segments), encoding = VALUES(encoding), sent_at = VALUES(sent_at),"
      " attempts = attempts + 1, record_version = record_version + 1, owner = NULL,"
      " lease_until = NULL, last_error = NULL");
  erpq_param *p = calloc(nsent * C, sizeof *p);
  int rc = sql && p ? 0 : erpq_fail(err, errlen, -ENOMEM, "out of memory");
  size_t k = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    nt_send *s = v[i];
    if (s->out != NT_OUT_ACCEPTED)
      continue;
    erpq_param *r = &p[k++ * C];
    r[0] = ERPQ_PS(s->dedup_hash);
    r[1] = ERPQ_PI(s->school);
    r[2] = ERPQ_PS(nt_channel_name(s->ch));
    r[3] = ERPQ_PS(s->tmpl);
    r[4] = ERPQ_PS(s->locale);
    r[5] = ERPQ_PS(s->masked);
    r[6] = ERPQ_PS(s->queue);
    r[7] = ERPQ_PS(s->job_id);
    r[8] = ERPQ_PS(s->provider_id);
    r[9] = s->ch == NT_SMS ? ERPQ_PI(s->segments) : ERPQ_PN;
    r[10] = s->ch == NT_SMS ? ERPQ_PS(s->encoding) : ERPQ_PN;
    r[11] = ERPQ_PI(s->sent_ms);
  }
  if (!rc)
    rc = erpq_mysql_run(l->m, sql, p, (int)(nsent * C), NULL, NULL, err, errlen);
  free(sql);
  free(p);
  return rc;
}

/* What each send's transaction writes; *wrote[i] says whether its row
 * changed (a failure's guarded UPDATE may find the row taken over). */
static int outcome_tx(lconn *l, nt_send **v, size_t n, int64_t now, char *err, size_t errlen) {
  obrow *ob = calloc(2 * n + 1, sizeof *ob);
  size_t nob = 0, nsent = 0;
  int rc = ob ? erpq_mysql_exec(l->m, "START TRANSACTION", err, errlen)
              : erpq_fail(err, errlen, -ENOMEM, "out of memory");
  for (size_t i = 0; !rc && i < n; i++) {
    nt_send *s = v[i];
    uint64_t aff = 0;
    int attempts = s->attempts + 1;
    if (s->out == NT_OUT_ACCEPTED) {
      nsent++; /* its row: one statement for all of them, below */
      rc = add_ob(ob, &nob, "notification", s->dedup_hash, "notification.record",
                  nt_record_doc(s, "sent", s->version + 1, attempts, now));
      if (!rc)
        rc = add_ob(ob, &nob, "notification", s->dedup_hash, "notification.sent",
                    nt_audit_data(s, "notification.sent", attempts));
    } else if (s->out == NT_OUT_PERMANENT || (s->out == NT_OUT_TEMPORARY && s->final_attempt)) {
      erpq_param p[] = {ERPQ_PS(s->error), ERPQ_PS(s->dedup_hash), ERPQ_PS(s->owner)};
      rc = erpq_stmt_exec(l->up_failed, p, 3, &aff, NULL, err, errlen);
      if (!rc && aff == 1)
        rc = add_ob(ob, &nob, "notification", s->dedup_hash, "notification.record",
                    nt_record_doc(s, "failed", s->version + 1, attempts, now));
      if (!rc && aff == 1)
        rc = add_ob(ob, &nob, "notification", s->dedup_hash, "notification.failed",
                    nt_audit_data(s, "notification.failed", attempts));
    } else if (s->out == NT_OUT_TEMPORARY) {
      erpq_param p[] = {ERPQ_PS(s->error), ERPQ_PS(s->dedup_hash), ERPQ_PS(s->owner)};
      rc = erpq_stmt_exec(l->up_retry, p, 3, &aff, NULL, err, errlen);
      if (!rc && aff == 1)
        rc = add_ob(ob, &nob, "notification", s->dedup_hash, "notification.retry",
                    nt_audit_data(s, "notification.retry", attempts));
    }
  }
  if (!rc && nsent)
    rc = mark_sent(l, v, n, nsent, err, errlen);
  if (!rc && nob) {
    char *sql = placeholders(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) VALUES ",
        "(?,?,?,?)", nob, "");
    erpq_param *p = calloc(nob * 4, sizeof *p);
    if (!sql || !p)
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < nob; i++) {
      p[4 * i] = ERPQ_PS(ob[i].type);
      p[4 * i + 1] = ERPQ_PS(ob[i].agg_id);
      p[4 * i + 2] = ERPQ_PS(ob[i].event);
      p[4 * i + 3] = ERPQ_PS(ob[i].payload);
    }
    if (!rc)
      rc = erpq_mysql_run(l->m, sql, p, (int)(nob * 4), NULL, NULL, err, errlen);
    free(sql);
    free(p);
  }
  for (size_t i = 0; ob && i < nob; i++)
    free(ob[i].payload);
  free(ob);
  if (!rc)
    rc = erpq_mysql_exec(l->m, "COMMIT", err, errlen);
  return rc;
}

static void end_outcome(nt_send *s, int recorded) {
  int attempts = s->attempts + 1;
  char msg[600];
  switch (s->out) {
  case NT_OUT_ACCEPTED: {
    json_t *r = nt_result(s, "sent", attempts);
    if (r && !recorded)
      json_object_set_new(r, "recorded", json_false());
    nt_send_finish(s, 0, r, NULL);
    return;
  }
  case NT_OUT_PERMANENT:
    snprintf(msg, sizeof msg, "the %s provider refused the message for good: %s",
             nt_channel_name(s->ch), s->error);
    erpq_job_discard(s->job);
    nt_send_finish(s, -EIO, NULL, msg);
    return;
  case NT_OUT_TEMPORARY:
    snprintf(msg, sizeof msg, "the %s provider failed, to be retried: %s", nt_channel_name(s->ch),
             s->error);
    nt_send_finish(s, -EAGAIN, NULL, msg);
    return;
  default: nt_send_finish(s, -ECANCELED, NULL, "the send was cancelled"); return;
  }
}

static void do_outcomes(lconn *l, nt_send *list) {
  size_t n = 0;
  for (nt_send *s = list; s; s = s->next)
    n++;
  nt_send **v = calloc(n ? n : 1, sizeof *v);
  size_t k = 0;
  for (nt_send *s = list, *next; s; s = next) {
    next = s->next;
    if (!v) {
      end_outcome(s, 0);
      continue;
    }
    /* Cancelled transfers change nothing: the row stays claimed by the job,
     * which comes back as the same owner. */
    if (s->out == NT_OUT_CANCELLED || s->out == NT_OUT_NONE)
      end_outcome(s, 0);
    else
      v[k++] = s;
  }
  if (!k) {
    free(v);
    return;
  }
  char err[512] = "";
  int rc = 0;
  int64_t t0 = erpq_mono_ms();
  for (int t = 1;; t++) {
    rc = ensure_conn(l, err, sizeof err);
    if (!rc)
      rc = outcome_tx(l, v, k, erpq_now_ms(), err, sizeof err);
    if (!rc)
      break;
    /* A lost or refused connection: keep trying for a while (the sends
     * went out; their records must not be lost to a restart). */
    int again = rc == -ENOTCONN || after_error(l, rc);
    if (!again && t >= TX_TRIES)
      break;
    if (erpq_mono_ms() - t0 > RECORD_RETRY_MS)
      break;
    struct timespec ts = {0, (long)(50000000L << (t < 4 ? t : 4))};
    nanosleep(&ts, NULL);
  }
  if (rc) {
    char red[400];
    nt_redact(err, red, sizeof red);
    char nbuf[24];
    snprintf(nbuf, sizeof nbuf, "%zu", k);
    erpq_log(ERPQ_LOG_ERROR, "notify.record_failed", "error", red, "#sends", nbuf, NULL);
  }
  /* The crash window (README.md): from the provider's acceptance to this
   * COMMIT; a debug line gives its longest span in the batch. */
  int64_t now = erpq_now_ms(), window = 0;
  for (size_t i = 0; i < k; i++)
    if (v[i]->out == NT_OUT_ACCEPTED && now - v[i]->sent_ms > window)
      window = now - v[i]->sent_ms;
  if (!rc && window) {
    char w[24];
    snprintf(w, sizeof w, "%lld", (long long)window);
    erpq_log(ERPQ_LOG_DEBUG, "notify.recorded", "#windowMs", w, NULL);
  }
  for (size_t i = 0; i < k; i++)
    end_outcome(v[i], rc == 0);
  free(v);
}

/* ---- The threads ----------------------------------------------------------------------
 * Two threads, each with a connection of its own: one claims, one records
 * outcomes, so that a claim batch and an outcome batch are in the database
 * at the same time (their COMMITs share the log flush). */

static nt_send *take(nt_send **head, nt_send **tail, int max) {
  nt_send *first = *head, *last = NULL, *s = *head;
  for (int i = 0; s && i < max; i++) {
    last = s;
    s = s->next;
  }
  if (!last)
    return NULL;
  *head = s;
  if (!s)
    *tail = NULL;
  last->next = NULL;
  return first;
}

static void debug_batch(const char *what, int n, int64_t ms) {
  char a[24], b[24];
  snprintf(a, sizeof a, "%d", n);
  snprintf(b, sizeof b, "%lld", (long long)ms);
  erpq_log(ERPQ_LOG_DEBUG, "notify.ledger_batch", "kind", what, "#sends", a, "#ms", b, NULL);
}

static void run_queue(nt_ledger *l, int outs) {
  int batch = l->nc->conf.ledger_batch > 0 ? l->nc->conf.ledger_batch : 200;
  nt_send **head = outs ? &l->outs : &l->claims, **tail = outs ? &l->outs_tail : &l->claims_tail;
  int *woken = outs ? &l->woken_outs : &l->woken_claims;
  lconn *c = outs ? &l->oc : &l->cc;
  pthread_mutex_lock(&l->mu);
  for (;;) {
    while (!*head && !l->stop && !*woken)
      pthread_cond_wait(&l->cv, &l->mu);
    *woken = 0;
    if (l->stop && !*head)
      break;
    nt_send *list = take(head, tail, batch);
    pthread_mutex_unlock(&l->mu);
    if (list) {
      int n = 0;
      for (nt_send *s = list; s; s = s->next)
        n++;
      int64_t t0 = erpq_mono_ms();
      if (outs)
        do_outcomes(c, list);
      else
        do_claims(c, list);
      debug_batch(outs ? "outcomes" : "claims", n, erpq_mono_ms() - t0);
    }
    pthread_mutex_lock(&l->mu);
  }
  if (outs)
    l->outs_gone = 1;
  pthread_mutex_unlock(&l->mu);
  drop_conn(c);
}

static void *claims_main(void *arg) {
  run_queue(arg, 0);
  return NULL;
}

static void *outs_main(void *arg) {
  run_queue(arg, 1);
  return NULL;
}

int nt_ledger_start(nt_ledger **out, nt_ctx *nc, char *err, size_t errlen) {
  nt_ledger *l = calloc(1, sizeof *l);
  if (!l)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  l->nc = nc;
  l->cc.nc = l->oc.nc = nc;
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  if (pthread_create(&l->th_claims, NULL, claims_main, l)) {
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
    return erpq_fail(err, errlen, -EAGAIN, "cannot start the ledger threads");
  }
  if (pthread_create(&l->th_outs, NULL, outs_main, l)) {
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->th_claims, NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
    return erpq_fail(err, errlen, -EAGAIN, "cannot start the ledger threads");
  }
  l->started = 1;
  *out = l;
  return 0;
}

void nt_ledger_stop(nt_ledger *l) {
  if (!l || !l->started)
    return;
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  pthread_join(l->th_claims, NULL);
  pthread_join(l->th_outs, NULL);
  l->started = 0;
}

void nt_ledger_free(nt_ledger *l) {
  if (!l)
    return;
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
  free(l);
}
