/*
 * erpq_notify_relay.c - the outbox relay: MySQL outbox rows to MongoDB.
 *
 * One relay is active across the fleet: every worker with ERPQ_MONGO_URL
 * runs this thread, and the one whose own MySQL connection holds the named
 * lock GET_LOCK('erpq.outbox_relay.<database>') drains; the others try for
 * the lock every few seconds (a holder that dies loses it with its
 * connection). The active relay reads unpublished rows in id order
 * (ERPQ_OUTBOX_BATCH at a time) and writes them with insert_many,
 * ordered: false:
 *   event_type 'notification.record'  -> collection notifications, the
 *                                        payload as the document (its _id
 *                                        derived from the dedup key);
 *   any other event (fees.generated, notification.sent, ...) -> audit_log,
 *     {_id: "ob:<outbox id>", type, aggregateType, aggregateId, at, data}.
 * A duplicate key error (11000) means "already recorded" (an earlier run
 * wrote it and died before marking it). When both collections took the
 * batch, the rows get published_at in MySQL. Any other failure (MongoDB
 * down, a timeout) leaves the rows unpublished: nothing is lost, the
 * relay retries with a growing pause (at most 30 s), and while rows wait
 * it logs outbox.backlog {rows, mongo: up|down} every ERPQ_OUTBOX_LOG_MS.
 * The same count is the backlog gauge: every ERPQ_OUTBOX_LOG_MS the active
 * relay writes {rows, mongo (1 up, 0 down), at (ms)} to the Redis hash
 * <prefix>:erpq:outbox (expiring after three periods, so a relay that is
 * gone stops showing), and the HTTP API's /metrics exports it as
 * erpq_outbox_backlog_rows, erpq_outbox_mongo_up and
 * erpq_outbox_backlog_age_seconds (the worker has no metrics page of its
 * own). A Redis that cannot be reached only skips the gauge. So each
 * record reaches MongoDB once: inserted once, or refused as a duplicate.
 */
#include <bson/bson.h>
#include <errno.h>
#include <inttypes.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "erpq_err.h"
#include "erpq_log.h"
#include "erpq_notify_internal.h"
#include "erpq_notify_sql.h"
#include "erpq_redis_sync.h"
#include "erpq_util.h"

struct nt_relay {
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  erpq_mysql_conf db;
  char *url;
  char dbname[64];
  int batch;
  int64_t idle_ms, log_ms;
  MYSQL *m;
  int locked;
  mongoc_client_t *client;
  int mongo_down;
  int64_t last_log, backoff;
  /* The backlog gauge in Redis (has_redis: the worker's URL parsed). */
  int has_redis, redis_up;
  erpq_redis_addr raddr;
  erpq_sync rs;
  char gauge_key[192];
};

static pthread_once_t mongo_once = PTHREAD_ONCE_INIT;
static void mongo_init_once(void) { mongoc_init(); }

/* Sleeps up to ms unless stopped; returns 1 when stopping. */
static int pause_ms(nt_relay *r, int64_t ms) {
  pthread_mutex_lock(&r->mu);
  if (!r->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
  }
  int s = r->stop;
  pthread_mutex_unlock(&r->mu);
  return s;
}

static void drop_mysql(nt_relay *r) {
  if (r->m)
    mysql_close(r->m); /* releases the lock with the connection */
  r->m = NULL;
  if (r->locked)
    erpq_log(ERPQ_LOG_INFO, "outbox.relay_inactive", NULL);
  r->locked = 0;
}

static int client_up(nt_relay *r, char *err, size_t errlen) {
  if (r->client)
    return 0;
  bson_error_t be;
  mongoc_uri_t *uri = mongoc_uri_new_with_error(r->url, &be);
  if (!uri)
    return erpq_fail(err, errlen, -EINVAL, "ERPQ_MONGO_URL: %s", be.message);
  if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
  if (!mongoc_uri_has_option(uri, MONGOC_URI_CONNECTTIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 5000);
  if (!mongoc_uri_has_option(uri, MONGOC_URI_SOCKETTIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, 30000);
  r->client = mongoc_client_new_from_uri_with_error(uri, &be);
  mongoc_uri_destroy(uri);
  if (!r->client)
    return erpq_fail(err, errlen, -EINVAL, "MongoDB client: %s", be.message);
  mongoc_client_set_appname(r->client, "erpq-worker");
  mongoc_client_set_error_api(r->client, MONGOC_ERROR_API_VERSION_2);
  return 0;
}

/* insert_many unordered into coll; duplicates count as done. 0 or an
 * error with err. */
static int insert_docs(nt_relay *r, const char *coll, bson_t **docs, size_t n, char *err,
                       size_t errlen) {
  if (!n)
    return 0;
  mongoc_collection_t *c = mongoc_client_get_collection(r->client, r->dbname, coll);
  bson_t opts = BSON_INITIALIZER, wc;
  BSON_APPEND_BOOL(&opts, "ordered", false);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "writeConcern", &wc);
  BSON_APPEND_UTF8(&wc, "w", "majority");
  bson_append_document_end(&opts, &wc);
  bson_t reply;
  bson_error_t be;
  bool ok = mongoc_collection_insert_many(c, (const bson_t **)docs, n, &opts, &reply, &be);
  int rc = 0;
  if (!ok) {
    /* Only duplicate keys (11000) are fine: the document is there. */
    bson_iter_t it, we;
    int other = 0, dups = 0;
    if (bson_iter_init_find(&it, &reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &we)) {
      while (bson_iter_next(&we)) {
        bson_iter_t e;
        if (BSON_ITER_HOLDS_DOCUMENT(&we) && bson_iter_recurse(&we, &e) &&
            bson_iter_find(&e, "code") && bson_iter_as_int64(&e) == 11000)
          dups++;
        else
          other++;
      }
    } else {
      other = 1;
    }
    if (bson_iter_init_find(&it, &reply, "writeConcernErrors"))
      other++;
    if (other)
      rc = erpq_fail(err, errlen, -EIO, "MongoDB %s: %s", coll, be.message);
  }
  bson_destroy(&reply);
  bson_destroy(&opts);
  mongoc_collection_destroy(c);
  return rc;
}

static bson_t *doc_of(json_t *j) {
  char *text = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!text)
    return NULL;
  bson_error_t be;
  bson_t *b = bson_new_from_json((const uint8_t *)text, -1, &be);
  free(text);
  return b;
}

static int64_t backlog(nt_relay *r) {
  int64_t n = -1;
  int found;
  char err[256];
  if (r->m && erpq_mysql_i64(r->m, "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL", NULL,
                             0, &n, &found, err, sizeof err))
    n = -1;
  return n;
}

/* Writes the gauge (see the header); failures only drop the connection. */
static void publish_backlog(nt_relay *r, int64_t n) {
  if (!r->has_redis || n < 0)
    return;
  char err[256];
  if (!r->redis_up) {
    if (erpq_sync_connect(&r->rs, &r->raddr, 1000, err, sizeof err))
      return;
    r->redis_up = 1;
  }
  erpq_cmd c[2];
  erpq_cmd_init(&c[0]);
  erpq_cmd_push_str(&c[0], "HSET");
  erpq_cmd_push_str(&c[0], r->gauge_key);
  erpq_cmd_push_str(&c[0], "rows");
  erpq_cmd_push_i64(&c[0], n);
  erpq_cmd_push_str(&c[0], "mongo");
  erpq_cmd_push_i64(&c[0], r->mongo_down ? 0 : 1);
  erpq_cmd_push_str(&c[0], "at");
  erpq_cmd_push_i64(&c[0], erpq_now_ms());
  erpq_cmd_init(&c[1]);
  erpq_cmd_push_str(&c[1], "PEXPIRE");
  erpq_cmd_push_str(&c[1], r->gauge_key);
  erpq_cmd_push_i64(&c[1], 3 * r->log_ms + 1000);
  redisReply *out[2] = {NULL, NULL};
  if (erpq_sync_pipeline(&r->rs, c, 2, out, err, sizeof err)) {
    erpq_sync_close(&r->rs);
    r->redis_up = 0;
    return;
  }
  freeReplyObject(out[0]);
  freeReplyObject(out[1]);
}

static void log_backlog(nt_relay *r, int force) {
  int64_t now = erpq_mono_ms();
  if (!force && now - r->last_log < r->log_ms)
    return;
  r->last_log = now;
  int64_t n = backlog(r);
  publish_backlog(r, n);
  if (n <= 0 && !r->mongo_down)
    return;
  char rows[24];
  snprintf(rows, sizeof rows, "%" PRId64, n);
  erpq_log(r->mongo_down ? ERPQ_LOG_WARN : ERPQ_LOG_INFO, "outbox.backlog", "#rows", rows, "mongo",
           r->mongo_down ? "down" : "up", NULL);
}

/* One batch: 1 some rows published, 0 none waiting, < 0 an error. */
static int relay_batch(nt_relay *r, char *err, size_t errlen) {
  nt_rows rows;
  erpq_param p[] = {ERPQ_PI(r->batch)};
  int rc = nt_sql_rows(r->m,
                       "SELECT id, aggregate_type, aggregate_id, event_type, payload,"
                       " CAST(UNIX_TIMESTAMP(created_at) * 1000 AS SIGNED)"
                       " FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ?",
                       p, 1, &rows, err, errlen);
  if (rc)
    return rc;
  if (!rows.nrows) {
    nt_rows_free(&rows);
    return 0;
  }
  size_t n = rows.nrows, nn = 0, na = 0;
  bson_t **notes = calloc(n, sizeof *notes), **audit = calloc(n, sizeof *audit);
  if (!notes || !audit)
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
  for (size_t i = 0; !rc && i < n; i++) {
    const char *id = nt_cell(&rows, i, 0), *event = nt_cell(&rows, i, 3);
    json_error_t je;
    json_t *payload = json_loads(nt_cell(&rows, i, 4), 0, &je);
    if (!payload)
      payload = json_string(nt_cell(&rows, i, 4)); /* not an object: kept as text */
    bson_t *b;
    if (!strcmp(event, "notification.record")) {
      b = doc_of(payload);
      if (b)
        notes[nn++] = b;
    } else {
      char _id[48];
      snprintf(_id, sizeof _id, "ob:%s", id);
      json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o}", "_id", _id, "type", event, "aggregateType",
                            nt_cell(&rows, i, 1), "aggregateId", nt_cell(&rows, i, 2), "at",
                            nt_json_date(strtoll(nt_cell(&rows, i, 5), NULL, 10)), "data", payload);
      b = d ? doc_of(d) : NULL;
      if (b)
        audit[na++] = b;
    }
    if (!b) {
      /* A payload BSON cannot hold (it never should): kept as text in
       * audit_log rather than blocking every row behind it. */
      char _id[48];
      snprintf(_id, sizeof _id, "ob:%s", id);
      b = doc_of(json_pack("{s:s,s:s,s:s,s:s,s:s}", "_id", _id, "type", event, "aggregateType",
                           nt_cell(&rows, i, 1), "aggregateId", nt_cell(&rows, i, 2), "raw",
                           nt_cell(&rows, i, 4)));
      if (b)
        audit[na++] = b;
      else
        rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
    }
  }
  if (!rc)
    rc = client_up(r, err, errlen);
  if (!rc)
    rc = insert_docs(r, "notifications", notes, nn, err, errlen);
  if (!rc)
    rc = insert_docs(r, "audit_log", audit, na, err, errlen);
  int mongo_failed = rc == -EIO;
  if (!rc) {
    erpq_param *ids = calloc(n, sizeof *ids);
    size_t len = 64 + 2 * n;
    char *sql = malloc(len + 64);
    if (!ids || !sql) {
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
    } else {
      char *q = sql + sprintf(sql, "UPDATE outbox SET published_at = NOW(3) WHERE id IN (");
      for (size_t i = 0; i < n; i++) {
        ids[i] = ERPQ_PI(strtoll(nt_cell(&rows, i, 0), NULL, 10));
        q += sprintf(q, "%s?", i ? "," : "");
      }
      sprintf(q, ")");
      rc = erpq_mysql_run(r->m, sql, ids, (int)n, NULL, NULL, err, errlen);
    }
    free(ids);
    free(sql);
  }
  for (size_t i = 0; i < nn; i++)
    bson_destroy(notes[i]);
  for (size_t i = 0; i < na; i++)
    bson_destroy(audit[i]);
  free(notes);
  free(audit);
  nt_rows_free(&rows);
  if (mongo_failed)
    return -EIO;
  return rc ? rc : 1;
}

static void *relay_main(void *arg) {
  nt_relay *r = arg;
  char err[768];
  r->backoff = 1000;
  for (;;) {
    pthread_mutex_lock(&r->mu);
    int stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    if (stop)
      break;
    if (!r->m && !(r->m = erpq_mysql_connect(&r->db, 0, err, sizeof err))) {
      if (pause_ms(r, 5000))
        break;
      continue;
    }
    if (!r->locked) {
      int64_t got = 0;
      int found = 0;
      if (erpq_mysql_i64(r->m, "SELECT GET_LOCK(CONCAT('erpq.outbox_relay.', DATABASE()), 0)", NULL,
                         0, &got, &found, err, sizeof err)) {
        drop_mysql(r);
        continue;
      }
      if (got != 1) {
        if (pause_ms(r, 3000))
          break;
        continue;
      }
      r->locked = 1;
      erpq_log(ERPQ_LOG_INFO, "outbox.relay_active", NULL);
    }
    int rc = relay_batch(r, err, sizeof err);
    if (rc == 1) {
      if (r->mongo_down) {
        r->mongo_down = 0;
        erpq_log(ERPQ_LOG_INFO, "outbox.mongo_up", NULL);
      }
      r->backoff = 1000;
      log_backlog(r, 0);
      continue;
    }
    if (rc == 0) {
      log_backlog(r, 0); /* The gauge says 0 now and then. */
      if (pause_ms(r, r->idle_ms))
        break;
      continue;
    }
    char red[512];
    nt_redact(err, red, sizeof red);
    if (rc == -EIO || rc == -EINVAL) {
      if (!r->mongo_down) {
        r->mongo_down = 1;
        erpq_log(ERPQ_LOG_WARN, "outbox.mongo_down", "error", red, NULL);
        log_backlog(r, 1);
      } else {
        log_backlog(r, 0);
      }
      if (pause_ms(r, r->backoff))
        break;
      r->backoff = r->backoff * 2 > 30000 ? 30000 : r->backoff * 2;
      continue;
    }
    erpq_log(ERPQ_LOG_WARN, "outbox.mysql_error", "error", red, NULL);
    drop_mysql(r);
    if (pause_ms(r, 2000))
      break;
  }
  drop_mysql(r);
  if (r->client)
    mongoc_client_destroy(r->client);
  r->client = NULL;
  if (r->redis_up)
    erpq_sync_close(&r->rs);
  r->redis_up = 0;
  return NULL;
}

int nt_relay_start(nt_relay **out, const erpq_mysql_conf *db, const nt_conf *c, char *err,
                   size_t errlen) {
  *out = NULL;
  pthread_once(&mongo_once, mongo_init_once);
  nt_relay *r = calloc(1, sizeof *r);
  if (!r || !(r->url = strdup(c->mongo_url))) {
    free(r);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  bson_error_t be;
  mongoc_uri_t *uri = mongoc_uri_new_with_error(r->url, &be);
  if (!uri) {
    free(r->url);
    free(r);
    return erpq_fail(err, errlen, -EINVAL, "ERPQ_MONGO_URL is not a MongoDB URI: %s", be.message);
  }
  const char *udb = mongoc_uri_get_database(uri);
  snprintf(r->dbname, sizeof r->dbname, "%s", udb && *udb ? udb : c->mongo_db);
  mongoc_uri_destroy(uri);
  r->db = *db;
  r->batch = c->relay_batch > 0 ? c->relay_batch : 500;
  r->idle_ms = c->relay_idle_ms > 0 ? c->relay_idle_ms : 1000;
  r->log_ms = c->relay_log_ms > 0 ? c->relay_log_ms : 30000;
  r->last_log = erpq_mono_ms() - r->log_ms;
  char ignore[256];
  r->has_redis = c->redis_url && !erpq_redis_url_parse(c->redis_url, &r->raddr, ignore, sizeof ignore);
  snprintf(r->gauge_key, sizeof r->gauge_key, "%s:erpq:outbox", c->prefix);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  if (pthread_create(&r->th, NULL, relay_main, r)) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->url);
    free(r);
    return erpq_fail(err, errlen, -EAGAIN, "cannot start the outbox relay");
  }
  *out = r;
  return 0;
}

void nt_relay_stop(nt_relay *r) {
  if (!r)
    return;
  pthread_mutex_lock(&r->mu);
  r->stop = 1;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  pthread_join(r->th, NULL);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  memset(r->url, 0, strlen(r->url));
  free(r->url);
  memset(&r->db, 0, sizeof r->db);
  memset(&r->raddr, 0, sizeof r->raddr);
  free(r);
}
